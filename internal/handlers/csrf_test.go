package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

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
