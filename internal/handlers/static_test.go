package handlers_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/static"
)

// get fetches path with extra request headers.
func get(t *testing.T, c *apptest.Client, method, path string, header map[string]string) *apptest.Response {
	t.Helper()
	req, err := http.NewRequest(method, c.Base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return c.Do(req)
}

func TestStaticFilesAreHashedAndCachedForAYear(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	page := c.Get("/signin").Doc(t)

	// The layout names every file by its content hash, from one helper.
	linked := map[string]string{
		"app.css":     page.Find(`link[rel="stylesheet"]`).AttrOr("href", ""),
		"favicon.svg": page.Find(`link[rel="icon"]`).AttrOr("href", ""),
		"htmx.min.js": page.Find(`script[src*="htmx"]`).AttrOr("src", ""),
		"app.js":      page.Find(`script[src*="/app."]`).AttrOr("src", ""),
	}
	for name, href := range linked {
		if href != static.Asset(name) {
			t.Errorf("%s is linked as %q, want %q", name, href, static.Asset(name))
		}
		want, err := static.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		// Go's transport would ask for gzip and decode it: ask for nothing.
		res := get(t, c, http.MethodGet, href, map[string]string{"Accept-Encoding": "identity"})
		if res.StatusCode != http.StatusOK || res.Body != string(want) {
			t.Errorf("GET %s: %d, %d bytes, want the %d bytes of %s", href, res.StatusCode, len(res.Body), len(want), name)
		}
		if got := res.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q", href, got)
		}
		if got := res.Header.Get("Content-Encoding"); got != "" {
			t.Errorf("GET %s without Accept-Encoding: Content-Encoding %q", href, got)
		}
		if len(res.Cookies()) != 0 {
			t.Errorf("GET %s set cookies: static files must not touch the session: %v", href, res.Cookies())
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", href)
		}
	}
	for name, want := range map[string]string{
		"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
		"htmx.min.js": "text/javascript; charset=utf-8", "favicon.svg": "image/svg+xml",
	} {
		res := get(t, c, http.MethodHead, static.Asset(name), nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != want || res.Body != "" {
			t.Errorf("HEAD %s: %d, Content-Type %q, body %d bytes", name, res.StatusCode, res.Header.Get("Content-Type"), len(res.Body))
		}
	}

	// An old or unknown hash, or no hash at all, is not found.
	css := static.Asset("app.css")
	for _, path := range []string{
		"/static/app.css", "/static/app.00000000.css", strings.Replace(css, ".css", ".js", 1),
		"/static/embed.go", "/static/", "/static/../go.mod", "/static/app.css/x",
	} {
		if res := c.Get(path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}

	// A known file is revalidated without a body.
	etag := get(t, c, http.MethodGet, css, map[string]string{"Accept-Encoding": "identity"}).Header.Get("ETag")
	if res := get(t, c, http.MethodGet, css, map[string]string{"Accept-Encoding": "identity", "If-None-Match": etag}); res.StatusCode != http.StatusNotModified || etag == "" {
		t.Errorf("If-None-Match %q: %d, want 304", etag, res.StatusCode)
	}
}

func TestStaticFilesAreCompressedWhenAccepted(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	path := static.Asset("htmx.min.js")
	want, err := static.FS.ReadFile("htmx.min.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ accept, encoding string }{
		{"gzip, deflate, br, zstd", "br"},
		{"gzip, deflate", "gzip"},
		{"br;q=0, gzip", "gzip"},
		{"*", "br"},
		{"*, br;q=0", "gzip"},
		{"identity", ""},
		{"gzip;q=0, br;q=0", ""},
		{"", ""},
	} {
		res := get(t, c, http.MethodGet, path, map[string]string{"Accept-Encoding": tc.accept})
		if got := res.Header.Get("Content-Encoding"); res.StatusCode != http.StatusOK || got != tc.encoding {
			t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q, want %q", tc.accept, res.StatusCode, got, tc.encoding)
			continue
		}
		if !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("Accept-Encoding %q: no Vary: Accept-Encoding", tc.accept)
		}
		var r io.Reader = strings.NewReader(res.Body)
		switch tc.encoding {
		case "gzip":
			if r, err = gzip.NewReader(r); err != nil {
				t.Fatal(err)
			}
		case "br":
			r = brotli.NewReader(r)
		}
		body, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(body, want) {
			t.Errorf("Accept-Encoding %q: decoded body differs from the file (%v)", tc.accept, err)
		}
		if tc.encoding != "" && len(res.Body) >= len(want)/2 {
			t.Errorf("%s: %d bytes compressed from %d", tc.encoding, len(res.Body), len(want))
		}
	}
}
