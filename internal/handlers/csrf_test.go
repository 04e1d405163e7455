package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// TestCSRFTokenRotatesWithTheUser: a CSRF token captured before sign-up,
// sign-in or sign-out is refused after it (for a client without
// Sec-Fetch-Site, which goes through the token check), and the new token
// the answer hands out, once, works.
func TestCSRFTokenRotatesWithTheUser(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	profile := url.Values{"name": {"Ada"}, "email": {"ada@example.com"}}

	// checkRotated checks the answer at moment (res) set one new token,
	// posts the profile form with the old token (refused), then with the
	// new one (accepted when signedIn, else sent to sign in).
	checkRotated := func(moment string, res *apptest.Response, old string, signedIn bool) {
		t.Helper()
		var set []string
		for _, line := range res.Header.Values("Set-Cookie") {
			if strings.HasPrefix(line, "gatehouse_csrf=") {
				set = append(set, line)
			}
		}
		if len(set) != 1 || c.Cookie("gatehouse_csrf") == old {
			t.Fatalf("the %s answer set the CSRF cookie %q; the browser holds %q, the old one was %q",
				moment, set, c.Cookie("gatehouse_csrf"), old)
		}
		form := url.Values{"_csrf": {old}}
		for k, v := range profile {
			form[k] = v
		}
		if res := c.Post("/account", form); res.StatusCode != http.StatusForbidden {
			t.Errorf("the token from before %s: %d, want 403", moment, res.StatusCode)
		}
		form.Set("_csrf", c.Cookie("gatehouse_csrf"))
		want := "/signin"
		if signedIn {
			want = "/account"
		}
		if res := c.Post("/account", form); res.StatusCode != http.StatusSeeOther || res.Location() != want {
			t.Errorf("the fresh token after %s: %d to %q, want %s", moment, res.StatusCode, res.Location(), want)
		}
	}

	old := c.CSRFToken()
	checkRotated("sign-up", c.SignUp("Ada", "ada@example.com", "analytical engine"), old, true)

	old = c.CSRFToken()
	res := c.Post("/signout", nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", res.StatusCode)
	}
	checkRotated("sign-out", res, old, false)

	old = c.CSRFToken()
	checkRotated("sign-in", c.SignIn("ada@example.com", "analytical engine"), old, true)
}

// TestCSRFCookieIsSentOnce: the CSRF cookie goes to a browser that does
// not hold it, lasting as long as a session can (SESSION_LIFETIME), and
// is not sent again while the browser sends it back; its token keeps
// working. Sign-in replaces it (TestCSRFTokenRotatesWithTheUser).
func TestCSRFCookieIsSentOnce(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("SESSION_LIFETIME", "48h"))
	c := env.Client(t)
	csrfLines := func(res *apptest.Response) []string {
		var lines []string
		for _, line := range res.Header.Values("Set-Cookie") {
			if strings.HasPrefix(line, "gatehouse_csrf=") {
				lines = append(lines, line)
			}
		}
		return lines
	}
	first := csrfLines(c.Get("/signin"))
	if len(first) != 1 {
		t.Fatalf("a first visit got CSRF cookies %q, want one", first)
	}
	if ck, err := http.ParseSetCookie(first[0]); err != nil || !ck.HttpOnly || time.Until(ck.Expires) < 47*time.Hour {
		t.Errorf("the CSRF cookie %q: want HttpOnly, lasting SESSION_LIFETIME (48h)", first[0])
	}
	if again := csrfLines(c.Get("/signin")); len(again) != 0 {
		t.Errorf("a browser holding the token got it again: %q", again)
	}
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	token := c.Cookie("gatehouse_csrf")
	for _, path := range []string{"/account", "/account/sessions", "/no-such-page"} {
		if lines := csrfLines(c.Get(path)); len(lines) != 0 {
			t.Errorf("GET %s re-sent the CSRF cookie: %q", path, lines)
		}
	}
	// Without Sec-Fetch-Site, the token held all along still passes the check.
	res := c.Post("/account", url.Values{"_csrf": {token}, "name": {"Ada L."}, "email": {"ada@example.com"}})
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/account" {
		t.Errorf("a form with the token the browser holds: %d to %q", res.StatusCode, res.Location())
	}
	if lines := csrfLines(res); len(lines) != 0 {
		t.Errorf("the form's answer re-sent the CSRF cookie: %q", lines)
	}
	// A browser that lost the cookie gets a new one.
	c.HTTP.Jar.SetCookies(res.Request.URL, []*http.Cookie{{Name: "gatehouse_csrf", Path: "/", MaxAge: -1}})
	if lines := csrfLines(c.Get("/account")); len(lines) != 1 {
		t.Errorf("a browser without the cookie got %q, want one new", lines)
	}

	// With sessions shorter than a day (the default 12 h), the cookie
	// still lasts a day, as Echo's did.
	short := apptest.New(t, apptest.With("SESSION_LIFETIME", "1h"), apptest.With("SESSION_IDLE_TIMEOUT", "30m"))
	lines := short.Client(t).Get("/signin").Header.Values("Set-Cookie")
	var day bool
	for _, line := range lines {
		if ck, err := http.ParseSetCookie(line); err == nil && ck.Name == "gatehouse_csrf" {
			day = time.Until(ck.Expires) > 23*time.Hour
		}
	}
	if !day {
		t.Errorf("with SESSION_LIFETIME=1h the CSRF cookie %q does not last a day", lines)
	}
}
