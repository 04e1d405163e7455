package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

const resetSubject = "Reset your Gatehouse password"

// resetMails counts the reset mails that reached to.
func resetMails(env *apptest.Env, to string) int {
	n := 0
	for _, m := range env.Mail.To(to) {
		if m.Subject() == resetSubject {
			n++
		}
	}
	return n
}

// forgot asks for a reset link for email and returns the answer.
func forgot(c *apptest.Client, email string) *apptest.Response {
	return c.Post("/password/forgot", url.Values{"email": {email}})
}

// drained waits until the mail worker has handled every forgot-password
// request, so "no mail" means none will come.
func drained(t *testing.T, env *apptest.Env) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int64
		if err := env.App.DB.Table("password_reset_requests").Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		var unsent int64
		if err := env.App.DB.Table("mail_outbox").Where("sent_at IS NULL AND failed_at IS NULL").Count(&unsent).Error; err != nil {
			t.Fatal(err)
		}
		if n == 0 && unsent == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests (%d) or mail (%d) still waiting after 15 s", n, unsent)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPasswordResetFlowEndToEnd(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	owner := env.Client(t)
	owner.SignUp("Ada", "ada@example.com", "analytical engine")
	laptop := env.Client(t)
	laptop.SignIn("ada@example.com", "analytical engine")

	// The sign-in page links to the form.
	stranger := env.Client(t)
	if doc := stranger.Get("/signin").Doc(t); doc.Find(`a[href="/password/forgot"]`).Text() != "Forgot your password?" {
		t.Fatal("the sign-in page has no \"Forgot your password?\" link")
	}
	res := forgot(stranger, "ADA@example.com")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, "If an account exists") {
		t.Fatalf("forgot: %d\n%s", res.StatusCode, res.Body)
	}
	m := env.Mail.WaitForSubject(t, "ada@example.com", resetSubject, 1)
	link := m.Link(t, "/password/reset")
	token := strings.TrimPrefix(link, "/password/reset?token=")

	// A fresh browser, without a session, opens the link.
	browser := env.Client(t)
	page := browser.Get(link)
	if page.StatusCode != http.StatusOK || page.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("reset page: %d, Referrer-Policy %q", page.StatusCode, page.Header.Get("Referrer-Policy"))
	}
	if v, _ := page.Doc(t).Find(`form[data-testid="reset-form"] input[name="token"]`).Attr("value"); v != token {
		t.Fatalf("the form carries token %q", v)
	}
	// A weak password is refused; the link still works.
	if res := browser.Post("/password/reset", url.Values{"token": {token}, "new_password": {"password"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("common password: %d", res.StatusCode)
	}
	res = browser.Post("/password/reset", url.Values{"token": {token}, "new_password": {"difference engine"}})
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/signin" {
		t.Fatalf("reset: %d → %q\n%s", res.StatusCode, res.Location(), res.Body)
	}
	// Never signed in by the reset.
	if res := browser.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the reset the browser is signed in: %d", res.StatusCode)
	}
	// Every session ended, with the reason.
	for _, c := range []*apptest.Client{owner, laptop} {
		if res := c.Get("/account"); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("a session survived the reset: %d", res.StatusCode)
		}
	}
	if err := env.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	env.App.DB.Table("sessions").Distinct().Pluck("end_reason", &reasons)
	if len(reasons) != 1 || reasons[0] != string(models.EndPasswordReset) {
		t.Fatalf("end reasons %v, want only password_reset", reasons)
	}
	// The new password works, the old one does not.
	if res := env.Client(t).Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("the old password still works: %d", res.StatusCode)
	}
	env.Client(t).SignIn("ada@example.com", "difference engine")
	// The owner is told.
	notice := env.Mail.WaitForSubject(t, "ada@example.com", "Your Gatehouse password was changed", 1)
	notice.Link(t, "/password/forgot")
	// The link is single-use.
	if res := env.Client(t).Get(link); res.StatusCode != http.StatusBadRequest || !strings.Contains(res.Body, "This link no longer works") {
		t.Fatalf("used link: %d", res.StatusCode)
	}
	if res := env.Client(t).Post("/password/reset", url.Values{"token": {token}, "new_password": {"third time lucky"}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("used link posted again: %d", res.StatusCode)
	}
	// Audited, in the same transactions as the changes.
	var kinds []string
	env.App.DB.Table("audit_events").Where("kind IN ?", []string{"password_reset_requested", "password_reset"}).Pluck("kind", &kinds)
	if strings.Join(kinds, ",") != "password_reset_requested,password_reset" {
		t.Fatalf("audit kinds %v", kinds)
	}
	// Only the hash of the token is stored, and it is never logged.
	var stored int64
	env.App.DB.Table("mail_tokens").Where("encode(hash, 'escape') LIKE ?", "%"+token+"%").Count(&stored)
	if stored != 0 {
		t.Fatal("the token is stored in clear")
	}
	if strings.Contains(env.Logs.String(), token) {
		t.Fatal("the token appears in the logs")
	}
	var inOutbox int64
	env.App.DB.Table("mail_outbox").Where("text_body LIKE ? OR html_body LIKE ?", "%"+token+"%", "%"+token+"%").Count(&inOutbox)
	if inOutbox != 0 {
		t.Fatal("a sent mail's body, with the token, stays in the outbox")
	}
}

func TestForgotPasswordAnswersTheSameWhetherOrNotTheAccountExists(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	c := env.Client(t)
	known := forgot(c, "ada@example.com")
	unknown := forgot(c, "nobody@example.com")
	// The CSRF token is masked afresh in every page (compress.go): the
	// same token, different bytes.
	masked := regexp.MustCompile(`m\.[A-Za-z0-9_-]+`)
	known.Body, unknown.Body = masked.ReplaceAllString(known.Body, "m.TOKEN"), masked.ReplaceAllString(unknown.Body, "m.TOKEN")
	if known.StatusCode != unknown.StatusCode || known.Body != unknown.Body {
		t.Fatalf("answers differ: %d vs %d\n%s\n---\n%s", known.StatusCode, unknown.StatusCode, known.Body, unknown.Body)
	}
	for _, h := range []string{"Content-Length", "Set-Cookie", "Cache-Control"} {
		if known.Header.Get(h) != unknown.Header.Get(h) {
			t.Errorf("header %s differs: %q vs %q", h, known.Header.Get(h), unknown.Header.Get(h))
		}
	}
	env.Mail.WaitForSubject(t, "ada@example.com", resetSubject, 1)
	drained(t, env)
	if got := env.Mail.To("nobody@example.com"); len(got) != 0 {
		t.Fatal("mail went to an address without an account")
	}
	if n := resetMails(env, "ada@example.com"); n != 1 {
		t.Fatalf("%d reset mails, want 1", n)
	}
}

func TestForgotPasswordLimits(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	// A burst for one address, in parallel: at most 3 mails an hour, and
	// every request gets the same answer.
	c := env.Client(t)
	c.CSRFToken()
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = forgot(c, "ada@example.com").StatusCode
		}()
	}
	wg.Wait()
	for _, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("statuses %v, want all 200", statuses)
		}
	}
	env.Mail.WaitForSubject(t, "ada@example.com", resetSubject, 3)
	drained(t, env)
	if n := resetMails(env, "ada@example.com"); n != 3 {
		t.Fatalf("%d reset mails to one address, want 3", n)
	}
	// An hour later, the address may be mailed again.
	env.Clock.Advance(61 * time.Minute)
	forgot(c, "ada@example.com")
	env.Mail.WaitForSubject(t, "ada@example.com", resetSubject, 4)

	// 20 requests per client address per hour, then 429 with Retry-After.
	other := apptest.New(t)
	oc := other.Client(t)
	for i := range 20 {
		if res := forgot(oc, "someone"+string(rune('a'+i))+"@example.com"); res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i+1, res.StatusCode)
		}
	}
	res := forgot(oc, "zed@example.com")
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("21st request: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	var n int64
	drained(t, other)
	other.App.DB.Table("audit_events").Count(&n)
	if n != 0 {
		t.Fatalf("%d audit events for addresses without accounts", n)
	}
}

func TestResetLinkIsSingleUseUnderConcurrentUse(t *testing.T) {
	t.Parallel()
	// No cap on password work in flight: every racer reaches the token.
	env := apptest.New(t, apptest.With("PASSWORD_CONCURRENCY_PER_IP", "0"))
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	forgot(env.Client(t), "ada@example.com")
	token := strings.TrimPrefix(env.Mail.WaitForSubject(t, "ada@example.com", resetSubject, 1).Link(t, "/password/reset"), "/password/reset?token=")
	passwords := []string{"first contender", "second contender", "third contender", "fourth contender", "fifth contender", "sixth contender"}
	statuses := make([]int, len(passwords))
	var wg sync.WaitGroup
	for i, pw := range passwords {
		c := env.Client(t) // two tabs racing, or two attackers
		c.CSRFToken()
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = c.Post("/password/reset", url.Values{"token": {token}, "new_password": {pw}}).StatusCode
		}()
	}
	wg.Wait()
	winners := 0
	var winner string
	for i, s := range statuses {
		switch s {
		case http.StatusSeeOther:
			winners++
			winner = passwords[i]
		case http.StatusBadRequest:
		default:
			t.Fatalf("statuses %v", statuses)
		}
	}
	if winners != 1 {
		t.Fatalf("%d resets won with one link (statuses %v), want exactly 1", winners, statuses)
	}
	env.Client(t).SignIn("ada@example.com", winner)
	for _, pw := range passwords {
		if pw == winner {
			continue
		}
		if res := env.Client(t).Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {pw}}); res.StatusCode == http.StatusSeeOther {
			t.Fatalf("a losing password %q works", pw)
		}
	}
	env.Mail.WaitForSubject(t, "ada@example.com", "Your Gatehouse password was changed", 1)
	drained(t, env)
	// (The winner's sign-in, from a browser the account had not seen,
	// sent a new-device alert.)
	if n := len(env.Mail.To("ada@example.com")); n != 4 {
		t.Fatalf("%d mails, want the verification, the link, one notice and a new-device alert", n)
	}
}

func TestResetLinkRefusals(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	newLink := func(n int) string {
		forgot(env.Client(t), "ada@example.com")
		return strings.TrimPrefix(env.Mail.WaitForSubject(t, "ada@example.com", resetSubject, n).Link(t, "/password/reset"), "/password/reset?token=")
	}
	token := newLink(1)
	alter := []byte(token)
	alter[5] ^= 1
	// A token of another purpose, for the same account.
	var userID int64
	env.App.DB.Table("users").Select("id").Where("email = ?", "ada@example.com").Scan(&userID)
	var other string
	err := models.NewDB(env.App.DB).InTx(context.Background(), func(tx *models.Tx) error {
		var err error
		other, err = tx.IssueToken(context.Background(), models.MailToken{Purpose: models.TokenVerifyEmail, UserID: userID, Email: "ada@example.com"}, time.Hour, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"truncated": token[:len(token)-1], "altered": string(alter), "empty": "", "forged": strings.Repeat("A", 43),
		"other purpose": other, "with padding": token + "=", "unicode": "é" + token[2:],
	} {
		c := env.Client(t)
		if res := c.Get("/password/reset?token=" + url.QueryEscape(bad)); res.StatusCode != http.StatusBadRequest || !strings.Contains(res.Body, "This link no longer works") {
			t.Errorf("%s: GET %d", name, res.StatusCode)
		}
		if res := c.Post("/password/reset", url.Values{"token": {bad}, "new_password": {"hijacked password"}}); res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: POST %d", name, res.StatusCode)
		}
	}
	// Expired after an hour.
	env.Clock.Advance(61 * time.Minute)
	if res := env.Client(t).Post("/password/reset", url.Values{"token": {token}, "new_password": {"too late now"}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("expired link: %d", res.StatusCode)
	}
	// A disabled account's link is refused and changes nothing.
	fresh := newLink(2)
	env.App.DB.Exec(`UPDATE users SET disabled_at = now() WHERE id = ?`, userID)
	res := env.Client(t).Post("/password/reset", url.Values{"token": {fresh}, "new_password": {"disabled account"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("disabled account's link: %d", res.StatusCode)
	}
	env.App.DB.Exec(`UPDATE users SET disabled_at = NULL WHERE id = ?`, userID)
	env.Client(t).SignIn("ada@example.com", "analytical engine") // unchanged
	// ... and a disabled account gets no new link.
	env.App.DB.Exec(`UPDATE users SET disabled_at = now() WHERE id = ?`, userID)
	forgot(env.Client(t), "ada@example.com")
	drained(t, env)
	if n := resetMails(env, "ada@example.com"); n != 2 {
		t.Fatalf("%d reset mails, want no new one for a disabled account", n)
	}
}

func TestForgotPasswordBadInput(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	for _, bad := range []string{"", "not an address", "a@b\u200b.com", strings.Repeat("a", 300) + "@example.com"} {
		if res := forgot(c, bad); res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("forgot %q: %d", bad, res.StatusCode)
		}
	}
	if res := c.PostRaw("/password/forgot", "_csrf="+c.CSRFToken()+"&email=%ff%fe"); res.StatusCode != http.StatusBadRequest {
		t.Errorf("invalid UTF-8: %d", res.StatusCode)
	}
	if res := c.PostRaw("/password/forgot", "email=ada@example.com"); res.StatusCode != http.StatusForbidden {
		t.Errorf("without CSRF token: %d", res.StatusCode)
	}
	drained(t, env)
	if n := len(env.Mail.Mails()); n != 0 {
		t.Fatalf("%d mails from bad input", n)
	}
}
