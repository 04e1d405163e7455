package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// stale is past the default 10-minute REAUTH_WINDOW.
const stale = 11 * time.Minute

// submitForm submits form as a browser would: its action, every named
// input with its value, and the client's CSRF token.
func submitForm(t *testing.T, c *apptest.Client, form *goquery.Selection) *apptest.Response {
	t.Helper()
	action, ok := form.Attr("action")
	if !ok || form.Length() != 1 {
		t.Fatalf("%d forms, action %q", form.Length(), action)
	}
	values := url.Values{}
	form.Find("input[name]").Each(func(_ int, in *goquery.Selection) {
		if in.AttrOr("type", "") == "checkbox" && !in.Is("[checked]") {
			return
		}
		values.Set(in.AttrOr("name", ""), in.AttrOr("value", ""))
	})
	values.Set("_csrf", c.CSRFToken())
	return c.Post(action, values)
}

// confirmPending follows a sensitive POST refused for stale auth (res)
// through the confirm page: it checks the confirm page names the action
// (wantDoing) and offers Cancel to wantBack, proves the password, and
// returns the confirmation page the user lands on.
func confirmPending(t *testing.T, c *apptest.Client, res *apptest.Response, password, wantDoing, wantBack string) *goquery.Document {
	t.Helper()
	to := res.Location()
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(to, "/account/confirm?next=") {
		t.Fatalf("stale action: %d to %q, want the confirm page", res.StatusCode, to)
	}
	page := c.Get(to).Doc(t)
	if got := strings.Join(strings.Fields(page.Find(`[data-testid="confirm-heading"]`).Text()), " "); got != "Confirm your password to "+wantDoing {
		t.Errorf("confirm page heading %q, want %q", got, "Confirm your password to "+wantDoing)
	}
	if got := page.Find(`[data-testid="cancel"]`).AttrOr("href", ""); got != wantBack {
		t.Errorf("confirm page Cancel goes to %q, want %q", got, wantBack)
	}
	next := page.Find(`input[name="next"]`).AttrOr("value", "")
	ok := c.Post("/account/confirm", url.Values{"password": {password}, "next": {next}})
	if ok.StatusCode != http.StatusSeeOther || ok.Location() != next {
		t.Fatalf("confirm: %d to %q, want %q", ok.StatusCode, ok.Location(), next)
	}
	landed := c.Get(next)
	if landed.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", next, landed.StatusCode)
	}
	return landed.Doc(t)
}

// checkArmed checks a pending action's confirmation page: its question,
// one form with one button, and Cancel; it returns the form.
func checkArmed(t *testing.T, page *goquery.Document, wantHeading, wantButton, wantBack string) *goquery.Selection {
	t.Helper()
	if got := page.Find(`[data-testid="pending-heading"]`).Text(); got != wantHeading {
		t.Errorf("confirmation page heading %q, want %q", got, wantHeading)
	}
	form := page.Find(`form[data-testid="pending-action"]`)
	if got := strings.TrimSpace(form.Find("button").Text()); form.Find("button").Length() != 1 || got != wantButton {
		t.Errorf("confirmation page buttons %q, want one %q", got, wantButton)
	}
	if got := form.Find(`[data-testid="cancel"]`).AttrOr("href", ""); got != wantBack {
		t.Errorf("confirmation page Cancel goes to %q, want %q", got, wantBack)
	}
	return form
}

// stillSignedIn fails t unless c's session works.
func stillSignedIn(t *testing.T, c *apptest.Client, why string) {
	t.Helper()
	if res := c.Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("%s: the other device was signed out (%d)", why, res.StatusCode)
	}
}

// TestRevokingAnotherDeviceNeedsRecentAuth: ending one other session asks
// for the password as ending them all does (ASVS 3.3.4 / 5.0 7.5.2), with
// and without htmx; ending the session in hand is signing out and does not.
func TestRevokingAnotherDeviceNeedsRecentAuth(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	other := env.Client(t)
	other.SignIn("ada@example.com", "analytical engine")
	otherID, mine := sessionID(t, other), sessionID(t, me)
	env.Clock.Advance(stale)

	want := "/account/confirm?next=" + url.QueryEscape("/account/sessions/"+otherID+"/revoke")
	if res := me.Post("/account/sessions/"+otherID+"/revoke", nil); res.StatusCode != http.StatusSeeOther || res.Location() != want {
		t.Errorf("stale revoke: %d to %q, want %q", res.StatusCode, res.Location(), want)
	}
	stillSignedIn(t, other, "stale revoke")
	res := htmxPost(t, me, "/account/sessions/"+otherID+"/revoke", url.Values{})
	if res.StatusCode != http.StatusOK || res.Header.Get("HX-Redirect") != want {
		t.Errorf("stale htmx revoke: %d, HX-Redirect %q, want %q", res.StatusCode, res.Header.Get("HX-Redirect"), want)
	}
	stillSignedIn(t, other, "stale htmx revoke")

	// The session in hand: signing out, no password asked.
	if res := me.Post("/account/sessions/"+mine+"/revoke", nil); res.StatusCode != http.StatusSeeOther || res.Location() != "/signin" {
		t.Errorf("stale revoke of the current session: %d to %q, want sign-out", res.StatusCode, res.Location())
	}
	if res := me.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Error("revoking the current session did not sign it out")
	}
}

// TestPendingSignOutAllOtherDevices: the whole flow over HTTP.
func TestPendingSignOutAllOtherDevices(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	other := env.Client(t)
	other.SignIn("ada@example.com", "analytical engine")
	env.Clock.Advance(stale)

	res := postFrom(me, "/account/sessions", "/account/sessions/revoke-others", nil)
	page := confirmPending(t, me, res, "analytical engine", "sign out all other devices", "/account/sessions")
	stillSignedIn(t, other, "confirming the password") // never replayed
	form := checkArmed(t, page, "Sign out all other devices?", "Sign out all other devices", "/account/sessions")
	if done := submitForm(t, me, form); done.StatusCode != http.StatusSeeOther || done.Location() != "/account/sessions" {
		t.Fatalf("submit: %d to %q", done.StatusCode, done.Location())
	}
	if res := other.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Error("the other device is still signed in")
	}
	stillSignedIn(t, me, "this device")
}

// TestPendingRevokeOneDevice: the confirm page and the confirmation page
// name the device, read from the session, and the form ends that one.
func TestPendingRevokeOneDevice(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	other := env.Client(t)
	other.UserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	other.SignIn("ada@example.com", "analytical engine")
	third := env.Client(t)
	third.SignIn("ada@example.com", "analytical engine")
	otherID := sessionID(t, other)
	env.Clock.Advance(stale)

	res := postFrom(me, "/account/sessions", "/account/sessions/"+otherID+"/revoke", nil)
	page := confirmPending(t, me, res, "analytical engine", "sign out Chrome on Windows (127.0.0.1)", "/account/sessions")
	stillSignedIn(t, other, "confirming the password")
	form := checkArmed(t, page, "Sign out Chrome on Windows?", "Sign out Chrome on Windows", "/account/sessions")
	if done := submitForm(t, me, form); done.StatusCode != http.StatusSeeOther || done.Location() != "/account/sessions" {
		t.Fatalf("submit: %d to %q", done.StatusCode, done.Location())
	}
	if res := other.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Error("the device is still signed in")
	}
	stillSignedIn(t, third, "a device not named")
}

// TestPendingEmailChange: the new address and name come back in the
// profile form, re-filled, and change only when the user saves it.
func TestPendingEmailChange(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	env.Clock.Advance(stale)

	res := postFrom(me, "/account", "/account", url.Values{"name": {"Ada Lovelace"}, "email": {"countess@example.com"}})
	page := confirmPending(t, me, res, "analytical engine", "change your email to countess@example.com", "/account")
	if u, err := env.App.Users.ByEmail(context.Background(), "ada@example.com"); err != nil || u.Name != "Ada" {
		t.Fatalf("the profile changed before the user saved it: %v %v", u, err)
	}
	if page.Find(`[data-testid="email-change"]`).Length() != 1 {
		t.Error("the profile page does not say an email change is waiting")
	}
	form := page.Find(`form[action="/account"]`)
	if got := []string{inputValue(page, "name"), inputValue(page, "email")}; got[0] != "Ada Lovelace" || got[1] != "countess@example.com" {
		t.Errorf("profile form re-filled with %q", got)
	}
	if done := submitForm(t, me, form); done.StatusCode != http.StatusSeeOther || done.Location() != "/account" {
		t.Fatalf("save: %d to %q", done.StatusCode, done.Location())
	}
	// The address changes when the link mailed to it is opened.
	link := env.Mail.WaitFor(t, "countess@example.com", 1).Link(t, "/email/confirm")
	me.Post("/email/confirm", url.Values{"token": {strings.TrimPrefix(link, "/email/confirm?token=")}})
	if u, err := env.App.Users.ByEmail(context.Background(), "countess@example.com"); err != nil || u.Name != "Ada Lovelace" {
		t.Errorf("after saving: %v %v", u, err)
	}
}

// TestPendingAdminActions: an admin action refused for stale auth is named
// with the account it is for, and comes back to the page it was on.
func TestPendingAdminActions(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, _ := signedInAdmin(t, env)
	victim, user := signedInUser(t, env, "user@example.com")
	victim2, second := signedInUser(t, env, "second@example.com")
	secondID := sessionID(t, victim2)
	env.Clock.Advance(stale)

	// Disabling, from the user's page.
	res := postFrom(admin, userPath(user), userPath(user)+"/disable", nil)
	page := confirmPending(t, admin, res, "admin password", "disable the account of user@example.com", userPath(user))
	stillSignedIn(t, victim, "confirming the password")
	form := checkArmed(t, page, "Disable the account of user@example.com?", "Disable account", userPath(user))
	if done := submitForm(t, admin, form); done.StatusCode != http.StatusSeeOther || done.Location() != userPath(user) {
		t.Fatalf("submit: %d to %q", done.StatusCode, done.Location())
	}
	if u := mustUser(t, env, "user@example.com"); !u.Disabled() {
		t.Error("the account was not disabled")
	}
	if res := victim.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Error("the disabled user's session survived")
	}

	// Revoking one session from the list of all sessions: the return_to
	// the form carried comes along, and Cancel goes back there.
	env.Clock.Advance(stale)
	list := "/admin/sessions?email=second%40example.com"
	res = postFrom(admin, list, userPath(second)+"/sessions/"+secondID+"/revoke", url.Values{"return_to": {list}})
	page = confirmPending(t, admin, res, "admin password", "end the session of second@example.com (Firefox on Linux, 127.0.0.1)", list)
	stillSignedIn(t, victim2, "confirming the password")
	form = checkArmed(t, page, "End this session of second@example.com?", "End session", list)
	if done := submitForm(t, admin, form); done.StatusCode != http.StatusSeeOther || done.Location() != list {
		t.Fatalf("submit: %d to %q", done.StatusCode, done.Location())
	}
	if res := victim2.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Error("the revoked session survived")
	}

	// Every admin action has its confirmation page.
	for action, heading := range map[string]string{
		"/sessions/revoke-all": "End all sessions of second@example.com?",
		"/enable":              "Enable the account of second@example.com?",
		"/promote":             "Make second@example.com an administrator?",
		"/demote":              "Remove the administrator role from second@example.com?",
	} {
		res := admin.Get(userPath(second) + action)
		if got := res.Doc(t).Find(`[data-testid="pending-heading"]`).Text(); res.StatusCode != http.StatusOK || got != heading {
			t.Errorf("GET %s: %d %q, want %q", action, res.StatusCode, got, heading)
		}
	}
}

// TestPendingActionsCannotBeForged: next= names only allow-listed routes,
// and everything the pages say comes from the server's data: a crafted
// next= cannot make the confirm page claim another action, name an account
// to a non-admin, or offer to end a session that is not the user's.
func TestPendingActionsCannotBeForged(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	_, admin := signedInAdmin(t, env)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	stranger := env.Client(t)
	stranger.SignUp("Eve", "eve@example.com", "not the same password")
	strangerID := sessionID(t, stranger)

	generic := "Confirm your password"
	for next, want := range map[string]string{
		"/account/sessions/revoke-others?doing=give+away+the+account": generic + " to sign out all other devices",
		"/account/sessions/" + strangerID + "/revoke":                 generic, // not hers: named nowhere
		userPath(admin) + "/disable":                                  generic, // not an admin: no account named
		"/account?name=Ada&email=%3Cscript%3Ealert(1)%3C%2Fscript%3E": generic, // not an email address
		"/account/password":                                           generic, // not a pending action
		"https://evil.example/account/sessions/revoke-others":         generic,
	} {
		page := me.Get("/account/confirm?next=" + url.QueryEscape(next)).Doc(t)
		if got := strings.Join(strings.Fields(page.Find(`[data-testid="confirm-heading"]`).Text()), " "); got != want {
			t.Errorf("next=%s: heading %q, want %q", next, got, want)
		}
	}
	for path, status := range map[string]int{
		"/account/sessions/" + strangerID + "/revoke": http.StatusNotFound,
		"/account/sessions/not-an-id/revoke":          http.StatusNotFound,
		userPath(admin) + "/disable":                  http.StatusForbidden,
	} {
		if res := me.Get(path); res.StatusCode != status {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, status)
		}
	}
	stillSignedIn(t, stranger, "forged pending actions")
	// Names are rendered escaped.
	page := me.Get("/account?name=%3Cb%3EAda%3C%2Fb%3E&email=ada2%40example.com").Body
	if strings.Contains(page, "<b>Ada</b>") {
		t.Error("a carried name was rendered unescaped")
	}
}

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
