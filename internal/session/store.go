package session

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"
)

// store is scs's Redis store with an authenticated Find: in the same round
// trip as the session data, a Lua script reads the session's owner
// ("<user id>:<public id>", kept under P o:<token>) and checks the user
// hash still names this token. So a request costs two round trips: this
// Find, and scs's re-save (CommitCtx: one SET with its expiry).
//
// The script builds key names itself, which suits a single Redis or
// Sentinel; on Cluster the data and owner keys would need a shared hash tag
// and the user hash a second round trip.
type store struct {
	*redisstore.RedisStore
	pool *redis.Pool
	keys keys
}

// findScript returns {} when there is no data; {data} for data without an
// owner; {data, uid, sid, live, name, email, role} otherwise, with live 1
// when the user hash still names this token. A session found revoked has
// its data deleted here: {"", uid, sid, "0", end mark}, the mark empty
// once the end is recorded (ends.go).
// KEYS[1] data key, KEYS[2] owner key; ARGV[1] user-hash key prefix, ARGV[2] token.
var findScript = redis.NewScript(2, `
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

// lookup is what Find learned about the session's owner. The middleware
// puts an empty one in the context it gives scs.Load; FindCtx fills it in.
type lookup struct {
	userID            int64
	publicID          string
	live              bool
	name, email, role string
	revoked           bool
	endMark           string // of a revoked session whose end is not yet recorded
}

type lookupKey struct{}

// CommitCtx implements scs's CtxStore commit: the data and its expiry in
// one SET (redisstore's Commit sends MULTI, SET, PEXPIREAT and EXEC; one
// command is the same write, atomic, for a quarter of the commands).
func (s *store) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Do("SET", s.keys.data()+token, b, "PXAT", expiry.UnixMilli()); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// FindCtx implements scs's CtxStore lookup.
func (s *store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("redis: %w", err)
	}
	defer conn.Close()
	vals, err := redis.Values(findScript.Do(conn, s.keys.data()+token, s.keys.owner(token), s.keys.userPrefix(), token))
	if err != nil {
		return nil, false, fmt.Errorf("find session: %w", err)
	}
	if len(vals) == 0 {
		return nil, false, nil
	}
	data, _ := redis.Bytes(vals[0], nil)
	lk, _ := ctx.Value(lookupKey{}).(*lookup)
	if len(vals) == 1 || lk == nil {
		return data, len(data) > 0, nil
	}
	strs, err := redis.Strings(vals[1:], nil)
	if err != nil {
		return nil, false, fmt.Errorf("find session: %w", err)
	}
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
	return data, true, nil
}
