// Package views holds Gatehouse's templ pages. Each page takes a typed view
// model; the request-wide chrome (signed-in user, CSRF token, flash message)
// travels in the context.
package views

import (
	"context"
	"html"
	"io"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/dustin/go-humanize"
)

// Chrome is what every page's layout needs to know about the request.
type Chrome struct {
	User  *CurrentUser // nil when nobody is signed in
	CSRF  string       // value of the hidden _csrf field
	Flash string       // a one-off message from the previous request
	// FlashTone is "" for a confirmation of what the user did (green), or
	// ToneInfo, ToneWarning or ToneError for news they did not ask for.
	FlashTone string
}

// Tones of a flash message other than a plain confirmation.
const (
	ToneInfo    = "info"
	ToneWarning = "warning"
	ToneError   = "error"
)

// flashClass is the flash message's class for its tone.
func flashClass(tone string) string {
	if tone == "" {
		return "flash"
	}
	return "flash flash-" + tone
}

// CurrentUser is the signed-in user as the navigation shows them.
type CurrentUser struct {
	Name  string
	Email string
	Admin bool
}

type chromeKey struct{}

// WithChrome returns ctx carrying c for the layout.
func WithChrome(ctx context.Context, c Chrome) context.Context {
	return context.WithValue(ctx, chromeKey{}, c)
}

func chrome(ctx context.Context) Chrome {
	c, _ := ctx.Value(chromeKey{}).(Chrome)
	return c
}

// FieldErrors maps a form field's name to what is wrong with it.
type FieldErrors map[string]string

// ago renders t relative to now ("3 minutes ago"). A time after now
// (written by an instance whose clock is ahead of this one's) reads "now":
// nothing that has happened is shown as happening in the future.
func ago(t, now time.Time) string {
	if t.After(now) {
		t = now
	}
	return humanize.RelTime(t, now, "ago", "from now")
}

// stamp renders t as an exact time for tooltips and <time datetime>.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// utcText renders t as an absolute time in UTC, the text a <time data-local>
// shows until (and unless) app.js rewrites it in the browser's time zone.
func utcText(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") }

// ipAddress writes an IP address that may wrap only after a colon (a <wbr>
// after each IPv6 group), never inside a number; an IPv4 address never
// wraps (app.css). Each part is escaped.
func ipAddress(ip string) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		var b strings.Builder
		b.WriteString(`<span class="ip-address">`)
		for i, part := range strings.SplitAfter(ip, ":") {
			if i > 0 {
				b.WriteString("<wbr>")
			}
			b.WriteString(html.EscapeString(part))
		}
		b.WriteString("</span>")
		_, err := io.WriteString(w, b.String())
		return err
	})
}
