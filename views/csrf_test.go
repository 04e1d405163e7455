package views

import (
	"context"
	stdhtml "html"
	"strings"
	"testing"
)

// The CSRF field is written by hand (asset.go): whatever the token, it
// must say what templ would.
func TestCSRFFieldEscapesAnyToken(t *testing.T) {
	for _, token := range []string{
		"m.JLE-jrVCCpR2dvKYTboux3QmeZAu7c4n28QeuKEfO7hly2jH4gNA8R47kNM-9HejPHI20kq5q3GRr0zf-UhY1g",
		"bMtFuvsZVffrafCrnuJVwTOHaCQxZEGi",
		`"><script>alert(1)</script>`,
		`a&b'c\d` + "\u2028",
		"",
	} {
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
