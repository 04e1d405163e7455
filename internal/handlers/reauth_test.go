package handlers_test

import (
	"net/http"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// TestAdminCannotRevokeTheirOwnSessionThroughTheAdminRoute: the admin
// pages offer no Revoke for the session in use, and posting one anyway
// answers 409 and ends nothing (signing out is how that session ends).
func TestAdminCannotRevokeTheirOwnSessionThroughTheAdminRoute(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, me := signedInAdmin(t, env)
	other := env.Client(t)
	other.SignIn(me.Email, "admin password") // a second session of the admin's own
	mine, otherID := sessionID(t, admin), sessionID(t, other)

	self := admin.Get(userPath(me)).Doc(t)
	if n := self.Find(`form[action$="/sessions/` + mine + `/revoke"]`).Length(); n != 0 {
		t.Error("the admin's own user page offers to revoke the session in use")
	}
	if n := self.Find(`form[action$="/sessions/` + otherID + `/revoke"]`).Length(); n != 1 {
		t.Error("the admin's own user page does not offer to revoke their other session")
	}
	all := admin.Get("/admin/sessions").Doc(t)
	if n := all.Find(`tr[data-session-id="` + mine + `"] form`).Length(); n != 0 {
		t.Error("the list of all sessions offers to revoke the session in use")
	}
	if got := all.Find(`tr[data-session-id="` + mine + `"] .badge`).Text(); got != "Your session" {
		t.Errorf("the admin's own row is marked %q", got)
	}

	for _, htmx := range []bool{false, true} {
		if htmx {
			admin.Header.Set("HX-Request", "true")
		}
		res := admin.Post(userPath(me)+"/sessions/"+mine+"/revoke", nil)
		admin.Header.Del("HX-Request")
		if res.StatusCode != http.StatusConflict || errorMessage(t, res) != "This is the session you are using now. To end it, sign out." {
			t.Errorf("htmx=%v: revoking the session in use through the admin route: %d %q", htmx, res.StatusCode, errorMessage(t, res))
		}
	}
	if res := admin.Get("/admin/users"); res.StatusCode != http.StatusOK {
		t.Fatalf("the admin's session ended: %d", res.StatusCode)
	}
	// Their other session they may end there.
	if res := admin.Post(userPath(me)+"/sessions/"+otherID+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("revoking the admin's other session: %d", res.StatusCode)
	}
	if res := other.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Error("the admin's other session survived its revoke")
	}
}
