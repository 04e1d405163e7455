package browsertest

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/factor"
)

// TestBrowserTOTPSetUpAndSignIn: a person sets up an authenticator app
// from the QR page (the test plays the app, reading the secret as a tool
// would from data-totp-secret), sees their recovery codes once, and then
// signs in on another device with password and code; the Devices page says
// how that session signed in.
func TestBrowserTOTPSetUpAndSignIn(t *testing.T) {
	s := start(t)
	a := s.newBrowser("device-a")
	b := s.newBrowser("device-b")
	const email, password = "grace@example.com", "cobol compiler nights"
	if path := a.signUp("Grace Hopper", email, password); path != "/account" {
		t.Fatalf("A: sign-up ended on %s", path)
	}
	// 5 seconds into a time step: the step does not change mid-test.
	s.env.Clock.Advance(time.Duration(35-s.env.Clock.Now().Unix()%30) * time.Second)
	var secret string
	code := func(ahead int64) string {
		c, err := factor.Code(secret, factor.Step(s.env.Clock.Now())+ahead)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	a.open("/account/2fa")
	if path := a.submit(`[data-testid="totp-setup-link"]`); path != "/account/2fa/totp" {
		t.Fatalf("A: set-up link ended on %s", path)
	}
	if w := eval[float64](a, `document.querySelector("[data-testid=totp-qr] svg").getBoundingClientRect().width`); w < 100 {
		t.Fatalf("A: the QR code is %v px wide", w)
	}
	secret = eval[string](a, `document.querySelector("[data-totp-secret]").dataset.totpSecret`)
	if len(secret) != 32 || a.text(`[data-testid="totp-secret"]`) != secret {
		t.Fatalf("A: secret shown %q", secret)
	}
	a.screenshot("qr")
	a.fill("#code", code(0))
	if path := a.submit(`form[action="/account/2fa/totp"] button`); path != "/account/2fa/totp" {
		t.Fatalf("A: confirming ended on %s", path)
	}
	if n := eval[float64](a, `document.querySelectorAll("[data-recovery-code]").length`); n != 10 {
		t.Fatalf("A: %v recovery codes shown", n)
	}
	a.screenshot("recovery-codes")

	// Device B: password, then the code step.
	b.open("/signin")
	b.fill("#email", email)
	b.fill("#password", password)
	if path := b.submit(`form[action="/signin"] button[type="submit"]`); path != "/signin/2fa" {
		t.Fatalf("B: password ended on %s, want the code step", path)
	}
	if path := b.open("/account"); !strings.HasPrefix(path, "/signin") {
		t.Fatalf("B: signed in before the code (%s)", path)
	}
	b.open("/signin/2fa")
	b.screenshot("code-step")
	s.env.Clock.Advance(30 * time.Second) // the enabling code is used up
	b.fill("#code", code(0))
	if path := b.submit(`form[action="/signin/2fa"] button`); path != "/account" {
		t.Fatalf("B: code ended on %s\n%s", path, b.bodyText())
	}
	b.open("/account/sessions")
	if got := b.text(`tr[data-current="true"] [data-testid="auth-method"]`); got != "Signed in with Password and authenticator app" {
		t.Errorf("B: Devices page says %q", got)
	}
}
