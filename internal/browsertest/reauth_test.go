package browsertest

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserSignOutAllOtherDevicesAfterReauthentication: with a password
// proved too long ago, "Sign out all other devices" asks for it on a page
// that names the action, then shows the action ready, and one click signs
// the other device out. With JavaScript on (the Devices page's htmx) and
// off.
func TestBrowserSignOutAllOtherDevicesAfterReauthentication(t *testing.T) {
	for _, tc := range []struct {
		name string
		js   bool
		opts []BrowserOption
	}{
		{"javascript", true, nil},
		{"no-javascript", false, []BrowserOption{withoutJavaScript}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t)
			a := s.newBrowser("device-a", tc.opts...)
			b := s.newBrowser("device-b", tc.opts...)
			const email, password = "mary@example.com", "difference engine notes"
			if path := a.signUp("Mary Somerville", email, password); path != "/account" {
				t.Fatalf("A: sign-up ended on %s", path)
			}
			b.signIn(email, password)
			s.env.Clock.Advance(11 * time.Minute) // past REAUTH_WINDOW

			if path := a.open("/account/sessions"); path != "/account/sessions" {
				t.Fatalf("A: Devices ended on %s", path)
			}
			var path string
			if tc.js {
				// The dialog asks first; confirmed, the POST needs the password.
				a.ask(`form[action="/account/sessions/revoke-others"] button`)
				path = a.submit(confirmDialogOK)
			} else {
				// Without JavaScript the button opens the confirmation page,
				// whose POST needs the password.
				if path := a.submit(`form[action="/account/sessions/revoke-others"] button`); strings.TrimSuffix(path, "?") != "/account/sessions/revoke-others" {
					t.Fatalf("A: Sign out all other devices ended on %s, want its confirmation page", path)
				}
				path = a.submit(`form[data-testid="pending-action"] button`)
			}
			if want := "/account/confirm?next=%2Faccount%2Fsessions%2Frevoke-others"; path != want {
				t.Fatalf("A: Sign out all other devices ended on %s, want %s", path, want)
			}
			if got, want := a.text(`[data-testid="confirm-heading"]`), "Confirm your password to sign out all other devices"; got != want {
				t.Errorf("A: confirm page heading %q, want %q", got, want)
			}
			a.screenshot("confirm")
			a.fill("#password", password)
			if path := a.submit(`form[action="/account/confirm"] button[type="submit"]`); path != "/account/sessions/revoke-others" {
				t.Fatalf("A: confirming ended on %s, want the action's confirmation page", path)
			}
			if got, want := a.text(`[data-testid="pending-heading"]`), "Sign out all other devices?"; got != want {
				t.Errorf("A: confirmation page heading %q, want %q", got, want)
			}
			// Nothing has happened yet: the POST was not replayed.
			if path := b.open("/account"); path != "/account" {
				t.Fatalf("B was signed out before A confirmed the action (%s)", path)
			}
			a.screenshot("armed")
			if path := a.submit(`form[data-testid="pending-action"] button`); path != "/account/sessions" {
				t.Fatalf("A: the action ended on %s", path)
			}
			if got, want := a.text(`[data-testid="flash"]`), "All your other devices have been signed out."; got != want {
				t.Errorf("A: flash %q, want %q", got, want)
			}
			if rows := sessionRows(a); len(rows) != 1 || rows[0]["data-current"] != "true" {
				t.Errorf("A: active sessions after the action: %v", rows)
			}
			if path := b.open("/account"); path != "/signin?next=%2Faccount" {
				t.Errorf("B: /account ended on %s, want the sign-in page", path)
			}
		})
	}
}

// TestBrowserRevokeWithHTMXAfterReauthentication: a row's Revoke, sent in
// the background by htmx with a stale password, takes the browser to the
// confirm page naming that device, and on to its confirmation page.
func TestBrowserRevokeWithHTMXAfterReauthentication(t *testing.T) {
	s := start(t)
	a := s.newBrowser("device-a")
	b := s.newBrowser("device-b")
	const email, password = "mary@example.com", "difference engine notes"
	if path := a.signUp("Mary Somerville", email, password); path != "/account" {
		t.Fatalf("A: sign-up ended on %s", path)
	}
	b.signIn(email, password)
	s.env.Clock.Advance(11 * time.Minute) // past REAUTH_WINDOW

	if path := a.open("/account/sessions"); path != "/account/sessions" {
		t.Fatalf("A: Devices ended on %s", path)
	}
	other := sessionRows(a)[1]["data-session-id"]
	a.ask(chromedp.CSS(`tr[data-session-id="` + other + `"] button`))
	path := a.submit(confirmDialogOK)
	if want := "/account/confirm?next=%2Faccount%2Fsessions%2F" + other + "%2Frevoke"; path != want {
		t.Fatalf("A: Revoke ended on %s, want %s", path, want)
	}
	if got, want := a.text(`[data-testid="confirm-heading"]`), "Confirm your password to sign out Chrome on Linux (127.0.0.1)"; got != want {
		t.Errorf("A: confirm page heading %q, want %q", got, want)
	}
	a.fill("#password", password)
	if path := a.submit(`form[action="/account/confirm"] button[type="submit"]`); path != "/account/sessions/"+other+"/revoke" {
		t.Fatalf("A: confirming ended on %s", path)
	}
	if path := a.submit(`form[data-testid="pending-action"] button`); path != "/account/sessions" {
		t.Fatalf("A: the action ended on %s", path)
	}
	if path := b.open("/account"); path != "/signin?next=%2Faccount" {
		t.Errorf("B: /account ended on %s, want the sign-in page", path)
	}
}
