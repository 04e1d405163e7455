package session

import "github.com/mileusna/useragent"

// DeviceInfo is what a user agent string says about a browser, in words a
// person recognises ("Firefox", "Linux", "desktop").
type DeviceInfo struct {
	Browser string
	OS      string
	Type    string // desktop, phone, tablet, bot or unknown
}

// Describe summarises a User-Agent header. It never fails: what it cannot
// recognise comes back as "Unknown".
func Describe(ua string) DeviceInfo {
	p := useragent.Parse(ua)
	d := DeviceInfo{Browser: p.Name, OS: p.OS, Type: "unknown"}
	if d.Browser == "" {
		d.Browser = "Unknown browser"
	}
	if d.OS == "" {
		d.OS = "unknown OS"
	}
	switch {
	case p.Bot:
		d.Type = "bot"
	case p.Tablet:
		d.Type = "tablet"
	case p.Mobile:
		d.Type = "phone"
	case p.Desktop:
		d.Type = "desktop"
	}
	return d
}
