package views

import (
	"context"
	"encoding/json"
	stdhtml "html"
	"strings"
	"testing"
)

// The CSRF field and the hx-headers value are written by hand (asset.go):
// whatever the token, they must say what templ and json.Marshal would.
func TestCSRFFieldAndHeadersEscapeAnyToken(t *testing.T) {
	for _, token := range []string{
		"m.JLE-jrVCCpR2dvKYTboux3QmeZAu7c4n28QeuKEfO7hly2jH4gNA8R47kNM-9HejPHI20kq5q3GRr0zf-UhY1g",
		"bMtFuvsZVffrafCrnuJVwTOHaCQxZEGi",
		`"><script>alert(1)</script>`,
		`a&b'c\d` + "\u2028",
		"",
	} {
		want, _ := json.Marshal(map[string]string{"X-CSRF-Token": token})
		if got := csrfHeaders(token); got != string(want) {
			t.Errorf("csrfHeaders(%q) = %s, want %s", token, got, want)
		}

		var b strings.Builder
		ctx := WithChrome(context.Background(), Chrome{CSRF: token})
		if err := CSRFField().Render(ctx, &b); err != nil {
			t.Fatal(err)
		}
		html := b.String()
		value, ok := strings.CutPrefix(html, `<input type="hidden" name="_csrf" value="`)
		value, ok2 := strings.CutSuffix(value, `">`)
		if !ok || !ok2 || strings.ContainsAny(value, `"<>`) || stdhtml.UnescapeString(value) != token {
			t.Errorf("CSRFField for %q = %s: not the token, escaped, in the field", token, html)
		}
	}
}
