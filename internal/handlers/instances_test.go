package handlers_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// Several instances of the app on one Postgres and one Redis prefix, and
// restarts: nothing may depend on process memory.

func TestSessionsWorkOnEveryInstance(t *testing.T) {
	t.Parallel()
	one := apptest.New(t)
	two := apptest.Start(t, one.Config)

	laptop := one.Client(t)
	laptop.SignUp("Ada", "ada@example.com", "analytical engine")
	if res := laptop.ForServer(two).Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("a session made on instance one, on instance two: %d", res.StatusCode)
	}
	phone := two.Client(t)
	phone.SignIn("ada@example.com", "analytical engine")
	if res := phone.ForServer(one).Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("a session made on instance two, on instance one: %d", res.StatusCode)
	}
	// Each instance lists both, and names the browser's own session.
	ids1, cur1 := sessionIDs(t, laptop)
	ids2, cur2 := sessionIDs(t, laptop.ForServer(two))
	if len(ids1) != 2 || len(ids2) != 2 || cur1 == "" || cur1 != cur2 {
		t.Fatalf("instance one lists %v (current %s), instance two %v (current %s)", ids1, cur1, ids2, cur2)
	}
	// Signing out on one instance ends the session on the other.
	if res := phone.ForServer(one).Post("/signout", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", res.StatusCode)
	}
	if res := phone.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("signed out on one instance, still signed in on the other: %d", res.StatusCode)
	}
}

// TestRevokeOnOneInstanceIsFinalOnAnother hammers a session on instance two
// while instance one revokes it: no request to instance two that starts
// after the revoke returned is authenticated.
func TestRevokeOnOneInstanceIsFinalOnAnother(t *testing.T) {
	t.Parallel()
	one := apptest.New(t)
	two := apptest.Start(t, one.Config)
	a := one.Client(t)
	a.SignUp("Ada", "ada@example.com", "analytical engine")
	b := two.Client(t)
	b.SignIn("ada@example.com", "analytical engine")
	token := b.SessionToken()
	bID := sessionID(t, b)

	before, after, wrong := hammerDuringRevoke(t, two.Server.URL, token, 4, func() {
		if res := a.Post("/account/sessions/"+bID+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("revoke on instance one: %d", res.StatusCode)
		}
	})
	if before == 0 || after == 0 {
		t.Fatalf("the hammer did not overlap the revoke: %d before, %d after", before, after)
	}
	if wrong > 0 {
		t.Fatalf("%d requests to instance two, started after instance one revoked, were authenticated", wrong)
	}
	if err := one.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, err := two.App.Sessions.Records().ByPublicID(context.Background(), bID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.EndReason != models.EndRevokedByUser {
		t.Errorf("record of the revoked session: %q", rec.EndReason)
	}
}

// TestRestartSignsNobodyOut stops the only instance and starts a new one
// with the same configuration: every browser is still signed in, and its
// session still has its record.
func TestRestartSignsNobodyOut(t *testing.T) {
	t.Parallel()
	old := apptest.New(t)
	c := old.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	id := sessionID(t, c)
	old.Stop()

	restarted := apptest.Start(t, old.Config)
	c = c.ForServer(restarted)
	if res := c.Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("after a restart, the old cookie gets %d", res.StatusCode)
	}
	if got := sessionID(t, c); got != id {
		t.Errorf("after a restart the session is %s, want %s", got, id)
	}
}
