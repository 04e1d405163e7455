package browsertest

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// sessionRows returns the attributes of the Devices table's rows, in page
// order.
func sessionRows(b *Browser) []map[string]string {
	b.t.Helper()
	return run(b, "list the active sessions", chromedp.AttributesAll(chromedp.CSSAll(`tr[data-session-id]`)))
}

func TestBrowserRevokeAnotherDevice(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []BrowserOption
	}{
		{"javascript", nil},
		// The Devices page must work as plain forms.
		{"no-javascript", []BrowserOption{withoutJavaScript}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t)
			a := s.newBrowser("device-a", tc.opts...)
			b := s.newBrowser("device-b", tc.opts...)

			if path := a.signUp("Grace Hopper", "grace@example.com", "compiler cobol"); path != "/account" {
				t.Fatalf("A: sign-up ended on %s", path)
			}
			b.signIn("grace@example.com", "compiler cobol")

			if path := a.open("/account/sessions"); path != "/account/sessions" {
				t.Fatalf("A: Devices ended on %s", path)
			}
			rows := sessionRows(a)
			if len(rows) != 2 {
				t.Fatalf("A sees %d active sessions, want 2: %v", len(rows), rows)
			}
			if rows[0]["data-current"] != "true" {
				t.Fatalf("first row is not the current device: %v", rows)
			}
			if _, current := rows[1]["data-current"]; current {
				t.Fatalf("both rows claim to be the current device: %v", rows)
			}
			other := rows[1]["data-session-id"]
			if got := a.text(`tr[data-current="true"] .device`); got != "Chrome on Linux" {
				t.Errorf("A's device is shown as %q, want %q", got, "Chrome on Linux")
			}
			otherRow := chromedp.CSS(fmt.Sprintf(`tr[data-session-id=%q]`, other))
			a.screenshot("devices-before")

			path := a.submit(otherRow + ` button[type="submit"]`)
			if path != "/account/sessions" {
				t.Fatalf("A: revoke ended on %s, want /account/sessions", path)
			}
			if got, want := a.text(`[data-testid="flash"]`), "That device has been signed out."; got != want {
				t.Errorf("A: flash = %q, want %q", got, want)
			}
			a.do("B's row is gone", chromedp.WaitNotPresent(otherRow))
			if rows := sessionRows(a); len(rows) != 1 || rows[0]["data-current"] != "true" {
				t.Errorf("after the revoke A sees %v, want only itself", rows)
			}
			ended := run(a, "list the ended sessions", chromedp.Nodes(chromedp.CSSAll(`[data-testid="ended-sessions"] tr[data-ended-session]`)))
			if len(ended) != 1 {
				t.Errorf("ended table has %d rows, want 1", len(ended))
			}
			if got, want := a.text(`[data-testid="ended-sessions"] [data-testid="end-reason"]`), "Revoked from another device"; got != want {
				t.Errorf("ended session's reason = %q, want %q", got, want)
			}
			a.screenshot("devices")

			// B's very next request finds its session gone.
			if path := b.open("/account"); path != "/signin?next=%2Faccount" {
				t.Fatalf("B: /account ended on %s, want the sign-in page", path)
			}
			if got, want := b.text(`[data-testid="flash"]`), "This device was signed out from another device. Please sign in again."; got != want {
				t.Errorf("B: flash = %q, want %q", got, want)
			}
			b.do("B is signed out", chromedp.WaitNotPresent(chromedp.CSS(`[data-testid="signed-in-as"]`)))
			b.screenshot("signed-out")
		})
	}
}
