package handlers

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeNext: whatever it is given, safeNext returns "" or a path a
// browser resolves on this site. The seed corpus runs with the normal
// tests; `go test -fuzz FuzzSafeNext ./internal/handlers/` explores.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{
		"/account", "/account/sessions?x=1#y", "//evil.example", "/\\evil.example", "\\\\evil.example",
		"https://evil.example/", "javascript:alert(1)", "/%2F%2Fevil.example", "%2F%2Fevil.example",
		"/%5Cevil.example", "/\t/evil.example", "/%09/evil.example", "///evil.example", "/.//evil.example",
		"/a/../..//evil.example", "", "/", "/%", "/%zz",
	} {
		f.Add(s)
	}
	base, _ := url.Parse("https://gatehouse.example/some/page")
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got == "" {
			return
		}
		if got != next {
			t.Fatalf("safeNext(%q) = %q: must return its input or nothing", next, got)
		}
		// Resolve as a browser would, including after one more decoding.
		for _, s := range []string{got, mustUnescape(got)} {
			u, err := base.Parse(s)
			if err != nil {
				continue
			}
			if u.Host != base.Host || u.Scheme != base.Scheme {
				t.Fatalf("safeNext accepted %q, which leads to %s", next, u)
			}
		}
		if strings.ContainsAny(got, "\\\r\n\t") {
			t.Fatalf("safeNext accepted %q", next)
		}
	})
}

func mustUnescape(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}
