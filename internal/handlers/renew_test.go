package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// reloadUntil has c reload path as fast as it can until stop is closed: a
// browser tab left on a page that lists sessions.
func reloadUntil(c *apptest.Client, path string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				c.Get(path)
			}
		}
	})
	return &wg
}

// TestPasswordChangeEndsAStolenSessionWhileItsTabReloads: an attacker's
// tab (a session of its own on the account) reloads the Devices page while
// the owner changes the password with "sign out other devices". Every time
// the change answers 303, the attacker's session is dead, and the change
// is in the audit log. (The listing used to see the owner's session in the
// middle of its token renewal, with its field but no data, and forget it;
// the renewal then failed and the change answered 500 before signing
// anyone out.)
func TestPasswordChangeEndsAStolenSessionWhileItsTabReloads(t *testing.T) {
	t.Parallel()
	const runs = 20
	env := apptest.New(t)
	owner := env.Client(t)
	password := func(i int) string { return fmt.Sprintf("correct horse %d", i) }
	owner.SignUp("Ada", "ada@example.com", password(0))
	user, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for i := range runs {
		current, next := password(i), password(i+1)
		attacker := env.Client(t)
		attacker.SignIn("ada@example.com", current)
		stop := make(chan struct{})
		tab := reloadUntil(attacker, "/account/sessions", stop)
		res := owner.Post("/account/password", url.Values{
			"current_password": {current}, "new_password": {next}, "revoke_others": {"1"},
		})
		close(stop)
		tab.Wait()
		if res.StatusCode != http.StatusSeeOther || res.Location() != "/account" {
			t.Fatalf("run %d: the password change answered %d to %q", i, res.StatusCode, res.Location())
		}
		if got := attacker.Get("/account").StatusCode; got != http.StatusSeeOther {
			t.Fatalf("run %d: the attacker's session survived the password change: %d", i, got)
		}
		if got := owner.Get("/account").StatusCode; got != http.StatusOK {
			t.Fatalf("run %d: the owner was signed out by their own password change: %d", i, got)
		}
	}
	changes := 0
	for _, k := range auditKinds(t, env, user.ID) {
		if k == models.AuditPasswordChanged {
			changes++
		}
	}
	if changes != runs {
		t.Errorf("%d password changes in the audit log, want %d", changes, runs)
	}
}

// TestConfirmWhileAnotherTabReloads: the same race with a password
// confirmation, which renews the token too.
func TestConfirmWhileAnotherTabReloads(t *testing.T) {
	t.Parallel()
	const runs = 30
	env := apptest.New(t)
	owner := env.Client(t)
	owner.SignUp("Ada", "ada@example.com", "analytical engine")
	other := env.Client(t)
	other.SignIn("ada@example.com", "analytical engine")
	for i := range runs {
		before := owner.SessionToken()
		stop := make(chan struct{})
		tab := reloadUntil(other, "/account/sessions", stop)
		res := owner.Post("/account/confirm", url.Values{"password": {"analytical engine"}, "next": {"/account"}})
		close(stop)
		tab.Wait()
		if res.StatusCode != http.StatusSeeOther || strings.HasPrefix(res.Location(), "/signin") {
			t.Fatalf("run %d: confirming answered %d to %q", i, res.StatusCode, res.Location())
		}
		if owner.SessionToken() == before {
			t.Fatalf("run %d: confirming did not renew the token", i)
		}
		if got := owner.Get("/account").StatusCode; got != http.StatusOK {
			t.Fatalf("run %d: confirming signed the owner out: %d", i, got)
		}
	}
	if got := other.Get("/account").StatusCode; got != http.StatusOK {
		t.Errorf("the other tab was signed out: %d", got)
	}
}

// TestRenewalKeepsTheAbsoluteDeadline confirms the password, or changes
// it, a third of the way into a short lifetime: the session still ends at
// the deadline sign-in gave it (a renewal used to restart the lifetime),
// and the Devices page's "at the latest" time does not move.
func TestRenewalKeepsTheAbsoluteDeadline(t *testing.T) {
	renewals := map[string]func(c *apptest.Client) *apptest.Response{
		"confirm": func(c *apptest.Client) *apptest.Response {
			return c.Post("/account/confirm", url.Values{"password": {"analytical engine"}, "next": {"/account"}})
		},
		"password change": func(c *apptest.Client) *apptest.Response {
			return c.Post("/account/password", url.Values{"current_password": {"analytical engine"}, "new_password": {"difference engine"}})
		},
	}
	for name, renew := range renewals {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Long enough for sign-up and renewal on a loaded machine: the
			// test needs the session alive until the renewal.
			const lifetime = 6 * time.Second
			env := apptest.New(t, apptest.With("SESSION_LIFETIME", "6s"), apptest.With("SESSION_IDLE_TIMEOUT", "6s"))
			c := env.Client(t)
			c.SignUp("Ada", "ada@example.com", "analytical engine")
			// Sign-in happened before this moment: the deadline is no later
			// than lifetime from here.
			deadline := time.Now().Add(lifetime)
			atTheLatest := func() string {
				t.Helper()
				res := c.Get("/account/sessions")
				v, ok := res.Doc(t).Find(`tr[data-current="true"] [data-testid="expires"] time`).Last().Attr("datetime")
				if res.StatusCode != http.StatusOK || !ok {
					t.Fatalf("Devices page: %d, no expiry", res.StatusCode)
				}
				return v
			}
			shown := atTheLatest()

			time.Sleep(lifetime / 3) // the session is a third of its life old
			before := c.SessionToken()
			if res := renew(c); res.StatusCode != http.StatusSeeOther || strings.HasPrefix(res.Location(), "/signin") {
				t.Fatalf("%s: %d to %q", name, res.StatusCode, res.Location())
			}
			if c.SessionToken() == before {
				t.Fatalf("%s did not renew the token", name)
			}
			left, err := env.App.Redis.PTTL(context.Background(), env.App.Sessions.OwnerKey(c.SessionToken())).Result()
			if err != nil {
				t.Fatal(err)
			}
			if max := time.Until(deadline) + 50*time.Millisecond; left > max {
				t.Errorf("the renewed session's lifetime in Redis is %dms, want at most %v (what was left)", left, max)
			}
			if got := atTheLatest(); got != shown {
				t.Errorf("the Devices page said %s at the latest before the %s, %s after", shown, name, got)
			}

			// In use all along, it ends at the original deadline.
			for c.Get("/account").StatusCode == http.StatusOK {
				if time.Now().After(deadline.Add(time.Second)) { // a second for a slow answer
					t.Fatalf("the session outlived its absolute deadline by %v", time.Since(deadline))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if early := time.Until(deadline); early > lifetime/3 {
				t.Errorf("the session ended %v before its deadline", early)
			}
		})
	}
}
