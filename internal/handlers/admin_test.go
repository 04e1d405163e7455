package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
)

// signedInAdmin creates an administrator and returns a browser signed in
// as them.
func signedInAdmin(t testing.TB, env *apptest.Env) (*apptest.Client, *models.User) {
	t.Helper()
	hash, err := apptest.Hasher().Hash(context.Background(), "admin password")
	if err != nil {
		t.Fatal(err)
	}
	u := &models.User{Email: "root@example.com", Name: "Root", PasswordHash: hash, Role: models.RoleAdmin}
	if err := env.App.Users.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	c := env.Client(t)
	c.SignIn(u.Email, "admin password")
	return c, u
}

// signedInUser signs up a user and returns their browser and record.
func signedInUser(t *testing.T, env *apptest.Env, email string) (*apptest.Client, *models.User) {
	return signedInUserTB(t, env, email)
}

func signedInUserTB(t testing.TB, env *apptest.Env, email string) (*apptest.Client, *models.User) {
	t.Helper()
	c := env.Client(t)
	c.SignUp("User "+email, email, "user password")
	u, err := env.App.Users.ByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return c, u
}

func userPath(u *models.User) string { return "/admin/users/" + strconv.FormatInt(u.ID, 10) }

func auditKinds(t *testing.T, env *apptest.Env, userID int64) []models.AuditKind {
	t.Helper()
	events, err := env.App.Audit.List(context.Background(), models.AuditFilter{UserID: userID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []models.AuditKind
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

func hasKind(kinds []models.AuditKind, k models.AuditKind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// TestAdminAccessControl checks every admin route, GET and POST, as an
// anonymous visitor, a signed-in user, and an administrator.
func TestAdminAccessControl(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, _ := signedInAdmin(t, env)
	userClient, user := signedInUser(t, env, "user@example.com")
	_, victim := signedInUser(t, env, "victim@example.com")
	sid := strings.Repeat("a", 26)
	v := userPath(victim)
	routes := []struct{ method, path string }{
		{"GET", "/admin"},
		{"GET", "/admin/users"},
		{"GET", "/admin/users?q=example"},
		{"GET", v},
		{"POST", v + "/sessions/" + sid + "/revoke"},
		{"POST", v + "/sessions/revoke-all"},
		{"POST", v + "/disable"},
		{"POST", v + "/enable"},
		{"POST", v + "/promote"},
		{"POST", v + "/demote"},
		{"GET", "/admin/sessions"},
		{"GET", "/admin/audit"},
		{"GET", "/admin/no-such-page"},
	}
	do := func(c *apptest.Client, method, path string) *apptest.Response {
		if method == "GET" {
			return c.Get(path)
		}
		return c.Post(path, nil)
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			anon := env.Client(t)
			if res := do(anon, r.method, r.path); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Location(), "/signin") {
				t.Errorf("anonymous: %d to %q, want 303 to /signin", res.StatusCode, res.Location())
			}
			if res := do(userClient, r.method, r.path); res.StatusCode != http.StatusForbidden {
				t.Errorf("non-admin: %d, want 403", res.StatusCode)
			}
			res := do(admin, r.method, r.path)
			if res.StatusCode == http.StatusForbidden || strings.HasPrefix(res.Location(), "/signin") {
				t.Errorf("admin: %d to %q", res.StatusCode, res.Location())
			}
		})
	}
	// Nothing the non-admin attempted took effect.
	got, err := env.App.Users.ByID(context.Background(), victim.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != models.RoleUser {
		t.Errorf("victim's role is %q", got.Role)
	}
	if userClient.Get("/account").StatusCode != http.StatusOK {
		t.Errorf("the non-admin lost their session")
	}
	_ = user
}

func TestAdminRoleIsCheckedInPostgresOnEveryRequest(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, u := signedInAdmin(t, env)
	if admin.Get("/admin/users").StatusCode != http.StatusOK {
		t.Fatal("admin cannot see /admin/users")
	}
	// Demoted behind the app's back: the session (and its cached role)
	// remains, but the admin pages must refuse at once.
	if err := env.App.DB.Exec(`UPDATE users SET role = 'user' WHERE id = ?`, u.ID).Error; err != nil {
		t.Fatal(err)
	}
	if got := admin.Get("/admin/users").StatusCode; got != http.StatusForbidden {
		t.Fatalf("demoted admin gets %d", got)
	}
}

func TestAdminUserListSearchAndPages(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, _ := signedInAdmin(t, env)
	_, ada := signedInUser(t, env, "ada@example.com")
	// 120 more users, straight into the database.
	if err := env.App.DB.Exec(`INSERT INTO users (email, name, password_hash)
		SELECT 'bulk' || i || '@example.org', 'Bulk ' || i, 'x' FROM generate_series(1, 120) i`).Error; err != nil {
		t.Fatal(err)
	}

	doc := admin.Get("/admin/users?q=ADA@").Doc(t)
	rows := doc.Find("tr[data-user-id]")
	if rows.Length() != 1 {
		t.Fatalf("search for ada: %d rows", rows.Length())
	}
	if id, _ := rows.Attr("data-user-id"); id != strconv.FormatInt(ada.ID, 10) {
		t.Errorf("row id %s, want %d", id, ada.ID)
	}
	text := rows.Text()
	for _, want := range []string{"ada@example.com", "user", "1"} {
		if !strings.Contains(text, want) {
			t.Errorf("ada's row %q lacks %q", text, want)
		}
	}
	// LIKE wildcards are taken literally.
	if n := admin.Get("/admin/users?q=%25").Doc(t).Find("tr[data-user-id]").Length(); n != 0 {
		t.Errorf("search for %%: %d rows, want 0", n)
	}

	// Paging through everyone visits each user exactly once.
	seen := map[string]bool{}
	next := "/admin/users"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		doc := admin.Get(next).Doc(t)
		doc.Find("tr[data-user-id]").Each(func(_ int, s *goquery.Selection) {
			id, _ := s.Attr("data-user-id")
			if seen[id] {
				t.Errorf("user %s listed twice", id)
			}
			seen[id] = true
		})
		next, _ = doc.Find(`a[rel="next"]`).Attr("href")
		if pages == 1 {
			prev, _ := doc.Find(`a[rel="prev"]`).Attr("href")
			if first := admin.Get(prev).Doc(t).Find("tr[data-user-id]").First(); first.Length() == 0 {
				t.Error("the Newer link of page 2 shows nothing")
			}
		}
	}
	if len(seen) != 122 {
		t.Errorf("paged through %d users, want 122", len(seen))
	}
}

func TestAdminRevokesOneSession(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, root := signedInAdmin(t, env)
	phone, user := signedInUser(t, env, "user@example.com")
	laptop := env.Client(t)
	laptop.SignIn("user@example.com", "user password")
	_, phoneID := sessionIDs(t, phone)

	page := admin.Get(userPath(user)).Doc(t)
	if n := page.Find("tr[data-session-id]").Length(); n != 2 {
		t.Fatalf("admin sees %d sessions, want 2", n)
	}
	res := admin.Post(userPath(user)+"/sessions/"+phoneID+"/revoke", nil)
	if res.StatusCode != http.StatusSeeOther || res.Location() != userPath(user) {
		t.Fatalf("revoke: %d to %q", res.StatusCode, res.Location())
	}
	next := phone.Get("/account")
	if next.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoked phone: %d", next.StatusCode)
	}
	if got := phone.Get(next.Location()).Doc(t).Find(`[data-testid="flash"]`).Text(); !strings.Contains(got, "administrator ended") {
		t.Errorf("phone told %q", got)
	}
	if laptop.Get("/account").StatusCode != http.StatusOK {
		t.Error("the laptop was signed out too")
	}
	// The user's Devices page says an administrator ended it; the admin's
	// view says which one.
	if got := laptop.Get("/account/sessions").Doc(t).Find(`[data-testid="end-reason"]`).First().Text(); got != "Ended by an administrator" {
		t.Errorf("user sees %q", got)
	}
	if got := admin.Get(userPath(user)).Doc(t).Find(`[data-testid="ended-by"]`).First().Text(); got != root.Email {
		t.Errorf("admin sees ended by %q", got)
	}
	// A session id of another user is not found through this user's page.
	_, other := signedInUser(t, env, "other@example.com")
	_, laptopID := sessionIDs(t, laptop)
	if res := admin.Post(userPath(other)+"/sessions/"+laptopID+"/revoke", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("revoke through the wrong user: %d, want 404", res.StatusCode)
	}
	if laptop.Get("/account").StatusCode != http.StatusOK {
		t.Error("a 404 revoke ended the session")
	}
	events, _ := env.App.Audit.List(context.Background(), models.AuditFilter{UserID: user.ID, Kind: models.AuditSessionRevoked, Limit: 5})
	if len(events) != 1 || events[0].ActorID == nil || *events[0].ActorID != root.ID || events[0].SessionID != phoneID {
		t.Errorf("audit of the revoke: %+v", events)
	}
}

func TestAdminRevokesAllAndDisables(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, _ := signedInAdmin(t, env)
	a, user := signedInUser(t, env, "user@example.com")
	b := env.Client(t)
	b.SignIn("user@example.com", "user password")

	if res := admin.Post(userPath(user)+"/sessions/revoke-all", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke-all: %d", res.StatusCode)
	}
	for i, c := range []*apptest.Client{a, b} {
		if c.Get("/account").StatusCode != http.StatusSeeOther {
			t.Errorf("device %d still signed in after revoke-all", i)
		}
	}

	a.SignIn("user@example.com", "user password")
	if res := admin.Post(userPath(user)+"/disable", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", res.StatusCode)
	}
	if a.Get("/account").StatusCode != http.StatusSeeOther {
		t.Error("disabled user's session still works")
	}
	if got := admin.Get(userPath(user)).Doc(t).Find(`[data-testid="user-status"]`).Text(); strings.TrimSpace(got) != "Disabled" {
		t.Errorf("status shows %q", got)
	}
	// Only a correct password learns that the account is disabled.
	wrong := a.Post("/signin", url.Values{"email": {"user@example.com"}, "password": {"not it at all"}})
	if msg := wrong.Doc(t).Find(`[data-testid="signin-error"]`).Text(); msg != "Incorrect email or password." {
		t.Errorf("wrong password on a disabled account says %q", msg)
	}
	right := a.Post("/signin", url.Values{"email": {"user@example.com"}, "password": {"user password"}})
	if msg := right.Doc(t).Find(`[data-testid="signin-error"]`).Text(); !strings.Contains(msg, "disabled") || right.StatusCode == http.StatusSeeOther {
		t.Errorf("right password on a disabled account: %d %q", right.StatusCode, msg)
	}
	if admin.Post(userPath(user)+"/enable", nil).StatusCode != http.StatusSeeOther {
		t.Fatal("enable failed")
	}
	a.SignIn("user@example.com", "user password")
	kinds := auditKinds(t, env, user.ID)
	for _, k := range []models.AuditKind{models.AuditSessionsRevoked, models.AuditAccountDisabled, models.AuditAccountEnabled} {
		if !hasKind(kinds, k) {
			t.Errorf("no %s event in %v", k, kinds)
		}
	}
}

// TestDisableClosesTheSignInRace: a sign-in that checked the account just
// before it was disabled must not leave a working session behind.
func TestDisableClosesTheSignInRace(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	_, user := signedInUser(t, env, "user@example.com")
	// Disable in Redis as the admin action does, but leave Postgres
	// enabled: exactly the state a racing sign-in sees.
	if _, err := env.App.Sessions.Disable(context.Background(), user.ID, nil); err != nil {
		t.Fatal(err)
	}
	c := env.Client(t)
	res := c.Post("/signin", url.Values{"email": {"user@example.com"}, "password": {"user password"}})
	if res.StatusCode == http.StatusSeeOther || c.Get("/account").StatusCode != http.StatusSeeOther {
		t.Fatal("a sign-in racing a disable got a working session")
	}
	if err := env.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	active, err := env.App.Sessions.Records().Active(context.Background(), user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 0 {
		t.Errorf("%d active records left behind", len(active))
	}
}

func TestAdminRoleChanges(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, root := signedInAdmin(t, env)
	c, user := signedInUser(t, env, "user@example.com")

	if res := admin.Post(userPath(user)+"/promote", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("promote: %d", res.StatusCode)
	}
	// The promotion ended the user's old session: the new privileges need
	// a new sign-in (and so a new token).
	if c.Get("/account").StatusCode != http.StatusSeeOther {
		t.Fatal("the user's session survived a role change")
	}
	c.SignIn("user@example.com", "user password")
	if c.Get("/admin/users").StatusCode != http.StatusOK {
		t.Fatal("the promoted user cannot reach the admin pages")
	}
	// Root may step down now that there is another admin; then the new
	// admin, the last one, may not.
	res := admin.Post(userPath(root)+"/demote", nil)
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/signin" {
		t.Fatalf("self-demotion: %d to %q", res.StatusCode, res.Location())
	}
	last := c.Post(userPath(user)+"/demote", nil)
	if last.StatusCode != http.StatusConflict {
		t.Fatalf("demoting the last admin: %d, want 409", last.StatusCode)
	}
	if !strings.Contains(last.Doc(t).Find(`[data-testid="error-message"]`).Text(), "no active administrator") {
		t.Error("the refusal does not say why")
	}
	if res := c.Post(userPath(user)+"/disable", nil); res.StatusCode != http.StatusConflict {
		t.Errorf("disabling the last admin: %d, want 409", res.StatusCode)
	}
	if c.Get("/admin/users").StatusCode != http.StatusOK {
		t.Error("the last admin lost access")
	}
	if !hasKind(auditKinds(t, env, user.ID), models.AuditRoleChanged) {
		t.Error("no role_changed event")
	}
}

func TestAdminSessionsAndAuditPages(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, _ := signedInAdmin(t, env)
	victim, user := signedInUser(t, env, "victim@example.com")
	signedInUser(t, env, "bystander@example.com")
	_, vid := sessionIDs(t, victim)

	doc := admin.Get("/admin/sessions?email=victim").Doc(t)
	rows := doc.Find("tr[data-session-id]")
	if rows.Length() != 1 {
		t.Fatalf("filtered sessions: %d rows", rows.Length())
	}
	if id, _ := rows.Attr("data-session-id"); id != vid {
		t.Fatalf("row %s, want %s", id, vid)
	}
	if n := admin.Get("/admin/sessions?ip=10.").Doc(t).Find("tr[data-session-id]").Length(); n != 0 {
		t.Errorf("ip filter 10.: %d rows", n)
	}
	all := admin.Get("/admin/sessions").Doc(t).Find("tr[data-session-id]").Length()
	if all != 3 {
		t.Errorf("all sessions: %d, want 3", all)
	}
	// Revoking from this list comes back to it.
	back, _ := rows.Find(`input[name="return_to"]`).Attr("value")
	res := admin.Post(fmt.Sprintf("%s/sessions/%s/revoke", userPath(user), vid), url.Values{"return_to": {back}})
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/admin/sessions?email=victim" {
		t.Fatalf("revoke from the list: %d to %q", res.StatusCode, res.Location())
	}
	// A return_to off the admin area is ignored.
	res = admin.Post(userPath(user)+"/sessions/revoke-all", url.Values{"return_to": {"//evil.example/"}})
	if res.Location() != userPath(user) {
		t.Errorf("return_to followed to %q", res.Location())
	}

	audit := admin.Get("/admin/audit?kind=session_revoked&user=" + strconv.FormatInt(user.ID, 10)).Doc(t)
	if n := audit.Find(`tr[data-event-kind="session_revoked"]`).Length(); n != 1 {
		t.Errorf("audit filtered by user and kind: %d rows", n)
	}
	if n := audit.Find(`tr[data-event-kind]:not([data-event-kind="session_revoked"])`).Length(); n != 0 {
		t.Errorf("audit filter let %d other kinds through", n)
	}
	if res := admin.Get("/admin/audit?kind=%27%3B--&user=abc"); res.StatusCode != http.StatusOK {
		t.Errorf("junk filters: %d", res.StatusCode)
	}
}

func TestUserSeesOwnSecurityActivity(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c, _ := signedInUser(t, env, "user@example.com")
	other := env.Client(t)
	other.SignIn("user@example.com", "user password")
	c.Post("/account/sessions/revoke-others", nil)
	c.Post("/account", url.Values{"name": {"New Name"}, "email": {"new@example.com"}})
	confirmLink := env.Mail.WaitFor(t, "new@example.com", 1).Link(t, "/email/confirm")
	c.Post("/email/confirm", url.Values{"token": {strings.TrimPrefix(confirmLink, "/email/confirm?token=")}})
	doc := c.Get("/account/activity").Doc(t)
	for _, k := range []string{"sessions_revoked", "email_changed"} {
		if doc.Find(`tr[data-event-kind="`+k+`"]`).Length() == 0 {
			t.Errorf("the activity page lacks a %s event", k)
		}
	}
	if txt := doc.Find(`tr[data-event-kind="email_changed"]`).Text(); !strings.Contains(txt, "user@example.com → new@example.com") {
		t.Errorf("email change reads %q", txt)
	}
}

// TestAuditRecordsEveryKind walks a user through every recorded event and
// checks each left a row with who, whom, where and which session.
func TestAuditRecordsEveryKind(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, root := signedInAdmin(t, env)
	c, user := signedInUser(t, env, "user@example.com") // sign_up
	c.Post("/signout", nil)                             // sign_out
	c.Post("/signin", url.Values{"email": {"user@example.com"}, "password": {"wrong password"}})
	c.SignIn("user@example.com", "user password") // sign_in
	// device_approved, device_denied
	for _, path := range []string{"/activate/approve", "/activate/deny"} {
		c.Post(path, url.Values{"user_code": {requestCodes(t, env, "CLI").UserCode}})
	}
	other := env.Client(t)
	other.SignIn("user@example.com", "user password")
	_, otherID := sessionIDs(t, other)
	c.Post("/account/sessions/"+otherID+"/revoke", nil) // session_revoked
	other.SignIn("user@example.com", "user password")
	c.Post("/account/sessions/revoke-others", nil)                     // sessions_revoked
	c.Post("/account/alerts", nil)                                     // new_device_alerts_off
	c.Post("/account/alerts", url.Values{"new_device_alerts": {"on"}}) // new_device_alerts_on
	c.Post("/account/password", url.Values{"current_password": {"user password"}, "new_password": {"new user password"}})
	// email_verified: the sign-up's link, used before the address changes.
	link := env.Mail.WaitForSubject(t, "user@example.com", "Verify your email address for Gatehouse", 1).Link(t, "/verify")
	c.Post("/verify", url.Values{"token": {strings.TrimPrefix(link, "/verify?token=")}})
	c.Post("/account", url.Values{"name": {"U"}, "email": {"user2@example.com"}}) // email_change_requested
	link = env.Mail.WaitFor(t, "user2@example.com", 1).Link(t, "/email/confirm")
	c.Post("/email/confirm", url.Values{"token": {strings.TrimPrefix(link, "/email/confirm?token=")}}) // email_changed
	admin.Post(userPath(user)+"/promote", nil)                                                         // role_changed
	admin.Post(userPath(user)+"/disable", nil)
	admin.Post(userPath(user)+"/enable", nil)
	// The old address undoes the change: email_change_undone, and a reset
	// link (password_reset_requested came with the forgot page, below).
	link = env.Mail.WaitForSubject(t, "user@example.com", "Your Gatehouse email address was changed", 1).Link(t, "/email/undo")
	c.Post("/email/undo", url.Values{"token": {strings.TrimPrefix(link, "/email/undo?token=")}})
	c.Post("/password/forgot", url.Values{"email": {"user@example.com"}}) // password_reset_requested
	link = env.Mail.WaitForSubject(t, "user@example.com", "Reset your Gatehouse password", 2).Link(t, "/password/reset")
	c.Post("/password/reset", url.Values{"token": {strings.TrimPrefix(link, "/password/reset?token=")}, "new_password": {"reset user password"}}) // password_reset
	secondFactorEvents(t, env, admin, user, "user@example.com", "reset user password")
	// refresh_token_reused: an app presents a refresh token two rotations old.
	_, first := apiPost(t, env, "/api/v1/token", "application/x-www-form-urlencoded", url.Values{"grant_type": {"password"},
		"email": {"user@example.com"}, "password": {"reset user password"}, "client_name": {"CLI"}}.Encode())
	refresh := func(token any) map[string]any {
		_, got := apiPost(t, env, "/api/v1/token", "application/x-www-form-urlencoded",
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token.(string)}}.Encode())
		return got
	}
	refresh(refresh(first["refresh_token"])["refresh_token"])
	refresh(first["refresh_token"])
	// A day on (alike devices are alerted about once a day), a new
	// browser signs in: new_device_alert; its "This wasn't me":
	// this_wasnt_me.
	env.Clock.Advance(25 * time.Hour)
	env.Client(t).SignIn("user@example.com", "reset user password")
	link = env.Mail.WaitForSubject(t, "user@example.com", "New sign-in to your Gatehouse account", 2).Link(t, "/signin/not-me")
	c.Post("/signin/not-me", url.Values{"token": {strings.TrimPrefix(link, "/signin/not-me?token=")}})

	kinds := auditKinds(t, env, user.ID)
	for _, k := range models.AuditKinds {
		if !hasKind(kinds, k) {
			t.Errorf("no %s event; got %v", k, kinds)
		}
	}
	events, err := env.App.Audit.List(context.Background(), models.AuditFilter{UserID: user.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.IP != "127.0.0.1" || e.UserAgent != apptest.DefaultUserAgent {
			t.Errorf("%s: ip %q, user agent %q", e.Kind, e.IP, e.UserAgent)
		}
		switch e.Kind {
		case models.AuditSignIn, models.AuditSignUp, models.AuditSignOut, models.AuditSessionRevoked:
			if !session.ValidPublicID(e.SessionID) {
				t.Errorf("%s: session id %q", e.Kind, e.SessionID)
			}
		case models.AuditRoleChanged, models.AuditAccountDisabled, models.AuditAccountEnabled:
			if e.ActorID == nil || *e.ActorID != root.ID {
				t.Errorf("%s: actor %v, want the admin %d", e.Kind, e.ActorID, root.ID)
			}
		case models.AuditSignInFailed:
			if e.Detail != "wrong password" {
				t.Errorf("failed sign-in detail %q", e.Detail)
			}
		}
	}
}

// secondFactorEvents makes the audit events of second factors for user
// (signed out, with email and pw): 2fa_enabled, recovery_code_used,
// recovery_codes_renewed, passkey_added, passkey_refused, passkey_removed,
// 2fa_disabled and, by admin, 2fa_reset.
func secondFactorEvents(t *testing.T, env *apptest.Env, admin *apptest.Client, user *models.User, email, pw string) {
	t.Helper()
	c := env.Client(t)
	c.SignIn(email, pw)
	_, codes := enableTOTP(t, env, c)
	// A sign-in in the same second as turning the app on does not count as
	// proving it (AuthAt is kept in seconds).
	env.Clock.Advance(2 * time.Second)
	c = env.Client(t)
	if res := c.SignIn(email, pw); res.Location() != "/signin/2fa" {
		t.Fatalf("sign-in with 2FA went to %q", res.Location())
	}
	if res := sendCode(c, codes[0]); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("recovery code: %d", res.StatusCode)
	}
	if res := c.Post("/account/2fa/recovery-codes", nil); res.StatusCode != http.StatusOK {
		t.Fatalf("new recovery codes: %d", res.StatusCode)
	}
	k := registerPasskey(t, env, c, "Key")
	b := env.Client(t)
	body := k.get(begin(t, b, "/signin/passkey/begin"))
	body["response"].(map[string]any)["signature"] = b64.EncodeToString([]byte("forged"))
	if res := postJSON(b, "/signin/passkey/finish", body); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("forged passkey: %d", res.StatusCode)
	}
	var key models.Passkey
	if err := env.App.DB.Where("user_id = ?", user.ID).Take(&key).Error; err != nil {
		t.Fatal(err)
	}
	if res := c.Post("/account/passkeys/"+itoa(key.ID)+"/remove", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove passkey: %d", res.StatusCode)
	}
	if res := c.Post("/account/2fa/totp/disable", nil); res.Location() != "/account/2fa" {
		t.Fatalf("turn off: %d %q", res.StatusCode, res.Location())
	}
	enableTOTP(t, env, c)
	if res := admin.Post(userPath(user)+"/2fa/reset", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin reset: %d", res.StatusCode)
	}
	waitWritten(t, env)
}
