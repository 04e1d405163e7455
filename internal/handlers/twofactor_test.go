package handlers_test

import (
	"bytes"
	"context"
	"encoding/base32"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/factor"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

const twoFAPassword = "user password"

// alignClock moves the app's clock to 5 seconds into a TOTP step, so a
// test has 25 seconds before the step changes under it.
func alignClock(env *apptest.Env) {
	r := env.Clock.Now().Unix() % 30
	env.Clock.Advance(time.Duration(35-r) * time.Second)
}

// totpCode is the code of secret at the app's time, offset by steps.
func totpCode(t testing.TB, env *apptest.Env, secret string, steps int64) string {
	t.Helper()
	c, err := factor.Code(secret, factor.Step(env.Clock.Now())+steps)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nextStep moves the app's clock to the next TOTP step (5 seconds into it).
func nextStep(env *apptest.Env) { env.Clock.Advance(30 * time.Second) }

// enableTOTP sets up an authenticator app for the signed-in client c as a
// user would: the set-up page, then a code. It returns the secret and the
// recovery codes shown.
func enableTOTP(t testing.TB, env *apptest.Env, c *apptest.Client) (secret string, codes []string) {
	t.Helper()
	alignClock(env)
	res := c.Get("/account/2fa/totp")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("set-up page: %d %s", res.StatusCode, res.Location())
	}
	doc := res.Doc(t)
	secret, _ = doc.Find("[data-totp-secret]").Attr("data-totp-secret")
	if secret == "" || doc.Find(`[data-testid="totp-qr"] svg path`).Length() != 1 {
		t.Fatalf("set-up page has no secret or QR code:\n%s", res.Body)
	}
	res = c.Post("/account/2fa/totp", url.Values{"code": {totpCode(t, env, secret, 0)}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("confirm: %d\n%s", res.StatusCode, res.Body)
	}
	for _, n := range res.Doc(t).Find("[data-recovery-code]").Nodes {
		for _, a := range n.Attr {
			if a.Key == "data-recovery-code" {
				codes = append(codes, a.Val)
			}
		}
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10", len(codes))
	}
	return secret, codes
}

// userWithTOTP signs up email, turns 2FA on, and signs out.
func userWithTOTP(t testing.TB, env *apptest.Env, email string) (u *models.User, secret string, codes []string) {
	t.Helper()
	c, u := signedInUserTB(t, env, email)
	secret, codes = enableTOTP(t, env, c)
	c.Post("/signout", nil)
	return u, secret, codes
}

// pendingSignIn signs in with the password and checks it stops at the
// code step, with no session.
func pendingSignIn(t testing.TB, env *apptest.Env, email string) *apptest.Client {
	t.Helper()
	c := env.Client(t)
	res := c.SignIn(email, twoFAPassword)
	if res.Location() != "/signin/2fa" || setsSession(res) {
		t.Fatalf("password of a 2FA account: to %q, session set %v", res.Location(), setsSession(res))
	}
	if c.Cookie("gatehouse_2fa") == "" {
		t.Fatal("no pending sign-in cookie")
	}
	return c
}

func sendCode(c *apptest.Client, code string) *apptest.Response {
	return c.Post("/signin/2fa", url.Values{"code": {code}})
}

// signedIn reports whether c's session works.
func signedIn(c *apptest.Client) bool { return c.Get("/account").StatusCode == http.StatusOK }

func authMethods(t testing.TB, env *apptest.Env, userID int64) []string {
	t.Helper()
	var m []string
	if err := env.App.DB.Model(&models.SessionRecord{}).Where("user_id = ? AND ended_at IS NULL", userID).
		Order("id").Pluck("auth_method", &m).Error; err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTOTPSetUpAndSignIn(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, secret, _ := userWithTOTP(t, env, "ada@example.com")

	c := pendingSignIn(t, env, u.Email)
	if signedIn(c) {
		t.Fatal("signed in before the second factor")
	}
	if res := c.Get("/signin/2fa"); res.StatusCode != http.StatusOK || res.Doc(t).Find(`input[name="code"]`).Length() != 1 {
		t.Fatalf("code step page: %d", res.StatusCode)
	}
	// The code that turned 2FA on was used: it cannot sign in.
	res := sendCode(c, totpCode(t, env, secret, 0))
	if res.StatusCode != http.StatusUnprocessableEntity || setsSession(res) || !strings.Contains(res.Body, "already used") {
		t.Fatalf("the enabling code signed in: %d", res.StatusCode)
	}
	nextStep(env)
	code := totpCode(t, env, secret, 0)
	res = sendCode(c, code)
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/account" || !setsSession(res) {
		t.Fatalf("right code: %d %q", res.StatusCode, res.Location())
	}
	if !signedIn(c) {
		t.Fatal("not signed in after the code")
	}
	if m := authMethods(t, env, u.ID); len(m) != 1 || m[0] != "password+totp" {
		t.Fatalf("auth methods %v", m)
	}
	devices := c.Get("/account/sessions").Doc(t)
	if v, _ := devices.Find("[data-auth-method]").Attr("data-auth-method"); v != "password+totp" {
		t.Fatalf("Devices page shows sign-in method %q", v)
	}
	// The same code, replayed in its window by another sign-in, fails.
	c2 := pendingSignIn(t, env, u.Email)
	if res := sendCode(c2, code); res.StatusCode != http.StatusUnprocessableEntity || signedIn(c2) {
		t.Fatalf("replayed code: %d", res.StatusCode)
	}
	// And the pending sign-in is single-use: c's completed one is gone.
	if res := sendCode(c, totpCode(t, env, secret, 1)); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("second use of a completed sign-in step: %d", res.StatusCode)
	}
}

func TestTOTPDriftIsOneStep(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, secret, _ := userWithTOTP(t, env, "drift@example.com")
	for _, tc := range []struct {
		steps int64
		ok    bool
	}{{-2, false}, {2, false}, {-1, true}, {1, true}} {
		// Each accepted code moves last_step on: start each case well
		// after the previous one.
		env.Clock.Advance(5 * 30 * time.Second)
		c := pendingSignIn(t, env, u.Email)
		res := sendCode(c, totpCode(t, env, secret, tc.steps))
		if got := res.StatusCode == http.StatusSeeOther; got != tc.ok {
			t.Errorf("code %+d steps off: %d, accepted %v", tc.steps, res.StatusCode, got)
		}
	}
}

func TestTOTPCodeOlderThanLastUsedFails(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, secret, _ := userWithTOTP(t, env, "older@example.com")
	nextStep(env)
	// The next step's code (the app a little ahead) signs in ...
	if res := sendCode(pendingSignIn(t, env, u.Email), totpCode(t, env, secret, 1)); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("code one step ahead: %d", res.StatusCode)
	}
	// ... after which this step's code, though in the window, is older.
	if res := sendCode(pendingSignIn(t, env, u.Email), totpCode(t, env, secret, 0)); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("code older than the last one used: %d", res.StatusCode)
	}
}

// Two browsers racing with one code: exactly one signs in.
func TestTOTPCodeRaceSignsInOnce(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, secret, _ := userWithTOTP(t, env, "race@example.com")
	nextStep(env)
	const n = 4 // within the account's free failures
	clients := make([]*apptest.Client, n)
	for i := range clients {
		clients[i] = pendingSignIn(t, env, u.Email)
	}
	code := totpCode(t, env, secret, 0)
	res := burst(clients, func(c *apptest.Client) *apptest.Response { return sendCode(c, code) })
	if got := statuses(res); got[http.StatusSeeOther] != 1 || got[http.StatusUnprocessableEntity] != n-1 {
		t.Fatalf("statuses %v, want one 303 and the rest 422", got)
	}
}

// burst sends one request per client at once.
func burst(clients []*apptest.Client, send func(*apptest.Client) *apptest.Response) []*apptest.Response {
	res := make([]*apptest.Response, len(clients))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res[i] = send(c)
		}()
	}
	close(start)
	wg.Wait()
	return res
}

func TestRecoveryCodeSignsInOnce(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, _, codes := userWithTOTP(t, env, "lost@example.com")

	c := pendingSignIn(t, env, u.Email)
	// Typed in capitals, with spaces: still the code.
	res := sendCode(c, " "+strings.ToUpper(strings.ReplaceAll(codes[0], "-", " "))+" ")
	if res.StatusCode != http.StatusSeeOther || !signedIn(c) {
		t.Fatalf("recovery code: %d", res.StatusCode)
	}
	if m := authMethods(t, env, u.ID); len(m) != 1 || m[0] != "recovery_code" {
		t.Fatalf("auth methods %v", m)
	}
	waitWritten(t, env)
	if !hasKind(auditKinds(t, env, u.ID), models.AuditRecoveryCodeUsed) {
		t.Error("no recovery_code_used event (the notice point)")
	}
	// The owner is told, with a way to see the devices and to react.
	notice := env.Mail.WaitForSubject(t, u.Email, "A recovery code was used to sign in", 1)
	notice.Link(t, "/account/sessions")
	notice.Link(t, "/password/forgot")
	c2 := pendingSignIn(t, env, u.Email)
	if res := sendCode(c2, codes[0]); res.StatusCode != http.StatusUnprocessableEntity || signedIn(c2) {
		t.Fatalf("a used recovery code again: %d", res.StatusCode)
	}
	if res := sendCode(c2, codes[1]); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("another unused code: %d", res.StatusCode)
	}
	left, err := models.NewFactorStore(env.App.DB).Factors(context.Background(), u.ID)
	if err != nil || left.RecoveryCodes != 8 {
		t.Fatalf("recovery codes left: %d, %v", left.RecoveryCodes, err)
	}
}

// Browsers racing with one recovery code: one signs in, the code is used
// once.
func TestRecoveryCodeRaceSignsInOnce(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, _, codes := userWithTOTP(t, env, "racer@example.com")
	const n = 5
	clients := make([]*apptest.Client, n)
	for i := range clients {
		clients[i] = pendingSignIn(t, env, u.Email)
	}
	res := burst(clients, func(c *apptest.Client) *apptest.Response { return sendCode(c, codes[3]) })
	got := statuses(res)
	if got[http.StatusSeeOther] != 1 || got[http.StatusSeeOther]+got[http.StatusUnprocessableEntity]+got[http.StatusTooManyRequests] != n {
		t.Fatalf("statuses %v, want exactly one 303", got)
	}
	var used int64
	env.App.DB.Model(&models.RecoveryCode{}).Where("user_id = ? AND used_at IS NOT NULL", u.ID).Count(&used)
	if used != 1 {
		t.Fatalf("%d codes marked used", used)
	}
}

func TestPendingSignInIsBoundToTheBrowserAndExpires(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, secret, _ := userWithTOTP(t, env, "bound@example.com")
	nextStep(env)

	// Another browser, without the pending sign-in's cookie, gets nowhere
	// with a right code.
	other := env.Client(t)
	pendingSignIn(t, env, u.Email)
	res := sendCode(other, totpCode(t, env, secret, 0))
	if res.StatusCode != http.StatusUnprocessableEntity || setsSession(res) || signedIn(other) ||
		!strings.Contains(res.Body, "sign in again") {
		t.Fatalf("code from another browser: %d %v\n%s", res.StatusCode, setsSession(res), res.Body)
	}
	// A forged cookie is no better.
	other.SetCookie("gatehouse_2fa", strings.Repeat("A", 26))
	if res := sendCode(other, totpCode(t, env, secret, 0)); res.StatusCode != http.StatusUnprocessableEntity || signedIn(other) {
		t.Fatalf("forged pending cookie: %d", res.StatusCode)
	}

	// A completed step's cookie, copied into another browser, is used up.
	c := pendingSignIn(t, env, u.Email)
	token := c.Cookie("gatehouse_2fa")
	if res := sendCode(c, totpCode(t, env, secret, 0)); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("right code: %d", res.StatusCode)
	}
	thief := env.Client(t)
	thief.SetCookie("gatehouse_2fa", token)
	nextStep(env)
	if res := sendCode(thief, totpCode(t, env, secret, 0)); res.StatusCode != http.StatusUnprocessableEntity || signedIn(thief) {
		t.Fatalf("replayed pending sign-in: %d", res.StatusCode)
	}

	// After five minutes the step has expired, right code or not.
	late := pendingSignIn(t, env, u.Email)
	env.Clock.Advance(5*time.Minute + time.Second)
	if res := late.Get("/signin/2fa"); res.StatusCode != http.StatusSeeOther || res.Location() != "/signin" {
		t.Fatalf("expired step page: %d %q", res.StatusCode, res.Location())
	}
	late = pendingSignIn(t, env, u.Email)
	env.Clock.Advance(5*time.Minute + time.Second)
	if res := sendCode(late, totpCode(t, env, secret, 0)); res.StatusCode != http.StatusUnprocessableEntity || signedIn(late) {
		t.Fatalf("code after five minutes: %d", res.StatusCode)
	}
	failedChecks(t, env, "second step without a pending sign-in (expired, used, or from another browser)", 4)
}

func TestMalformedCodesAreRefusedCountedAndAudited(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, _, _ := userWithTOTP(t, env, "malformed@example.com")
	c := pendingSignIn(t, env, u.Email)
	bad := []string{"12a456", "1234567", "12345", "１２３４５６", "١٢٣٤٥٦", "abcde-fghi1", strings.Repeat("1", 200)}
	for i, code := range bad {
		res := sendCode(c, code)
		want := http.StatusUnprocessableEntity
		if i >= throttle.AccountFreeFailures {
			want = http.StatusTooManyRequests
		}
		if res.StatusCode != want || setsSession(res) {
			t.Errorf("code %q: %d, want %d", code, res.StatusCode, want)
		}
	}
	if res := sendCode(c, ""); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("empty code: %d", res.StatusCode)
	}
	failedChecks(t, env, "malformed second-factor code at sign-in", throttle.AccountFreeFailures)
	if signedIn(c) {
		t.Fatal("signed in")
	}
}

// A right password does not give back the free guesses at the code: an
// attacker who knows the password cannot sign in again and again to guess.
func TestPasswordDoesNotResetSecondFactorThrottle(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, secret, _ := userWithTOTP(t, env, "guess@example.com")
	right := totpCode(t, env, secret, 0)
	wrong := "000000"
	if wrong == right || wrong == totpCode(t, env, secret, 1) || wrong == totpCode(t, env, secret, -1) {
		wrong = "999999"
	}
	c := pendingSignIn(t, env, u.Email)
	for i := 0; i < throttle.AccountFreeFailures; i++ {
		if res := sendCode(c, wrong); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("wrong code %d: %d", i, res.StatusCode)
		}
	}
	if res := sendCode(c, wrong); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after the free failures: %d", res.StatusCode)
	}
	env.Clock.Advance(2 * time.Second) // past the first wait
	c = pendingSignIn(t, env, u.Email) // the right password again
	if res := sendCode(c, wrong); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong code after the wait: %d", res.StatusCode)
	}
	if res := sendCode(c, wrong); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a right password gave back free guesses at the code: %d", res.StatusCode)
	}
}

func TestConfirmAsksForTheSecondFactor(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, secret, codes := userWithTOTP(t, env, "sudo@example.com")
	nextStep(env)
	c := pendingSignIn(t, env, u.Email)
	if res := sendCode(c, totpCode(t, env, secret, 0)); res.StatusCode != http.StatusSeeOther {
		t.Fatal("sign in")
	}
	env.Clock.Advance(11 * time.Minute) // past REAUTH_WINDOW
	alignClock(env)
	if c.Get("/account/confirm").Doc(t).Find(`input[name="code"]`).Length() != 1 {
		t.Fatal("the confirm page asks for no code")
	}
	for _, tc := range []struct {
		form url.Values
		want int
	}{
		{url.Values{"password": {twoFAPassword}}, http.StatusUnprocessableEntity},
		{url.Values{"password": {twoFAPassword}, "code": {"12345x"}}, http.StatusUnprocessableEntity},
		{url.Values{"password": {"wrong password"}, "code": {totpCode(t, env, secret, 0)}}, http.StatusUnprocessableEntity},
		{url.Values{"password": {twoFAPassword}, "code": {codes[9]}}, http.StatusSeeOther},
	} {
		if res := c.Post("/account/confirm", tc.form); res.StatusCode != tc.want {
			t.Errorf("confirm with %v: %d, want %d", tc.form, res.StatusCode, tc.want)
		}
	}
}

func TestTurningOffNeedsTheFactorAndEndsOtherSessions(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := signedInUser(t, env, "off@example.com")
	secret, _ := enableTOTP(t, env, c)
	// The session that turned it on proved its password before: it is
	// asked to confirm, with the code.
	res := c.Post("/account/2fa/totp/disable", nil)
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Location(), "/account/confirm") {
		t.Fatalf("turning off without proving the factor: %d %q", res.StatusCode, res.Location())
	}
	nextStep(env)
	other := pendingSignIn(t, env, u.Email)
	if res := sendCode(other, totpCode(t, env, secret, 0)); res.StatusCode != http.StatusSeeOther {
		t.Fatal("other sign-in")
	}
	nextStep(env)
	if res := c.Post("/account/confirm", url.Values{"password": {twoFAPassword}, "code": {totpCode(t, env, secret, 0)},
		"next": {"/account/2fa/totp/disable"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %d", res.StatusCode)
	}
	if res := c.Get("/account/2fa/totp/disable"); res.StatusCode != http.StatusOK {
		t.Fatalf("confirmation page: %d", res.StatusCode)
	}
	res = c.Post("/account/2fa/totp/disable", nil)
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/account/2fa" {
		t.Fatalf("turn off: %d %q", res.StatusCode, res.Location())
	}
	if signedIn(other) {
		t.Error("another session survived turning 2FA off")
	}
	if !signedIn(c) {
		t.Error("the session that turned it off ended")
	}
	var n int64
	env.App.DB.Model(&models.RecoveryCode{}).Where("user_id = ?", u.ID).Count(&n)
	if n != 0 {
		t.Errorf("%d recovery codes left", n)
	}
	waitWritten(t, env)
	env.Mail.WaitForSubject(t, u.Email, "Two-factor authentication was turned off", 1).Link(t, "/account/sessions")
	if !hasKind(auditKinds(t, env, u.ID), models.AuditTwoFactorDisabled) {
		t.Error("not audited")
	}
	// The password alone signs in again.
	if res := env.Client(t).SignIn(u.Email, twoFAPassword); res.Location() != "/account" {
		t.Errorf("sign-in after turning off goes to %q", res.Location())
	}
}

func TestNewRecoveryCodesVoidTheOldOnes(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := signedInUser(t, env, "renew@example.com")
	_, old := enableTOTP(t, env, c)
	env.Clock.Advance(11 * time.Minute)
	if res := c.Post("/account/2fa/recovery-codes", nil); res.StatusCode != http.StatusSeeOther ||
		!strings.HasPrefix(res.Location(), "/account/confirm?next=%2Faccount%2F2fa%2Frecovery-codes") {
		t.Fatalf("without re-authentication: %d %q", res.StatusCode, res.Location())
	}
	if res := c.Post("/account/confirm", url.Values{"password": {twoFAPassword}, "code": {old[0]}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %d", res.StatusCode)
	}
	res := c.Post("/account/2fa/recovery-codes", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("new codes: %d", res.StatusCode)
	}
	fresh := res.Doc(t).Find("[data-recovery-code]")
	if fresh.Length() != 10 {
		t.Fatalf("%d new codes", fresh.Length())
	}
	if res := sendCode(pendingSignIn(t, env, u.Email), old[1]); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("an old code after renewal: %d", res.StatusCode)
	}
	code, _ := fresh.First().Attr("data-recovery-code")
	if res := sendCode(pendingSignIn(t, env, u.Email), code); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("a new code: %d", res.StatusCode)
	}
}

func TestSecondFactorSecretsAreNotStoredInClear(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	u, secret, codes := userWithTOTP(t, env, "clear@example.com")
	var f models.TOTPFactor
	if err := env.App.DB.Where("user_id = ?", u.ID).Take(&f).Error; err != nil {
		t.Fatal(err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(f.Secret, []byte(secret)) || bytes.Contains(f.Secret, raw) {
		t.Fatal("the TOTP secret is stored in clear")
	}
	var hashes [][]byte
	env.App.DB.Model(&models.RecoveryCode{}).Where("user_id = ?", u.ID).Pluck("code_hash", &hashes)
	for _, h := range hashes {
		for _, c := range codes {
			n, _ := factor.NormalizeRecoveryCode(c)
			if bytes.Contains(h, []byte(n)) {
				t.Fatal("a recovery code is stored in clear")
			}
		}
	}
}

func TestSetUpBadCodesChangeNothing(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := signedInUser(t, env, "setup@example.com")
	alignClock(env)
	secret, _ := c.Get("/account/2fa/totp").Doc(t).Find("[data-totp-secret]").Attr("data-totp-secret")
	// A reload shows the same secret, so what the app scanned stays good.
	if again, _ := c.Get("/account/2fa/totp").Doc(t).Find("[data-totp-secret]").Attr("data-totp-secret"); again != secret {
		t.Fatal("a reload changed the secret")
	}
	for _, code := range []string{"", "abcdef", "１２３４５６", totpCode(t, env, secret, 3), strings.Repeat("9", 100)} {
		res := c.Post("/account/2fa/totp", url.Values{"code": {code}})
		if res.StatusCode != http.StatusUnprocessableEntity || res.Doc(t).Find(`[data-testid="totp-error"]`).Length() != 1 {
			t.Errorf("set-up code %q: %d", code, res.StatusCode)
		}
	}
	if has, err := models.NewFactorStore(env.App.DB).HasSecondFactor(context.Background(), u.ID); err != nil || has {
		t.Fatalf("2FA on after bad codes: %v %v", has, err)
	}
	// A set-up left too long shows a new secret.
	env.Clock.Advance(16 * time.Minute)
	res := c.Post("/account/2fa/totp", url.Values{"code": {totpCode(t, env, secret, 0)}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("stale set-up: %d", res.StatusCode)
	}
}

func TestAdminSeesAndResetsSecondFactor(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	admin, _ := signedInAdmin(t, env)
	u, secret, _ := userWithTOTP(t, env, "phone-lost@example.com")
	nextStep(env)
	victim := pendingSignIn(t, env, u.Email)
	if res := sendCode(victim, totpCode(t, env, secret, 0)); res.StatusCode != http.StatusSeeOther {
		t.Fatal("sign in")
	}
	page := admin.Get(userPath(u))
	if page.Doc(t).Find(`[data-testid="user-factors"] [data-factor="totp"]`).Length() != 1 {
		t.Fatal("the admin page does not show the app")
	}
	if v, _ := page.Doc(t).Find("[data-auth-method]").Attr("data-auth-method"); v != "password+totp" {
		t.Fatalf("admin page shows sign-in method %q", v)
	}
	if v, _ := admin.Get("/admin/sessions").Doc(t).Find(`tr:has(a[href="` + userPath(u) + `"]) [data-auth-method]`).Attr("data-auth-method"); v != "password+totp" {
		t.Fatalf("the admin sessions list shows sign-in method %q", v)
	}
	res := admin.Post(userPath(u)+"/2fa/reset", nil)
	if res.StatusCode != http.StatusSeeOther || res.Location() != userPath(u) {
		t.Fatalf("reset: %d %q", res.StatusCode, res.Location())
	}
	if signedIn(victim) {
		t.Error("the user's session survived the reset")
	}
	if has, _ := models.NewFactorStore(env.App.DB).HasSecondFactor(context.Background(), u.ID); has {
		t.Error("the factor survived the reset")
	}
	waitWritten(t, env)
	if !hasKind(auditKinds(t, env, u.ID), models.AuditTwoFactorReset) {
		t.Error("reset not audited")
	}
	env.Mail.WaitForSubject(t, u.Email, "An administrator removed your second factor", 1)
	if admin.Get(userPath(u)).Doc(t).Find(`[data-factor="none"]`).Length() != 1 {
		t.Error("the admin page still shows a factor")
	}
	// A user cannot reset anyone's.
	c, _ := signedInUser(t, env, "mallory@example.com")
	if res := c.Post(userPath(u)+"/2fa/reset", nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("non-admin reset: %d", res.StatusCode)
	}
}

func TestRequire2FAForAdmins(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("REQUIRE_2FA_FOR_ADMINS", "true"))
	admin, _ := signedInAdmin(t, env)
	for _, path := range []string{"/admin", "/admin/users", "/admin/audit"} {
		if res := admin.Get(path); res.StatusCode != http.StatusSeeOther || res.Location() != "/account/2fa" {
			t.Fatalf("%s for an admin without 2FA: %d %q", path, res.StatusCode, res.Location())
		}
	}
	enableTOTP(t, env, admin)
	if res := admin.Get("/admin/users"); res.StatusCode != http.StatusOK {
		t.Fatalf("admin with 2FA: %d", res.StatusCode)
	}
	// Users without the role still get 403, not a set-up page.
	c, _ := signedInUser(t, env, "plain@example.com")
	if res := c.Get("/admin/users"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("non-admin: %d", res.StatusCode)
	}
}
