package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
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

// Kinds of key: the prefix of what AccountKey, IPKey and SignUpKey return.
const (
	accountKind  = "a:"
	ipKind       = "ip:"
	signUpKind   = "su:"
	ceremonyKind = "wa:"
	deviceKind   = "dc:"
)

// Limiter counts password attempts in Redis. It holds no state of its own:
// any number of Limiters (app instances) on one Redis and prefix share
// their counters.
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

// slotTag follows the prefix of every counter: an attempt checks and
// counts an account key and an address key in one script, so on a Redis
// Cluster they must share a hash slot. Counters are only touched by
// password attempts and sign-ups, never by the pages a signed-in user
// opens, so one slot carries them easily.
const slotTag = "{t}"

// New returns a Limiter keeping its counters under prefix in rdb's Redis,
// deciding by the clock now (time.Now when nil).
func New(rdb redis.UniversalClient, prefix string, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{rdb: rdb, prefix: prefix + slotTag, now: now}
}

// Key is the Redis key of the counter key (from AccountKey, IPKey or
// SignUpKey).
func (l *Limiter) Key(key string) string { return l.prefix + key }

// AccountKey is the key counting attempts on the account with email,
// whatever its case. The email is hashed, so it is not kept in clear.
func AccountKey(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return accountKind + hex.EncodeToString(sum[:])
}

// SecondFactorKey is the key counting second-factor attempts on the
// account userID. It counts as an account key (AccountFreeFailures), but
// only a proved second factor clears it, not a right password: otherwise
// each sign-in with a known password would buy a fresh set of free
// guesses at the code.
func SecondFactorKey(userID int64) string {
	return accountKind + "2fa:" + strconv.FormatInt(userID, 10)
}

// IPKey is the key counting attempts from the client address ip. An IPv6
// address counts as its /64, the block one subscriber usually gets whole
// (otherwise each of their 2^64 addresses would get its own free
// failures); an IPv4-mapped IPv6 address counts as the IPv4 address.
func IPKey(ip string) string {
	return ipKind + client(ip)
}

// SignUpKey is the key counting sign-ups from the client address ip (as
// IPKey groups addresses), for Take.
func SignUpKey(ip string) string {
	return signUpKind + client(ip)
}

// CeremonyKey is the key counting the passkey ceremonies the client address
// ip starts without being signed in (each keeps a row for a few minutes),
// for Take.
func CeremonyKey(ip string) string {
	return ceremonyKind + client(ip)
}

// DeviceCodeKey is the key counting the device-flow codes the client
// address ip asks for (each keeps a row for a few minutes), for Take.
func DeviceCodeKey(ip string) string {
	return deviceKind + client(ip)
}

// client is the part of a key naming the client address ip.
func client(ip string) string {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		// Not an address (Echo's extractors only return addresses); keep
		// the key short and printable all the same.
		sum := sha256.Sum256([]byte(ip))
		return "?" + hex.EncodeToString(sum[:16])
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
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

// luaCounter starts the attempt scripts. KEYS are the counters (hashes with
// fields n, the attempts, and last, the Unix ms of the last one); ARGV[1]
// is now in Unix ms and ARGV[2] the window in ms. Every time comes from the
// app's clock; the TTL only removes keys that would be read as reset anyway.
const luaCounter = `
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
-- counter reads a key: its attempts within the window, and the last one.
local function counter(key)
  local v = redis.call('HMGET', key, 'n', 'last')
  local n, last = tonumber(v[1]), tonumber(v[2])
  if not n or not last or now - last >= window then return 0, 0 end
  return n, last
end
`

// beginScript checks and counts an attempt in one step. ARGV[3] is the
// base delay and ARGV[4] the cap, in ms; ARGV[4+i] is the free attempts of
// KEYS[i]. It returns the longest wait over the keys, in ms, having counted
// nothing; or 0, having counted the attempt on every key. The wait of a key
// is the delay its count imposes, since its last attempt (an instance whose
// clock runs behind the one that counted never waits longer than the delay
// itself).
var beginScript = redis.NewScript(luaCounter + `
local base, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
-- delay is the wait imposed after the n-th attempt of a key with free
-- free attempts: none before the last free one, then base, doubling, capped.
local function delay(n, free)
  local over = n - free
  if over < 0 then return 0 end
  return math.min(base * 2 ^ math.min(over, 40), cap)
end
local longest = 0
for i, key in ipairs(KEYS) do
  local n, last = counter(key)
  local d = delay(n, tonumber(ARGV[4 + i]))
  local wait = math.min(last + d - now, d)
  if wait > longest then longest = wait end
end
if longest > 0 then return longest end
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, 'n', counter(key) + 1, 'last', ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2])
end
return 0`)

// settleScript settles an attempt on each key as ARGV[2+i] says: "clear"
// deletes KEYS[i]; "one" takes this attempt off it, its last attempt time
// staying (a give-back never shortens a wait another attempt imposed);
// "fail" moves its last attempt time to now, so the wait a failure imposes
// runs from when the password was found wrong, not from when the attempt
// began (a slow hash must not use up the wait).
var settleScript = redis.NewScript(luaCounter + `
for i, key in ipairs(KEYS) do
  local n, last = counter(key)
  local how = ARGV[2 + i]
  if how == 'fail' then
    if n > 0 and last < now then
      redis.call('HSET', key, 'last', ARGV[1])
      redis.call('PEXPIRE', key, ARGV[2])
    end
  elseif how == 'clear' or n <= 1 then
    redis.call('DEL', key)
  else
    redis.call('HSET', key, 'n', n - 1)
  end
end
return 0`)

// Attempt is one password attempt, counted by Begin and settled by one of
// Fail, Succeed or Cancel.
type Attempt struct {
	l    *Limiter
	keys []string // sorted, distinct, unprefixed
}

// Begin counts an attempt on every key, unless one of them must wait:
// then it counts nothing and reports the longest wait. Checking and
// counting are one atomic step, so parallel attempts never get more
// guesses than sequential ones. Call it before the password is checked.
func (l *Limiter) Begin(ctx context.Context, keys ...string) (*Attempt, time.Duration, error) {
	// A key named twice would count twice.
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	args := make([]any, 0, 4+len(keys))
	args = append(args, l.now().UnixMilli(), Window.Milliseconds(), BaseDelay.Milliseconds(), MaxDelay.Milliseconds())
	for _, k := range keys {
		free, err := freeFailures(k)
		if err != nil {
			return nil, 0, err
		}
		args = append(args, free)
	}
	a := &Attempt{l: l, keys: keys}
	if len(keys) == 0 {
		return a, 0, nil
	}
	ms, err := beginScript.Run(ctx, l.rdb, l.redisKeys(keys), args...).Int64()
	if err != nil {
		return nil, 0, fmt.Errorf("throttle begin: %w", err)
	}
	if ms > 0 {
		return nil, time.Duration(ms) * time.Millisecond, nil
	}
	return a, 0, nil
}

// Fail settles an attempt whose password was wrong: it stays counted, and
// the wait it imposes starts now.
func (a *Attempt) Fail(ctx context.Context) error {
	return a.settle(ctx, func(string) string { return "fail" })
}

// Succeed gives back an attempt whose password was right: the account
// keys are cleared; each IP key loses this one attempt and keeps the rest,
// or an attacker could reset their address's count by signing in to an
// account of their own between guesses.
func (a *Attempt) Succeed(ctx context.Context) error {
	return a.settle(ctx, func(key string) string {
		if strings.HasPrefix(key, accountKind) {
			return "clear"
		}
		return "one"
	})
}

// Cancel gives back an attempt whose password was never checked (the
// server was too busy, say): every key loses this one attempt.
func (a *Attempt) Cancel(ctx context.Context) error {
	return a.settle(ctx, func(string) string { return "one" })
}

func (a *Attempt) settle(ctx context.Context, how func(key string) string) error {
	if len(a.keys) == 0 {
		return nil
	}
	args := make([]any, 0, 2+len(a.keys))
	args = append(args, a.l.now().UnixMilli(), Window.Milliseconds())
	for _, k := range a.keys {
		args = append(args, how(k))
	}
	if err := settleScript.Run(ctx, a.l.rdb, a.l.redisKeys(a.keys), args...).Err(); err != nil {
		return fmt.Errorf("throttle settle: %w", err)
	}
	return nil
}

// takeScript counts one event on KEYS[1] within a fixed window that starts
// with the first event: ARGV[1] is now and ARGV[2] the window, in ms, and
// ARGV[3] the cap. It returns 0 having counted, or the wait until the
// window ends, in ms, having counted nothing.
var takeScript = redis.NewScript(`
local now, per, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'n', 'start')
local n, start = tonumber(v[1]), tonumber(v[2])
if not n or not start or now - start >= per then
  n, start = 0, now
  redis.call('HSET', KEYS[1], 'start', ARGV[1])
end
if n >= limit then return math.max(math.min(start + per - now, per), 1) end
redis.call('HSET', KEYS[1], 'n', n + 1)
redis.call('PEXPIRE', KEYS[1], math.max(start + per - now, 1))
return 0`)

// Take counts one event on key (from SignUpKey, CeremonyKey or DeviceCodeKey) unless limit events were
// counted in the current window of length per, which starts with its first
// event; then it counts nothing and reports the wait until the window ends.
// A limit of 0 or less is no limit.
func (l *Limiter) Take(ctx context.Context, key string, limit int, per time.Duration) (time.Duration, error) {
	if limit <= 0 {
		return 0, nil
	}
	if !strings.HasPrefix(key, signUpKind) && !strings.HasPrefix(key, ceremonyKind) && !strings.HasPrefix(key, deviceKind) {
		return 0, fmt.Errorf("throttle: %q is not a key from SignUpKey, CeremonyKey or DeviceCodeKey", key)
	}
	ms, err := takeScript.Run(ctx, l.rdb, []string{l.Key(key)}, l.now().UnixMilli(), per.Milliseconds(), limit).Int64()
	if err != nil {
		return 0, fmt.Errorf("throttle take: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// redisKeys returns the Redis keys of keys.
func (l *Limiter) redisKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = l.Key(k)
	}
	return out
}
