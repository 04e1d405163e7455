package throttle_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

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
	pool   *redis.Pool
	prefix string
	clock  *clock
	lim    *throttle.Limiter
}

// setup returns a limiter under a random prefix of its own, whose keys are
// removed when t ends.
func setup(t *testing.T) *fixture {
	t.Helper()
	prefix := apptest.RedisPrefix(t)
	pool := apptest.RedisPool(t)
	clk := &clock{t: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	return &fixture{t: t, pool: pool, prefix: prefix, clock: clk, lim: throttle.New(pool, prefix, clk.Now)}
}

func (f *fixture) check(keys ...string) time.Duration {
	f.t.Helper()
	d, err := f.lim.Check(context.Background(), keys...)
	if err != nil {
		f.t.Fatalf("Check: %v", err)
	}
	return d
}

func (f *fixture) fail(keys ...string) time.Duration {
	f.t.Helper()
	d, err := f.lim.Fail(context.Background(), keys...)
	if err != nil {
		f.t.Fatalf("Fail: %v", err)
	}
	return d
}

func (f *fixture) succeed(keys ...string) {
	f.t.Helper()
	if err := f.lim.Succeed(context.Background(), keys...); err != nil {
		f.t.Fatalf("Succeed: %v", err)
	}
}

var (
	account = throttle.AccountKey("ada@example.com")
	ip      = throttle.IPKey("192.0.2.7")
)

func TestFreeFailuresThenWait(t *testing.T) {
	f := setup(t)
	for i := 1; i < throttle.AccountFreeFailures; i++ {
		if d := f.fail(account, ip); d != 0 {
			t.Fatalf("failure %d imposed a wait of %v", i, d)
		}
		if d := f.check(account, ip); d != 0 {
			t.Fatalf("after failure %d: wait %v, want none", i, d)
		}
	}
	if d := f.fail(account, ip); d != time.Second {
		t.Fatalf("last free failure imposed %v, want 1s", d)
	}
	if d := f.check(account, ip); d != time.Second {
		t.Fatalf("Check = %v, want 1s", d)
	}
	f.clock.Advance(400 * time.Millisecond)
	if d := f.check(account, ip); d != 600*time.Millisecond {
		t.Fatalf("400ms later: Check = %v, want 600ms", d)
	}
	// The wait is the account's: the IP, with 5 failures of its 20, is free.
	if d := f.check(ip); d != 0 {
		t.Fatalf("IP alone: Check = %v, want 0", d)
	}
	f.clock.Advance(600 * time.Millisecond)
	if d := f.check(account, ip); d != 0 {
		t.Fatalf("after the wait: Check = %v, want 0", d)
	}
}

func TestIPLimit(t *testing.T) {
	f := setup(t)
	// One client tries one password on many accounts (password spraying).
	for i := 1; i < throttle.IPFreeFailures; i++ {
		acct := throttle.AccountKey(strings.Repeat("x", i) + "@example.com")
		if d := f.fail(acct, ip); d != 0 {
			t.Fatalf("failure %d imposed %v", i, d)
		}
	}
	if d := f.fail(throttle.AccountKey("last@example.com"), ip); d != time.Second {
		t.Fatalf("20th failure from one IP imposed %v, want 1s", d)
	}
	if d := f.check(throttle.AccountKey("fresh@example.com"), ip); d != time.Second {
		t.Fatalf("fresh account from the same IP: wait %v, want 1s", d)
	}
	if d := f.check(throttle.AccountKey("fresh@example.com"), throttle.IPKey("192.0.2.8")); d != 0 {
		t.Fatalf("another IP: wait %v, want 0", d)
	}
}

func TestWaitDoubles(t *testing.T) {
	f := setup(t)
	for range throttle.AccountFreeFailures - 1 {
		f.fail(account)
	}
	want := time.Second
	for range 8 {
		if d := f.fail(account); d != want {
			t.Fatalf("Fail = %v, want %v", d, want)
		}
		if d := f.check(account); d != want {
			t.Fatalf("Check = %v, want %v", d, want)
		}
		f.clock.Advance(want)
		if d := f.check(account); d != 0 {
			t.Fatalf("after waiting %v: Check = %v", want, d)
		}
		want *= 2
	}
}

func TestWaitIsCapped(t *testing.T) {
	f := setup(t)
	var d time.Duration
	for range 200 {
		d = f.fail(account)
	}
	if d != throttle.MaxDelay {
		t.Fatalf("after 200 failures: Fail = %v, want the cap %v", d, throttle.MaxDelay)
	}
	if d := f.check(account); d != throttle.MaxDelay {
		t.Fatalf("Check = %v, want %v", d, throttle.MaxDelay)
	}
	// The attacker stops: the owner waits no longer than the cap.
	f.clock.Advance(throttle.MaxDelay)
	if d := f.check(account); d != 0 {
		t.Fatalf("a cap after the last failure: Check = %v, want 0", d)
	}
	// Failures keep counting within the window: the next one is capped again.
	if d := f.fail(account); d != throttle.MaxDelay {
		t.Fatalf("next failure: %v, want %v", d, throttle.MaxDelay)
	}
}

func TestSucceedClearsTheAccountKeyOnly(t *testing.T) {
	f := setup(t)
	for range throttle.AccountFreeFailures {
		f.fail(account, ip)
	}
	f.clock.Advance(time.Second)
	f.succeed(account, ip)
	if n := f.fields(account); n != nil {
		t.Fatalf("account key after success: %v, want gone", n)
	}
	// The account starts again with its free failures.
	for range throttle.AccountFreeFailures - 1 {
		if d := f.fail(account); d != 0 {
			t.Fatalf("failure after success imposed %v", d)
		}
	}
	// The IP kept its 5 failures: 15 more reach its limit.
	for i := 1; i < throttle.IPFreeFailures-throttle.AccountFreeFailures; i++ {
		if d := f.fail(ip); d != 0 {
			t.Fatalf("IP failure %d imposed %v", i, d)
		}
	}
	if d := f.fail(ip); d != time.Second {
		t.Fatalf("20th IP failure imposed %v: success cleared the IP count", d)
	}
}

func TestCountersResetAfterWindow(t *testing.T) {
	f := setup(t)
	for range throttle.AccountFreeFailures + 2 {
		f.fail(account)
	}
	// Within the window the count stands (7 failures, the 8th waits 8s)...
	f.clock.Advance(throttle.Window - time.Millisecond)
	if d := f.fail(account); d != 8*time.Second {
		t.Fatalf("failure within the window imposed %v, want 8s", d)
	}
	// ...an hour after the last failure it is forgotten, even though Redis
	// (whose clock did not move) still holds the key.
	f.clock.Advance(throttle.Window)
	if d := f.check(account); d != 0 {
		t.Fatalf("after the window: Check = %v", d)
	}
	for i := 1; i < throttle.AccountFreeFailures; i++ {
		if d := f.fail(account); d != 0 {
			t.Fatalf("failure %d after the window imposed %v", i, d)
		}
	}
	if d := f.fail(account); d != time.Second {
		t.Fatalf("5th failure after the window imposed %v, want 1s", d)
	}
	// Redis removes the key by itself some time after the window.
	conn := f.pool.Get()
	defer conn.Close()
	ttl, err := redis.Int64(conn.Do("PTTL", f.prefix+account))
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > throttle.Window.Milliseconds() {
		t.Errorf("PTTL = %dms, want up to %v", ttl, throttle.Window)
	}
}

func TestInstancesShareState(t *testing.T) {
	f := setup(t)
	// Another instance: its own pool and clock, the same Redis and prefix.
	other := throttle.New(apptest.RedisPool(t), f.prefix, f.clock.Now)
	for range throttle.AccountFreeFailures {
		f.fail(account)
	}
	d, err := other.Check(context.Background(), account)
	if err != nil || d != time.Second {
		t.Fatalf("other instance: Check = %v, %v; want 1s", d, err)
	}
	f.clock.Advance(time.Second)
	// Its failure counts on top of the first instance's.
	if d, err := other.Fail(context.Background(), account); err != nil || d != 2*time.Second {
		t.Fatalf("other instance: Fail = %v, %v; want 2s", d, err)
	}
	if d := f.check(account); d != 2*time.Second {
		t.Fatalf("first instance: Check = %v, want 2s", d)
	}
	if err := other.Succeed(context.Background(), account); err != nil {
		t.Fatal(err)
	}
	if d := f.check(account); d != 0 {
		t.Fatalf("first instance after the other's success: Check = %v", d)
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
}

func TestForeignKeysAreRefused(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	if _, err := f.lim.Check(ctx, "ada@example.com"); err == nil {
		t.Error("Check took a key not made by AccountKey or IPKey")
	}
	if _, err := f.lim.Fail(ctx, account, "x"); err == nil {
		t.Error("Fail took a key not made by AccountKey or IPKey")
	}
	if err := f.lim.Succeed(ctx, "x"); err == nil {
		t.Error("Succeed took a key not made by AccountKey or IPKey")
	}
	if f.fields(account) != nil {
		t.Error("a refused Fail counted")
	}
	if d, err := f.lim.Check(ctx); d != 0 || err != nil {
		t.Errorf("Check of no keys = %v, %v", d, err)
	}
}

func TestRepeatedKeyCountsOnce(t *testing.T) {
	f := setup(t)
	for i := 1; i < throttle.AccountFreeFailures; i++ {
		if d := f.fail(account, account); d != 0 {
			t.Fatalf("failure %d (key named twice) imposed %v", i, d)
		}
	}
}

// fields returns the raw hash of key, or nil if it does not exist.
func (f *fixture) fields(key string) map[string]string {
	f.t.Helper()
	conn := f.pool.Get()
	defer conn.Close()
	m, err := redis.StringMap(conn.Do("HGETALL", f.prefix+key))
	if err != nil {
		f.t.Fatal(err)
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
