package handlers_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

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
