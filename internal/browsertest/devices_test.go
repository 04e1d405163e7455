package browsertest

import (
	"fmt"
	"strings"
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
		js   bool
		opts []BrowserOption
	}{
		// With JavaScript, the confirmation dialog asks, and htmx removes
		// the row in place, without loading a page.
		{"javascript", true, nil},
		// The Devices page must work as plain forms.
		{"no-javascript", false, []BrowserOption{withoutJavaScript}},
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

			revoke := otherRow + ` button[type="submit"]`
			if tc.js {
				// A page load would lose this.
				eval[int](a, `window.__marker = 1`)
				question, detail := a.ask(revoke)
				if !strings.Contains(question, "Chrome on Linux") || !strings.Contains(detail, "sign in again") {
					t.Errorf("A: the dialog asks %q (%q), want it to name the device and say what follows", question, detail)
				}
				a.click(confirmDialogOK)
				a.do("B's row is gone", chromedp.WaitNotPresent(otherRow))
				if got, want := a.text(`[data-testid="flash"]`), "That device has been signed out."; got != want {
					t.Errorf("A: flash = %q, want %q", got, want)
				}
				if marker := eval[int](a, `window.__marker || 0`); marker != 1 {
					t.Errorf("A: the page was reloaded to revoke (marker %d), want the row removed in place", marker)
				}
				if focused := eval[string](a, `document.activeElement.id`); focused != "sessions-heading" {
					t.Errorf("A: after the revoke the focus is on #%s, want the table's heading", focused)
				}
				// Nobody is left to sign out.
				a.do("the sign-out-everywhere form is gone", chromedp.WaitNotPresent(chromedp.CSS(`form[action="/account/sessions/revoke-others"]`)))
			} else {
				// Without JavaScript, Revoke opens its confirmation page.
				// (A GET form with no fields ends its URL with "?".)
				if path := a.submit(revoke); strings.TrimSuffix(path, "?") != "/account/sessions/"+other+"/revoke" {
					t.Fatalf("A: Revoke ended on %s, want its confirmation page", path)
				}
				if got := a.text(`[data-testid="pending-heading"]`); got != "Sign out Chrome on Linux?" {
					t.Errorf("A: confirmation page asks %q", got)
				}
				path := a.submit(`form[data-testid="pending-action"] button`)
				if path != "/account/sessions" {
					t.Fatalf("A: revoke ended on %s, want /account/sessions", path)
				}
				if got, want := a.text(`[data-testid="flash"]`), "That device has been signed out."; got != want {
					t.Errorf("A: flash = %q, want %q", got, want)
				}
				a.do("B's row is gone", chromedp.WaitNotPresent(otherRow))
			}
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
			if got, want := b.text(`[data-testid="flash"]`), "This device was signed out from Chrome on Linux. Please sign in again."; got != want {
				t.Errorf("B: flash = %q, want %q", got, want)
			}
			b.do("B is signed out", chromedp.WaitNotPresent(chromedp.CSS(`[data-testid="signed-in-as"]`)))
			b.screenshot("signed-out")
		})
	}
}

// TestBrowserDevicesOnAPhone checks the Devices page on a 360 px wide
// phone: nothing sticks out sideways, and the phone is labelled as one.
func TestBrowserDevicesOnAPhone(t *testing.T) {
	s := start(t)
	phone := s.newBrowser("phone", asPhone)
	laptop := s.newBrowser("laptop")

	if path := phone.signUp("Mary Somerville", "mary@example.com", "mechanism of the heavens"); path != "/account" {
		t.Fatalf("phone: sign-up ended on %s", path)
	}
	laptop.signIn("mary@example.com", "mechanism of the heavens")
	// An ended session too, so both tables are on the page.
	other := s.newBrowser("old-laptop")
	other.signIn("mary@example.com", "mechanism of the heavens")
	other.submit(`form[action="/signout"] button[type="submit"]`)

	if path := phone.open("/account/sessions"); path != "/account/sessions" {
		t.Fatalf("phone: Devices ended on %s", path)
	}
	if got := phone.text(`tr[data-current="true"] .device`); got != "Chrome on Android" {
		t.Errorf("phone's device is shown as %q, want %q", got, "Chrome on Android")
	}
	if got := phone.text(`tr[data-current="true"] .detail`); !strings.HasPrefix(got, "Mobile phone") {
		t.Errorf("phone's detail line reads %q, want it to say it is a phone", got)
	}
	if width := eval[int](phone, `window.innerWidth`); width != phoneWidth {
		t.Fatalf("the phone's viewport is %d px wide, want %d", width, phoneWidth)
	}
	if width := eval[int](phone, `document.documentElement.scrollWidth`); width > phoneWidth {
		wide := eval[[]string](phone, `[...document.querySelectorAll("body *")]
			.filter(e => e.getBoundingClientRect().right > window.innerWidth)
			.map(e => e.tagName.toLowerCase() + (e.className ? "." + e.className : ""))`)
		t.Errorf("the Devices page is %d px wide on a %d px phone; too wide: %v", width, phoneWidth, wide)
	}
	phone.screenshot("devices")
}
