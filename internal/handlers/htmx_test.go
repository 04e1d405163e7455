package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/handlers"
)

// htmxPost posts form as htmx does: HX-Request, and the CSRF token in the
// X-CSRF-Token header (app.js takes it from the page's _csrf field).
func htmxPost(t *testing.T, c *apptest.Client, path string, form url.Values) *apptest.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.Base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", c.CSRFToken())
	return c.Do(req)
}

func TestRevokeWithHTMXAnswersInPlace(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	laptop := env.Client(t)
	laptop.SignUp("Ada", "ada@example.com", "analytical engine")
	phone := env.Client(t)
	phone.SignIn("ada@example.com", "analytical engine")
	_, phoneID := sessionIDs(t, phone)

	page := laptop.Get("/account/sessions").Doc(t)
	// app.js hands htmx the page's CSRF token from a form's field: the
	// navigation's sign-out form has it on every signed-in page, masked
	// afresh for every page (compress.go).
	if field, _ := page.Find(`form[action="/signout"] input[name="_csrf"]`).Attr("value"); handlers.UnmaskCSRF(field) != laptop.CSRFToken() {
		t.Errorf("the sign-out form's _csrf = %q, want the CSRF token (masked)", field)
	}
	form := page.Find(`tr[data-session-id="` + phoneID + `"] form`)
	if hx, _ := form.Attr("hx-post"); hx != "/account/sessions/"+phoneID+"/revoke" || form.AttrOr("data-confirm", "") == "" {
		t.Errorf("the Revoke form is not enhanced: hx-post=%q data-confirm=%q", hx, form.AttrOr("data-confirm", ""))
	}

	// htmx sends the token only in the header here: no form field.
	res := htmxPost(t, laptop, "/account/sessions/"+phoneID+"/revoke", url.Values{})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("htmx revoke: %d, want 200\n%s", res.StatusCode, res.Body)
	}
	if got := res.Header.Get("HX-Trigger"); !strings.Contains(got, "That device has been signed out.") {
		t.Errorf("HX-Trigger = %q", got)
	}
	doc := res.Doc(t)
	region := doc.Find("#sessions")
	if region.Length() != 1 || region.Find(`tr[data-session-id="`+phoneID+`"]`).Length() != 0 || region.Find(`tr[data-current="true"]`).Length() != 1 {
		t.Errorf("the answer's #sessions region does not show the phone gone and the laptop kept:\n%s", res.Body)
	}
	if region.Find(`form[action="/account/sessions/revoke-others"]`).Length() != 0 {
		t.Error("no other device is left, yet the answer still offers to sign them out")
	}
	if got := region.Find(`[data-testid="end-reason"]`).First().Text(); got != "Revoked from another device" {
		t.Errorf("the answer's ended table says %q", got)
	}
	if phone.Get("/account").StatusCode != http.StatusSeeOther {
		t.Error("the phone is still signed in")
	}

	// The same session again, as a stale tab would: the answer is the
	// list as it is now, with a message that is not a success.
	res = htmxPost(t, laptop, "/account/sessions/"+phoneID+"/revoke", url.Values{})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("htmx revoke of an ended session: %d, want 200 with the current list\n%s", res.StatusCode, res.Body)
	}
	if got := res.Header.Get("HX-Trigger"); !strings.Contains(got, "already ended") || !strings.Contains(got, `"tone":"info"`) {
		t.Errorf("htmx revoke of an ended session: HX-Trigger = %q, want an info message saying it had ended", got)
	}
	if region := res.Doc(t).Find("#sessions"); region.Find(`tr[data-session-id]`).Length() != 1 || region.Find(`tr[data-current="true"]`).Length() != 1 {
		t.Errorf("htmx revoke of an ended session: the answer is not the current list:\n%s", res.Body)
	}
	// Without htmx, the same form still redirects with a flash.
	phone.SignIn("ada@example.com", "analytical engine")
	_, phoneID = sessionIDs(t, phone)
	if res := laptop.Post("/account/sessions/"+phoneID+"/revoke", nil); res.StatusCode != http.StatusSeeOther || res.Location() != "/account/sessions" {
		t.Errorf("plain revoke: %d to %q", res.StatusCode, res.Location())
	}
	// A wrong token is refused for htmx as for forms.
	phone.SignIn("ada@example.com", "analytical engine")
	_, phoneID = sessionIDs(t, phone)
	req, _ := http.NewRequest(http.MethodPost, laptop.Base+"/account/sessions/"+phoneID+"/revoke", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", "not the token")
	if res := laptop.Do(req); res.StatusCode != http.StatusForbidden {
		t.Errorf("htmx revoke with a wrong token: %d, want 403", res.StatusCode)
	}
}

func TestAdminRevokeWithHTMXAnswersInPlace(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, _ := signedInAdmin(t, env)
	phone, user := signedInUser(t, env, "user@example.com")
	_, phoneID := sessionIDs(t, phone)

	// From the user's page: the page's #sessions region, without the row.
	res := htmxPost(t, admin, userPath(user)+"/sessions/"+phoneID+"/revoke", url.Values{})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("htmx admin revoke: %d\n%s", res.StatusCode, res.Body)
	}
	region := res.Doc(t).Find("#sessions")
	if region.Length() != 1 || region.Find("tr[data-session-id]").Length() != 0 || region.Find(`[data-testid="ended-by"]`).Length() != 1 {
		t.Errorf("the answer's #sessions region is not the page after the revoke:\n%s", res.Body)
	}

	// From the list of all sessions: an empty answer, which removes the row.
	laptop := env.Client(t)
	laptop.SignIn("user@example.com", "user password")
	_, laptopID := sessionIDs(t, laptop)
	res = htmxPost(t, admin, userPath(user)+"/sessions/"+laptopID+"/revoke", url.Values{"return_to": {"/admin/sessions"}})
	if res.StatusCode != http.StatusOK || res.Body != "" || !strings.Contains(res.Header.Get("HX-Trigger"), "signed out") {
		t.Errorf("htmx revoke from the sessions list: %d, HX-Trigger %q, body %q", res.StatusCode, res.Header.Get("HX-Trigger"), res.Body)
	}
	if laptop.Get("/account").StatusCode != http.StatusSeeOther {
		t.Error("the laptop is still signed in")
	}
}

func TestFormFieldsNameTheirErrors(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	res := c.Post("/signup", url.Values{"name": {"Ada"}, "email": {"not an email"}, "password": {"short"}})
	doc := res.Doc(t)
	for field, describedBy := range map[string]string{"email": "email-error", "password": "password-hint password-error"} {
		in := doc.Find("#" + field)
		if in.AttrOr("aria-invalid", "") != "true" || in.AttrOr("aria-describedby", "") != describedBy {
			t.Errorf("#%s: aria-invalid=%q aria-describedby=%q, want true and %q", field,
				in.AttrOr("aria-invalid", ""), in.AttrOr("aria-describedby", ""), describedBy)
		}
		if doc.Find("#"+field+"-error").Length() != 1 {
			t.Errorf("no #%s-error", field)
		}
	}
	if name := doc.Find("#name"); name.AttrOr("aria-invalid", "") != "" || name.AttrOr("aria-describedby", "") != "" {
		t.Errorf("#name is valid yet marked: %v", name.Nodes[0].Attr)
	}
}

// TestNotFoundShowsWhoIsSignedIn: a page that does not exist still shows a
// signed-in user the signed-in header, with a working Sign out; an
// anonymous visitor gets the same 404 without it.
func TestNotFoundShowsWhoIsSignedIn(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	res := c.Get("/no/such/page")
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /no/such/page: %d, want 404", res.StatusCode)
	}
	doc := res.Doc(t)
	if got := doc.Find(`[data-testid="signed-in-as"]`).Text(); got != "Ada" {
		t.Errorf("the 404 page's header names %q, want Ada\n%s", got, res.Body)
	}
	if token := doc.Find(`form[action="/signout"] input[name="_csrf"]`).AttrOr("value", ""); token == "" {
		t.Error("the 404 page's Sign out form has no CSRF token")
	}
	if doc.Find(`[data-testid="error-message"]`).Length() != 1 {
		t.Error("the 404 page has no error message")
	}
	// A POST to nowhere is still a plain 404.
	if res := c.Post("/no/such/page", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("POST /no/such/page: %d, want 404", res.StatusCode)
	}
	anon := env.Client(t)
	res = anon.Get("/no/such/page")
	if res.StatusCode != http.StatusNotFound || res.Doc(t).Find(`[data-testid="signed-in-as"]`).Length() != 0 {
		t.Errorf("anonymous GET /no/such/page: %d, or it names someone", res.StatusCode)
	}
}
