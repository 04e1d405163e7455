package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// The policy.
const (
	// AccountFreeFailures is how many wrong passwords an account takes
	// before any wait: enough for a person who mistypes or tries their usual
	// few passwords, far too few for guessing.
	AccountFreeFailures = 5
	// IPFreeFailures is how many failures one client address makes before
	// any wait, whatever accounts they were for. It stops one host from
	// spraying a common password over many accounts (which the per-account
	// limit never sees), and is higher than the account limit because an
	// office or a carrier NAT puts many honest people behind one address.
	IPFreeFailures = 20
	// BaseDelay is the first wait, after the last free failure; every
	// further failure doubles it.
	BaseDelay = time.Second
	// MaxDelay caps the wait, so an attacker can never lock a victim out
	// for longer than this after they stop guessing (a hard lock-out would
	// hand them a denial of service on any account whose email they know).
	MaxDelay = 15 * time.Minute
	// Window is how long a key remembers failures after the last one: an
	// hour without failures and the count starts again from zero.
	Window = time.Hour
)

// Kinds of key: the prefix of what AccountKey and IPKey return.
const (
	accountKind = "a:"
	ipKind      = "ip:"
)

// Limiter counts failed sign-ins in Redis. It holds no state of its own:
// any number of Limiters (app instances) on one Redis and prefix share
// their counters.
type Limiter struct {
	pool   *redis.Pool
	prefix string
	now    func() time.Time
}

// New returns a Limiter keeping its counters under prefix in pool's Redis,
// deciding by the clock now (time.Now when nil).
func New(pool *redis.Pool, prefix string, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{pool: pool, prefix: prefix, now: now}
}

// AccountKey is the key counting failures for the account with email,
// whatever its case. The email is hashed, so it is not kept in clear.
func AccountKey(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return accountKind + hex.EncodeToString(sum[:])
}

// IPKey is the key counting failures from the client address ip. An IPv6
// address counts as its /64, the block one subscriber usually gets whole
// (otherwise each of their 2^64 addresses would get its own free
// failures); an IPv4-mapped IPv6 address counts as the IPv4 address.
func IPKey(ip string) string {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		// Not an address (Echo's extractors only return addresses); keep
		// the key short and printable all the same.
		sum := sha256.Sum256([]byte(ip))
		return ipKind + "?" + hex.EncodeToString(sum[:16])
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return ipKind + p.String()
	}
	return ipKind + addr.String()
}

// freeFailures is the policy of key, by its kind.
func freeFailures(key string) (int, error) {
	switch {
	case strings.HasPrefix(key, accountKind):
		return AccountFreeFailures, nil
	case strings.HasPrefix(key, ipKind):
		return IPFreeFailures, nil
	}
	return 0, fmt.Errorf("throttle: %q is not a key from AccountKey or IPKey", key)
}

// The scripts share their arguments: KEYS are the counters (hashes with
// fields n, the failures, and last, the Unix ms of the last one); ARGV[1]
// is now in Unix ms, ARGV[2] the window, ARGV[3] the base delay and ARGV[4]
// the cap, all in ms; ARGV[4+i] is the free failures of KEYS[i]. Both return
// the longest wait over the keys, in ms. Every time comes from the app's
// clock; the TTL only removes keys that would be read as reset anyway.
const luaCommon = `
local now, window, base, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
-- delay is the wait imposed after the n-th failure of a key with free
-- free failures: none before the last free one, then base, doubling, capped.
local function delay(n, free)
  local over = n - free
  if over < 0 then return 0 end
  return math.min(base * 2 ^ math.min(over, 40), cap)
end
-- counter reads a key: its failures within the window, and the last one.
local function counter(key)
  local v = redis.call('HMGET', key, 'n', 'last')
  local n, last = tonumber(v[1]), tonumber(v[2])
  if not n or not last or now - last >= window then return 0, 0 end
  return n, last
end
local longest = 0
`

// check reports the wait before another attempt: the delay of each key
// since its last failure. (An instance whose clock runs behind the one that
// recorded the failure never waits longer than the delay itself.)
var checkScript = redis.NewScript(-1, luaCommon+`
for i, key in ipairs(KEYS) do
  local n, last = counter(key)
  local d = delay(n, tonumber(ARGV[4 + i]))
  local wait = math.min(last + d - now, d)
  if wait > longest then longest = wait end
end
return longest`)

// fail counts a failure on every key and returns the wait it imposes.
var failScript = redis.NewScript(-1, luaCommon+`
for i, key in ipairs(KEYS) do
  local n = counter(key) + 1
  redis.call('HSET', key, 'n', n, 'last', ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2])
  local d = delay(n, tonumber(ARGV[4 + i]))
  if d > longest then longest = d end
end
return longest`)

// Check reports how long the caller must wait before another attempt on
// any of keys (0 = allowed now).
func (l *Limiter) Check(ctx context.Context, keys ...string) (time.Duration, error) {
	wait, err := l.run(ctx, checkScript, keys)
	if err != nil {
		return 0, fmt.Errorf("throttle check: %w", err)
	}
	return wait, nil
}

// Fail records a failed attempt on each key and returns the wait now
// imposed (the longest over keys).
func (l *Limiter) Fail(ctx context.Context, keys ...string) (time.Duration, error) {
	wait, err := l.run(ctx, failScript, keys)
	if err != nil {
		return 0, fmt.Errorf("throttle fail: %w", err)
	}
	return wait, nil
}

// Succeed clears the account keys among keys after a successful sign-in.
// IP keys are left to expire: otherwise an attacker could reset their
// address's count by signing in to an account of their own between guesses.
func (l *Limiter) Succeed(ctx context.Context, keys ...string) error {
	var args []any
	for _, k := range slices.Compact(slices.Sorted(slices.Values(keys))) {
		if _, err := freeFailures(k); err != nil {
			return err
		}
		if strings.HasPrefix(k, accountKind) {
			args = append(args, l.prefix+k)
		}
	}
	if len(args) == 0 {
		return nil
	}
	conn, err := l.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("throttle succeed: %w", err)
	}
	defer conn.Close()
	if _, err := redis.DoContext(conn, ctx, "DEL", args...); err != nil {
		return fmt.Errorf("throttle succeed: %w", err)
	}
	return nil
}

// run evaluates script (check or fail) on keys in one round trip.
func (l *Limiter) run(ctx context.Context, script *redis.Script, keys []string) (time.Duration, error) {
	// A key named twice would count twice.
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	if len(keys) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 5+2*len(keys))
	args = append(args, len(keys))
	for _, k := range keys {
		args = append(args, l.prefix+k)
	}
	args = append(args, l.now().UnixMilli(), Window.Milliseconds(), BaseDelay.Milliseconds(), MaxDelay.Milliseconds())
	for _, k := range keys {
		free, err := freeFailures(k)
		if err != nil {
			return 0, err
		}
		args = append(args, free)
	}
	conn, err := l.pool.GetContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ms, err := redis.Int64(script.DoContext(ctx, conn, args...))
	if err != nil {
		return 0, err
	}
	return time.Duration(ms) * time.Millisecond, nil
}
