package browsertest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// ipv6 is the address of a device behind the test's (trusted) proxy.
const ipv6 = "2001:db8:85a3:8d3:1319:8a2e:370:7348"

// Four other devices, as their user agents say. They are HTTP clients,
// not browsers: the machine runs one Chromium per test, not five.
var otherDevices = []string{
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
}

// devicesWithFour signs one account in on a laptop (the returned browser,
// in the Asia/Kolkata time zone, UTC+5:30) and on four other devices, the
// first from an IPv6 address; the last signs out again. The laptop is on
// its Devices page.
func devicesWithFour(t *testing.T, opts ...BrowserOption) (s *suite, laptop *Browser, others []*apptest.Client) {
	s = start(t, apptest.With("TRUST_PROXY", "true"))
	laptop = s.newBrowser("laptop", opts...)
	laptop.inTimeZone("Asia/Kolkata")
	const email, password = "katherine@example.com", "orbital mechanics"
	if path := laptop.signUp("Katherine Johnson", email, password); path != "/account" {
		t.Fatalf("laptop: sign-up ended on %s", path)
	}
	for i, ua := range otherDevices {
		c := s.env.Client(t)
		c.UserAgent = ua
		if i == 0 {
			c.Header.Set("X-Forwarded-For", ipv6)
		}
		c.SignIn(email, password)
		others = append(others, c)
	}
	others[3].Post("/signout", nil)
	if path := laptop.open("/account/sessions"); path != "/account/sessions" {
		t.Fatalf("laptop: Devices ended on %s", path)
	}
	return s, laptop, others[:3]
}

// TestBrowserDevicesPageGuides: the Devices page with several devices puts
// "Sign out N other devices" above the list, has quiet Revoke buttons,
// never breaks an IP address inside a number, folds each session's exact
// times (in the browser's time zone) into a details view, and mutes the
// ended sessions.
func TestBrowserDevicesPageGuides(t *testing.T) {
	_, laptop, _ := devicesWithFour(t)

	if got := laptop.text(`form[action="/account/sessions/revoke-others"] button`); got != "Sign out 3 other devices" {
		t.Errorf("the sign-out-others button reads %q", got)
	}
	if above := eval[bool](laptop, `document.querySelector('form[action="/account/sessions/revoke-others"]').getBoundingClientRect().bottom <=
		document.querySelector('[data-testid="active-sessions"]').getBoundingClientRect().top`); !above {
		t.Error("the sign-out-others button is not above the list of devices")
	}
	// Quiet: outlined, not filled.
	if bg := eval[string](laptop, `getComputedStyle(document.querySelector('tr[data-session-id]:not([data-current]) button')).backgroundColor`); bg != "rgba(0, 0, 0, 0)" {
		t.Errorf("a row's Revoke button is filled (%s), want an outline", bg)
	}

	// The IPv6 address wraps, if at all, only between groups.
	if got := eval[string](laptop, `[...document.querySelectorAll("td.ip")].map(td => td.textContent).join(" ")`); !strings.Contains(got, ipv6) {
		t.Fatalf("no session shows the address %s: %s", ipv6, got)
	}
	broken := eval[[]string](laptop, `[...document.querySelectorAll(".ip-address")].flatMap(span =>
		[...span.childNodes].filter(n => n.nodeType === Node.TEXT_NODE).filter(n => {
			const r = document.createRange(); r.selectNodeContents(n);
			return new Set([...r.getClientRects()].map(q => Math.round(q.top))).size > 1;
		}).map(n => n.textContent))`)
	if len(broken) > 0 {
		t.Errorf("IP address groups broken across lines: %q", broken)
	}

	// The details: exact times, in the browser's time zone.
	details := chromedp.CSS(`tr[data-current="true"] [data-testid="session-details"]`)
	if open := eval[bool](laptop, `document.querySelector('tr[data-current="true"] [data-testid="session-details"]').open`); open {
		t.Error("a session's details are open before asked for")
	}
	laptop.click(details + ` summary`)
	expires := laptop.text(details + ` [data-testid="expires"] time`)
	if !strings.Contains(expires, "GMT+5:30") {
		t.Errorf("the session's end reads %q, want a time in the browser's zone (GMT+5:30)", expires)
	}
	if idle := laptop.text(details + ` [data-testid="idle-end"]`); !strings.Contains(idle, "GMT+5:30") || !strings.Contains(idle, "(in ") {
		t.Errorf("the idle end reads %q, want a local time and how far off it is", idle)
	}

	// Ended sessions are muted: their text is lighter than the live ones'.
	colours := eval[[]string](laptop, `[getComputedStyle(document.querySelector('[data-testid="active-sessions"] td.ip')).color,
		getComputedStyle(document.querySelector('[data-testid="ended-sessions"] td.ip')).color]`)
	if colours[0] == colours[1] {
		t.Errorf("ended sessions are not muted: both tables' text is %s", colours[0])
	}
	laptop.fitsWidth("the Devices page")
	laptop.screenshot("devices")
}

// TestBrowserDevicesPageWithoutJavaScript: the details open natively and
// show the times in UTC.
func TestBrowserDevicesPageWithoutJavaScript(t *testing.T) {
	_, laptop, _ := devicesWithFour(t, withoutJavaScript)
	details := chromedp.CSS(`tr[data-current="true"] [data-testid="session-details"]`)
	laptop.click(details + ` summary`)
	if expires := laptop.text(details + ` [data-testid="expires"] time`); !strings.HasSuffix(expires, " UTC") {
		t.Errorf("without JavaScript the session's end reads %q, want a time in UTC", expires)
	}
	laptop.screenshot("devices")
}

// TestBrowserRevokeMovesFocusAndRefreshesStaleRows: after a revoke with
// htmx the focus is on the next row's Revoke button; revoking a row that
// another device already ended brings the list up to date, saying so in a
// message that is not a success.
func TestBrowserRevokeMovesFocusAndRefreshesStaleRows(t *testing.T) {
	_, laptop, others := devicesWithFour(t)
	rows := sessionRows(laptop)
	if len(rows) != 4 || rows[0]["data-current"] != "true" {
		t.Fatalf("the laptop sees %v, want itself first and 3 more", rows)
	}
	first, second, third := rows[1]["data-session-id"], rows[2]["data-session-id"], rows[3]["data-session-id"]
	button := func(id string) chromedp.CSS { return chromedp.CSS(`tr[data-session-id="` + id + `"] button`) }

	// Cancel changes nothing and gives the focus back.
	laptop.ask(button(first))
	laptop.click(`#confirm-dialog[open] [data-testid="confirm-dialog-cancel"]`)
	laptop.do("the dialog closes", chromedp.WaitNotPresent(`#confirm-dialog[open]`))
	if n := len(sessionRows(laptop)); n != 4 {
		t.Errorf("after Cancel %d sessions are listed, want 4", n)
	}
	if focused := eval[string](laptop, `document.activeElement.closest("tr")?.dataset.sessionId || ""`); focused != first {
		t.Errorf("after Cancel the focus is in row %q, want back on %q", focused, first)
	}

	laptop.ask(button(first))
	laptop.click(confirmDialogOK)
	laptop.do("the row is gone", chromedp.WaitNotPresent(chromedp.CSS(`tr[data-session-id="`+first+`"]`)))
	laptop.do("the focus settles", chromedp.Poll[chromedp.Void](`document.activeElement && document.activeElement.tagName === "BUTTON"`))
	if focused := eval[string](laptop, `document.activeElement.closest("tr")?.dataset.sessionId || ""`); focused != second {
		t.Errorf("after the revoke the focus is in row %q, want the next row %q", focused, second)
	}

	// Another device of the account ends the third session; the laptop's
	// list is stale.
	if res := others[1].Post("/account/sessions/"+third+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("another device's revoke: %d", res.StatusCode)
	}

	laptop.ask(button(third))
	laptop.click(confirmDialogOK)
	laptop.do("the stale row is gone", chromedp.WaitNotPresent(chromedp.CSS(`tr[data-session-id="`+third+`"]`)))
	if got := laptop.text(`[data-testid="flash"]`); !strings.Contains(got, "already ended") {
		t.Errorf("the message reads %q, want it to say the session had already ended", got)
	}
	if tone := run(laptop, "read the tone", chromedp.AttributeValue(`[data-testid="flash"]`, "data-tone")); tone.Value != "info" {
		t.Errorf("the message's tone is %q, want info", tone.Value)
	}
	if got := laptop.text(`form[action="/account/sessions/revoke-others"] button`); got != "Sign out 1 other device" {
		t.Errorf("after both revokes the button reads %q", got)
	}
}

// TestBrowserAskingAgainRightAfterCancel: a question asked in the very
// moment the previous one was cancelled (a quick click; Escape, then
// Enter on another button) gets its own answer. The dialog's close event
// comes a task after it closes; with a listener per question, the
// cancelled question's event used up the new question's listener, and its
// OK then sent nothing (seen once under load in
// TestBrowserRevokeMovesFocusAndRefreshesStaleRows).
func TestBrowserAskingAgainRightAfterCancel(t *testing.T) {
	_, laptop, _ := devicesWithFour(t)
	first := sessionRows(laptop)[1]["data-session-id"]
	button := `tr[data-session-id="` + first + `"] button`
	laptop.ask(chromedp.CSS(button))
	// Cancel and ask again in one task: the cancel's close event arrives
	// while the second question is showing.
	if open := eval[bool](laptop, `(document.querySelector('#confirm-dialog [data-testid="confirm-dialog-cancel"]').click(),
		document.querySelector('`+button+`').click(), document.getElementById("confirm-dialog").open)`); !open {
		t.Fatal("the second question did not open the dialog at once")
	}
	laptop.do("the dialog shows the second question", chromedp.WaitVisible(confirmDialogOK))
	laptop.click(confirmDialogOK)
	laptop.do("the row is gone", chromedp.WaitNotPresent(chromedp.CSS(`tr[data-session-id="`+first+`"]`)))
}
