package browsertest

import (
	"testing"

	"github.com/chromedp/chromedp"
)

func TestBrowserSignUp(t *testing.T) {
	s := start(t)
	b := s.newBrowser("laptop")

	if path := b.open("/signup"); path != "/signup" {
		t.Fatalf("/signup ended on %s", path)
	}
	b.fill("#name", "Ada Lovelace")
	b.fill("#email", "ada@example.com")
	b.fill("#password", "analytical engine")
	b.screenshot("signup-form")
	if path := b.submit(`form[action="/signup"] button[type="submit"]`); path != "/account" {
		t.Fatalf("sign-up ended on %s, want /account", path)
	}

	if got := b.text(`[data-testid="signed-in-as"]`); got != "Ada Lovelace" {
		t.Errorf("nav says signed in as %q, want %q", got, "Ada Lovelace")
	}
	if got, want := b.text(`[data-testid="flash"]`), "Welcome to Gatehouse. Your account is ready."; got != want {
		t.Errorf("flash = %q, want %q", got, want)
	}
	// The profile form shows the new account.
	if got := run(b, "read the name field", chromedp.Value(chromedp.CSS("#name"))); got != "Ada Lovelace" {
		t.Errorf("profile name field = %q", got)
	}
	if got := run(b, "read the email field", chromedp.Value(chromedp.CSS("#email"))); got != "ada@example.com" {
		t.Errorf("profile email field = %q", got)
	}
	b.docScreenshot("account", "profile")
}
