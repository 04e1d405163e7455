package browsertest

import (
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// confirmDialogOK is the confirming button of the page's one confirmation
// dialog (views.DangerForm).
const confirmDialogOK = chromedp.CSS(`#confirm-dialog[open] [data-testid="confirm-dialog-ok"]`)

// ask clicks a destructive action's button, which with JavaScript on opens
// the confirmation dialog, and returns the dialog's question and detail.
// The caller confirms (submit or click confirmDialogOK) or cancels.
func (b *Browser) ask(button chromedp.CSS) (question, detail string) {
	b.t.Helper()
	b.click(button)
	b.do("the confirmation dialog opens", chromedp.WaitVisible(confirmDialogOK))
	return b.text(`#confirm-dialog-heading`), b.text(`#confirm-dialog-detail`)
}

// inTimeZone makes b's pages run in the time zone tz (an IANA name).
func (b *Browser) inTimeZone(tz string) {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: tz}); err != nil {
		b.t.Fatalf("%s: time zone %s: %v", b.name, tz, err)
	}
}

// fitsWidth fails the test if the page is wider than the viewport, naming
// what sticks out.
func (b *Browser) fitsWidth(page string) {
	b.t.Helper()
	if over := eval[[]string](b, `document.documentElement.scrollWidth > window.innerWidth ?
		[...document.querySelectorAll("body *")]
			.filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
			.map(e => e.tagName.toLowerCase() + (e.className && e.className.baseVal === undefined ? "." + e.className : ""))
		: []`); len(over) > 0 {
		b.t.Errorf("%s: %s is wider than the %d px window: %v", b.name, page, eval[int](b, `window.innerWidth`), over)
	}
}
