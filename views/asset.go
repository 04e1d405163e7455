package views

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/dustin/go-humanize"

	"github.com/gatehouse/gatehouse/static"
)

// Asset is the URL of a static file, named by its content hash so browsers
// can cache it for good: Asset("app.css") is "/static/app.1f2e3d4c.css".
func Asset(name string) string { return static.Asset(name) }

// CSRFField is the hidden anti-CSRF token every form carries. It is
// written by hand rather than by templ, whose generated code formats each
// value through fmt.Sprint: this runs for every form of every page.
func CSRFField() templ.Component { return csrfField }

var csrfField = templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
	for _, s := range [...]string{`<input type="hidden" name="_csrf" value="`, templ.EscapeString(chrome(ctx).CSRF), `">`} {
		if _, err := io.WriteString(w, s); err != nil {
			return err
		}
	}
	return nil
})

// fieldAttrs links an input to its error message, when it has one, and to
// any hints (by id), so screen readers read them with the field.
func fieldAttrs(errs FieldErrors, field string, hints ...string) templ.Attributes {
	attrs := templ.Attributes{}
	ids := hints
	if errs[field] != "" {
		attrs["aria-invalid"] = "true"
		ids = append(ids[:len(ids):len(ids)], field+"-error")
	}
	if len(ids) > 0 {
		attrs["aria-describedby"] = strings.Join(ids, " ")
	}
	return attrs
}

// until renders a future t relative to now ("in 3 hours").
func until(t, now time.Time) string {
	if !t.After(now) {
		return "now"
	}
	return "in " + strings.TrimSpace(humanize.RelTime(now, t, "", ""))
}
