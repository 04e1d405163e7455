package browsertest

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/factor"
)

// startOnLocalhost is start with the app on http://localhost:PORT, the
// origin WebAuthn accepts (it refuses 127.0.0.1).
func startOnLocalhost(t *testing.T) *suite {
	t.Helper()
	t.Parallel() // as startFor
	chromium := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
	t.Cleanup(cancel)
	return &suite{t: t, ctx: ctx, env: apptest.NewOnLocalhost(t), chromium: chromium}
}

// addAuthenticator gives the browser Chromium's virtual authenticator: a
// platform authenticator with discoverable credentials and user
// verification that always succeeds, as a laptop's fingerprint reader.
func (b *Browser) addAuthenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.t.Fatalf("%s: WebAuthn.enable: %v", b.name, err)
	}
	res, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		b.t.Fatalf("%s: WebAuthn.addVirtualAuthenticator: %v", b.name, err)
	}
	return res.AuthenticatorID
}

func (b *Browser) signOut() {
	b.t.Helper()
	b.open("/account")
	if path := b.submit(`form[action="/signout"] button`); path != "/signin" {
		b.t.Fatalf("%s: sign-out ended on %s", b.name, path)
	}
}

// TestBrowserPasskeyRegisterAndSignIn: with Chromium's virtual
// authenticator, a person adds a passkey, signs in with it alone, and then
// uses it as the second step after the password.
func TestBrowserPasskeyRegisterAndSignIn(t *testing.T) {
	s := startOnLocalhost(t)
	a := s.newBrowser("laptop")
	auth := a.addAuthenticator()
	const email, password = "ada@example.com", "analytical engine notes"
	if path := a.signUp("Ada Lovelace", email, password); path != "/account" {
		t.Fatalf("sign-up ended on %s", path)
	}
	if path := a.open("/account/passkeys/new"); path != "/account/passkeys/new" {
		t.Fatalf("add page: %s", path)
	}
	a.fill("#name", "Laptop fingerprint")
	if path := a.submit(`form[data-passkey-register] button`); path != "/account/passkeys" {
		t.Fatalf("registering ended on %s: %s", path, a.bodyText())
	}
	if got := eval[string](a, `document.querySelector("[data-testid=passkey-name]").value`); got != "Laptop fingerprint" {
		t.Fatalf("passkey listed as %q", got)
	}
	creds, err := chromedp.Call(a.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: auth})
	if err != nil || len(creds.Credentials) != 1 || !creds.Credentials[0].IsResidentCredential || creds.Credentials[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %+v (%v)", creds, err)
	}
	a.screenshot("passkeys")

	// Passwordless: the sign-in page's autofill request, which the
	// virtual authenticator answers as a person picking the suggestion.
	a.signOut() // lands on /signin
	a.do("wait for the autofill passkey to sign in", chromedp.WaitVisible(`[data-testid="signed-in-as"]`))
	a.open("/account/sessions")
	if got := a.text(`tr[data-current="true"] [data-testid="auth-method"]`); got != "Signed in with Passkey" {
		t.Errorf("Devices page says %q", got)
	}

	// As the second step: turn the app on (this sign-in is recent), then
	// password, then the passkey instead of a code.
	s.env.Clock.Advance(time.Duration(35-s.env.Clock.Now().Unix()%30) * time.Second)
	a.open("/account/2fa/totp")
	secret := eval[string](a, `document.querySelector("[data-totp-secret]").dataset.totpSecret`)
	code, err := factor.Code(secret, factor.Step(s.env.Clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	a.fill("#code", code)
	if path := a.submit(`form[action="/account/2fa/totp"] button`); path != "/account/2fa/totp" {
		t.Fatalf("turning 2FA on ended on %s", path)
	}
	// The virtual authenticator answers the sign-in page's autofill
	// request by itself (a person would pick the passkey from the email
	// field's suggestions): keep it from answering while the password is
	// typed.
	presence := func(on bool) {
		if _, err := chromedp.Call(a.ctx, webauthn.SetAutomaticPresenceSimulation,
			webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: auth, Enabled: on}); err != nil {
			t.Fatal(err)
		}
	}
	presence(false)
	a.signOut()
	a.fill("#email", email)
	a.fill("#password", password)
	if path := a.submit(`form[action="/signin"] button[type="submit"]`); path != "/signin/2fa" {
		t.Fatalf("password ended on %s", path)
	}
	presence(true)
	if path := a.submit(`[data-passkey-signin] [data-passkey-button]`); path != "/account" {
		t.Fatalf("passkey as second step ended on %s: %s", path, a.bodyText())
	}
	a.open("/account/sessions")
	if got := a.text(`tr[data-current="true"] [data-testid="auth-method"]`); got != "Signed in with Password and passkey" {
		t.Errorf("Devices page says %q", got)
	}
}
