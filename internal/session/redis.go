package session

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis layout, every key under the configured prefix P:
//
//	P s:<token>        scs session data (redisstore), expires with the session
//	P o:<token>        "<user id>:<public id>": whose session the token is,
//	                   so Find can check it in the same round trip (store.go)
//	P u:{<user id>}    hash: "s:<public id>" -> token for each live session,
//	                   plus the user's name, email and role for page chrome,
//	                   and "e:<public id>" -> end mark for each ended
//	                   session whose record is not yet written (ends.go)
//	P ending           set: the users with end marks
//
// The user hash is the kill switch: a request is authenticated only while its
// session's field there names its token. Revoking is removing fields from
// that one key, which is atomic on its own, and in one Cluster slot thanks
// to the {} hash tag. The revoked session's data is left to the next request
// that presents it (which finds its field gone, learns which session ended so
// it can say why, and deletes it) or to its TTL.
type keys struct{ prefix string }

func (k keys) data() string { return k.prefix + "s:" }
func (k keys) user(userID int64) string {
	return k.userPrefix() + strconv.FormatInt(userID, 10) + "}"
}

func (k keys) userPrefix() string { return k.prefix + "u:{" }

// owner names the key that says whose a token is: "<user id>:<public id>".
func (k keys) owner(token string) string { return k.prefix + "o:" + token }

const sessionField = "s:"

// register adds a live session to the user hash, refreshes the user's
// chrome fields, and returns how many sessions the user now has; -1 if an
// administrator has disabled the account (the "disabled" field), which
// closes the race between a sign-in that checked the account and a disable
// that ended every session.
// KEYS[1] user hash, KEYS[2] owner key; ARGV: field, token, ttl seconds,
// name, email, role, owner, owner ttl ms.
var registerScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'disabled') == 1 then return -1 end
redis.call('SET', KEYS[2], ARGV[7], 'PX', ARGV[8])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 'name', ARGV[4], 'email', ARGV[5], 'role', ARGV[6])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
local n = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 2) == 's:' then n = n + 1 end
end
return n`)

// revoke ends sessions, marks them for the end recorder (ends.go), and
// returns the public ids it ended. With ARGV[3] = "only" it ends the public
// ids in ARGV[4..]; with "except" it ends every session but those.
// KEYS[1] user hash, KEYS[2] ending set; ARGV[1] end mark, ARGV[2] user id.
var revokeScript = redis.NewScript(`
local ended = {}
if ARGV[3] == 'only' then
  for i = 4, #ARGV do
    if redis.call('HDEL', KEYS[1], 's:' .. ARGV[i]) == 1 then table.insert(ended, ARGV[i]) end
  end
else
  local keep = {}
  for i = 4, #ARGV do keep['s:' .. ARGV[i]] = true end
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, 1, 2) == 's:' and not keep[field] then
      redis.call('HDEL', KEYS[1], field)
      table.insert(ended, string.sub(field, 3))
    end
  end
end` + markEndedLua)

// disable marks the user disabled (so register refuses new sessions until
// enable clears it) and ends every session, marking them for the end
// recorder, and returns their public ids. KEYS[1] user hash, KEYS[2]
// ending set; ARGV[1] end mark, ARGV[2] user id, ARGV[3] ttl seconds for
// the disabled mark.
var disableScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'disabled', '1')
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
local ended = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 2) == 's:' then
    redis.call('HDEL', KEYS[1], field)
    table.insert(ended, string.sub(field, 3))
  end
end` + markEndedLua)

// live returns three lists: the public ids of the user's sessions whose
// data still exists; of those whose data expired, whose fields it forgets;
// and the ended sessions whose record is not yet written, with their end
// marks (id, mark, id, mark...). KEYS[1] user hash; ARGV[1] data key
// prefix. (It reads data keys by name, so on Redis Cluster it would have
// to become a pipeline of EXISTS.)
var liveScript = redis.NewScript(`
local live, gone, ending = {}, {}, {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local kind = string.sub(all[i], 1, 2)
  if kind == 's:' then
    if redis.call('EXISTS', ARGV[1] .. all[i + 1]) == 1 then
      table.insert(live, string.sub(all[i], 3))
    else
      redis.call('HDEL', KEYS[1], all[i])
      table.insert(gone, string.sub(all[i], 3))
    end
  elseif kind == 'e:' then
    table.insert(ending, string.sub(all[i], 3))
    table.insert(ending, all[i + 1])
  end
end
return {live, gone, ending}`)

// setProfile refreshes the chrome fields of a user hash that exists (a user
// with no live session has none, and must not get one without a TTL).
// KEYS[1] user hash; ARGV: field, value, field, value...
var setProfileScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`)

var scripts = []*redis.Script{findScript, commitScript, renewScript, registerScript, revokeScript, disableScript, liveScript, setProfileScript, pendingScript, clearScript}

// register enters a session in the user hash and returns the user's number
// of sessions, or ErrAccountDisabled.
func (m *Manager) register(ctx context.Context, userID int64, publicID, token, name, email, role string) (int, error) {
	n, err := registerScript.Run(ctx, m.rdb, []string{m.keys.user(userID), m.keys.owner(token)}, sessionField+publicID, token,
		m.userKeyTTL(), name, email, role, owner(userID, publicID), m.lifetime.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("register session: %w", err)
	}
	if n < 0 {
		return 0, ErrAccountDisabled
	}
	return n, nil
}

// revoke ends the named sessions (mode "only") or all but them ("except"),
// marked with mark. One round trip, however many sessions.
func (m *Manager) revoke(ctx context.Context, userID int64, mode string, publicIDs []string, mark endMark) ([]string, error) {
	args := make([]any, 0, 3+len(publicIDs))
	args = append(args, mark.String(), userID, mode)
	for _, id := range publicIDs {
		args = append(args, id)
	}
	ended, err := revokeScript.Run(ctx, m.rdb, []string{m.keys.user(userID), m.keys.ending()}, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", err)
	}
	return ended, nil
}

func (m *Manager) disable(ctx context.Context, userID int64, mark endMark) ([]string, error) {
	ended, err := disableScript.Run(ctx, m.rdb, []string{m.keys.user(userID), m.keys.ending()}, mark.String(), userID, m.userKeyTTL()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("disable sessions: %w", err)
	}
	return ended, nil
}

func (m *Manager) enable(userID int64) error {
	if err := m.rdb.HDel(context.Background(), m.keys.user(userID), "disabled").Err(); err != nil {
		return fmt.Errorf("enable sessions: %w", err)
	}
	return nil
}

// liveness is what Redis says about a user's sessions.
type liveness struct {
	live   []string           // public ids of sessions whose data exists
	gone   []string           // whose data is gone (their fields are now forgotten)
	ending map[string]endMark // ended, by public id, not yet recorded
}

// live reads the user's sessions in Redis (liveScript).
func (m *Manager) live(ctx context.Context, userID int64) (liveness, error) {
	var l liveness
	lists, err := liveScript.Run(ctx, m.rdb, []string{m.keys.user(userID)}, m.keys.data()).Slice()
	if err == nil && len(lists) != 3 {
		err = fmt.Errorf("unexpected reply %v", lists)
	}
	var ending []string
	if err == nil {
		l.live, err = strs(lists[0])
	}
	if err == nil {
		l.gone, err = strs(lists[1])
	}
	if err == nil {
		ending, err = strs(lists[2])
	}
	if err != nil {
		return liveness{}, fmt.Errorf("live sessions: %w", err)
	}
	marks := pairs(ending)
	l.ending = make(map[string]endMark, len(marks))
	for id, s := range marks {
		if e, err := parseEndMark(s); err == nil {
			l.ending[id] = e
		}
	}
	return l, nil
}

// SetProfile refreshes the name, email and role that every live session of
// the user shows, so a change made on one device shows on all of them.
func (m *Manager) SetProfile(userID int64, name, email, role string) error {
	err := setProfileScript.Run(context.Background(), m.rdb, []string{m.keys.user(userID)}, "name", name, "email", email, "role", role).Err()
	if err != nil {
		return fmt.Errorf("set profile: %w", err)
	}
	return nil
}

// owner is the value of an owner key.
func owner(userID int64, publicID string) string {
	return strconv.FormatInt(userID, 10) + ":" + publicID
}

// userKeyTTL is how long the user hash must outlive the session being
// written: the absolute lifetime, plus a minute for clock skew.
func (m *Manager) userKeyTTL() int64 {
	return int64((m.lifetime + time.Minute) / time.Second)
}

// validToken reports whether s has the shape of an scs token (32 random
// bytes, base64url), so malformed cookies never reach the store.
func validToken(s string) bool {
	if len(s) != 43 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) < 0
}

// strs reads a reply that is a list of strings (a script's table).
func strs(reply any) ([]string, error) {
	list, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected reply %v", reply)
	}
	out := make([]string, len(list))
	for i, v := range list {
		if out[i], ok = v.(string); !ok {
			return nil, fmt.Errorf("unexpected reply %v", reply)
		}
	}
	return out, nil
}

// pairs turns a list k1, v1, k2, v2... into a map.
func pairs(list []string) map[string]string {
	m := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		m[list[i]] = list[i+1]
	}
	return m
}

// DataKey, OwnerKey and UserKey name the Redis keys of the session whose
// cookie value is cookie and of a user's hash: for tests and tools that
// look at Redis behind the manager's back. Nothing else outside this
// package should know key names.
func (m *Manager) DataKey(cookie string) string  { return m.keys.data() + cookie }
func (m *Manager) OwnerKey(cookie string) string { return m.keys.owner(cookie) }
func (m *Manager) UserKey(userID int64) string   { return m.keys.user(userID) }
