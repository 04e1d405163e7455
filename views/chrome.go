// Package views holds Gatehouse's templ pages. Each page takes a typed view
// model; the request-wide chrome (signed-in user, CSRF token, flash message)
// travels in the context.
package views

import (
	"context"
	"time"

	"github.com/dustin/go-humanize"
)

// Chrome is what every page's layout needs to know about the request.
type Chrome struct {
	User  *CurrentUser // nil when nobody is signed in
	CSRF  string       // value of the hidden _csrf field
	Flash string       // a one-off message from the previous request
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
