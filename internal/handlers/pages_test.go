package handlers_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// TestFailedFormsOpenWithAnErrorSummary: a form that comes back with
// problems says so in its title, and opens with a summary that takes the
// focus and links each problem to its field.
func TestFailedFormsOpenWithAnErrorSummary(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	anon := env.Client(t)

	res := anon.Post("/signup", url.Values{"name": {""}, "email": {"not an email"}, "password": {"short"}})
	doc := res.Doc(t)
	if title := doc.Find("title").Text(); !strings.HasPrefix(title, "Error: ") {
		t.Errorf("failed sign-up title %q, want it to start with Error:", title)
	}
	summary := doc.Find(`[data-testid="error-summary"]`)
	if summary.Length() != 1 || summary.AttrOr("autofocus", "x") == "x" || summary.AttrOr("tabindex", "") != "-1" {
		t.Fatalf("failed sign-up: no focusable, autofocused error summary\n%s", res.Body)
	}
	var links []string
	summary.Find("a").Each(func(_ int, a *goquery.Selection) { links = append(links, a.AttrOr("href", "")) })
	if strings.Join(links, " ") != "#name #email #password" {
		t.Errorf("summary links %v, want the fields in the form's order", links)
	}
	// A good form has neither.
	doc = anon.Get("/signup").Doc(t)
	if title := doc.Find("title").Text(); strings.HasPrefix(title, "Error") || doc.Find(`[data-testid="error-summary"]`).Length() != 0 {
		t.Errorf("a fresh sign-up form reads as failed: %q", title)
	}

	res = anon.Post("/signin", url.Values{"email": {"nobody@example.com"}, "password": {"wrong password"}})
	doc = res.Doc(t)
	if title := doc.Find("title").Text(); !strings.HasPrefix(title, "Error: ") {
		t.Errorf("failed sign-in title %q", title)
	}
	if doc.Find(`[data-testid="signin-error"][autofocus]`).Length() != 1 {
		t.Error("the sign-in error does not take the focus")
	}

	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	res = c.Post("/account/password", url.Values{"current_password": {"wrong"}, "new_password": {"x"}})
	doc = res.Doc(t)
	if title := doc.Find("title").Text(); !strings.HasPrefix(title, "Error: ") {
		t.Errorf("failed password change title %q", title)
	}
	if n := doc.Find(`[data-testid="error-summary"] a`).Length(); n != 1 {
		t.Errorf("failed password change: %d problems listed, want 1 (the new password; the current one is not checked yet)", n)
	}
	// The failed form's address leads back to the profile page.
	if res := c.Get("/account/password"); res.StatusCode != http.StatusSeeOther || res.Location() != "/account" {
		t.Errorf("GET /account/password: %d to %q, want 303 to /account", res.StatusCode, res.Location())
	}
}

// TestConfirmPageNamesTheAccountForPasswordManagers: the confirm-password
// form carries the account's email as a hidden username field, which the
// server ignores.
func TestConfirmPageNamesTheAccountForPasswordManagers(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	doc := c.Get("/account/confirm").Doc(t)
	u := doc.Find(`form[action="/account/confirm"] input[name="username"]`)
	if u.AttrOr("autocomplete", "") != "username" || u.AttrOr("value", "") != "ada@example.com" || u.AttrOr("hidden", "x") == "x" {
		t.Errorf("confirm form's username field: %v", u.Nodes)
	}
	if title := doc.Find("title").Text(); strings.HasPrefix(title, "Error") {
		t.Errorf("title %q", title)
	}
	// A username naming someone else changes nothing: the password is
	// checked against the signed-in account.
	res := c.Post("/account/confirm", url.Values{"username": {"eve@example.com"}, "password": {"analytical engine"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("confirm with a foreign username field: %d", res.StatusCode)
	}
	res = c.Post("/account/confirm", url.Values{"username": {"ada@example.com"}, "password": {"wrong"}})
	if res.StatusCode == http.StatusSeeOther || !strings.HasPrefix(res.Doc(t).Find("title").Text(), "Error: ") {
		t.Errorf("confirm with a wrong password: %d, title %q", res.StatusCode, res.Doc(t).Find("title").Text())
	}
}

// TestAdminPagesGuide: the users list counts the users and tags only the
// disabled ones; a user's page puts its actions in a danger zone, each
// confirmed by a dialog that states the consequence and by a confirmation
// page when JavaScript is off; the sessions list marks the
// administrator's own session.
func TestAdminPagesGuide(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, _ := signedInAdmin(t, env)
	_, ada := signedInUser(t, env, "ada@example.com")
	_, bob := signedInUser(t, env, "bob@example.com")
	if res := admin.Post(userPath(bob)+"/disable", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable bob: %d", res.StatusCode)
	}

	doc := admin.Get("/admin/users").Doc(t)
	if got := doc.Find(`[data-testid="user-count"]`).Text(); got != "3 users" {
		t.Errorf("users count reads %q, want 3 users", got)
	}
	if n := doc.Find(`[data-testid="disabled-tag"]`).Length(); n != 1 || doc.Find(`tr[data-user-id="`+strconv.FormatInt(bob.ID, 10)+`"] [data-testid="disabled-tag"]`).Length() != 1 {
		t.Errorf("%d Disabled tags, want one, on bob's row", n)
	}
	if doc.Find(".tag-active").Length() != 0 || strings.Contains(strings.ToLower(doc.Find(`[data-testid="users"] tbody`).Text()), "active") {
		t.Error("the users list still marks active accounts")
	}
	if got := admin.Get("/admin/users?q=ada").Doc(t).Find(`[data-testid="user-count"]`).Text(); got != "1 user matches “ada”" {
		t.Errorf("search count reads %q", got)
	}

	doc = admin.Get(userPath(ada)).Doc(t)
	zone := doc.Find(`[data-testid="danger-zone"]`)
	promote := zone.Find(`form[action="` + userPath(ada) + `/promote"]`)
	if promote.Length() != 1 || zone.Find(`form[action$="/disable"]`).Length() != 1 {
		t.Fatalf("the danger zone lacks Make administrator or Disable:\n%s", zone.Text())
	}
	// The dialog (JavaScript on) states the consequence: signed out everywhere.
	if q, d := promote.AttrOr("data-confirm", ""), promote.AttrOr("data-confirm-detail", ""); q != "Make ada@example.com an administrator?" || !strings.Contains(d, "signed out everywhere") {
		t.Errorf("Make administrator asks %q (%q)", q, d)
	}
	// JavaScript off: the button is a GET to the confirmation page, which
	// says the same and carries the real POST.
	if m := strings.ToLower(promote.AttrOr("method", "")); m != "get" || promote.Find(`input[name="_csrf"]`).Length() != 0 {
		t.Errorf("the promote form is %q with a CSRF field %d: want a GET without a token in the URL", m, promote.Find(`input[name="_csrf"]`).Length())
	}
	page := admin.Get(userPath(ada) + "/promote").Doc(t)
	if got := page.Find(`[data-testid="pending-heading"]`).Text(); got != promote.AttrOr("data-confirm", "") {
		t.Errorf("the confirmation page asks %q, the dialog %q", got, promote.AttrOr("data-confirm", ""))
	}
	if !strings.Contains(page.Text(), "signed out everywhere") || page.Find(`form[method="post"][action="`+userPath(ada)+`/promote"]`).Length() != 1 {
		t.Errorf("the confirmation page does not state the consequence or carry the POST:\n%s", page.Text())
	}
	// Still the admin's: nothing happened by looking.
	if u, _ := env.App.Users.ByID(t.Context(), ada.ID); u.IsAdmin() {
		t.Error("opening the confirmation page promoted the user")
	}

	doc = admin.Get("/admin/sessions").Doc(t)
	own := doc.Find(`tr[data-current="true"]`)
	if own.Length() != 1 || own.Find(`[data-testid="own-session"]`).Length() != 1 || own.Find("form").Length() != 0 {
		t.Errorf("the admin's own session is not marked (or can be revoked): %d rows", own.Length())
	}
}

const (
	firefoxWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
	safariIPad     = "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
)

// eventRow is the Activity (or audit log) row of the first event of kind.
func eventRow(doc *goquery.Document, kind string) *goquery.Selection {
	return doc.Find(`[data-testid="audit-events"] tr[data-event-kind="` + kind + `"]`).First()
}

// TestActivityNamesDevicesAndPages: the Activity page says which device
// each event concerns (stored with the event), "You" for the user's own
// acts, absolute times, "Not you?" on failed sign-ins, and pages.
func TestActivityNamesDevicesAndPages(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	laptop := env.Client(t)
	laptop.UserAgent = firefoxWindows
	laptop.SignUp("Ada", "ada@example.com", "analytical engine")
	tablet := env.Client(t)
	tablet.UserAgent = safariIPad
	tablet.SignIn("ada@example.com", "analytical engine")
	_, tabletID := sessionIDs(t, tablet)
	stranger := env.Client(t)
	stranger.UserAgent = safariIPad
	stranger.Header.Set("X-Forwarded-For", "203.0.113.9") // not trusted: the events say 127.0.0.1
	if res := stranger.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"a wrong guess"}}); res.StatusCode == http.StatusSeeOther {
		t.Fatal("a wrong password signed in")
	}
	if res := laptop.Post("/account/sessions/"+tabletID+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke the tablet: %d", res.StatusCode)
	}

	doc := laptop.Get("/account/activity").Doc(t)
	signUp := eventRow(doc, "sign_up")
	if got := signUp.Find(`[data-testid="event-actor"]`).Text(); got != "You" {
		t.Errorf("sign-up by %q, want You", got)
	}
	if got := strings.TrimSpace(signUp.Find(`[data-testid="event-device"]`).Text()); got != "Firefox on Windows" {
		t.Errorf("sign-up device %q, want Firefox on Windows", got)
	}
	if dt := signUp.Find("time[data-local]").AttrOr("datetime", ""); dt == "" || !strings.HasSuffix(signUp.Find("time[data-local]").Text(), "UTC") {
		t.Errorf("sign-up time: datetime %q, text %q; want an absolute time (UTC without JavaScript)", dt, signUp.Find("time[data-local]").Text())
	}
	failed := eventRow(doc, "sign_in_failed")
	if got := strings.TrimSpace(failed.Find(`[data-testid="event-device"]`).Text()); got != "Safari on iOS" {
		t.Errorf("failed sign-in device %q, want Safari on iOS", got)
	}
	if got := failed.Find(`[data-testid="event-actor"]`).Text(); got != "Someone" {
		t.Errorf("failed sign-in by %q, want Someone", got)
	}
	notYou := failed.Find(`[data-testid="not-you"]`)
	if notYou.Find(`a[href="/account/sessions"]`).Length() != 1 || notYou.Find(`a[href^="/account#"]`).Length() != 1 {
		t.Errorf("failed sign-in: no Not you? links to Devices and the password form: %q", notYou.Text())
	}
	if eventRow(doc, "sign_in").Find(`[data-testid="not-you"]`).Length() != 0 {
		t.Error("a successful sign-in asks Not you?")
	}
	// The revoke concerns the tablet, done from the laptop.
	revoked := eventRow(doc, "session_revoked")
	if got := strings.Join(strings.Fields(revoked.Find(`[data-testid="event-device"]`).Text()), " "); got != "Safari on iOS from Firefox on Windows" {
		t.Errorf("revoke device %q, want the tablet, from the laptop", got)
	}
	if strings.Contains(doc.Text(), "the user") {
		t.Error("the Activity page says \"the user\"")
	}

	// Paging: 20 a page, older ones behind a link.
	for range 10 {
		tablet.SignIn("ada@example.com", "analytical engine")
		tablet.Post("/signout", nil)
	}
	doc = laptop.Get("/account/activity").Doc(t)
	if n := doc.Find(`[data-testid="audit-events"] tbody tr`).Length(); n != 20 {
		t.Fatalf("first page: %d events, want 20", n)
	}
	older, ok := doc.Find(`.pager a[rel="next"]`).Attr("href")
	if !ok {
		t.Fatal("no link to older events")
	}
	doc2 := laptop.Get(older).Doc(t)
	if n := doc2.Find(`[data-testid="audit-events"] tbody tr`).Length(); n == 0 || n > 20 {
		t.Errorf("second page: %d events", n)
	}
	if doc2.Find(`[data-testid="audit-events"] tr[data-event-kind="sign_up"]`).Length() != 1 {
		t.Error("the oldest event (sign-up) is not on the second page")
	}
	if doc2.Find(`.pager a[rel="prev"]`).AttrOr("href", "") != "/account/activity" {
		t.Error("the second page has no way back to the newest events")
	}
	// Another user's event ids page nothing of theirs in.
	other, _ := signedInUser(t, env, "eve@example.com")
	if n := other.Get(older).Doc(t).Find(`[data-testid="audit-events"] tbody tr`).Length(); n != 0 {
		t.Errorf("eve sees %d of ada's events through ada's page link", n)
	}
	if res := laptop.Get("/account/activity?before=not-a-number"); res.StatusCode != http.StatusOK {
		t.Errorf("a bad before=: %d", res.StatusCode)
	}
}

// TestAuditLogFilters: the admin log filters by the user's email, the
// address and dates, and refuses a malformed date with a message.
func TestAuditLogFilters(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("TRUST_PROXY", "true"))
	admin, _ := signedInAdmin(t, env)
	ada := env.Client(t)
	ada.Header.Set("X-Forwarded-For", "2001:db8::7")
	ada.SignUp("Ada", "ada@example.com", "analytical engine")
	bob := env.Client(t)
	bob.Header.Set("X-Forwarded-For", "198.51.100.4")
	bob.SignUp("Bob", "bob@example.com", "difference engine")

	emails := func(path string) []string {
		t.Helper()
		res := admin.Get(path)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
		var out []string
		res.Doc(t).Find(`[data-testid="audit-events"] tbody tr td[data-label="User"]`).Each(func(_ int, s *goquery.Selection) {
			out = append(out, strings.TrimSpace(s.Text()))
		})
		return out
	}
	only := func(path, want string) {
		t.Helper()
		got := emails(path)
		if len(got) == 0 {
			t.Errorf("%s: no events", path)
		}
		for _, e := range got {
			if e != want {
				t.Errorf("%s: an event of %q, want only %s's", path, e, want)
			}
		}
	}
	only("/admin/audit?email=ADA%40example", "ada@example.com")
	only("/admin/audit?ip=198.51.100.4", "bob@example.com")
	only("/admin/audit?ip=2001:db8::7&kind=sign_up", "ada@example.com")
	if got := emails("/admin/audit?email=%25"); len(got) != 0 {
		t.Errorf("email=%%: %d events, want none (taken literally)", len(got))
	}
	today := time.Now().UTC().Format(time.DateOnly)
	if got := emails("/admin/audit?from=" + today + "&to=" + today + "&email=bob"); len(got) == 0 {
		t.Error("today's events are not found by date")
	}
	if got := emails("/admin/audit?to=2000-01-01"); len(got) != 0 {
		t.Errorf("events before 2000: %v", got)
	}
	res := admin.Get("/admin/audit?from=yesterday")
	if res.StatusCode != http.StatusUnprocessableEntity || res.Doc(t).Find(`[data-testid="from-error"]`).Length() != 1 {
		t.Errorf("a malformed date: %d, want 422 with the message by the field", res.StatusCode)
	}
	// The form has no numeric user id field any more.
	if admin.Get("/admin/audit").Doc(t).Find(`form[action="/admin/audit"] input[name="user"]`).Length() != 0 {
		t.Error("the audit log still asks for a numeric user id")
	}
}
