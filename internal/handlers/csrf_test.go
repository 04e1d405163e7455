package handlers_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// TestCSRFTokenRotatesWithTheUser: a CSRF token captured before sign-up,
// sign-in or sign-out is refused after it (for a client without
// Sec-Fetch-Site, which goes through the token check), and the fresh token
// the next page hands out works.
func TestCSRFTokenRotatesWithTheUser(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	profile := url.Values{"name": {"Ada"}, "email": {"ada@example.com"}}

	// checkRotated posts the profile form with the old token (refused),
	// then with the token of a freshly loaded page (accepted when
	// signedIn, else sent to sign in).
	checkRotated := func(moment, old string, signedIn bool) {
		t.Helper()
		if ck := c.Cookie("gatehouse_csrf"); ck == old {
			t.Fatalf("after %s the browser still holds the old CSRF token", moment)
		}
		form := url.Values{"_csrf": {old}}
		for k, v := range profile {
			form[k] = v
		}
		if res := c.Post("/account", form); res.StatusCode != http.StatusForbidden {
			t.Errorf("the token from before %s: %d, want 403", moment, res.StatusCode)
		}
		c.Get("/signin") // any page hands out a token
		fresh := c.Cookie("gatehouse_csrf")
		if fresh == "" || fresh == old {
			t.Fatalf("after %s the next page gave token %q (old %q)", moment, fresh, old)
		}
		form.Set("_csrf", fresh)
		want := "/signin"
		if signedIn {
			want = "/account"
		}
		if res := c.Post("/account", form); res.StatusCode != http.StatusSeeOther || res.Location() != want {
			t.Errorf("the fresh token after %s: %d to %q, want %s", moment, res.StatusCode, res.Location(), want)
		}
	}

	old := c.CSRFToken()
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	checkRotated("sign-up", old, true)

	old = c.CSRFToken()
	if res := c.Post("/signout", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", res.StatusCode)
	}
	checkRotated("sign-out", old, false)

	old = c.CSRFToken()
	c.SignIn("ada@example.com", "analytical engine")
	checkRotated("sign-in", old, true)
}
