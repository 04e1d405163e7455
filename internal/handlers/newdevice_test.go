package handlers_test

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

const (
	alertSubject = "New sign-in to your Gatehouse account"
	safariMac    = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
	chromeWin    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)

// alertsQueued counts the new-device alerts queued for to. The alert is
// written in the sign-in's transaction, so once the sign-in has answered
// the count is final: "no alert" needs no waiting.
func alertsQueued(t *testing.T, env *apptest.Env, to string) int64 {
	t.Helper()
	var n int64
	if err := env.App.DB.Table("mail_outbox").Where("kind = 'new_device_alert' AND to_address = ?", to).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// browser is a new client claiming to be ua.
func browser(t *testing.T, env *apptest.Env, ua string) *apptest.Client {
	c := env.Client(t)
	c.UserAgent = ua
	return c
}

func TestNewDeviceAlert(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	if alertsQueued(t, env, "ada@example.com") != 0 {
		t.Fatal("sign-up sent an alert")
	}
	// A new device: the owner is told when, what and where, with the
	// Devices page and a "This wasn't me" link.
	laptop := browser(t, env, safariMac)
	laptop.SignIn("ada@example.com", "analytical engine")
	_, laptopID := sessionIDs(t, laptop)
	m := env.Mail.WaitForSubject(t, "ada@example.com", alertSubject, 1)
	for _, want := range []string{"Safari on macOS", "Address: 127.0.0.1", time.Now().UTC().Format("2006-01-02 "), " UTC"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("the alert lacks %q:\n%s", want, m.Text)
		}
	}
	if got := m.Link(t, "/account/sessions"); got != "/account/sessions" {
		t.Errorf("devices link %q", got)
	}
	notMe := m.Link(t, "/signin/not-me")
	if !models.WellFormedToken(tokenOf(notMe, "/signin/not-me")) {
		t.Errorf("not-me link %q", notMe)
	}
	// The device cookie: HttpOnly, Lax, a year.
	res := env.Client(t).Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}})
	var ck *http.Cookie
	for _, k := range res.Cookies() {
		if k.Name == "gatehouse_device" {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.MaxAge < 364*24*3600 || ck.Path != "/" {
		t.Fatalf("device cookie %+v", ck)
	}
	// The event is audited with the session it names.
	var ev models.AuditEvent
	if err := env.App.DB.Where("kind = ?", models.AuditNewDeviceAlert).Order("id").Take(&ev).Error; err != nil {
		t.Fatal(err)
	}
	if ev.SessionID != laptopID || ev.Browser != "Safari" || !strings.Contains(ev.Detail, "ada@example.com") {
		t.Errorf("audit event %+v, want session %s", ev, laptopID)
	}
	// Known now: signing in on the laptop again tells nobody.
	before := alertsQueued(t, env, "ada@example.com")
	laptop.Post("/signout", nil)
	laptop.SignIn("ada@example.com", "analytical engine")
	if got := alertsQueued(t, env, "ada@example.com"); got != before {
		t.Errorf("a known device was alerted about: %d alerts, want %d", got, before)
	}
}

func TestSignUpRegistersTheBrowser(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	if c.Cookie("gatehouse_device") == "" {
		t.Fatal("sign-up set no device cookie")
	}
	c.Post("/signout", nil)
	c.SignIn("ada@example.com", "analytical engine")
	// Another account signing up in the same browser shares the cookie,
	// and is a device of its own account only.
	c.Post("/signout", nil)
	c.SignUp("Bob", "bob@example.com", "builder bob's password")
	c.Post("/signout", nil)
	c.SignIn("bob@example.com", "builder bob's password")
	c.SignIn("ada@example.com", "analytical engine")
	if n := alertsQueued(t, env, "ada@example.com") + alertsQueued(t, env, "bob@example.com"); n != 0 {
		t.Fatalf("%d alerts for the browser that signed up", n)
	}
	var devices int64
	env.App.DB.Table("known_devices").Count(&devices)
	if devices != 2 {
		t.Fatalf("%d known devices, want one per account", devices)
	}
}

func TestFirstSignInSendsNoAlert(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	// An account made by an administrator (or before alerts existed) has
	// no known device: its first sign-in is told about to nobody.
	hash, err := apptest.Hasher().Hash(context.Background(), "analytical engine")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.App.Users.Create(context.Background(), &models.User{Name: "Ada", Email: "ada@example.com", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	env.Client(t).SignIn("ada@example.com", "analytical engine")
	if n := alertsQueued(t, env, "ada@example.com"); n != 0 {
		t.Fatalf("first sign-in: %d alerts", n)
	}
	browser(t, env, safariMac).SignIn("ada@example.com", "analytical engine")
	if n := alertsQueued(t, env, "ada@example.com"); n != 1 {
		t.Fatalf("second device: %d alerts, want 1", n)
	}
}

func TestNewDeviceAlertLimits(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("TRUST_PROXY", "true"), apptest.With("PASSWORD_CONCURRENCY_PER_IP", "0"))
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	// A client that keeps no cookie is a new device at every sign-in;
	// alike devices (same browser, OS, address) are alerted about once a
	// day.
	for range 3 {
		browser(t, env, safariMac).SignIn("ada@example.com", "analytical engine")
	}
	if n := alertsQueued(t, env, "ada@example.com"); n != 1 {
		t.Fatalf("three alike sign-ins: %d alerts, want 1", n)
	}
	env.Clock.Advance(25 * time.Hour)
	browser(t, env, safariMac).SignIn("ada@example.com", "analytical engine")
	if n := alertsQueued(t, env, "ada@example.com"); n != 2 {
		t.Fatalf("a day later: %d alerts, want 2", n)
	}
	// A flood from many addresses: at most 10 an hour (the one just sent
	// counts). (Sign-ins to one account at once are throttled anyway;
	// the account's row lock orders the alerts of those that get through.)
	for i := range 14 {
		c := browser(t, env, chromeWin)
		c.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		c.SignIn("ada@example.com", "analytical engine")
	}
	if n := alertsQueued(t, env, "ada@example.com"); n != 2+9 {
		t.Fatalf("after a flood: %d alerts, want 11 (10 an hour)", n)
	}
	env.Clock.Advance(61 * time.Minute)
	c := browser(t, env, chromeWin)
	c.Header.Set("X-Forwarded-For", "203.0.113.50")
	c.SignIn("ada@example.com", "analytical engine")
	if n := alertsQueued(t, env, "ada@example.com"); n != 12 {
		t.Fatalf("an hour later: %d alerts, want 12", n)
	}
	var devices int64
	env.App.DB.Table("known_devices").Count(&devices)
	if devices != 1+3+1+14+1 {
		t.Errorf("%d known devices", devices)
	}
}

func TestNewDeviceAlertsCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	box := func(c *apptest.Client) bool {
		t.Helper()
		s := c.Get("/account").Doc(t).Find(`form[action="/account/alerts"] input[name="new_device_alerts"]`)
		if s.Length() != 1 {
			t.Fatal("the profile has no alerts checkbox")
		}
		_, checked := s.Attr("checked")
		return checked
	}
	if !box(c) {
		t.Fatal("alerts are off for a new account")
	}
	if res := c.Post("/account/alerts", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("turn off: %d", res.StatusCode)
	}
	if box(c) {
		t.Fatal("the box is still checked")
	}
	var on bool
	env.App.DB.Table("users").Where("email = ?", "ada@example.com").Pluck("new_device_alerts", &on)
	if on {
		t.Fatal("alerts still on in the database")
	}
	laptop := browser(t, env, safariMac)
	laptop.SignIn("ada@example.com", "analytical engine")
	if n := alertsQueued(t, env, "ada@example.com"); n != 0 {
		t.Fatalf("alerts off: %d alerts", n)
	}
	if box(laptop) {
		t.Error("another browser shows alerts on after signing in")
	}
	// Back on: the next new device is told about.
	if res := laptop.Post("/account/alerts", url.Values{"new_device_alerts": {"1"}}); res.StatusCode != http.StatusSeeOther || !box(laptop) {
		t.Fatalf("turn on: %d", res.StatusCode)
	}
	browser(t, env, chromeWin).SignIn("ada@example.com", "analytical engine")
	if n := alertsQueued(t, env, "ada@example.com"); n != 1 {
		t.Fatalf("alerts on again: %d alerts", n)
	}
	// Without a session, or without the form's token, nothing changes.
	if res := env.Client(t).Post("/account/alerts", nil); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Location(), "/signin") {
		t.Errorf("anonymous: %d %s", res.StatusCode, res.Location())
	}
	if res := laptop.PostRaw("/account/alerts", "new_device_alerts="); res.StatusCode != http.StatusForbidden {
		t.Errorf("without CSRF token: %d", res.StatusCode)
	}
	env.App.DB.Table("users").Where("email = ?", "ada@example.com").Pluck("new_device_alerts", &on)
	if !on {
		t.Error("a refused request turned alerts off")
	}
}

func TestForgedDeviceCookieIsANewDevice(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("TRUST_PROXY", "true"))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	valid := c.Cookie("gatehouse_device")
	id, sig, ok := strings.Cut(valid, ".")
	if !ok {
		t.Fatalf("device cookie %q", valid)
	}
	other := apptest.New(t) // another deployment: another SECRET_KEY
	elsewhere := other.Client(t)
	elsewhere.SignUp("Ada", "ada@example.com", "analytical engine")
	flip := func(s string) string {
		b := []byte(s)
		b[len(b)/2] ^= 1
		return string(b)
	}
	forged := map[string]string{
		"altered signature": id + "." + flip(sig),
		"altered id":        flip(id) + "." + sig,
		"no signature":      id,
		"empty signature":   id + ".",
		"another site's":    elsewhere.Cookie("gatehouse_device"),
		"junk":              "%%%..\xff",
		"huge":              strings.Repeat("A", 4000),
	}
	n := int64(0)
	i := 0
	for name, value := range forged {
		i++
		b := env.Client(t)
		b.Header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
		b.SetCookie("gatehouse_device", value)
		b.SignIn("ada@example.com", "analytical engine")
		n++
		if got := alertsQueued(t, env, "ada@example.com"); got != n {
			t.Errorf("%s cookie: %d alerts, want %d (counted as known)", name, got, n)
		}
		if got := b.Cookie("gatehouse_device"); got == value || got == valid {
			t.Errorf("%s cookie was not replaced by a new one", name)
		}
	}
	// The owner's own cookie is known.
	b := env.Client(t)
	b.Header.Set("X-Forwarded-For", "192.0.2.200")
	b.SetCookie("gatehouse_device", valid)
	b.SignIn("ada@example.com", "analytical engine")
	if got := alertsQueued(t, env, "ada@example.com"); got != n {
		t.Errorf("the genuine cookie: %d alerts, want %d", got, n)
	}
}

// alertLink signs ada in from a new device and returns that browser and
// the alert's "This wasn't me" link.
func alertLink(t *testing.T, env *apptest.Env, n int) (*apptest.Client, string) {
	t.Helper()
	laptop := browser(t, env, safariMac)
	laptop.SignIn("ada@example.com", "analytical engine")
	return laptop, env.Mail.WaitForSubject(t, "ada@example.com", alertSubject, n).Link(t, "/signin/not-me")
}

func TestThisWasntMe(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("PASSWORD_CONCURRENCY_PER_IP", "0"))
	admin, _ := signedInAdmin(t, env)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	laptop, notMe := alertLink(t, env, 1)
	_, laptopID := sessionIDs(t, laptop)
	// Opening the link (a scanner, a preview) changes nothing: a page with
	// a button.
	for range 2 {
		page := env.Client(t).Get(notMe)
		if page.StatusCode != http.StatusOK || page.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("not-me page: %d", page.StatusCode)
		}
		if page.Doc(t).Find(`form[action="/signin/not-me"][method="post"] input[name="token"]`).Length() != 1 {
			t.Fatal("the page has no form that POSTs the token")
		}
	}
	if res := laptop.Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("opening the link ended the session: %d", res.StatusCode)
	}
	// Racers in browsers without a session: exactly one wins.
	raceOnce(t, env, 5, "/signin/not-me", url.Values{"token": {tokenOf(notMe, "/signin/not-me")}})
	// That sign-in ended at once, and so did every other session.
	for _, s := range []*apptest.Client{laptop, c} {
		if res := s.Get("/account"); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("a session survived: %d", res.StatusCode)
		}
	}
	var reason string
	env.App.DB.Table("sessions").Where("public_id = ?", laptopID).Pluck("end_reason", &reason)
	if reason != string(models.EndNotMe) {
		t.Errorf("the alerted session ended with %q", reason)
	}
	// The old password stops working; the reset link sets a new one.
	if res := env.Client(t).Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("the old password still works: %d", res.StatusCode)
	}
	reset := env.Mail.WaitForSubject(t, "ada@example.com", resetSubject, 1).Link(t, "/password/reset")
	if res := env.Client(t).Post("/password/reset", url.Values{"token": {tokenOf(reset, "/password/reset")}, "new_password": {"a fresh start"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reset: %d", res.StatusCode)
	}
	// The disowned device is forgotten: signing in there alerts again.
	laptop.SignIn("ada@example.com", "a fresh start")
	if n := alertsQueued(t, env, "ada@example.com"); n != 2 {
		t.Errorf("the disowned device signing in again: %d alerts, want 2", n)
	}
	// The admin's audit log shows both events, naming the session.
	doc := admin.Get("/admin/audit").Doc(t)
	for _, k := range []models.AuditKind{models.AuditNewDeviceAlert, models.AuditThisWasntMe} {
		if doc.Find(`tr[data-event-kind="`+string(k)+`"]`).Length() == 0 {
			t.Errorf("the audit log lacks %s", k)
		}
	}
	var ev models.AuditEvent
	env.App.DB.Where("kind = ?", models.AuditThisWasntMe).Take(&ev)
	if ev.SessionID != laptopID || ev.UserID == nil || ev.ActorID == nil || *ev.ActorID != *ev.UserID {
		t.Errorf("this_wasnt_me event %+v", ev)
	}
	if strings.Contains(env.Logs.String(), tokenOf(notMe, "/signin/not-me")) {
		t.Error("the token is in the log")
	}
}

func TestNotMeLinkRefusals(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("PASSWORD_CONCURRENCY_PER_IP", "0"))
	admin, _ := signedInAdmin(t, env)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	verify := tokenOf(env.Mail.WaitForSubject(t, "ada@example.com", "Verify your email address for Gatehouse", 1).Link(t, "/verify"), "/verify")
	_, link := alertLink(t, env, 1)
	token := tokenOf(link, "/signin/not-me")
	r := env.Client(t)
	if res := r.Post("/password/forgot", url.Values{"email": {"ada@example.com"}}); res.StatusCode != http.StatusOK && res.StatusCode != http.StatusSeeOther {
		t.Fatalf("forgot: %d", res.StatusCode)
	}
	reset := tokenOf(env.Mail.WaitForSubject(t, "ada@example.com", resetSubject, 1).Link(t, "/password/reset"), "/password/reset")
	flip := func(s string) string {
		b := []byte(s)
		if b[5] == 'A' {
			b[5] = 'B'
		} else {
			b[5] = 'A'
		}
		return string(b)
	}
	for name, bad := range map[string]string{
		"truncated": token[:len(token)-1], "altered": flip(token), "empty": "", "reset token": reset,
		"verify token": verify, "padded": token + "=", "spaces": " " + token[1:],
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			var res *apptest.Response
			if method == http.MethodGet {
				res = r.Get("/signin/not-me?token=" + url.QueryEscape(bad))
			} else {
				res = r.Post("/signin/not-me", url.Values{"token": {bad}})
			}
			if res.StatusCode != http.StatusBadRequest || strings.Contains(res.Body, "sql") {
				t.Errorf("%s %s: %d", method, name, res.StatusCode)
			}
		}
	}
	// The not-me token is no token of another purpose.
	for _, path := range []string{"/password/reset", "/verify", "/email/undo", "/email/confirm"} {
		if res := r.Post(path, url.Values{"token": {token}, "new_password": {"a password of mine"}}); res.StatusCode != http.StatusBadRequest {
			t.Errorf("not-me token at %s: %d", path, res.StatusCode)
		}
	}
	// A disabled account's link is refused, and stays unused.
	uid := userID(t, env, "ada@example.com")
	admin.Post(fmt.Sprintf("/admin/users/%d/disable", uid), nil)
	if res := r.Post("/signin/not-me", url.Values{"token": {token}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("disabled account: %d", res.StatusCode)
	}
	admin.Post(fmt.Sprintf("/admin/users/%d/enable", uid), nil)
	// Seven days later the link has expired.
	env.Clock.Advance(7*24*time.Hour + time.Minute)
	if res := r.Post("/signin/not-me", url.Values{"token": {token}}); res.StatusCode != http.StatusBadRequest {
		t.Errorf("expired: %d", res.StatusCode)
	}
	// Nothing changed: the password works, no session was ended for it.
	env.Client(t).SignIn("ada@example.com", "analytical engine")
	var n int64
	env.App.DB.Table("audit_events").Where("kind = ?", models.AuditThisWasntMe).Count(&n)
	if n != 0 {
		t.Errorf("%d this_wasnt_me events", n)
	}
}

// failMailInserts makes every insert into the outbox fail, as a Postgres
// dying mid-request would, until the returned function is called.
func failMailInserts(t *testing.T, env *apptest.Env) (restore func()) {
	t.Helper()
	err := env.HookableDB(t).Callback().Create().Before("gorm:create").Register("test:fail-mail", func(tx *gorm.DB) {
		if tx.Statement.Table == "mail_outbox" {
			tx.AddError(fmt.Errorf("injected: %w", driver.ErrBadConn))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return func() { env.HookableDB(t).Callback().Create().Remove("test:fail-mail") }
}

// TestNewDeviceAlertIsWrittenWithItsSignIn: when the alert cannot be
// queued, the sign-in does not stand and nothing of it is recorded; the
// alert exists if and only if the sign-in happened.
func TestNewDeviceAlertIsWrittenWithItsSignIn(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	restore := failMailInserts(t, env)
	laptop := browser(t, env, safariMac)
	res := laptop.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}})
	restore()
	if res.StatusCode < 500 || strings.Contains(res.Body, "injected") {
		t.Fatalf("sign-in whose alert failed: %d", res.StatusCode)
	}
	if laptop.Get("/account").StatusCode != http.StatusSeeOther {
		t.Fatal("the sign-in stands without its alert")
	}
	var devices, tokens, events int64
	env.App.DB.Table("known_devices").Count(&devices)
	env.App.DB.Table("mail_tokens").Where("purpose = 'not_me'").Count(&tokens)
	env.App.DB.Table("audit_events").Where("kind = ?", models.AuditNewDeviceAlert).Count(&events)
	if devices != 1 || tokens != 0 || events != 0 || alertsQueued(t, env, "ada@example.com") != 0 {
		t.Fatalf("after the failure: %d devices, %d tokens, %d events", devices, tokens, events)
	}
	laptop.SignIn("ada@example.com", "analytical engine")
	if n := alertsQueued(t, env, "ada@example.com"); n != 1 {
		t.Fatalf("after the fault: %d alerts, want 1", n)
	}
}

// TestSecurityNoticeIsWrittenWithItsChange: a recovery code is used in the
// transaction that queues its notice, so when the notice cannot be queued
// the code stays unused, nobody signs in and nothing is recorded.
func TestSecurityNoticeIsWrittenWithItsChange(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	u, _, codes := userWithTOTP(t, env, "lost@example.com")
	c := pendingSignIn(t, env, u.Email)
	restore := failMailInserts(t, env)
	res := sendCode(c, codes[0])
	restore()
	if res.StatusCode < 500 || signedIn(c) {
		t.Fatalf("recovery code whose notice failed: %d", res.StatusCode)
	}
	left, err := models.NewFactorStore(env.App.DB).Factors(context.Background(), u.ID)
	if err != nil || left.RecoveryCodes != 10 {
		t.Fatalf("recovery codes left: %d, %v", left.RecoveryCodes, err)
	}
	waitWritten(t, env)
	if hasKind(auditKinds(t, env, u.ID), models.AuditRecoveryCodeUsed) {
		t.Fatal("recovery_code_used recorded for a use that did not happen")
	}
	// The same code, the fault gone: signed in, and told.
	if res := sendCode(c, codes[0]); res.StatusCode != http.StatusSeeOther || !signedIn(c) {
		t.Fatalf("the code after the fault: %d", res.StatusCode)
	}
	env.Mail.WaitForSubject(t, u.Email, "A recovery code was used to sign in", 1)
	if !hasKind(auditKinds(t, env, u.ID), models.AuditRecoveryCodeUsed) {
		t.Error("no recovery_code_used event")
	}
	// The second step ends in a session like a password does: a new
	// browser, so an alert.
	if n := alertsQueued(t, env, u.Email); n != 1 {
		t.Errorf("sign-in with a second factor from a new browser: %d alerts, want 1", n)
	}
}

// raceOnce posts form to path from n browsers without a session at once,
// and fails t unless exactly one gets 200 and the others 400: a mailed
// link used once.
func raceOnce(t *testing.T, env *apptest.Env, n int, path string, form url.Values) {
	t.Helper()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range statuses {
		r := env.Client(t)
		r.CSRFToken()
		f := maps.Clone(form) // Post adds the client's own CSRF token
		wg.Go(func() { statuses[i] = r.Post(path, f).StatusCode })
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			won++
		} else if s != http.StatusBadRequest {
			t.Fatalf("%s statuses %v", path, statuses)
		}
	}
	if won != 1 {
		t.Fatalf("%d uses of one link succeeded (%v), want 1", won, statuses)
	}
}

// TestKnownDevicesAreBounded: an account keeps at most 100 devices; the
// ones seen once and longest ago go first, the owner's own stay.
func TestKnownDevicesAreBounded(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	env.Clock.Advance(time.Minute)
	c.Post("/signout", nil)
	c.SignIn("ada@example.com", "analytical engine") // seen twice now
	uid := userID(t, env, "ada@example.com")
	// 100 devices from a flood, each seen once, an hour ago.
	err := env.App.DB.Exec(`INSERT INTO known_devices (user_id, device_hash, browser, os, ip, first_seen_at, last_seen_at)
		SELECT ?, sha256(i::text::bytea), 'Junk', 'Junk', '192.0.2.1', now() - interval '1 hour', now() - interval '1 hour'
		FROM generate_series(1, 100) i`, uid).Error
	if err != nil {
		t.Fatal(err)
	}
	laptop := browser(t, env, safariMac)
	laptop.SignIn("ada@example.com", "analytical engine")
	var n, junk int64
	env.App.DB.Table("known_devices").Where("user_id = ?", uid).Count(&n)
	env.App.DB.Table("known_devices").Where("user_id = ? AND browser = 'Junk'", uid).Count(&junk)
	if n != 100 || junk != 98 {
		t.Fatalf("%d devices (%d junk), want 100 (98 junk)", n, junk)
	}
	// Both real browsers are still known.
	before := alertsQueued(t, env, "ada@example.com")
	for _, b := range []*apptest.Client{c, laptop} {
		b.Post("/signout", nil)
		b.SignIn("ada@example.com", "analytical engine")
	}
	if got := alertsQueued(t, env, "ada@example.com"); got != before {
		t.Errorf("a kept device was alerted about: %d alerts, want %d", got, before)
	}
}

// TestDeviceCookieOnHTTPS: on https the device cookie has the __Host-
// prefix and is Secure, like the session cookie.
func TestDeviceCookieOnHTTPS(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("BASE_URL", "https://gatehouse.example"))
	c := env.Client(t)
	// A same-origin browser form: Sec-Fetch-Site stands for the token.
	c.Header.Set("Sec-Fetch-Site", "same-origin")
	res := c.PostRaw("/signup", url.Values{"name": {"Ada"}, "email": {"ada@example.com"}, "password": {"analytical engine"}}.Encode())
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-up: %d", res.StatusCode)
	}
	var ck *http.Cookie
	for _, k := range res.Cookies() {
		switch k.Name {
		case "__Host-gatehouse_device":
			ck = k
		case "gatehouse_device":
			t.Error("a device cookie without the __Host- prefix on https")
		}
	}
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("device cookie on https: %v", res.Header.Values("Set-Cookie"))
	}
}

// TestTurningAlertsOffNeedsRecentAuth: a session whose password proof is
// older than REAUTH_WINDOW is sent to confirm the password before alerts
// go off (someone who took it over would turn them off before signing in
// elsewhere); turning them on never asks. Both are in the audit log.
func TestTurningAlertsOffNeedsRecentAuth(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	u, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	alertsOn := func() (on bool) {
		t.Helper()
		if err := env.App.DB.Table("users").Where("id = ?", u.ID).Pluck("new_device_alerts", &on).Error; err != nil {
			t.Fatal(err)
		}
		return on
	}
	env.Clock.Advance(stale)
	want := "/account/confirm?next=" + url.QueryEscape("/account")
	for _, form := range []url.Values{nil, {"new_device_alerts": {""}}, {"new_device_alerts": {"off"}}} {
		res := c.Post("/account/alerts", form)
		if res.StatusCode != http.StatusSeeOther || res.Location() != want {
			t.Errorf("stale turn-off %v: %d to %q, want %q", form, res.StatusCode, res.Location(), want)
		}
	}
	if !alertsOn() {
		t.Fatal("a stale session turned alerts off")
	}
	if res := c.Post("/account/alerts", url.Values{"new_device_alerts": {"1"}}); res.StatusCode != http.StatusSeeOther || res.Location() != "/account" {
		t.Fatalf("stale turn-on: %d to %q; turning on needs no password", res.StatusCode, res.Location())
	}
	if res := c.Post("/account/confirm", url.Values{"password": {"analytical engine"}, "next": {"/account"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %d", res.StatusCode)
	}
	if res := c.Post("/account/alerts", nil); res.StatusCode != http.StatusSeeOther || res.Location() != "/account" || alertsOn() {
		t.Fatalf("turn-off after confirming: %d to %q, alerts on %v", res.StatusCode, res.Location(), alertsOn())
	}
	if err := env.App.Auditing.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	kinds := auditKinds(t, env, u.ID)
	if !hasKind(kinds, models.AuditAlertsOn) || !hasKind(kinds, models.AuditAlertsOff) {
		t.Fatalf("audit log %v lacks the alerts on and off events", kinds)
	}
	if n := countKind(kinds, models.AuditAlertsOff); n != 1 {
		t.Errorf("%d alerts-off events, want 1 (the refused ones changed nothing)", n)
	}
	activity := c.Get("/account/activity").Doc(t).Text()
	if !strings.Contains(activity, "New-device alerts turned off") || !strings.Contains(activity, "New-device alerts turned on") {
		t.Error("the Activity page does not name the alerts events")
	}
}

func countKind(kinds []models.AuditKind, k models.AuditKind) (n int) {
	for _, x := range kinds {
		if x == k {
			n++
		}
	}
	return n
}

// TestAppSignInAlertsLikeANewDevice: a password-grant sign-in by an app
// the account has not seen mails the alert, naming the app (a stolen
// password used through the API is no way around it); the same app
// signing in again on the same machine is known; another app, or the same
// one on another machine (user agent), is new.
func TestAppSignInAlertsLikeANewDevice(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	grant := func(client, ua string) string {
		t.Helper()
		form := url.Values{"grant_type": {"password"}, "email": {"ada@example.com"},
			"password": {"analytical engine"}, "client_name": {client}}
		req, err := http.NewRequest(http.MethodPost, env.BaseURL+"/api/v1/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", ua)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct {
			SessionID string `json:"session_id"`
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("password grant: %d, %v", res.StatusCode, err)
		}
		if len(res.Cookies()) != 0 {
			t.Errorf("the token endpoint set cookies: %v", res.Header.Values("Set-Cookie"))
		}
		return body.SessionID
	}
	const cli = "deploy-tool/2.1 (Linux x86_64)"
	sid := grant("Deploy tool", cli)
	m := env.Mail.WaitForSubject(t, "ada@example.com", alertSubject, 1)
	if !strings.Contains(m.Text, "Deploy tool on Linux") {
		t.Errorf("the alert does not name the app:\n%s", m.Text)
	}
	var ev models.AuditEvent
	if err := env.App.DB.Where("kind = ?", models.AuditNewDeviceAlert).Take(&ev).Error; err != nil || ev.SessionID != sid {
		t.Fatalf("alert audit event %+v, %v; want session %s", ev, err, sid)
	}
	grant("Deploy tool", cli) // the same app on the same machine
	if n := alertsQueued(t, env, "ada@example.com"); n != 1 {
		t.Errorf("the same app again: %d alerts, want 1", n)
	}
	grant("Backup agent", cli)                                // another app
	grant("Deploy tool", "deploy-tool/2.1 (Windows NT 10.0)") // another machine
	if n := alertsQueued(t, env, "ada@example.com"); n != 3 {
		t.Errorf("another app and another machine: %d alerts, want 3", n)
	}
}
