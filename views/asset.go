package views

import (
	"encoding/json"
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
	b, _ := json.Marshal(map[string]string{"X-CSRF-Token": token}) // a map of strings always encodes
	return string(b)
}

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
