package throttle_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// clock is a test's clock: it moves only when the test says so.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	t      *testing.T
	rdb    redis.UniversalClient
	prefix string
	clock  *clock
	lim    *throttle.Limiter
}

// setup returns a limiter under a random prefix of its own, whose keys are
// removed when t ends.
func setup(t *testing.T) *fixture {
	t.Helper()
	prefix := apptest.RedisPrefix(t)
	rdb := apptest.Redis(t)
	clk := &clock{t: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	return &fixture{t: t, rdb: rdb, prefix: prefix, clock: clk, lim: throttle.New(rdb, prefix, clk.Now)}
}

// begin starts an attempt on keys, returning it (nil when refused) and the
// wait.
func (f *fixture) begin(keys ...string) (*throttle.Attempt, time.Duration) {
	f.t.Helper()
	a, d, err := f.lim.Begin(context.Background(), keys...)
	if err != nil {
		f.t.Fatalf("Begin: %v", err)
	}
	if (a == nil) == (d == 0) {
		f.t.Fatalf("Begin = %v, %v: want an attempt or a wait", a, d)
	}
	return a, d
}

// fail makes a wrong-password attempt on keys, which must be allowed.
func (f *fixture) fail(keys ...string) {
	f.t.Helper()
	a, d := f.begin(keys...)
	if d != 0 {
		f.t.Fatalf("attempt refused, wait %v", d)
	}
	if err := a.Fail(context.Background()); err != nil {
		f.t.Fatalf("Fail: %v", err)
	}
}

// refused asserts that an attempt on keys is refused with the wait want.
func (f *fixture) refused(want time.Duration, keys ...string) {
	f.t.Helper()
	if _, d := f.begin(keys...); d != want {
		f.t.Fatalf("wait %v, want %v", d, want)
	}
}

// succeed makes an attempt on keys whose password is right.
func (f *fixture) succeed(keys ...string) {
	f.t.Helper()
	a, d := f.begin(keys...)
	if d != 0 {
		f.t.Fatalf("right password refused, wait %v", d)
	}
	if err := a.Succeed(context.Background()); err != nil {
		f.t.Fatalf("Succeed: %v", err)
	}
}

// failUntilWait makes wrong-password attempts on keys, waiting out each
// wait on the test clock, until one imposes a wait of want.
func (f *fixture) failUntilWait(want time.Duration, keys ...string) {
	f.t.Helper()
	for range 1000 {
		_, d := f.begin(keys...)
		if d == want {
			return
		}
		f.clock.Advance(d)
	}
	f.t.Fatalf("no wait of %v after 1000 attempts", want)
}

var (
	account = throttle.AccountKey("ada@example.com")
	ip      = throttle.IPKey("192.0.2.7")
)

func TestFreeFailuresThenWait(t *testing.T) {
	f := setup(t)
	for range throttle.AccountFreeFailures {
		f.fail(account, ip)
	}
	// The next attempt is refused, counting nothing.
	f.refused(time.Second, account, ip)
	f.clock.Advance(400 * time.Millisecond)
	f.refused(600*time.Millisecond, account, ip)
	if n := f.fields(account)["n"]; n != "5" {
		t.Fatalf("refused attempts counted: n = %s, want 5", n)
	}
	// The wait is the account's: the IP, with 5 attempts of its 20, is free.
	f.fail(ip)
	f.clock.Advance(600 * time.Millisecond)
	f.fail(account, ip)
}

// TestWaitRunsFromTheFailure: a slow password check does not use up the
// wait its failure imposes.
func TestWaitRunsFromTheFailure(t *testing.T) {
	f := setup(t)
	for range throttle.AccountFreeFailures - 1 {
		f.fail(account)
	}
	a, _ := f.begin(account)
	f.refused(time.Second, account) // counted at once: no parallel guess
	f.clock.Advance(800 * time.Millisecond)
	if err := a.Fail(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.refused(time.Second, account)
	// A late Fail never moves the wait back.
	f.clock.Advance(time.Second)
	f.fail(account)
	f.refused(2*time.Second, account)
	f.clock.Advance(-time.Second)
	if err := a.Fail(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	f.refused(2*time.Second, account)
}

func TestIPLimit(t *testing.T) {
	f := setup(t)
	// One client tries one password on many accounts (password spraying).
	for i := range throttle.IPFreeFailures {
		f.fail(throttle.AccountKey(strings.Repeat("x", i+1)+"@example.com"), ip)
	}
	f.refused(time.Second, throttle.AccountKey("fresh@example.com"), ip)
	f.fail(throttle.AccountKey("fresh@example.com"), throttle.IPKey("192.0.2.8"))
}

// TestParallelAttemptsGetNoMoreGuesses: however many attempts arrive at
// once, at most the free allowance is let through: per account, and per IP
// over many accounts.
func TestParallelAttemptsGetNoMoreGuesses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keys    func(i int) []string
		allowed int
	}{
		{"one account", func(int) []string { return []string{account, throttle.IPKey("192.0.2.1")} }, throttle.AccountFreeFailures},
		{"one IP", func(i int) []string {
			return []string{throttle.AccountKey(fmt.Sprintf("user%d@example.com", i)), ip}
		}, throttle.IPFreeFailures},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			const n = 100
			var allowed atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					a, d, err := f.lim.Begin(context.Background(), tc.keys(i)...)
					switch {
					case err != nil:
						t.Error(err)
					case a != nil:
						allowed.Add(1)
					case d <= 0:
						t.Errorf("refused with wait %v", d)
					}
				})
			}
			close(start)
			wg.Wait()
			if got := allowed.Load(); got != int64(tc.allowed) {
				t.Fatalf("%d of %d parallel attempts allowed, want %d", got, n, tc.allowed)
			}
		})
	}
}

func TestWaitDoubles(t *testing.T) {
	f := setup(t)
	for range throttle.AccountFreeFailures {
		f.fail(account)
	}
	want := time.Second
	for range 8 {
		f.refused(want, account)
		f.clock.Advance(want - time.Millisecond)
		f.refused(time.Millisecond, account)
		f.clock.Advance(time.Millisecond)
		f.fail(account)
		want *= 2
	}
}

func TestWaitIsCapped(t *testing.T) {
	f := setup(t)
	f.failUntilWait(throttle.MaxDelay, account)
	// The attacker stops: the owner waits no longer than the cap.
	f.clock.Advance(throttle.MaxDelay)
	f.succeed(account)
	f.fail(account)
}

func TestSucceedClearsTheAccountKeyAndGivesBackTheIP(t *testing.T) {
	f := setup(t)
	for range throttle.AccountFreeFailures - 1 {
		f.fail(account, ip)
	}
	// The right password, at the last free attempt.
	f.succeed(account, ip)
	if n := f.fields(account); n != nil {
		t.Fatalf("account key after success: %v, want gone", n)
	}
	// The account starts again with its free attempts.
	for range throttle.AccountFreeFailures {
		f.fail(account)
	}
	f.refused(time.Second, account)
	// The IP kept its 4 failures, not the success: 16 more reach its limit.
	for range throttle.IPFreeFailures - (throttle.AccountFreeFailures - 1) {
		f.fail(ip)
	}
	f.refused(time.Second, ip)
}

// TestOwnAccountDoesNotResetTheIP: an attacker who signs in to an account
// of their own between guesses gains no guess.
func TestOwnAccountDoesNotResetTheIP(t *testing.T) {
	f := setup(t)
	own := throttle.AccountKey("mallory@example.com")
	for i := range throttle.IPFreeFailures - 1 {
		f.fail(throttle.AccountKey(fmt.Sprintf("victim%d@example.com", i)), ip)
		f.succeed(own, ip)
	}
	f.fail(throttle.AccountKey("last@example.com"), ip)
	f.refused(time.Second, own, ip)
}

func TestCancelGivesBackEveryKey(t *testing.T) {
	f := setup(t)
	for range throttle.AccountFreeFailures - 1 {
		f.fail(account, ip)
	}
	// Never evaluated, any number of times: nothing is used up.
	for range 10 {
		a, _ := f.begin(account, ip)
		if err := a.Cancel(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	f.fail(account, ip)
	f.refused(time.Second, account, ip)
	if n := f.fields(ip)["n"]; n != "5" {
		t.Errorf("IP count %s after cancels, want 5", n)
	}
}

func TestCountersResetAfterWindow(t *testing.T) {
	f := setup(t)
	for range throttle.AccountFreeFailures {
		f.fail(account)
	}
	// Within the window the count stands...
	f.clock.Advance(throttle.Window - time.Millisecond)
	f.fail(account)
	f.refused(2*time.Second, account)
	// ...an hour after the last attempt it is forgotten, even though Redis
	// (whose clock did not move) still holds the key.
	f.clock.Advance(throttle.Window)
	for range throttle.AccountFreeFailures {
		f.fail(account)
	}
	f.refused(time.Second, account)
	// Redis removes the key by itself some time after the window.
	ttl, err := f.rdb.PTTL(context.Background(), f.lim.Key(account)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > throttle.Window {
		t.Errorf("PTTL = %dms, want up to %v", ttl, throttle.Window)
	}
}

func TestInstancesShareState(t *testing.T) {
	f := setup(t)
	// Another instance: its own pool and clock, the same Redis and prefix.
	other := throttle.New(apptest.Redis(t), f.prefix, f.clock.Now)
	for range throttle.AccountFreeFailures {
		f.fail(account)
	}
	a, d, err := other.Begin(context.Background(), account)
	if err != nil || a != nil || d != time.Second {
		t.Fatalf("other instance: Begin = %v, %v, %v; want a 1s wait", a, d, err)
	}
	f.clock.Advance(time.Second)
	a, _, err = other.Begin(context.Background(), account)
	if err != nil || a == nil {
		t.Fatalf("other instance after the wait: %v, %v", a, err)
	}
	// Its attempt counts on top of the first instance's.
	f.refused(2*time.Second, account)
	if err := a.Succeed(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.fail(account)
}

func TestTakeCapsEvents(t *testing.T) {
	f := setup(t)
	key := throttle.SignUpKey("192.0.2.7")
	take := func() time.Duration {
		t.Helper()
		d, err := f.lim.Take(context.Background(), key, 30, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// A parallel burst gets exactly the cap.
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 60 {
		wg.Go(func() {
			if d, err := f.lim.Take(context.Background(), key, 30, time.Hour); err != nil {
				t.Error(err)
			} else if d == 0 {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 30 {
		t.Fatalf("%d of 60 parallel events allowed, want 30", allowed.Load())
	}
	// The wait is until the hour since the first event is over.
	f.clock.Advance(20 * time.Minute)
	if d := take(); d != 40*time.Minute {
		t.Fatalf("wait %v, want 40m", d)
	}
	f.clock.Advance(40 * time.Minute)
	if d := take(); d != 0 {
		t.Fatalf("a new hour: wait %v", d)
	}
	// Another address has its own cap; no cap at all with a limit of 0.
	if d, err := f.lim.Take(context.Background(), throttle.SignUpKey("192.0.2.8"), 1, time.Hour); d != 0 || err != nil {
		t.Fatalf("another address: %v, %v", d, err)
	}
	for range 3 {
		if d, err := f.lim.Take(context.Background(), throttle.SignUpKey("192.0.2.9"), 0, time.Hour); d != 0 || err != nil {
			t.Fatalf("no cap: %v, %v", d, err)
		}
	}
}

func TestKeys(t *testing.T) {
	if throttle.AccountKey(" Ada@Example.COM ") != throttle.AccountKey("ada@example.com") {
		t.Error("account key depends on case or spaces")
	}
	if throttle.AccountKey("ada@example.com") == throttle.AccountKey("grace@example.com") {
		t.Error("two accounts share a key")
	}
	if k := throttle.AccountKey("ada@example.com"); strings.Contains(k, "ada") || len(k) != len("a:")+64 {
		t.Errorf("account key %q: want a: and a sha256 hex, no email in clear", k)
	}
	for in, want := range map[string]string{
		"192.0.2.7":               "ip:192.0.2.7",
		"::ffff:192.0.2.7":        "ip:192.0.2.7",
		"2001:db8:1:2:3:4:5:6":    "ip:2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9":    "ip:2001:db8:1:2::/64",
		"fe80::1%eth0":            "ip:fe80::/64",
		"2001:db8:1:3:3:4:5:6":    "ip:2001:db8:1:3::/64",
		" 198.51.100.1 ":          "ip:198.51.100.1",
		"2001:DB8:1:2:0:0:0:0001": "ip:2001:db8:1:2::/64",
	} {
		if got := throttle.IPKey(in); got != want {
			t.Errorf("IPKey(%q) = %q, want %q", in, got, want)
		}
	}
	if k := throttle.IPKey("not an address"); !strings.HasPrefix(k, "ip:") || strings.Contains(k, " ") {
		t.Errorf("IPKey of garbage = %q", k)
	}
	if k := throttle.SignUpKey("2001:db8:1:2:3:4:5:6"); k != "su:2001:db8:1:2::/64" {
		t.Errorf("SignUpKey = %q", k)
	}
}

func TestForeignKeysAreRefused(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	if _, _, err := f.lim.Begin(ctx, "ada@example.com"); err == nil {
		t.Error("Begin took a key not made by AccountKey or IPKey")
	}
	if _, _, err := f.lim.Begin(ctx, account, throttle.SignUpKey("192.0.2.7")); err == nil {
		t.Error("Begin took a sign-up key")
	}
	if _, err := f.lim.Take(ctx, ip, 1, time.Hour); err == nil {
		t.Error("Take took a key not made by SignUpKey")
	}
	if f.fields(account) != nil {
		t.Error("a refused Begin counted")
	}
	if a, d, err := f.lim.Begin(ctx); a == nil || d != 0 || err != nil {
		t.Errorf("Begin of no keys = %v, %v, %v", a, d, err)
	}
}

func TestRepeatedKeyCountsOnce(t *testing.T) {
	f := setup(t)
	for range throttle.AccountFreeFailures {
		f.fail(account, account)
	}
	if n := f.fields(account)["n"]; n != "5" {
		t.Errorf("n = %s after 5 attempts naming the key twice", n)
	}
}

// fields returns the raw hash of key, or nil if it does not exist.
func (f *fixture) fields(key string) map[string]string {
	f.t.Helper()
	m, err := f.rdb.HGetAll(context.Background(), f.lim.Key(key)).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
