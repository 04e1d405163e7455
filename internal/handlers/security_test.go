package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// Tests named in docs/security.md, one or more per ASVS requirement.

// postFrom submits form to path as if from the page at referer.
func postFrom(c *apptest.Client, referer, path string, form url.Values) *apptest.Response {
	c.Header.Set("Referer", c.Base+referer)
	defer c.Header.Del("Referer")
	return c.Post(path, form)
}

func TestReauthenticationBeforeSensitiveActions(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	other := env.Client(t)
	other.SignIn("ada@example.com", "analytical engine")
	env.Clock.Advance(11 * time.Minute) // past the 10-minute window

	// Signing out everywhere else asks for the password and does nothing.
	res := postFrom(me, "/account/sessions", "/account/sessions/revoke-others", nil)
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/account/confirm?next=%2Faccount%2Fsessions%2Frevoke-others" {
		t.Fatalf("stale revoke-others: %d to %q", res.StatusCode, res.Location())
	}
	if other.Get("/account").StatusCode != http.StatusOK {
		t.Fatal("the action ran without re-authentication")
	}
	// So does an email change (a name change alone does not).
	res = postFrom(me, "/account", "/account", url.Values{"name": {"Ada"}, "email": {"new@example.com"}})
	if !strings.HasPrefix(res.Location(), "/account/confirm") {
		t.Fatalf("stale email change: %d to %q", res.StatusCode, res.Location())
	}
	if u, _ := env.App.Users.ByEmail(context.Background(), "ada@example.com"); u == nil {
		t.Fatal("the email changed without re-authentication")
	}
	if res := me.Post("/account", url.Values{"name": {"Ada L"}, "email": {"ada@example.com"}}); res.Location() != "/account" {
		t.Errorf("a name change asked for the password: %q", res.Location())
	}

	// The confirm page: a wrong password is refused, the right one renews
	// the token and goes to the action's confirmation page, never replaying
	// the POST.
	page := me.Get("/account/confirm?next=%2Faccount%2Fsessions%2Frevoke-others")
	if next, _ := page.Doc(t).Find(`input[name="next"]`).Attr("value"); next != "/account/sessions/revoke-others" {
		t.Fatalf("confirm form next = %q", next)
	}
	wrong := me.Post("/account/confirm", url.Values{"password": {"not it"}, "next": {"/account/sessions/revoke-others"}})
	if wrong.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong password: %d", wrong.StatusCode)
	}
	before := me.SessionToken()
	ok := me.Post("/account/confirm", url.Values{"password": {"analytical engine"}, "next": {"/account/sessions/revoke-others"}})
	if ok.StatusCode != http.StatusSeeOther || ok.Location() != "/account/sessions/revoke-others" {
		t.Fatalf("confirm: %d to %q", ok.StatusCode, ok.Location())
	}
	if me.SessionToken() == before {
		t.Error("confirming the password did not renew the token")
	}
	if other.Get("/account").StatusCode != http.StatusOK {
		t.Fatal("confirming replayed the revoke")
	}
	if res := me.Post("/account/sessions/revoke-others", nil); res.Location() != "/account/sessions" {
		t.Fatalf("fresh revoke-others: %q", res.Location())
	}
	if other.Get("/account").StatusCode != http.StatusSeeOther {
		t.Error("revoke-others did not run after re-authentication")
	}
	// An off-site next is dropped.
	if res := me.Post("/account/confirm", url.Values{"password": {"analytical engine"}, "next": {"//evil.example"}}); res.Location() != "/account" {
		t.Errorf("confirm followed next to %q", res.Location())
	}
}

func TestReauthenticationBeforeAdminActions(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, _ := signedInAdmin(t, env)
	victim, user := signedInUser(t, env, "user@example.com")
	env.Clock.Advance(11 * time.Minute)
	for _, action := range []string{"/sessions/revoke-all", "/disable", "/promote"} {
		res := postFrom(admin, userPath(user), userPath(user)+action, nil)
		if !strings.HasPrefix(res.Location(), "/account/confirm?next=") {
			t.Errorf("stale admin %s: %d to %q", action, res.StatusCode, res.Location())
		}
	}
	if victim.Get("/account").StatusCode != http.StatusOK {
		t.Fatal("an admin action ran without re-authentication")
	}
	// htmx requests are told to navigate instead.
	admin.Header.Set("HX-Request", "true")
	res := admin.Post(userPath(user)+"/sessions/revoke-all", nil)
	admin.Header.Del("HX-Request")
	if !strings.HasPrefix(res.Header.Get("HX-Redirect"), "/account/confirm") {
		t.Errorf("htmx stale admin action: HX-Redirect %q", res.Header.Get("HX-Redirect"))
	}
}

func TestConfirmPasswordIsThrottled(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	for i := range 5 {
		if res := me.Post("/account/confirm", url.Values{"password": {"guess"}}); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("guess %d: %d", i, res.StatusCode)
		}
	}
	res := me.Post("/account/confirm", url.Values{"password": {"analytical engine"}})
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("sixth attempt: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

func TestConcurrentSessionLimit(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("MAX_SESSIONS_PER_USER", "3"))
	first := env.Client(t)
	first.SignUp("Ada", "ada@example.com", "analytical engine")
	clients := []*apptest.Client{first}
	for range 2 {
		env.Clock.Advance(2 * time.Minute)
		c := env.Client(t)
		c.SignIn("ada@example.com", "analytical engine")
		clients = append(clients, c)
	}
	// The first device stays busy (its last-seen moves on), so the second
	// is the one idle the longest.
	env.Clock.Advance(2 * time.Minute)
	first.Get("/account")
	// The limit reads last-seen from Postgres, which the last-seen writer
	// fills in the background: wait for it, or under load the first
	// device still looks the idlest.
	if err := env.App.Sessions.WaitLastSeen(context.Background()); err != nil {
		t.Fatal(err)
	}
	fourth := env.Client(t)
	fourth.SignIn("ada@example.com", "analytical engine")

	if ids, _ := sessionIDs(t, fourth); len(ids) != 3 {
		t.Fatalf("%d active sessions, want the limit of 3", len(ids))
	}
	if clients[1].Get("/account").StatusCode != http.StatusSeeOther {
		t.Fatal("the idlest session survived the limit")
	}
	for _, c := range []*apptest.Client{first, clients[2], fourth} {
		if c.Get("/account").StatusCode != http.StatusOK {
			t.Error("a session other than the idlest was ended")
		}
	}
	got := fourth.Get("/account/sessions").Doc(t).Find(`[data-testid="end-reason"]`).First().Text()
	if got != "Ended: too many devices signed in" {
		t.Errorf("ended session reads %q", got)
	}
	if err := env.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	var reasons []models.EndReason
	env.App.DB.Model(&models.SessionRecord{}).Where("ended_at IS NOT NULL").Pluck("end_reason", &reasons)
	if len(reasons) != 1 || reasons[0] != models.EndSessionLimit {
		t.Errorf("end reasons %v", reasons)
	}
}

// TestSessionTokenOnlyFromTheCookie: a token in the URL or a form field is
// ignored.
func TestSessionTokenOnlyFromTheCookie(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	token := c.SessionToken()
	stranger := env.Client(t)
	if res := stranger.Get("/account?gatehouse_session=" + token); res.StatusCode != http.StatusSeeOther {
		t.Errorf("token in the URL: %d", res.StatusCode)
	}
	res := stranger.Post("/account", url.Values{"gatehouse_session": {token}, "name": {"x"}, "email": {"x@example.com"}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Location(), "/signin") {
		t.Errorf("token in a form: %d to %q", res.StatusCode, res.Location())
	}
}

// TestHSTSBehindHTTPS: HSTS follows BASE_URL, not the request. Behind a
// TLS-terminating proxy the request is plain http (the test server's is),
// with or without X-Forwarded-Proto; a plain-http deployment never sends it,
// whatever a client claims.
func TestHSTSBehindHTTPS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		base, proto string
		want        bool
	}{
		{"https://id.example.com", "", true},
		{"https://id.example.com", "https", true},
		{"http://localhost:8080", "https", false},
		{"http://localhost:8080", "", false},
	} {
		t.Run(tc.base+" "+tc.proto, func(t *testing.T) {
			t.Parallel()
			env := apptest.New(t, apptest.With("BASE_URL", tc.base))
			c := env.Client(t)
			if tc.proto != "" {
				c.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			for _, path := range []string{"/signin", "/healthz", "/nowhere"} {
				got := c.Get(path).Header.Get("Strict-Transport-Security")
				if sent := strings.Contains(got, "max-age=63072000"); sent != tc.want {
					t.Errorf("X-Forwarded-Proto %q, %s: HSTS %q, want sent=%v", tc.proto, path, got, tc.want)
				}
			}
		})
	}
}

func TestSignOutIsOnEveryAuthenticatedPage(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, _ := signedInAdmin(t, env)
	for _, path := range []string{"/account", "/account/sessions", "/account/activity", "/account/confirm",
		"/admin/users", "/admin/sessions", "/admin/audit"} {
		doc := admin.Get(path).Doc(t)
		if doc.Find(`form[action="/signout"][method="post"] button`).Length() != 1 {
			t.Errorf("%s has no sign-out button", path)
		}
	}
}
