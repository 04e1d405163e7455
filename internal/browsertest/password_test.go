package browsertest

import (
	"testing"

	"github.com/chromedp/chromedp"
)

func TestBrowserChangePasswordSignsOutOtherDevices(t *testing.T) {
	s := start(t)
	a := s.newBrowser("device-a")
	b := s.newBrowser("device-b")

	const email, oldPassword, newPassword = "katherine@example.com", "orbital mechanics", "trajectory of friendship 7"
	if path := a.signUp("Katherine Johnson", email, oldPassword); path != "/account" {
		t.Fatalf("A: sign-up ended on %s", path)
	}
	b.signIn(email, oldPassword)

	if path := a.open("/account"); path != "/account" {
		t.Fatalf("A: /account ended on %s", path)
	}
	box := chromedp.CSS(`form[action="/account/password"] input[name="revoke_others"]`)
	if attrs := run(a, "read the checkbox", chromedp.Attributes(box)); !hasAttr(attrs, "checked") {
		t.Errorf(`"Sign out my other devices" is not ticked by default: %v`, attrs)
	}
	if ticked := run(a, "read the checkbox state", chromedp.JavascriptAttribute[bool](box, "checked")); !ticked {
		t.Errorf(`"Sign out my other devices" is not ticked`)
	}
	a.fill("#current_password", oldPassword)
	a.fill("#new_password", newPassword)
	if path := a.submit(`form[action="/account/password"] button[type="submit"]`); path != "/account" {
		t.Fatalf("A: password change ended on %s, want /account", path)
	}
	if got, want := a.text(`[data-testid="flash"]`), "Your password has been changed and your other devices have been signed out."; got != want {
		t.Errorf("A: flash = %q, want %q", got, want)
	}
	a.screenshot("account")

	// B's next navigation finds it signed out, and says why.
	if path := b.open("/account"); path != "/signin?next=%2Faccount" {
		t.Fatalf("B: /account ended on %s, want the sign-in page", path)
	}
	if got, want := b.text(`[data-testid="flash"]`), "Your password was changed, so this device ("+b.device+") was signed out. Please sign in again."; got != want {
		t.Errorf("B: flash = %q, want %q", got, want)
	}
	b.screenshot("signed-out")

	// A, which changed the password, stays signed in.
	if path := a.open("/account"); path != "/account" {
		t.Fatalf("A: /account after the change ended on %s", path)
	}
	if got := a.text(`[data-testid="signed-in-as"]`); got != "Katherine Johnson" {
		t.Errorf("A: nav says %q", got)
	}

	// And B can come back with the new password.
	b.signIn(email, newPassword)
}

func hasAttr(attrs map[string]string, name string) bool {
	_, ok := attrs[name]
	return ok
}
