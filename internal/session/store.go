package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// store is scs's Redis store with an authenticated Find: in the same round
// trip as the session data, a Lua script reads the session's owner
// ("<user id>:<public id>", kept under P o:<token>) and checks the user
// hash still names this token. So a request costs two round trips: this
// Find, and scs's re-save (CommitCtx: one script that renews the expiry).
//
// Expiry never comes from an instance's clock. scs hands CommitCtx an
// absolute expiry computed from the local clock, which an instance minutes
// behind or ahead would get wrong; the store ignores it. The owner key is
// set at sign-in with a relative TTL of the absolute lifetime, and every
// commit gives the data the smaller of the idle timeout and what is left
// of the owner key's TTL, both relative and measured by Redis
// (commitScript). A renewal moves the owner key's remaining TTL to the new
// token, so the absolute deadline stays where sign-in put it.
//
// The scripts build key names themselves, which suits a single Redis or
// Sentinel; on Cluster the data and owner keys would need a shared hash tag
// and the user hash a second round trip.
type store struct {
	rdb      redis.UniversalClient
	keys     keys
	idle     time.Duration // 0: no idle timeout
	lifetime time.Duration
}

// findScript returns {} when there is no data; {data} for data without an
// owner; {data, uid, sid, live, name, email, role} otherwise, with live 1
// when the user hash still names this token. A session found revoked has
// its data deleted here: {"", uid, sid, "0", end mark}, the mark empty
// once the end is recorded (ends.go).
// KEYS[1] data key, KEYS[2] owner key; ARGV[1] user-hash key prefix, ARGV[2] token.
var findScript = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return {} end
local owner = redis.call('GET', KEYS[2])
if not owner then return {data} end
local uid, sid = string.match(owner, '^(%d+):(.+)$')
local v = redis.call('HMGET', ARGV[1] .. uid .. '}', 's:' .. sid, 'name', 'email', 'role', 'e:' .. sid)
if v[1] ~= ARGV[2] then
  redis.call('DEL', KEYS[1])
  return {'', uid, sid, '0', v[5] or ''}
end
return {data, uid, sid, '1', v[2] or '', v[3] or '', v[4] or ''}`)

// lookup is the store's state for one request. The middleware puts an
// empty one in the context it gives scs.Load; FindCtx fills in what it
// learned about the session's owner, and Start and Renew say what the
// next commit is.
type lookup struct {
	userID            int64
	publicID          string
	live              bool
	name, email, role string
	revoked           bool
	endMark           string // of a revoked session whose end is not yet recorded

	// saved is the session's data as Redis holds it (found, or last
	// committed): a commit of the same bytes only renews the expiry.
	saved []byte
	// fresh is the token Start is signing in with: its data is written
	// before its owner key exists, with the whole lifetime ahead of it.
	fresh string
	// renewFrom is the token Renew is replacing: scs's RenewToken must not
	// delete its data, and the next commit moves the session from it.
	renewFrom string
}

type lookupKey struct{}

// lookupOf returns the request's lookup, nil outside Middleware.
func lookupOf(ctx context.Context) *lookup {
	lk, _ := ctx.Value(lookupKey{}).(*lookup)
	return lk
}

// errRenewRefused means the session ended while its token was being
// renewed.
var errRenewRefused = errors.New("session ended during renewal")

// commitScript saves or extends a session's data; it returns 0 when the
// session no longer exists (it never brings expired data back), 1 when
// saved, and extends the expiry even when Redis refuses the new data (out
// of memory under noeviction: PEXPIRE needs no memory). The TTL is the
// idle timeout, capped by what is left of the owner key's TTL (the
// absolute lifetime), both relative. KEYS[1] data, KEYS[2] owner;
// ARGV[1] idle ms (0: none), ARGV[2] lifetime ms for a token not yet
// registered (0: the owner key must exist), ARGV[3] the data, absent when
// unchanged.
var commitScript = redis.NewScript(`
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
// one atomic step. 0 if the field no longer names the old token (revoked
// meanwhile). KEYS[1] user hash, KEYS[2] old owner, KEYS[3] new owner,
// KEYS[4] old data, KEYS[5] new data; ARGV[1] field, ARGV[2] old token,
// ARGV[3] new token, ARGV[4] data, ARGV[5] idle ms (0: none).
var renewScript = redis.NewScript(`
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
// computed from this instance's clock (see store).
func (s *store) CommitCtx(ctx context.Context, token string, b []byte, _ time.Time) error {
	lk := lookupOf(ctx)
	if lk == nil {
		lk = &lookup{}
	}
	if lk.renewFrom != "" && lk.renewFrom != token {
		ok, err := renewScript.Run(ctx, s.rdb, []string{s.keys.user(lk.userID), s.keys.owner(lk.renewFrom), s.keys.owner(token),
			s.keys.data() + lk.renewFrom, s.keys.data() + token},
			sessionField+lk.publicID, lk.renewFrom, token, b, s.idle.Milliseconds()).Int()
		if err != nil {
			return fmt.Errorf("renew session: %w", err)
		}
		if ok == 0 {
			return errRenewRefused
		}
		lk.saved = b
		return nil
	}
	var lifetime int64
	if token == lk.fresh {
		lifetime = s.lifetime.Milliseconds()
	}
	args := []any{s.idle.Milliseconds(), lifetime}
	if !bytes.Equal(b, lk.saved) {
		args = append(args, b)
	}
	if err := commitScript.Run(ctx, s.rdb, []string{s.keys.data() + token, s.keys.owner(token)}, args...).Err(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	if len(args) == 3 {
		lk.saved = b
	}
	return nil
}

// DeleteCtx implements scs's CtxStore delete, except for the token Renew
// is replacing: scs's RenewToken deletes the old data before anything
// else, which would make the live session look expired until the new
// token is in place; renewScript deletes it after the switch instead.
func (s *store) DeleteCtx(ctx context.Context, token string) error {
	if lk := lookupOf(ctx); lk != nil && lk.renewFrom != "" && token == lk.renewFrom {
		return nil
	}
	if err := s.rdb.Del(ctx, s.keys.data()+token).Err(); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// FindCtx implements scs's CtxStore lookup.
func (s *store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	vals, err := findScript.Run(ctx, s.rdb, []string{s.keys.data() + token, s.keys.owner(token)}, s.keys.userPrefix(), token).StringSlice()
	if err != nil {
		return nil, false, fmt.Errorf("find session: %w", err)
	}
	if len(vals) == 0 {
		return nil, false, nil
	}
	data := []byte(vals[0])
	lk := lookupOf(ctx)
	if len(vals) == 1 || lk == nil {
		return data, len(data) > 0, nil
	}
	strs := vals[1:]
	lk.userID, _ = strconv.ParseInt(strs[0], 10, 64)
	lk.publicID = strs[1]
	if strs[2] != "1" {
		lk.revoked = true
		if len(strs) > 3 {
			lk.endMark = strs[3]
		}
		return nil, false, nil
	}
	lk.live = true
	lk.name, lk.email, lk.role = strs[3], strs[4], strs[5]
	lk.saved = data
	return data, true, nil
}

// Find, Commit and Delete complete scs's Store interface; scs calls the
// context versions above.
func (s *store) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}
func (s *store) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}
func (s *store) Delete(token string) error { return s.DeleteCtx(context.Background(), token) }
