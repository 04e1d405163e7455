package session_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// TestCookieCarriesTheUsersTag: every key of a session and its user's
// hash share the hash tag in the cookie, which does not contain the user
// id, and two users get different tags.
func TestCookieCarriesTheUsersTag(t *testing.T) {
	env := apptest.New(t)
	ada, grace := env.Client(t), env.Client(t)
	ada.SignUp("Ada", "ada@example.com", "analytical engine")
	grace.SignUp("Grace", "grace@example.com", "cobol forever")
	ctx := context.Background()
	tags := map[string]bool{}
	for _, c := range []*apptest.Client{ada, grace} {
		cookie := c.SessionToken()
		tag, _, ok := strings.Cut(cookie, ".")
		if !ok || len(tag) != 16 {
			t.Fatalf("cookie %q has no tag", cookie)
		}
		tags[tag] = true
		u, err := env.App.Users.ByEmail(ctx, map[*apptest.Client]string{ada: "ada@example.com", grace: "grace@example.com"}[c])
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tag, strconv.FormatInt(u.ID, 10)) && len(strconv.FormatInt(u.ID, 10)) > 2 {
			t.Errorf("tag %q shows the user id %d", tag, u.ID)
		}
		for _, key := range []string{env.App.Sessions.DataKey(cookie), env.App.Sessions.OwnerKey(cookie), env.App.Sessions.UserKey(u.ID)} {
			if !strings.Contains(key, "{"+tag+"}") {
				t.Errorf("key %q lacks the hash tag {%s}", key, tag)
			}
			if n, err := env.App.Redis.Exists(ctx, key).Result(); err != nil || n != 1 {
				t.Errorf("key %q: exists %d, %v", key, n, err)
			}
		}
	}
	if len(tags) != 2 {
		t.Errorf("two users share the tag %v", tags)
	}
	// A cookie whose tag was changed names keys that do not exist: it
	// authenticates nothing.
	forged := env.Client(t)
	_, token, _ := strings.Cut(ada.SessionToken(), ".")
	otherTag, _, _ := strings.Cut(grace.SessionToken(), ".")
	forged.SetCookie("gatehouse_session", otherTag+"."+token)
	if res := forged.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("a cookie with another user's tag: %d, want a redirect to sign in", res.StatusCode)
	}
}

// TestSessionsFromBeforeTagsKeepWorking: a session signed in before the
// upgrade (a bare-token cookie, keys without tags, the user hash named by
// the user id) still works, renews, lists, and ends for good when revoked.
func TestSessionsFromBeforeTagsKeepWorking(t *testing.T) {
	if apptest.RedisMode() == "cluster" {
		t.Skip("no session predates tags on a Cluster: Gatehouse never ran on one before")
	}
	env := apptest.New(t)
	ctx := context.Background()
	user, clients := signInMany(t, env, 2)
	old, other := clients[0], clients[1]
	cookie, err := env.App.Sessions.MakeOld(ctx, user.ID, old.SessionToken())
	if err != nil {
		t.Fatal(err)
	}
	old.SetCookie("gatehouse_session", cookie)
	if res := old.Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("an old session after the upgrade: %d", res.StatusCode)
	}
	l, err := env.App.Sessions.List(ctx, user.ID, 10)
	if err != nil || len(l.Active) != 2 {
		t.Fatalf("listing: %d active, %v; want both sessions", len(l.Active), err)
	}
	// Re-authentication renews its token, still in the old layout.
	if res := old.Post("/account/confirm", map[string][]string{"password": {"analytical engine"}, "next": {"/account"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirming the password: %d", res.StatusCode)
	}
	if renewed := old.SessionToken(); renewed == cookie || strings.Contains(renewed, ".") {
		t.Fatalf("renewed cookie %q, want a new bare token", renewed)
	}
	if res := old.Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("the old session after renewal: %d", res.StatusCode)
	}
	// Revoking it from the other device ends it.
	var oldID string
	for _, r := range l.Active {
		if r.PublicID != sessionID(t, env, other) {
			oldID = r.PublicID
		}
	}
	if err := env.App.Sessions.Revoke(ctx, user.ID, oldID, models.EndRevokedByUser, &user.ID); err != nil {
		t.Fatal(err)
	}
	if res := old.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the revoked old session: %d, want a redirect", res.StatusCode)
	}
	if err := env.App.Sessions.WaitEnds(ctx); err != nil {
		t.Fatal(err)
	}
	if got := record(t, env, oldID).EndReason; got != models.EndRevokedByUser {
		t.Errorf("the old session's record ended %q, want %q", got, models.EndRevokedByUser)
	}
	if res := other.Get("/account"); res.StatusCode != http.StatusOK {
		t.Errorf("the other session: %d", res.StatusCode)
	}
}

// sessionID returns the public id of c's session, from its owner key.
func sessionID(t *testing.T, env *apptest.Env, c *apptest.Client) string {
	t.Helper()
	owner, err := env.App.Redis.Get(context.Background(), env.App.Sessions.OwnerKey(c.SessionToken())).Result()
	if err != nil {
		t.Fatal(err)
	}
	_, id, _ := strings.Cut(owner, ":")
	return id
}
