package session

import (
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzDescribe: any user agent yields printable, non-empty labels and no
// panic, and is kept (UserAgent) as valid UTF-8 without controls, within
// its bound. The seed corpus runs in the normal test suite.
func FuzzDescribe(f *testing.F) {
	for _, ua := range []string{
		"",
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
		"curl/8.5.0",
		"<img src=x onerror=alert(1)>",
		"\x00\xff\xfe",
		strings.Repeat("\xffa", 400),
		strings.Repeat("é", 300),
	} {
		f.Add(ua)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		d := Describe(ua)
		if d.Browser == "" || d.OS == "" || d.Type == "" {
			t.Fatalf("Describe(%q) = %+v: empty label", ua, d)
		}
		switch d.Type {
		case "desktop", "phone", "tablet", "bot", "unknown":
		default:
			t.Fatalf("Describe(%q).Type = %q", ua, d.Type)
		}
		r := &http.Request{Header: http.Header{"User-Agent": {ua}}}
		if got := UserAgent(r); len(got) > maxUserAgent || !utf8.ValidString(got) ||
			strings.IndexFunc(got, unicode.IsControl) >= 0 {
			t.Fatalf("UserAgent(%q) = %q", ua, got)
		}
	})
}

func FuzzValidPublicID(f *testing.F) {
	f.Add("abcdefghijklmnopqrstuvwxyz")
	f.Add("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	f.Add("'; DROP TABLE sessions;--")
	f.Fuzz(func(t *testing.T, s string) {
		if ValidPublicID(s) {
			for _, r := range s {
				if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') || len(s) != 26 {
					t.Fatalf("ValidPublicID(%q) accepted a foreign character", s)
				}
			}
		}
	})
}
