package browsertest

import (
	"strings"
	"testing"
)

// TestBrowserForgotPassword walks the whole recovery in browsers: the link
// on the sign-in page, the form, the mailed link opened in a browser with
// JavaScript off and no session, the new password, and every other
// device signed out.
func TestBrowserForgotPassword(t *testing.T) {
	s := start(t)
	laptop := s.newBrowser("laptop")
	if path := laptop.signUp("Ada Lovelace", "ada@example.com", "analytical engine"); path != "/account" {
		t.Fatalf("sign-up ended on %s", path)
	}

	phone := s.newBrowser("phone", withoutJavaScript, asPhone)
	phone.open("/signin")
	if path := phone.submit(`a[data-testid="forgot-link"]`); path != "/password/forgot" {
		t.Fatalf("the Forgot your password? link led to %s", path)
	}
	phone.fill("#email", "ada@example.com")
	phone.screenshot("forgot-form")
	if path := phone.submit(`form[action="/password/forgot"] button[type="submit"]`); path != "/password/forgot" {
		t.Fatalf("forgot form ended on %s", path)
	}
	if got := phone.text(`[data-testid="forgot-sent"]`); !strings.HasPrefix(got, "If an account exists for that address") {
		t.Fatalf("forgot answer %q", got)
	}
	phone.docScreenshot("forgot-sent", "forgot-sent")

	link := s.env.Mail.WaitForSubject(t, "ada@example.com", "Reset your Gatehouse password", 1).Link(t, "/password/reset")
	if path := phone.open(link); !strings.HasPrefix(path, "/password/reset?token=") {
		t.Fatalf("the mailed link opened %s", path)
	}
	phone.fill("#new_password", "difference engine")
	phone.docScreenshot("reset-form", "reset-password")
	if path := phone.submit(`form[action="/password/reset"] button[type="submit"]`); path != "/signin" {
		t.Fatalf("reset ended on %s, want /signin", path)
	}
	if got := phone.text(`[data-testid="flash"]`); !strings.Contains(got, "Sign in with your new password") {
		t.Errorf("flash after reset %q", got)
	}
	phone.signIn("ada@example.com", "difference engine")

	// The laptop's session ended with the reset, and says why.
	if path := laptop.open("/account"); !strings.HasPrefix(path, "/signin") {
		t.Fatalf("the laptop is still signed in after the reset: %s", path)
	}
	if got := laptop.text(`[data-testid="flash"]`); !strings.Contains(got, "reset") {
		t.Errorf("the laptop's flash %q does not say the password was reset", got)
	}
}

// TestBrowserVerifyEmail: the profile says unverified; the mailed link
// opens a page whose button verifies; the banner goes.
func TestBrowserVerifyEmail(t *testing.T) {
	s := start(t)
	b := s.newBrowser("laptop")
	b.signUp("Ada Lovelace", "ada@example.com", "analytical engine")
	if got := b.text(`[data-testid="unverified"]`); !strings.Contains(got, "unverified") {
		t.Fatalf("profile banner %q", got)
	}
	b.screenshot("unverified")
	link := s.env.Mail.WaitFor(t, "ada@example.com", 1).Link(t, "/verify")
	if path := b.open(link); !strings.HasPrefix(path, "/verify?token=") {
		t.Fatalf("the link opened %s", path)
	}
	if got := b.text(`[data-testid="verify-email"]`); got != "ada@example.com" {
		t.Fatalf("verify page names %q", got)
	}
	b.docScreenshot("verify", "verify-email")
	if path := b.submit(`form[action="/verify"] button[type="submit"]`); path != "/account" {
		t.Fatalf("verify ended on %s", path)
	}
	if got := b.text(`[data-testid="flash"]`); got != "Your email address is verified. Thank you." {
		t.Errorf("flash %q", got)
	}
	if n := eval[int](b, `document.querySelectorAll('[data-testid="unverified"]').length`); n != 0 {
		t.Fatal("the profile still says unverified")
	}
}

// TestBrowserThisWasntMe: a sign-in from a new device mails the owner; the
// alert's "This wasn't me" link, opened in a browser without a session
// and with JavaScript off, shows a page whose button ends that sign-in
// (and every other), locks the password and sends a reset link.
func TestBrowserThisWasntMe(t *testing.T) {
	s := start(t)
	laptop := s.newBrowser("laptop")
	laptop.signUp("Ada Lovelace", "ada@example.com", "analytical engine")
	thief := s.newBrowser("thief", asPhone)
	thief.signIn("ada@example.com", "analytical engine")

	link := s.env.Mail.WaitForSubject(t, "ada@example.com", "New sign-in to your Gatehouse account", 1).Link(t, "/signin/not-me")
	mail := s.newBrowser("mail", withoutJavaScript)
	if path := mail.open(link); !strings.HasPrefix(path, "/signin/not-me?token=") {
		t.Fatalf("the mailed link opened %s", path)
	}
	if got := mail.text(`[data-testid="email-link-text"]`); !strings.Contains(got, "not you") {
		t.Fatalf("not-me page says %q", got)
	}
	mail.screenshot("not-me")
	// Opening the page ended nothing.
	if path := thief.open("/account"); path != "/account" {
		t.Fatalf("opening the link signed the thief out: %s", path)
	}
	if path := mail.submit(`form[action="/signin/not-me"] button[type="submit"]`); path != "/signin/not-me" {
		t.Fatalf("the button ended on %s", path)
	}
	if got := mail.text(`[data-testid="not-me-done"]`); !strings.Contains(got, "ada@example.com") {
		t.Fatalf("done page says %q", got)
	}
	mail.screenshot("not-me-done")

	for _, b := range []*Browser{thief, laptop} {
		if path := b.open("/account"); !strings.HasPrefix(path, "/signin") {
			t.Fatalf("%s is still signed in: %s", b.name, path)
		}
		if got := b.text(`[data-testid="flash"]`); !strings.Contains(got, "not yours") {
			t.Errorf("%s's flash %q does not say why", b.name, got)
		}
	}
	// The reset link sets a new password; the old one is dead.
	reset := s.env.Mail.WaitForSubject(t, "ada@example.com", "Reset your Gatehouse password", 1).Link(t, "/password/reset")
	mail.open(reset)
	mail.fill("#new_password", "difference engine")
	if path := mail.submit(`form[action="/password/reset"] button[type="submit"]`); path != "/signin" {
		t.Fatalf("reset ended on %s", path)
	}
	laptop.signIn("ada@example.com", "difference engine")
}
