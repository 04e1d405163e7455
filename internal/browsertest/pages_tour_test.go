package browsertest

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// TestBrowserEveryPageFits visits the signed-in pages, the admin ones
// included, on a 1280 px desktop and a 360 px phone: nothing is wider than
// the window (admin tables included), and each page is captured for review.
func TestBrowserEveryPageFits(t *testing.T) {
	s := startFor(t, 3*time.Minute, apptest.With("TRUST_PROXY", "true"))
	ctx := context.Background()
	const adminEmail, adminPassword = "root@example.com", "keys to the gatehouse"
	hash, err := apptest.Hasher().Hash(ctx, adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	root := &models.User{Email: adminEmail, Name: "Dorothy Vaughan", PasswordHash: hash, Role: models.RoleAdmin}
	if err := s.env.App.Users.Create(ctx, root); err != nil {
		t.Fatal(err)
	}
	// Other devices of the admin's account, one with a long IPv6 address,
	// and a few users, one of them disabled, with a failed sign-in.
	for i, ua := range otherDevices[:3] {
		c := s.env.Client(t)
		c.UserAgent = ua
		if i == 0 {
			c.Header.Set("X-Forwarded-For", ipv6)
		}
		c.SignIn(adminEmail, adminPassword)
	}
	for _, who := range []string{"alan.turing@example.com", "grace.hopper@example.com", "a.very.long.address.for.testing@subdomain.example.com"} {
		c := s.env.Client(t)
		c.UserAgent = otherDevices[1]
		c.SignUp("User "+who, who, "correct horse battery")
		c.Post("/signin", url.Values{"email": {adminEmail}, "password": {"a wrong guess"}})
	}
	alan, err := s.env.App.Users.ByEmail(ctx, "alan.turing@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.env.App.Users.SetDisabled(ctx, alan.ID, true); err != nil {
		t.Fatal(err)
	}

	desk := s.newBrowser("desktop")
	phone := s.newBrowser("phone", asPhone)
	for _, b := range []*Browser{desk, phone} {
		b.signIn(adminEmail, adminPassword)
	}
	alanPage := "/admin/users/" + strconv.FormatInt(alan.ID, 10)
	for _, path := range []string{"/account", "/account/sessions", "/account/activity", "/activate?user_code=WDJB-MJHT", "/admin/users", alanPage, "/admin/sessions", "/admin/audit"} {
		for _, b := range []*Browser{desk, phone} {
			if got := b.open(path); got != path {
				t.Fatalf("%s: %s ended on %s", b.name, path, got)
			}
			b.fitsWidth(path)
			b.screenshot(b.name + strings.ReplaceAll(path, "/", "-"))
		}
	}
	if path := desk.open("/admin/users"); path != "/admin/users" {
		t.Fatal(path)
	}
	desk.docScreenshot("admin-users", "admin-users")
	if path := desk.open("/account/activity"); path != "/account/activity" {
		t.Fatal(path)
	}
	desk.docScreenshot("activity", "activity")
	if path := desk.open(alanPage); path != alanPage {
		t.Fatal(path)
	}
	desk.screenshot("admin-user")
	// The admin's own session is marked on the list of all sessions.
	if path := desk.open("/admin/sessions"); path != "/admin/sessions" {
		t.Fatal(path)
	}
	if got := desk.text(`tr[data-current="true"] [data-testid="own-session"]`); got != "Your session" {
		t.Errorf("the admin's own session is marked %q", got)
	}
	// The devices page with its details open, for the README.
	if path := desk.open("/account/sessions"); path != "/account/sessions" {
		t.Fatal(path)
	}
	desk.click(`tr[data-current="true"] [data-testid="session-details"] summary`)
	desk.docScreenshot("devices", "devices")
	if path := phone.open("/account/sessions"); path != "/account/sessions" {
		t.Fatal(path)
	}
	phone.docScreenshot("devices", "devices-phone")
	// The dialog, as it asks.
	desk.ask(`tr[data-session-id]:not([data-current]) button`)
	desk.screenshot("confirm-dialog")
}

// TestBrowserFailedFormTakesFocus: a failed password change opens with the
// error summary focused and a title saying Error; the show-password toggle
// shows what was typed, and hides it again before the form is sent.
func TestBrowserFailedFormTakesFocus(t *testing.T) {
	s := start(t)
	b := s.newBrowser("laptop")
	if path := b.signUp("Ada Lovelace", "ada@example.com", "analytical engine"); path != "/account" {
		t.Fatalf("sign-up ended on %s", path)
	}
	if title := b.title(); strings.HasPrefix(title, "Error") {
		t.Errorf("the profile page's title is %q before anything failed", title)
	}
	b.fill("#current_password", "not my password")
	toggle := chromedp.CSS(`[data-show-password="current_password"]`)
	b.click(toggle)
	if typ := eval[string](b, `document.getElementById("current_password").type`); typ != "text" {
		t.Errorf("after Show password the field is type %q, want text", typ)
	}
	if pressed := run(b, "read aria-pressed", chromedp.AttributeValue(toggle, "aria-pressed")); pressed.Value != "true" {
		t.Errorf("the toggle is aria-pressed=%q, want true", pressed.Value)
	}
	b.fill("#new_password", "a new long passphrase")
	// The failed form is shown at /account/password, answered 422.
	b.expectConsole("status of 422")
	res, err := chromedp.RunResponse(b.ctx, chromedp.Click(`form[action="/account/password"] button[type="submit"]`, chromedp.NodeVisible))
	if err != nil || res.Status != 422 || !strings.HasSuffix(res.URL, "/account/password") {
		t.Fatalf("the failed change: %v, %+v", err, res)
	}
	if title := b.title(); !strings.HasPrefix(title, "Error: ") {
		t.Errorf("title after a failed change %q, want it to start with Error:", title)
	}
	b.do("the summary takes the focus", chromedp.Poll[chromedp.Void](`document.activeElement && document.activeElement.dataset.testid === "error-summary"`))
	if href := run(b, "read the summary's link", chromedp.AttributeValue(`[data-testid="error-summary"] a`, "href")); href.Value != "#current_password" {
		t.Errorf("the summary links to %q", href.Value)
	}
	if typ := eval[string](b, `document.getElementById("current_password").type`); typ != "password" {
		t.Errorf("the password comes back shown (type %q)", typ)
	}
	b.screenshot("failed")
	// Reloading the failed form's address returns to the profile page.
	if path := b.open("/account/password"); path != "/account" {
		t.Errorf("GET /account/password ended on %s, want /account", path)
	}
}
