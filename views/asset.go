package views

import (
	"context"
	"encoding/json"
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

// htmxConfig turns off what htmx would otherwise do that the
// Content-Security-Policy forbids or the app does not want: an inline
// <style> for request indicators, eval, scripts in swapped content, and
// copies of pages (which hold personal data) in localStorage.
const htmxConfig = `{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyCacheSize":0}`

// csrfHeaders is the hx-headers value that makes every htmx request carry
// the CSRF token, for clients that do not send Sec-Fetch-Site.
func csrfHeaders(token string) string {
	if !plainToken(token) {
		b, _ := json.Marshal(map[string]string{"X-CSRF-Token": token}) // a map of strings always encodes
		return string(b)
	}
	// What json.Marshal makes of it, without its map and reflection: on
	// every page.
	return `{"X-CSRF-Token":"` + token + `"}`
}

// plainToken reports whether token is only characters that JSON and HTML
// write as they are: a masked token's (m. and base64url) and Echo's.
func plainToken(token string) bool {
	for i := range len(token) {
		switch c := token[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

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
