package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

func TestSignUpSignsInAndShowsProfile(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	res := c.SignUp("Ada Lovelace", "ada@example.com", "analytical engine")
	if got := res.Location(); got != "/account" {
		t.Fatalf("sign-up redirects to %q, want /account", got)
	}
	page := c.Get("/account")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("GET /account: %d", page.StatusCode)
	}
	doc := page.Doc(t)
	if got := doc.Find(`[data-testid="signed-in-as"]`).Text(); got != "Ada Lovelace" {
		t.Errorf("navigation shows %q, want the user's name", got)
	}
	if got, _ := doc.Find(`input[name="email"]`).Attr("value"); got != "ada@example.com" {
		t.Errorf("profile email field = %q", got)
	}
	if got := doc.Find(`[data-testid="flash"]`).Text(); !strings.Contains(got, "Welcome") {
		t.Errorf("flash = %q, want a welcome", got)
	}
}

func TestSignInFailuresLookTheSame(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Grace", "grace@example.com", "cobol forever")

	c := env.Client(t)
	wrongPassword := c.Post("/signin", url.Values{"email": {"grace@example.com"}, "password": {"not her password"}})
	unknownEmail := c.Post("/signin", url.Values{"email": {"nobody@example.com"}, "password": {"not her password"}})
	for name, res := range map[string]*apptest.Response{"wrong password": wrongPassword, "unknown email": unknownEmail} {
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422", name, res.StatusCode)
		}
		if got := res.Doc(t).Find(`[data-testid="signin-error"]`).Text(); got != "Incorrect email or password." {
			t.Errorf("%s: error %q", name, got)
		}
	}
	if c.SessionToken() != "" {
		t.Error("a failed sign-in set a session cookie")
	}
	if got, _ := unknownEmail.Doc(t).Find(`input[name="email"]`).Attr("value"); got != "nobody@example.com" {
		t.Errorf("the form lost the email typed: %q", got)
	}
}

func TestSignInAndOut(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Grace", "grace@example.com", "cobol forever")
	c := env.Client(t)
	// Email case does not matter.
	res := c.Post("/signin", url.Values{"email": {"GRACE@example.com"}, "password": {"cobol forever"}, "next": {"/account/sessions"}})
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/account/sessions" {
		t.Fatalf("sign in: %d to %q", res.StatusCode, res.Location())
	}
	token := c.SessionToken()
	if c.Get("/account").StatusCode != http.StatusOK {
		t.Fatal("signed-in client cannot see /account")
	}
	out := c.Post("/signout", nil)
	if out.StatusCode != http.StatusSeeOther || out.Location() != "/signin" {
		t.Fatalf("sign out: %d to %q", out.StatusCode, out.Location())
	}
	if c.SessionToken() != "" {
		t.Error("sign-out left the session cookie in place")
	}
	// Replaying the old cookie gets nothing.
	replay := env.Client(t)
	replay.SetCookie("gatehouse_session", token)
	if res := replay.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("replayed signed-out cookie: status %d, want 303 to sign in", res.StatusCode)
	}
}
