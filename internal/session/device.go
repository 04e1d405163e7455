package session

import (
	"net/http"
	"strings"
	"unicode"

	"github.com/mileusna/useragent"

	"github.com/gatehouse/gatehouse/internal/models"
)

// maxUserAgent bounds the User-Agent kept in a session record or an audit
// event, in bytes.
const maxUserAgent = 512

// UserAgent is r's User-Agent header as Gatehouse keeps it: valid UTF-8 (a
// header may carry any bytes, Latin-1 say, which Postgres refuses: each run
// of bad bytes becomes U+FFFD), without control characters (Postgres
// refuses NUL too), at most maxUserAgent bytes. Session records and audit
// events store this, never the raw header.
func UserAgent(r *http.Request) string {
	ua := strings.Map(func(ch rune) rune {
		if unicode.IsControl(ch) {
			return -1
		}
		return ch
	}, strings.ToValidUTF8(r.UserAgent(), "\uFFFD"))
	return models.Truncate(ua, maxUserAgent)
}

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
