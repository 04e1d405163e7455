package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	if res := c.Get("/healthz"); res.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", res.StatusCode)
	}
	res := c.Get("/readyz")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, "postgres: ok") || !strings.Contains(res.Body, "redis: ok") {
		t.Errorf("/readyz: %d %q", res.StatusCode, res.Body)
	}
	if len(res.Cookies()) != 0 {
		t.Error("health checks set cookies: they must not touch sessions")
	}
}

func TestReadinessNamesTheServiceThatIsDown(t *testing.T) {
	redis := apptest.StartRedis(t)
	env := apptest.New(t, apptest.With("REDIS_URL", redis.URL()))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	redis.Stop()

	res := env.Client(t).Get("/readyz")
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(res.Body, "redis: unreachable") ||
		!strings.Contains(res.Body, "postgres: ok") {
		t.Errorf("/readyz with Redis gone: %d %q", res.StatusCode, res.Body)
	}
	if res := env.Client(t).Get("/healthz"); res.StatusCode != http.StatusOK {
		t.Errorf("/healthz with Redis gone: %d", res.StatusCode)
	}
	// A page that needs the session answers a clear 503, with no internals.
	res = c.Get("/account")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/account with Redis gone: %d", res.StatusCode)
	}
	if msg := res.Doc(t).Find(`[data-testid="error-message"]`).Text(); !strings.Contains(msg, "temporarily unavailable") {
		t.Errorf("503 page says %q", msg)
	}
	if strings.Contains(res.Body, "dial") || strings.Contains(res.Body, "connection refused") {
		t.Error("the 503 page shows internal error text")
	}
	// When Redis comes back, so does the app, without a restart. (This
	// Redis kept nothing, so the session is gone: sign in again.)
	redis.Start()
	if res := env.Client(t).Get("/readyz"); res.StatusCode != http.StatusOK {
		t.Errorf("/readyz after Redis returned: %d", res.StatusCode)
	}
	if res := c.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("/account after Redis returned: %d, want 303 to sign in", res.StatusCode)
	}
	c.SignIn("ada@example.com", "analytical engine")
	if res := c.Get("/account"); res.StatusCode != http.StatusOK {
		t.Errorf("signed in again after Redis returned: %d", res.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	for _, path := range []string{"/signin", "/account", "/account/sessions"} {
		res := c.Get(path)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline code", path)
		}
		checks := map[string]string{
			"X-Content-Type-Options": "nosniff",
			"X-Frame-Options":        "DENY",
			"Referrer-Policy":        "same-origin",
			"Cache-Control":          "no-store",
		}
		for name, want := range checks {
			if got := h.Get(name); got != want {
				t.Errorf("%s: %s = %q, want %q", path, name, got, want)
			}
		}
		if h.Get("Permissions-Policy") == "" {
			t.Errorf("%s: no Permissions-Policy", path)
		}
		// Scripts (htmx, app.js) are files of this site, never inline.
		res.Doc(t).Find("script").Each(func(_ int, s *goquery.Selection) {
			if src, _ := s.Attr("src"); !strings.HasPrefix(src, "/static/") || strings.TrimSpace(s.Text()) != "" {
				t.Errorf("%s: a script that is not a file of this site: src=%q, %d characters inline", path, src, len(s.Text()))
			}
		})
		if strings.Contains(res.Body, "style=") {
			t.Errorf("%s: inline style attribute, which the CSP blocks", path)
		}
	}
}
