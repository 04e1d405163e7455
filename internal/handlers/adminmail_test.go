package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

func TestAdminSendsAResetLink(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, root := signedInAdmin(t, env)
	user, u := signedInUser(t, env, "bea@example.com")
	env.Mail.WaitFor(t, "bea@example.com", 1) // the verification mail
	// Not for other users.
	if res := user.Post(userPath(u)+"/send-reset", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a non-admin sent a reset link: %d", res.StatusCode)
	}
	if admin.Get(userPath(u)).Doc(t).Find(`[data-testid="send-reset"]`).Length() != 1 {
		t.Fatal("the admin user page has no Send password reset link button")
	}
	res := admin.Post(userPath(u)+"/send-reset", nil)
	if res.StatusCode != http.StatusSeeOther || res.Location() != userPath(u) {
		t.Fatalf("send reset: %d → %q", res.StatusCode, res.Location())
	}
	m := env.Mail.WaitFor(t, "bea@example.com", 2)
	link := m.Link(t, "/password/reset")
	// The admin saw no token and set no password: the owner does.
	if strings.Contains(admin.Get(userPath(u)).Body, strings.TrimPrefix(link, "/password/reset?token=")) {
		t.Fatal("the admin page shows the token")
	}
	owner := env.Client(t)
	owner.Get(link)
	if res := owner.Post("/password/reset", url.Values{"token": {strings.TrimPrefix(link, "/password/reset?token=")}, "new_password": {"brand new secret"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reset with the admin's link: %d", res.StatusCode)
	}
	env.Client(t).SignIn("bea@example.com", "brand new secret")
	var actor int64
	env.App.DB.Table("audit_events").Select("actor_id").Where("kind = 'password_reset_requested' AND user_id = ?", u.ID).Scan(&actor)
	if actor != root.ID {
		t.Fatalf("reset request audited with actor %d, want the admin %d", actor, root.ID)
	}
	// A disabled account gets no link.
	env.App.DB.Exec(`UPDATE users SET disabled_at = now() WHERE id = ?`, u.ID)
	if res := admin.Post(userPath(u)+"/send-reset", nil); res.StatusCode != http.StatusConflict {
		t.Fatalf("send reset to a disabled account: %d", res.StatusCode)
	}
}
