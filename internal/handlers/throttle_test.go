package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// signInAttempt posts the sign-in form once, whatever the outcome.
func signInAttempt(c *apptest.Client, email, password string) *apptest.Response {
	return c.Post("/signin", url.Values{"email": {email}, "password": {password}})
}

// failSignIns makes n sign-ins with a wrong password, each of which must be
// an ordinary failure (422).
func failSignIns(t *testing.T, c *apptest.Client, email string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if res := signInAttempt(c, email, "wrong password"); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("wrong password %d for %s: status %d, want 422", i, email, res.StatusCode)
		}
	}
}

// checkThrottled asserts res is the sign-in page refusing a throttled
// attempt for email: 429, Retry-After, the friendly message, the email kept,
// and no session.
func checkThrottled(t *testing.T, c *apptest.Client, res *apptest.Response, email, wantWait string) {
	t.Helper()
	checkThrottledFor(t, c, res, email, wantWait, "1")
}

func checkThrottledFor(t *testing.T, c *apptest.Client, res *apptest.Response, email, wantWait, wantRetryAfter string) {
	t.Helper()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429\n%s", res.StatusCode, res.Body)
	}
	if got := res.Header.Get("Retry-After"); got != wantRetryAfter {
		t.Errorf("Retry-After = %q, want %s (seconds, rounded up)", got, wantRetryAfter)
	}
	doc := res.Doc(t)
	want := "Too many attempts. Try again in " + wantWait + "."
	if got := doc.Find(`[data-testid="signin-error"]`).Text(); got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if got, _ := doc.Find(`form[action="/signin"] input[name="email"]`).Attr("value"); got != email {
		t.Errorf("the form lost the email typed: %q", got)
	}
	for _, ck := range res.Cookies() {
		if ck.Name == "gatehouse_session" && ck.Value != "" {
			t.Errorf("a throttled attempt set a session cookie: %s", ck)
		}
	}
	if c.SessionToken() != "" {
		t.Error("a throttled attempt left the client with a session")
	}
}

func TestThrottleLocksAccountAfterFailures(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")

	c := env.Client(t)
	failSignIns(t, c, "ada@example.com", throttle.AccountFreeFailures)
	// The 6th attempt is refused, even with the right password (which is
	// not even checked).
	res := signInAttempt(c, "Ada@Example.com", "analytical engine")
	checkThrottled(t, c, res, "Ada@Example.com", "1 second")

	// Once the wait is over, the right password signs in...
	env.Clock.Advance(time.Second)
	if res := signInAttempt(c, "ada@example.com", "analytical engine"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the wait: status %d, want 303", res.StatusCode)
	}
	if c.Get("/account").StatusCode != http.StatusOK {
		t.Fatal("signed in after the wait, yet /account is refused")
	}
	// ...and resets the account's count: 5 free failures again.
	other := env.Client(t)
	failSignIns(t, other, "ada@example.com", throttle.AccountFreeFailures)
	checkThrottled(t, other, signInAttempt(other, "ada@example.com", "analytical engine"), "ada@example.com", "1 second")
}

func TestThrottleIsPerAccountUntilTheIPLimit(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	env.Client(t).SignUp("Grace", "grace@example.com", "cobol forever")

	c := env.Client(t)
	failSignIns(t, c, "ada@example.com", throttle.AccountFreeFailures)
	checkThrottled(t, c, signInAttempt(c, "ada@example.com", "analytical engine"), "ada@example.com", "1 second")

	// Ada's lock does not touch Grace, from the very same client.
	failSignIns(t, c, "grace@example.com", 1)
	if res := signInAttempt(c, "grace@example.com", "cobol forever"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("another account from the same client: status %d, want 303", res.StatusCode)
	}

	// Spraying one password over many accounts from one address reaches the
	// IP limit: 5 + 1 failures so far, the rest on accounts that each stay
	// far under their own limit.
	sprayer := env.Client(t)
	for failures := throttle.AccountFreeFailures + 1; failures < throttle.IPFreeFailures; failures++ {
		failSignIns(t, sprayer, fmt.Sprintf("user%d@example.com", failures), 1)
	}
	// The IP's 20th failure imposes the wait on any account.
	res := signInAttempt(sprayer, "fresh@example.com", "whatever")
	checkThrottled(t, sprayer, res, "fresh@example.com", "1 second")
}

func TestThrottleHoldsAcrossInstances(t *testing.T) {
	t.Parallel()
	a := apptest.New(t)
	b := apptest.Start(t, a.Config) // same database, same Redis prefix
	a.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")

	failSignIns(t, a.Client(t), "ada@example.com", throttle.AccountFreeFailures)

	// Instance B, and a browser that never talked to A, are refused too.
	c := b.Client(t)
	checkThrottled(t, c, signInAttempt(c, "ada@example.com", "analytical engine"), "ada@example.com", "1 second")

	// The lock ends on B's clock too, and a success there clears it for A.
	b.Clock.Advance(time.Second)
	if res := signInAttempt(c, "ada@example.com", "analytical engine"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("on B after the wait: status %d, want 303", res.StatusCode)
	}
	if res := signInAttempt(a.Client(t), "ada@example.com", "analytical engine"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("on A after success on B: status %d, want 303", res.StatusCode)
	}
}

func TestThrottleTreatsUnknownEmailsLikeKnownOnes(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")

	attempt := func(email string) *apptest.Response {
		c := env.Client(t)
		failSignIns(t, c, email, throttle.AccountFreeFailures)
		res := signInAttempt(c, email, "analytical engine")
		checkThrottled(t, c, res, email, "1 second")
		return res
	}
	known := attempt("ada@example.com")
	unknown := attempt("nobody@example.com")
	msg := func(r *apptest.Response) string {
		return r.Doc(t).Find(`[data-testid="signin-error"]`).Text()
	}
	if known.StatusCode != unknown.StatusCode || msg(known) != msg(unknown) ||
		known.Header.Get("Retry-After") != unknown.Header.Get("Retry-After") {
		t.Errorf("known %d %q, unknown %d %q: throttling tells them apart",
			known.StatusCode, msg(known), unknown.StatusCode, msg(unknown))
	}
}

func TestThrottleSaysMinutes(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	// A long attack, recorded straight into the app's Redis (under
	// REDIS_PREFIX + "t:") rather than through 30 slow password checks,
	// waiting out each wait on the app's clock.
	lim := throttle.New(env.App.Redis, env.Config.RedisPrefix+"t:", env.Clock.Now)
	for attempts := 0; attempts < 30; {
		_, wait, err := lim.Begin(t.Context(), throttle.AccountKey("ada@example.com"))
		if err != nil {
			t.Fatal(err)
		}
		if wait > 0 {
			env.Clock.Advance(wait)
			continue
		}
		attempts++
	}
	c := env.Client(t)
	checkThrottledFor(t, c, signInAttempt(c, "ada@example.com", "analytical engine"), "ada@example.com", "15 minutes", "900")
	// Four and a half minutes left: the page rounds up.
	env.Clock.Advance(10*time.Minute + 30*time.Second)
	checkThrottledFor(t, c, signInAttempt(c, "ada@example.com", "analytical engine"), "ada@example.com", "5 minutes", "270")
	// However long the attack, the owner is back in after the cap.
	env.Clock.Advance(270 * time.Second)
	if res := signInAttempt(c, "ada@example.com", "analytical engine"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the cap: status %d, want 303", res.StatusCode)
	}
}
