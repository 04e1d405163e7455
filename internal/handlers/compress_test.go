package handlers_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/handlers"
)

// getRaw sends GET path with Accept-Encoding set by hand, so the client
// does not decompress, and returns the response with its raw body.
func getRaw(t *testing.T, c *apptest.Client, env *apptest.Env, path, acceptEncoding string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.Server.URL+path, nil)
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	res := c.Do(req)
	return res.Response, []byte(res.Body)
}

func getRawOK(t *testing.T, c *apptest.Client, env *apptest.Env, path, acceptEncoding string) *http.Response {
	t.Helper()
	res, _ := getRaw(t, c, env, path, acceptEncoding)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, res.StatusCode)
	}
	return res
}

func decode(t *testing.T, encoding string, body []byte) string {
	t.Helper()
	var r io.Reader
	switch encoding {
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	default:
		return string(body)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", encoding, err)
	}
	return string(b)
}

func TestPagesAreCompressedAsTheClientAccepts(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	for i := range 8 {
		other := env.Client(t)
		other.SignIn("ada@example.com", "analytical engine")
		_ = i
	}
	_, plain := getRaw(t, c, env, "/account/sessions", "identity")
	if strings.Count(string(plain), "data-session-id") < 9 {
		t.Fatalf("not the Devices page:\n%.300s", plain)
	}
	for _, tc := range []struct{ accept, want string }{
		{"gzip, deflate, br, zstd", "gzip"},
		{"br", "br"},
		{"br, gzip;q=0", "br"},
		{"br;q=0, gzip", "gzip"},
		{"gzip;q=0.5", "gzip"},
		{"*", "gzip"},
		{"br;q=0, gzip;q=0, *", ""},
		{"identity", ""},
		{"deflate", ""},
		{"gzip;q=0", ""},
		{"GZIP", "gzip"},
		{"bogus;;;q=x,,", ""},
	} {
		res, body := getRaw(t, c, env, "/account/sessions", tc.accept)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("Accept-Encoding %q: status %d", tc.accept, res.StatusCode)
		}
		if got := res.Header.Get("Content-Encoding"); got != tc.want {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", tc.accept, got, tc.want)
		}
		if !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Accept-Encoding") {
			t.Errorf("Accept-Encoding %q: no Vary: Accept-Encoding (%q)", tc.accept, res.Header.Values("Vary"))
		}
		if res.ContentLength != int64(len(body)) {
			t.Errorf("Accept-Encoding %q: Content-Length %d for %d bytes", tc.accept, res.ContentLength, len(body))
		}
		// Each page masks the CSRF token afresh and says how long ago
		// things happened: compare what does not change.
		page := decode(t, tc.want, body)
		if strings.Count(page, "data-session-id") != strings.Count(string(plain), "data-session-id") ||
			len(page) < len(plain)*99/100 || len(page) > len(plain)*101/100 || !strings.HasSuffix(page, "</html>") {
			t.Errorf("Accept-Encoding %q: the decoded page differs from the plain one:\n%.300s", tc.accept, page)
		}
		if tc.want != "" && len(body)*3 > len(plain) {
			t.Errorf("Accept-Encoding %q: %d bytes compressed of %d", tc.accept, len(body), len(plain))
		}
	}
}

// A redirect and error answers (4xx, 5xx) are sent as they are.
func TestTinyResponsesAreNotCompressed(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	req, _ := http.NewRequest(http.MethodPost, env.Server.URL+"/signin", strings.NewReader(url.Values{"_csrf": {c.CSRFToken()}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept-Encoding", "br, gzip")
	res := c.Do(req)
	// Error answers stay cheap under a flood: never compressed.
	if res.StatusCode != http.StatusUnprocessableEntity || res.Header.Get("Content-Encoding") != "" {
		t.Errorf("sign-in form with errors: %d, Content-Encoding %q, want none", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
	if res := getRawOK(t, c, env, "/signin", "gzip"); res.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("the sign-in page (200) was not compressed")
	}
	res2, body := getRaw(t, c, env, "/static/nothing-here.css", "br, gzip")
	if res2.StatusCode != http.StatusNotFound {
		t.Fatalf("missing static file: %d", res2.StatusCode)
	}
	if enc := res2.Header.Get("Content-Encoding"); enc != "" {
		t.Errorf("a %d-byte 404 page was compressed (%s)", len(body), enc)
	}
	res3, _ := getRaw(t, c, env, "/account", "br, gzip") // a redirect to sign in
	if res3.StatusCode != http.StatusSeeOther || res3.Header.Get("Content-Encoding") != "" {
		t.Errorf("redirect: %d, Content-Encoding %q", res3.StatusCode, res3.Header.Get("Content-Encoding"))
	}
}

// BREACH: the CSRF token on a page is masked afresh for each response, so
// two pages never carry it in the same bytes, and the masked token is
// accepted like the token itself.
func TestCSRFTokenIsMaskedPerResponse(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	token := c.CSRFToken()
	seen := map[string]bool{}
	for range 5 {
		doc := c.Get("/signup").Doc(t)
		v, _ := doc.Find(`input[name="_csrf"]`).Attr("value")
		if v == token || strings.Contains(doc.Text(), token) || seen[v] {
			t.Fatalf("the page carries the token unmasked or repeated: %q", v)
		}
		seen[v] = true
		if handlers.UnmaskCSRF(v) != token {
			t.Fatalf("%q does not unmask to the token", v)
		}
	}
	var masked string
	for v := range seen {
		masked = v
	}
	res := c.Post("/signup", url.Values{"_csrf": {masked}, "name": {"Ada"}, "email": {"ada@example.com"}, "password": {"analytical engine"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-up with a masked token: %d", res.StatusCode)
	}
	// A masked value of another token, or a mangled one, is refused.
	for _, bad := range []string{"m." + strings.Repeat("A", 70), "m.%%%", "m.", masked} {
		res := c.Post("/account", url.Values{"_csrf": {bad}, "name": {"Eve"}, "email": {"ada@example.com"}})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("POST with _csrf %q: %d, want 403", bad, res.StatusCode)
		}
	}
}
