package browsertest

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserHTMXSettings: app.js sets htmx's settings before htmx applies
// them (no eval, no scripts from swapped content, no inline indicator
// style, no copies of pages in localStorage); the pages carry neither the
// confirmation dialog nor the show-password toggles, which app.js makes:
// a toggle after every password input, the dialog on the first question.
func TestBrowserHTMXSettings(t *testing.T) {
	s := start(t)
	b := s.newBrowser("laptop")
	b.open("/signup")
	if ok := eval[bool](b, `(i => !!i && i.nextElementSibling !== null &&
		i.nextElementSibling.getAttribute('data-show-password') === 'password')(document.getElementById('password'))`); !ok {
		t.Error("the sign-up page's password field has no show-password toggle")
	}
	if path := b.signUp("Ada", "ada@example.com", "analytical engine"); path != "/account" {
		t.Fatalf("sign-up ended on %s", path)
	}
	settings := eval[[]any](b, `[htmx.config.allowEval, htmx.config.allowScriptTags,
		htmx.config.includeIndicatorStyles, htmx.config.historyCacheSize]`)
	if len(settings) != 4 || settings[0] != false || settings[1] != false || settings[2] != false || settings[3] != float64(0) {
		t.Errorf("htmx.config: allowEval, allowScriptTags, includeIndicatorStyles, historyCacheSize = %v; want false, false, false, 0", settings)
	}
	if n := eval[float64](b, `document.querySelectorAll('style').length`); n != 0 {
		t.Errorf("%v inline <style> elements: htmx added its indicator style", n)
	}
	toggles := eval[[]any](b, `Array.from(document.querySelectorAll('input[type=password]'),
		i => i.nextElementSibling && i.nextElementSibling.getAttribute('data-show-password') === i.id &&
			i.nextElementSibling.getAttribute('aria-controls') === i.id && !i.nextElementSibling.hidden)`)
	if len(toggles) != 2 || toggles[0] != true || toggles[1] != true {
		t.Errorf("show-password toggles after the profile page's two password inputs: %v", toggles)
	}

	// The page had no dialog; the first question makes it, the next uses it.
	other := s.env.Client(t)
	other.SignIn("ada@example.com", "analytical engine")
	b.open("/account/sessions")
	if eval[bool](b, `!!document.getElementById('confirm-dialog')`) {
		t.Error("the Devices page carries the confirmation dialog before any question")
	}
	b.ask(chromedp.CSS(`tr[data-session-id]:not([data-current="true"]) button`))
	if got := eval[string](b, `document.activeElement.getAttribute('data-testid')`); got != "confirm-dialog-cancel" {
		t.Errorf("the dialog opened with the focus on %q, want Cancel", got)
	}
	if n := eval[float64](b, `document.querySelectorAll('dialog').length`); n != 1 {
		t.Errorf("%v dialogs", n)
	}
}

// TestBrowserHTMXSendsTheCSRFHeader: every htmx request carries the page's
// CSRF token (a form's _csrf field) in X-CSRF-Token, for clients that do
// not send Fetch Metadata; Chromium does, so the test reads what htmx
// sends rather than what the server needs. (The navigation's sign-out
// form, which holds the field, is not swapped.)
func TestBrowserHTMXSendsTheCSRFHeader(t *testing.T) {
	_, laptop, _ := devicesWithFour(t)
	eval[bool](laptop, `(window.sentTokens = [], document.addEventListener('htmx:beforeRequest',
		e => window.sentTokens.push(e.detail.requestConfig.headers['X-CSRF-Token'] || '')), true)`)
	row := sessionRows(laptop)[1]["data-session-id"]
	laptop.ask(chromedp.CSS(`tr[data-session-id="` + row + `"] button`))
	laptop.click(confirmDialogOK)
	laptop.do("the row is gone", chromedp.WaitNotPresent(chromedp.CSS(`tr[data-session-id="`+row+`"]`)))
	sent := eval[[]string](laptop, `window.sentTokens`)
	field := eval[string](laptop, `document.querySelector('input[name="_csrf"]').value`)
	if len(sent) != 1 || sent[0] == "" || sent[0] != field {
		t.Errorf("htmx sent X-CSRF-Token %q; want the page's token (%q)", sent, field)
	}
}
