// Package redisstore is the sessions' Redis store: the only place that
// knows key names (keys.go) and Lua. Every script is headed by one line
// per KEYS and ARGV entry and one for its result, and has a test of its
// own named after it (scripts_test.go).
//
// Store implements scs's CtxStore with an authenticated Find: one Lua
// script reads the session data, reads the session's owner ("<user
// id>:<public id>", kept under P o:{T}<token>), checks the user hash still
// names this token, and slides the idle expiry. A signed-in request that
// changes nothing costs that one command: CommitCtx writes only data that
// changed (sign-in, re-authentication, the once-a-minute last-seen mark).
//
// Every key a script touches carries the user's tag T (keys.go), so it
// runs on one Redis Cluster slot, and names only its KEYS. An app's access
// token resolves through the same script (FindAccess).
//
// Expiry never comes from an instance's clock. scs hands CommitCtx an
// absolute expiry computed from the local clock, which an instance minutes
// behind or ahead would get wrong; the store ignores it. The owner key is
// set at sign-in with a relative TTL of the absolute lifetime, and the
// data's TTL is always the smaller of the idle timeout and what is left
// of the owner key's TTL, both relative and measured by Redis (findScript,
// commitScript). A renewal moves the owner key's remaining TTL to the new
// token, so the absolute deadline stays where sign-in put it.
//
// Errors are go-redis's, classified where the client is made
// (redisconn): errors.Is(err, redisconn.ErrUnavailable) holds for every
// error that means Redis cannot serve.
package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures a Store.
type Config struct {
	Redis    redis.UniversalClient // from redisconn.New
	Keys     Keys
	Idle     time.Duration // 0: no idle timeout
	Lifetime time.Duration
	Logger   *slog.Logger
}

// Store reads and writes sessions in Redis.
type Store struct {
	rdb      redis.UniversalClient
	keys     Keys
	idle     time.Duration
	lifetime time.Duration
	log      *slog.Logger

	// How many replicas acknowledge revokes, and how many did not in time
	// (durable.go).
	revokeReplicas atomic.Int32
	revokeMisses   atomic.Int64
}

// New returns a Store.
func New(c Config) *Store {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Store{rdb: c.Redis, keys: c.Keys, idle: c.Idle, lifetime: c.Lifetime, log: log}
}

// Keys returns the store's key names, for tests and tools that look at
// Redis behind its back.
func (s *Store) Keys() Keys { return s.keys }

// findScript looks a session up, and slides its idle expiry when it is
// live. A session found revoked has its data deleted here. One whose data
// has gone idle while its owner key (the absolute lifetime) lives on is
// reported like a revoked one, so that the page explaining the end can
// name its device (handlers' flashes).
var findScript = redis.NewScript(`
-- KEYS[1]  the session data
-- KEYS[2]  the session's owner key
-- KEYS[3]  the user hash (of the cookie's tag)
-- ARGV[1]  the token ("app:<token>" for an access token)
-- ARGV[2]  the idle timeout, ms (0: none, and no sliding)
-- Result: {} when there is neither data nor owner (or the owner's hash is
--   another user's); {data} for data without an owner; {data, uid, sid,
--   "1", name, email, role} for a live session; {"", uid, sid, "0", end
--   mark} for a revoked or idle-expired one, the mark "" once the end is
--   recorded or when nothing revoked it.
local data = redis.call('GET', KEYS[1])
local owner = redis.call('GET', KEYS[2])
if not owner then return data and {data} or {} end
local uid, sid = string.match(owner, '^(%d+):(.+)$')
local v = redis.call('HMGET', KEYS[3], 's:' .. sid, 'name', 'email', 'role', 'e:' .. sid, 'uid')
if v[6] and v[6] ~= uid then return data and {data} or {} end
if not data or v[1] ~= ARGV[1] then
  if data then redis.call('DEL', KEYS[1]) end
  return {'', uid, sid, '0', v[5] or ''}
end
local idle = tonumber(ARGV[2])
if idle > 0 then
  local left = redis.call('PTTL', KEYS[2])
  if left > 0 and left < idle then idle = left end
  redis.call('PEXPIRE', KEYS[1], idle)
end
return {data, uid, sid, '1', v[2] or '', v[3] or '', v[4] or ''}`)

// Lookup is the store's state for one request. The session middleware
// puts an empty one in the context it gives scs.Load (WithLookup);
// FindCtx fills in what it learned about the session's owner, and sign-in
// (Restart) and renewal (RenewFrom) say what the next commit is.
type Lookup struct {
	// Tag is the session's tag (from its cookie, or from its user at
	// sign-in); "" for a session from before tags.
	Tag               string
	UserID            int64
	PublicID          string
	Live              bool
	Name, Email, Role string
	Revoked           bool
	EndMark           string // of a revoked session whose end is not yet recorded

	// RenewFrom is the token a renewal is replacing: scs's RenewToken must
	// not delete its data, and the next commit moves the session from it.
	RenewFrom string

	// saved is the session's data as Redis holds it (found, or last
	// committed): a commit of the same bytes writes nothing, since the
	// lookup has slid the expiry already.
	saved []byte
	// fresh is the token a sign-in is starting with: its data is written
	// before its owner key exists, with the whole lifetime ahead of it.
	fresh string
}

// Restart makes the lookup a sign-in's: the next commit stores token's
// data under tag, before the session is registered.
func (lk *Lookup) Restart(tag, token string) {
	lk.Tag, lk.fresh = tag, token
	lk.Live, lk.saved = false, nil
}

type lookupKey struct{}

// WithLookup returns ctx carrying lk for the store.
func WithLookup(ctx context.Context, lk *Lookup) context.Context {
	return context.WithValue(ctx, lookupKey{}, lk)
}

// LookupOf returns the request's lookup, nil when there is none.
func LookupOf(ctx context.Context) *Lookup {
	lk, _ := ctx.Value(lookupKey{}).(*Lookup)
	return lk
}

// ErrRenewRefused means the session ended while its token was being
// renewed.
var ErrRenewRefused = errors.New("session ended during renewal")

// commitScript saves a session's data, or extends its expiry. The TTL is
// the idle timeout, capped by what is left of the owner key's TTL (the
// absolute lifetime), both relative. It never brings expired data back,
// and extends the expiry even when Redis refuses the new data (out of
// memory under noeviction: PEXPIRE needs no memory).
var commitScript = redis.NewScript(`
-- KEYS[1]  the session data
-- KEYS[2]  the session's owner key
-- ARGV[1]  the idle timeout, ms (0: none)
-- ARGV[2]  the lifetime, ms, for a token not yet registered (0: the owner key must exist)
-- ARGV[3]  the data; absent: only extend the expiry
-- Result: 1 when saved (or extended), 0 when the session no longer exists,
--   Redis's error when it refused the data.
local ttl = redis.call('PTTL', KEYS[2])
if ttl < 0 then ttl = tonumber(ARGV[2]) end
if ttl <= 0 then return 0 end
local idle = tonumber(ARGV[1])
if idle > 0 and idle < ttl then ttl = idle end
if not ARGV[3] then return redis.call('PEXPIRE', KEYS[1], ttl) end
if ARGV[2] == '0' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local saved = redis.pcall('SET', KEYS[1], ARGV[3], 'PX', ttl)
if type(saved) == 'table' and saved.err then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return saved
end
return 1`)

// renewScript moves a live session to a new token in an order that never
// shows it expired: the new data, the new owner key (with what is left of
// the old one's TTL, so the absolute deadline does not move), then the
// switch of the user hash's field, then the old token's keys gone; all in
// one atomic step, on the user's slot.
var renewScript = redis.NewScript(`
-- KEYS[1]  the user hash
-- KEYS[2]  the old owner key
-- KEYS[3]  the new owner key
-- KEYS[4]  the old data
-- KEYS[5]  the new data
-- ARGV[1]  the session's field, "s:<public id>"
-- ARGV[2]  the old token
-- ARGV[3]  the new token
-- ARGV[4]  the data
-- ARGV[5]  the idle timeout, ms (0: none)
-- Result: 1 when moved; 0 if the field no longer names the old token
--   (revoked meanwhile) or the session has expired.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
local left = redis.call('PTTL', KEYS[2])
if left <= 0 then return 0 end
local ttl = left
local idle = tonumber(ARGV[5])
if idle > 0 and idle < ttl then ttl = idle end
redis.call('SET', KEYS[5], ARGV[4], 'PX', ttl)
redis.call('SET', KEYS[3], redis.call('GET', KEYS[2]), 'PX', left)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('DEL', KEYS[2], KEYS[4])
return 1`)

// CommitCtx implements scs's CtxStore commit. It ignores expiry, which scs
// computed from this instance's clock (see the package comment).
func (s *Store) CommitCtx(ctx context.Context, token string, b []byte, _ time.Time) error {
	lk := LookupOf(ctx)
	if lk == nil {
		lk = &Lookup{}
	}
	if lk.RenewFrom != "" && lk.RenewFrom != token {
		t := lk.Tag
		ok, err := renewScript.Run(ctx, s.rdb, []string{s.keys.User(t, lk.UserID), s.keys.Owner(t, lk.RenewFrom), s.keys.Owner(t, token),
			s.keys.Data(t, lk.RenewFrom), s.keys.Data(t, token)},
			sessionField+lk.PublicID, lk.RenewFrom, token, b, s.idle.Milliseconds()).Int()
		if err != nil {
			return fmt.Errorf("renew session: %w", err)
		}
		if ok == 0 {
			return ErrRenewRefused
		}
		lk.saved = b
		return nil
	}
	if lk.Live && bytes.Equal(b, lk.saved) {
		return nil // unchanged, and findScript has slid the expiry
	}
	var lifetime int64
	if token == lk.fresh {
		lifetime = s.lifetime.Milliseconds()
	}
	args := []any{s.idle.Milliseconds(), lifetime}
	if !bytes.Equal(b, lk.saved) {
		args = append(args, b)
	}
	if err := commitScript.Run(ctx, s.rdb, []string{s.keys.Data(lk.Tag, token), s.keys.Owner(lk.Tag, token)}, args...).Err(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	if len(args) == 3 {
		lk.saved = b
	}
	return nil
}

// DeleteCtx implements scs's CtxStore delete, except for the token a
// renewal is replacing: scs's RenewToken deletes the old data before
// anything else, which would make the live session look expired until the
// new token is in place; renewScript deletes it after the switch instead.
func (s *Store) DeleteCtx(ctx context.Context, token string) error {
	lk := LookupOf(ctx)
	if lk != nil && lk.RenewFrom != "" && token == lk.RenewFrom {
		return nil
	}
	tag := ""
	if lk != nil {
		tag = lk.Tag
	}
	if err := s.rdb.Del(ctx, s.keys.Data(tag, token)).Err(); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// FindCtx implements scs's CtxStore lookup.
func (s *Store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	lk := LookupOf(ctx)
	tag := ""
	if lk != nil {
		tag = lk.Tag
	}
	userKey := s.keys.User(tag, 0)
	if tag == "" {
		// A session from before tags: its user hash is named by the user
		// id, read from the owner key first (a second round trip until
		// such sessions have ended).
		owner, err := s.rdb.Get(ctx, s.keys.Owner("", token)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, false, fmt.Errorf("find session: %w", err)
		}
		if owner == "" {
			return nil, false, nil // no session (or one not yet registered)
		}
		uid, _, _ := strings.Cut(owner, ":")
		id, _ := strconv.ParseInt(uid, 10, 64)
		userKey = s.keys.User("", id)
	}
	vals, err := findScript.Run(ctx, s.rdb, []string{s.keys.Data(tag, token), s.keys.Owner(tag, token), userKey},
		token, s.idle.Milliseconds()).StringSlice()
	if err != nil {
		return nil, false, fmt.Errorf("find session: %w", err)
	}
	if len(vals) == 0 {
		return nil, false, nil
	}
	data := []byte(vals[0])
	if len(vals) == 1 || lk == nil {
		return data, len(data) > 0, nil
	}
	strs := vals[1:]
	lk.UserID, _ = strconv.ParseInt(strs[0], 10, 64)
	lk.PublicID = strs[1]
	if strs[2] != "1" {
		lk.Revoked = true
		if len(strs) > 3 {
			lk.EndMark = strs[3]
		}
		return nil, false, nil
	}
	lk.Live = true
	lk.Name, lk.Email, lk.Role = strs[3], strs[4], strs[5]
	lk.saved = data
	return data, true, nil
}

// Find, Commit and Delete complete scs's Store interface; scs calls the
// context versions above.
func (s *Store) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}
func (s *Store) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}
func (s *Store) Delete(token string) error { return s.DeleteCtx(context.Background(), token) }
