package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// Attacks on password checks by parallel requests and floods (issue 11,
// items 1, 2, 5 and 11). Attempts are made to arrive while earlier ones are
// still being hashed by holding the app's hashing slots (an app with a
// hasher of its own): every attempt the throttle lets through then waits
// for the hasher, so every other one must be answered first.

// hashSlots is how many hashes a busyHasher runs at once.
const hashSlots = 2

// busyHasher is a hasher whose queue takes anything for a minute, so what
// a test sees while it holds the slots is the throttle's doing alone.
func busyHasher() *password.Hasher {
	return password.NewHasherWith(password.Limits{Slots: hashSlots, Queue: 1000, MaxWait: time.Minute})
}

// heldBurst sends n requests at once (send(i) makes request i) while every
// slot of hasher is held. Exactly `through` of them should get through to
// the hasher: it waits until the other n-through have been answered, then
// frees the hasher and returns every response, in the order of i.
func heldBurst(t *testing.T, hasher *password.Hasher, n, through int, send func(i int) *apptest.Response) []*apptest.Response {
	t.Helper()
	release := hasher.Occupy(hashSlots)
	var releaseOnce sync.Once
	defer releaseOnce.Do(release)
	type answer struct {
		i   int
		res *apptest.Response
	}
	answers := make(chan answer, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			answers <- answer{i, send(i)}
		}()
	}
	close(start)
	out := make([]*apptest.Response, n)
	deadline := time.After(60 * time.Second)
	for got := 0; got < n; got++ {
		if got == n-through {
			releaseOnce.Do(release)
		}
		select {
		case a := <-answers:
			out[a.i] = a.res
		case <-deadline:
			if got < n-through {
				t.Fatalf("%d of %d requests answered while the hasher was busy, want %d: more than %d are waiting to check a password",
					got, n, n-through, through)
			}
			t.Fatalf("%d of %d requests answered", got, n)
		}
	}
	return out
}

// statuses counts responses by status.
func statuses(rs []*apptest.Response) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		m[r.StatusCode]++
	}
	return m
}

// failedChecks polls the audit log until it holds want sign_in_failed
// events with detail, and fails if it does not within a few seconds or
// holds more.
func failedChecks(t *testing.T, env *apptest.Env, detail string, want int) {
	t.Helper()
	var got int
	for deadline := time.Now().Add(5 * time.Second); ; {
		events, err := env.App.Audit.List(context.Background(), models.AuditFilter{Kind: models.AuditSignInFailed, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		got = 0
		for _, e := range events {
			if e.Detail == detail {
				got++
			}
		}
		if got >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got != want {
		t.Errorf("%d sign_in_failed events %q in the audit log, want %d", got, detail, want)
	}
}

// readyClients returns n browsers that already hold a CSRF token, so a
// burst sends nothing else.
func readyClients(t *testing.T, env *apptest.Env, n int) []*apptest.Client {
	cs := make([]*apptest.Client, n)
	for i := range cs {
		cs[i] = env.Client(t)
		cs[i].CSRFToken()
	}
	return cs
}

// TestParallelGuessesGetNoMoreTries: 100 wrong guesses on one account at
// once, and the right password among them, evaluate no more passwords than
// the account's free allowance; the rest are refused 429 at once.
func TestParallelGuessesGetNoMoreTries(t *testing.T) {
	hasher := busyHasher()
	// Without the per-client cap, which would refuse most of them itself.
	env := apptest.NewWithHasher(t, hasher, apptest.With("PASSWORD_CONCURRENCY_PER_IP", "0"))
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	env.Clock.Freeze() // the burst inside a 1-second lockout, however slow the machine

	const n = 101
	clients := readyClients(t, env, n)
	res := heldBurst(t, hasher, n, throttle.AccountFreeFailures, func(i int) *apptest.Response {
		pw := fmt.Sprintf("guess %d", i)
		if i == n/2 {
			pw = "analytical engine"
		}
		return signInAttempt(clients[i], "ada@example.com", pw)
	})
	got := statuses(res)
	evaluated := got[http.StatusUnprocessableEntity] + got[http.StatusSeeOther]
	if evaluated != throttle.AccountFreeFailures || got[http.StatusTooManyRequests] != n-throttle.AccountFreeFailures {
		t.Fatalf("statuses %v: %d passwords evaluated, want %d, the rest 429", got, evaluated, throttle.AccountFreeFailures)
	}
	if right := res[n/2]; right.StatusCode == http.StatusTooManyRequests {
		checkThrottled(t, clients[n/2], right, "ada@example.com", "1 second")
	}
	failedChecks(t, env, "wrong password", got[http.StatusUnprocessableEntity])
}

// TestParallelSprayFromOneIP: one address trying a password on 60 accounts
// at once evaluates no more than the address's free allowance.
func TestParallelSprayFromOneIP(t *testing.T) {
	hasher := busyHasher()
	env := apptest.NewWithHasher(t, hasher, apptest.With("PASSWORD_CONCURRENCY_PER_IP", "0"))
	env.Clock.Freeze() // the burst inside a 1-second lockout, however slow the machine
	const n = 60
	clients := readyClients(t, env, n)
	res := heldBurst(t, hasher, n, throttle.IPFreeFailures, func(i int) *apptest.Response {
		return signInAttempt(clients[i], fmt.Sprintf("user%d@example.com", i), "Summer2026!")
	})
	if got := statuses(res); got[http.StatusUnprocessableEntity] != throttle.IPFreeFailures || got[http.StatusTooManyRequests] != n-throttle.IPFreeFailures {
		t.Fatalf("statuses %v: want %d evaluated (422), the rest 429", got, throttle.IPFreeFailures)
	}
	failedChecks(t, env, "unknown email", throttle.IPFreeFailures)
}

// TestParallelConfirmGuesses: the confirm-password page, from a stolen
// cookie, takes no more guesses at once than sign-in does.
func TestParallelConfirmGuesses(t *testing.T) {
	hasher := busyHasher()
	env := apptest.NewWithHasher(t, hasher, apptest.With("PASSWORD_CONCURRENCY_PER_IP", "0"))
	thief := env.Client(t)
	thief.SignUp("Ada", "ada@example.com", "analytical engine")
	env.Clock.Freeze() // the burst inside a 1-second lockout, however slow the machine
	const n = 100
	res := heldBurst(t, hasher, n, throttle.AccountFreeFailures, func(i int) *apptest.Response {
		return thief.Post("/account/confirm", url.Values{"password": {fmt.Sprintf("guess %d", i)}})
	})
	if got := statuses(res); got[http.StatusUnprocessableEntity] != throttle.AccountFreeFailures || got[http.StatusTooManyRequests] != n-throttle.AccountFreeFailures {
		t.Fatalf("statuses %v: want %d evaluated (422), the rest 429", got, throttle.AccountFreeFailures)
	}
	failedChecks(t, env, "wrong password when confirming", throttle.AccountFreeFailures)
}

// TestPasswordChangeIsNoOracle: guessing current_password from a stolen
// cookie is throttled and audited like sign-in, and the right password is
// refused while the wait lasts.
func TestPasswordChangeIsNoOracle(t *testing.T) {
	env := apptest.New(t)
	thief := env.Client(t)
	thief.SignUp("Ada", "ada@example.com", "analytical engine")
	env.Clock.Freeze() // 40 guesses inside a 1-second lockout, however slow the machine
	change := func(current string) *apptest.Response {
		return thief.Post("/account/password", url.Values{"current_password": {current}, "new_password": {"owned by mallory"}})
	}
	for i := range 40 {
		res := change(fmt.Sprintf("guess %d", i))
		want, msg := http.StatusUnprocessableEntity, "That is not your current password."
		if i >= throttle.AccountFreeFailures {
			want, msg = http.StatusTooManyRequests, "Too many attempts. Try again in 1 second."
		}
		if res.StatusCode != want {
			t.Fatalf("guess %d: status %d, want %d", i, res.StatusCode, want)
		}
		if got := res.Doc(t).Find(`#current_password-error`).Text(); !strings.Contains(got, msg) {
			t.Fatalf("guess %d: the field says %q, want %q", i, got, msg)
		}
		if want == http.StatusTooManyRequests && res.Header.Get("Retry-After") != "1" {
			t.Fatalf("guess %d: Retry-After %q", i, res.Header.Get("Retry-After"))
		}
	}
	failedChecks(t, env, "wrong password when changing password", throttle.AccountFreeFailures)
	if res := change("analytical engine"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right password while throttled: %d, want 429", res.StatusCode)
	}
	// The password did not change; once the wait is over it can.
	env.Clock.Advance(time.Second)
	if res := change("analytical engine"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("right password after the wait: %d, want 303", res.StatusCode)
	}
}

// TestEveryPasswordCheckSharesTheLimit: sign-in, confirm and password
// change count on the same keys.
func TestEveryPasswordCheckSharesTheLimit(t *testing.T) {
	env := apptest.New(t)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	failSignIns(t, env.Client(t), "ada@example.com", 2)
	for range 2 {
		if res := me.Post("/account/confirm", url.Values{"password": {"guess"}}); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("confirm guess: %d", res.StatusCode)
		}
	}
	if res := me.Post("/account/password", url.Values{"current_password": {"guess"}, "new_password": {"whatever it is"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("password change guess: %d", res.StatusCode)
	}
	c := env.Client(t)
	checkThrottled(t, c, signInAttempt(c, "ada@example.com", "analytical engine"), "ada@example.com", "1 second")
}

// floodClient is a browser whose requests come through a trusted proxy
// (TRUST_PROXY) from the address ip.
func floodClient(t *testing.T, env *apptest.Env, ip string) *apptest.Client {
	c := env.Client(t)
	c.Header.Set("X-Forwarded-For", ip)
	c.CSRFToken()
	return c
}

// TestOneClientCannotQueueMoreThanItsShare: a flood of sign-ins from one
// address gets at most PASSWORD_CONCURRENCY_PER_IP of them waiting for the
// hasher; the rest are refused 429 at once, before any throttle count, and
// another address is not refused.
func TestOneClientCannotQueueMoreThanItsShare(t *testing.T) {
	hasher := busyHasher()
	env := apptest.NewWithHasher(t, hasher, apptest.With("TRUST_PROXY", "true"))
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	const n, perIP = 50, 4 // the default PASSWORD_CONCURRENCY_PER_IP
	clients := make([]*apptest.Client, n)
	for i := range clients {
		clients[i] = floodClient(t, env, "203.0.113.9")
	}
	honest := floodClient(t, env, "198.51.100.7")
	var honestRes *apptest.Response
	res := heldBurst(t, hasher, n+1, perIP+1, func(i int) *apptest.Response {
		if i == n {
			// From another address: not refused, it waits for the hasher too.
			honestRes = signInAttempt(honest, "ada@example.com", "analytical engine")
			return honestRes
		}
		return signInAttempt(clients[i], fmt.Sprintf("user%d@example.com", i), "Summer2026!")
	})
	got := statuses(res[:n])
	if got[http.StatusTooManyRequests] != n-perIP || got[http.StatusUnprocessableEntity] != perIP {
		t.Fatalf("flood statuses %v: want %d evaluated (422), the rest 429", got, perIP)
	}
	for _, r := range res[:n] {
		if r.StatusCode == http.StatusTooManyRequests && r.Header.Get("Retry-After") == "" {
			t.Fatal("a refused request has no Retry-After")
		}
	}
	if honestRes.StatusCode != http.StatusSeeOther {
		t.Fatalf("the sign-in from another address: %d, want 303", honestRes.StatusCode)
	}
	// The refused ones were not counted: the address has 16 free attempts left.
	c := floodClient(t, env, "203.0.113.9")
	for i := range throttle.IPFreeFailures - perIP {
		if res := signInAttempt(c, fmt.Sprintf("more%d@example.com", i), "x"); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("attempt %d after the flood: %d, want 422", i, res.StatusCode)
		}
	}
}

// TestBusyHasherAnswers503AtOnce: when no hashing slot comes free within
// the hasher's short wait, sign-in and sign-up answer 503 with Retry-After
// on their form, counting nothing and creating nothing.
func TestBusyHasherAnswers503AtOnce(t *testing.T) {
	hasher := password.NewHasherWith(password.Limits{Slots: 1, MaxWait: time.Millisecond})
	env := apptest.NewWithHasher(t, hasher)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	defer hasher.Occupy(1)()

	c := env.Client(t)
	for range 2 * throttle.AccountFreeFailures {
		res := signInAttempt(c, "ada@example.com", "guess")
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
			t.Fatalf("sign-in with the hasher busy: %d, Retry-After %q; want 503, 1", res.StatusCode, res.Header.Get("Retry-After"))
		}
		if got := res.Doc(t).Find(`[data-testid="signin-error"]`).Text(); !strings.Contains(got, "busy") {
			t.Fatalf("message %q", got)
		}
	}
	res := c.Post("/signup", url.Values{"name": {"Grace"}, "email": {"grace@example.com"}, "password": {"cobol forever"}})
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
		t.Fatalf("sign-up with the hasher busy: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if _, err := env.App.Users.ByEmail(context.Background(), "grace@example.com"); err == nil {
		t.Fatal("a sign-up refused as busy created the account")
	}
	// None of the refused attempts counted against the account.
	if a, wait, err := throttle.New(env.App.Redis, env.Config.RedisPrefix+"t:", env.Clock.Now).
		Begin(context.Background(), throttle.AccountKey("ada@example.com")); err != nil || wait != 0 || a == nil {
		t.Fatalf("after busy refusals the account waits %v (%v)", wait, err)
	}
}

// signUpAttempt posts the sign-up form once, whatever the outcome.
func signUpAttempt(c *apptest.Client, name, email string) *apptest.Response {
	return c.Post("/signup", url.Values{"name": {name}, "email": {email}, "password": {"a fine password"}})
}

// TestSignUpForAnExistingAddressCountsOnTheIP: probing for accounts through
// the sign-up form counts as failed attempts from the client's address:
// past the address's allowance both sign-up and sign-in are refused.
func TestSignUpForAnExistingAddressCountsOnTheIP(t *testing.T) {
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	prober := env.Client(t)
	env.Clock.Freeze() // the probes inside a 1-second lockout, however slow the machine
	for i := range throttle.IPFreeFailures {
		if res := signUpAttempt(prober, "Probe", "ada@example.com"); res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusSeeOther {
			t.Fatalf("probe %d: status %d", i, res.StatusCode)
		}
	}
	res := signUpAttempt(prober, "Probe", "grace@example.com")
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "1" {
		t.Fatalf("sign-up past the allowance: %d, Retry-After %q; want 429, 1", res.StatusCode, res.Header.Get("Retry-After"))
	}
	doc := res.Doc(t)
	if got := doc.Find(`#email-error`).Text(); got != "Too many attempts. Try again in 1 second." {
		t.Errorf("message %q", got)
	}
	if got, _ := doc.Find(`input[name="email"]`).Attr("value"); got != "grace@example.com" {
		t.Errorf("the form lost the email typed: %q", got)
	}
	if _, err := env.App.Users.ByEmail(context.Background(), "grace@example.com"); err == nil {
		t.Error("a refused sign-up created the account")
	}
	checkThrottled(t, prober, signInAttempt(prober, "ada@example.com", "analytical engine"), "ada@example.com", "1 second")
}

// TestSignUpsPerIPAreCapped: SIGNUP_RATE_PER_IP sign-ups per address per
// hour, however many arrive at once; then 429 with Retry-After and the
// form kept; another address is not refused; the next hour is.
func TestSignUpsPerIPAreCapped(t *testing.T) {
	env := apptest.New(t, apptest.With("SIGNUP_RATE_PER_IP", "3"), apptest.With("TRUST_PROXY", "true"),
		apptest.With("PASSWORD_CONCURRENCY_PER_IP", "0"))
	const n, limit = 10, 3
	clients := make([]*apptest.Client, n)
	for i := range clients {
		clients[i] = floodClient(t, env, "203.0.113.9")
	}
	res := make([]*apptest.Response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { res[i] = signUpAttempt(clients[i], "Bot", fmt.Sprintf("bot%d@example.com", i)) })
	}
	wg.Wait()
	if got := statuses(res); got[http.StatusSeeOther] != limit || got[http.StatusTooManyRequests] != n-limit {
		t.Fatalf("statuses %v: want %d sign-ups, %d refused", got, limit, n-limit)
	}
	created := 0
	for i, r := range res {
		_, err := env.App.Users.ByEmail(context.Background(), fmt.Sprintf("bot%d@example.com", i))
		if err == nil {
			created++
		}
		if r.StatusCode != http.StatusTooManyRequests {
			continue
		}
		if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra <= 3000 || ra > 3600 {
			t.Errorf("Retry-After %d, want the rest of the hour", ra)
		}
		doc := r.Doc(t)
		if got := doc.Find(`#email-error`).Text(); !strings.HasPrefix(got, "Too many sign-ups from your network. Try again in ") {
			t.Errorf("message %q", got)
		}
		if got, _ := doc.Find(`input[name="name"]`).Attr("value"); got != "Bot" {
			t.Errorf("the form lost the name typed: %q", got)
		}
	}
	if created != limit {
		t.Fatalf("%d accounts created, want %d", created, limit)
	}
	floodClient(t, env, "198.51.100.7").SignUp("Grace", "grace@example.com", "cobol forever")
	env.Clock.Advance(time.Hour)
	floodClient(t, env, "203.0.113.9").SignUp("Bot", "next-hour@example.com", "a fine password")
}
