package browsertest

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// TestBrowserAdminDisablesASignedInUser: an administrator disables an
// account while its owner is signed in elsewhere; the owner's very next
// page is the sign-in page, saying why.
func TestBrowserAdminDisablesASignedInUser(t *testing.T) {
	s := start(t)
	const adminEmail, adminPassword = "root@example.com", "keys to the gatehouse"
	hash, err := apptest.Hasher().Hash(context.Background(), adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	root := &models.User{Email: adminEmail, Name: "Dorothy Vaughan", PasswordHash: hash, Role: models.RoleAdmin}
	if err := s.env.App.Users.Create(context.Background(), root); err != nil {
		t.Fatal(err)
	}

	admin := s.newBrowser("admin")
	user := s.newBrowser("user")
	phone := s.newBrowser("user-phone", asPhone)
	if path := user.signUp("Alan Turing", "alan@example.com", "on computable numbers"); path != "/account" {
		t.Fatalf("user: sign-up ended on %s", path)
	}
	phone.signIn("alan@example.com", "on computable numbers")
	alan, err := s.env.App.Users.ByEmail(context.Background(), "alan@example.com")
	if err != nil {
		t.Fatal(err)
	}
	admin.signIn(adminEmail, adminPassword)

	// The admin finds the user and opens their page.
	if path := admin.open("/admin/users"); path != "/admin/users" {
		t.Fatalf("admin: /admin/users ended on %s", path)
	}
	userPath := "/admin/users/" + strconv.FormatInt(alan.ID, 10)
	if path := admin.submit(chromedp.CSS(`tr[data-user-id="` + strconv.FormatInt(alan.ID, 10) + `"] a`)); path != userPath {
		t.Fatalf("admin: the user's link led to %s, want %s", path, userPath)
	}
	if got := admin.text(`[data-testid="user-status"]`); got != "Active" {
		t.Errorf("admin: status %q before disabling, want Active", got)
	}
	if n := len(sessionRows(admin)); n != 2 {
		t.Errorf("admin sees %d active sessions of the user, want 2", n)
	}

	// The action sits in the danger zone, and the dialog says what follows.
	question, detail := admin.ask(`[data-testid="danger-zone"] form[action$="/disable"] button[type="submit"]`)
	if question != "Disable the account of alan@example.com?" || !strings.Contains(detail, "signed out everywhere") {
		t.Errorf("admin: the dialog asks %q (%q)", question, detail)
	}
	if path := admin.submit(confirmDialogOK); path != userPath {
		t.Fatalf("admin: disable ended on %s, want %s", path, userPath)
	}
	if got, want := admin.text(`[data-testid="flash"]`), "The account has been disabled and its sessions ended."; got != want {
		t.Errorf("admin: flash = %q, want %q", got, want)
	}
	if got := admin.text(`[data-testid="user-status"]`); got != "Disabled" {
		t.Errorf("admin: status %q after disabling, want Disabled", got)
	}
	admin.do("no active sessions are left", chromedp.WaitNotPresent(chromedp.CSS(`tr[data-session-id]`)))
	if got := admin.text(`[data-testid="ended-sessions"] [data-testid="end-reason"]`); got != "Ended when the account was disabled" {
		t.Errorf("admin: ended session's reason = %q", got)
	}
	if got := admin.text(`[data-testid="ended-sessions"] [data-testid="ended-by"]`); got != adminEmail {
		t.Errorf("admin: ended by %q, want %q", got, adminEmail)
	}
	admin.docScreenshot("admin-user", "admin-user")

	// The user's next navigation, on either device, lands on sign-in.
	for _, b := range []*Browser{user, phone} {
		if path := b.open("/account/sessions"); path != "/signin?next=%2Faccount%2Fsessions" {
			t.Fatalf("%s: /account/sessions ended on %s, want the sign-in page", b.name, path)
		}
		if got, want := b.text(`[data-testid="flash"]`), "Your account has been disabled, so this device ("+b.device+") was signed out. Contact an administrator."; got != want {
			t.Errorf("%s: flash = %q, want %q", b.name, got, want)
		}
		// Not good news: not a green success box.
		if tone := run(b, "read the flash's tone", chromedp.AttributeValue(`[data-testid="flash"]`, "data-tone")); tone.Value != "error" {
			t.Errorf("%s: the flash's tone is %q, want error", b.name, tone.Value)
		}
		b.do("signed out", chromedp.WaitNotPresent(chromedp.CSS(`[data-testid="signed-in-as"]`)))
	}
	phone.screenshot("signed-out")
}
