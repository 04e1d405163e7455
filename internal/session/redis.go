package session

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis layout, every key under the configured prefix P. A user's keys
// carry the user's tag T in braces, Redis Cluster's hash tag, so they all
// sit in one slot and every script touches one slot:
//
//	P s:{T}<token>  scs session data, expires with the session
//	P o:{T}<token>  "<user id>:<public id>": whose session the token is,
//	                so the lookup checks it in the same script (store.go)
//	P u:{T}         hash: "s:<public id>" -> token for each live session,
//	                "uid" -> the user id, the user's name, email and role
//	                for page chrome, and "e:<public id>" -> end mark for
//	                each ended session whose record is not yet written
//	                (ends.go)
//	P ending        set: the users with end marks (its own slot, written
//	                after the revoke, never inside a script)
//
// T is 16 characters of base64url: 96 bits of HMAC-SHA256 of the user id
// under a secret kept in Postgres (models.Secret "session-tag"). It names
// the user's slot without revealing the id, and the cookie carries it
// ("T.<token>"), so a request finds the session's slot from its cookie
// alone. Two users sharing a tag (about one chance in 10^13 among 100
// million users) would share a hash: the "uid" field makes sign-in refuse
// rather than mix them.
//
// Sessions signed in before tags (cookies that are a bare token) keep
// their old keys until they end: P s:<token>, P o:<token>, P u:{<user id>}.
// Their lookup costs a GET of the owner key first, and revokes, lists and
// end records look at both user hashes (keys.hashes). On a Cluster there
// are none: Gatehouse never ran on one before.
//
// The user hash is the kill switch: a request is authenticated only while
// its session's field there names its token. Revoking is removing fields
// from that one key, which is atomic on its own. The revoked session's data
// is left to the next request that presents it (which finds its field
// gone, learns which session ended so it can say why, and deletes it) or
// to its TTL.
type keys struct {
	prefix string
	tagKey []byte // HMAC key of tags
	legacy bool   // sessions may still use the layout before tags
}

// TagSecret names the secret (models.Secret) that keys tags.
const TagSecret = "session-tag"

// tagLen is the length of a tag: 12 bytes of HMAC in base64url.
const tagLen = 16

// tag returns the user's tag.
func (k keys) tag(userID int64) string {
	mac := hmac.New(sha256.New, k.tagKey)
	mac.Write([]byte("session-tag:" + strconv.FormatInt(userID, 10)))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:tagLen*3/4])
}

// data, owner and user name a session's keys and its user's hash; tag ""
// names the layout before tags.
func (k keys) data(tag, token string) string {
	if tag == "" {
		return k.prefix + "s:" + token
	}
	return k.prefix + "s:{" + tag + "}" + token
}

func (k keys) owner(tag, token string) string {
	if tag == "" {
		return k.prefix + "o:" + token
	}
	return k.prefix + "o:{" + tag + "}" + token
}

func (k keys) user(tag string, userID int64) string {
	if tag == "" {
		return k.prefix + "u:{" + strconv.FormatInt(userID, 10) + "}"
	}
	return k.prefix + "u:{" + tag + "}"
}

// userHash is one of a user's hashes and the tag of its sessions' keys.
type userHash struct{ tag, key string }

// hashes returns the user's hashes: the tagged one, then the one from
// before tags when such sessions may still exist.
func (k keys) hashes(userID int64) []userHash {
	tag := k.tag(userID)
	out := []userHash{{tag, k.user(tag, userID)}}
	if k.legacy {
		out = append(out, userHash{"", k.user("", userID)})
	}
	return out
}

// cookieValue is what the session cookie holds for token of a user with
// tag.
func cookieValue(tag, token string) string {
	if tag == "" {
		return token
	}
	return tag + "." + token
}

// splitCookie returns the tag and the token of a cookie value, tag ""
// for a session from before tags; ok false when the value has the shape
// of neither (so malformed cookies never reach the store).
func splitCookie(v string) (tag, token string, ok bool) {
	if len(v) == tagLen+1+tokenLen && v[tagLen] == '.' {
		tag, token = v[:tagLen], v[tagLen+1:]
		return tag, token, base64url(tag) && base64url(token)
	}
	return "", v, len(v) == tokenLen && base64url(v)
}

// tokenLen is the length of an scs token: 32 random bytes, base64url.
const tokenLen = 43

func base64url(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) < 0
}

const sessionField = "s:"

// registerScript adds a live session to the user hash and refreshes the
// user's chrome fields.
// KEYS[1]  the user hash
// KEYS[2]  the session's owner key
// ARGV[1]  the session's field, "s:<public id>"
// ARGV[2]  the session's token
// ARGV[3]  TTL of the user hash, seconds (it is only ever lengthened)
// ARGV[4..6] the user's name, email, role
// ARGV[7]  the owner key's value, "<user id>:<public id>"
// ARGV[8]  the owner key's TTL, ms (the absolute lifetime)
// ARGV[9]  the user id
// Result: how many sessions the user now has; -1 if an administrator has
// disabled the account (the "disabled" field, which closes the race
// between a sign-in that checked the account and a disable that ended
// every session); -2 if the hash belongs to another user (tags collide).
var registerScript = redis.NewScript(luaRefuseUser + `
redis.call('SET', KEYS[2], ARGV[7], 'PX', ARGV[8])` + luaEnterSession)

// luaRefuseUser and luaEnterSession are the beginning and the end of the
// scripts that enter a session in the user hash (registerScript, and
// appScript for app sessions), with their KEYS[1] and ARGV[1..9].
const (
	luaRefuseUser = `
if redis.call('HEXISTS', KEYS[1], 'disabled') == 1 then return -1 end
local uid = redis.call('HGET', KEYS[1], 'uid')
if uid and uid ~= ARGV[9] then return -2 end`
	luaEnterSession = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 'name', ARGV[4], 'email', ARGV[5], 'role', ARGV[6], 'uid', ARGV[9])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
local n = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 2) == 's:' then n = n + 1 end
end
return n`
)

// revokeScript ends sessions and leaves an end mark for each (ends.go).
// KEYS[1]  the user hash
// ARGV[1]  the end mark
// ARGV[2]  "only": end the public ids in ARGV[3..]; "except": end every
//
//	session but those
//
// ARGV[3..] public ids
// Result: the public ids it ended.
var revokeScript = redis.NewScript(`
local ended = {}
if ARGV[2] == 'only' then
  for i = 3, #ARGV do
    if redis.call('HDEL', KEYS[1], 's:' .. ARGV[i]) == 1 then table.insert(ended, ARGV[i]) end
  end
else
  local keep = {}
  for i = 3, #ARGV do keep['s:' .. ARGV[i]] = true end
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, 1, 2) == 's:' and not keep[field] then
      redis.call('HDEL', KEYS[1], field)
      table.insert(ended, string.sub(field, 3))
    end
  end
end
for _, id in ipairs(ended) do redis.call('HSET', KEYS[1], 'e:' .. id, ARGV[1]) end
return ended`)

// disableScript marks the user disabled, so that registerScript refuses
// new sessions until Enable clears it, and ends every session with an end
// mark.
// KEYS[1]  the user hash
// ARGV[1]  the end mark
// ARGV[2]  TTL of the disabled mark, seconds (it is only ever lengthened)
// Result: the public ids it ended.
var disableScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'disabled', '1')
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local ended = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 2) == 's:' then
    redis.call('HDEL', KEYS[1], field)
    redis.call('HSET', KEYS[1], 'e:' .. string.sub(field, 3), ARGV[1])
    table.insert(ended, string.sub(field, 3))
  end
end
return ended`)

// forgetScript removes a session's field if it still names the token
// found without data (List and the sweep).
// KEYS[1]  the user hash
// ARGV[1]  the field, "s:<public id>"
// ARGV[2]  the token
// Result: 1 if removed, 0 if the field names another token or is gone.
var forgetScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`)

// setProfileScript refreshes the chrome fields of a user hash that exists
// (a user with no live session has none, and must not get one without a
// TTL).
// KEYS[1]  the user hash
// ARGV     field, value, field, value...
// Result: 1 if refreshed, 0 if there is no hash.
var setProfileScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`)

var scripts = []*redis.Script{findScript, commitScript, renewScript, registerScript, appScript, revokeScript, disableScript,
	forgetScript, setProfileScript, clearScript}

// errTagCollision means two users' tags are equal: sign-in is refused
// rather than mixing their sessions in one hash.
var errTagCollision = errors.New("session tag collision: another user's hash has this tag")

// register enters a session in the user hash and returns the user's number
// of sessions, or ErrAccountDisabled.
func (m *Manager) register(ctx context.Context, userID int64, publicID, tag, token, name, email, role string) (int, error) {
	n, err := registerScript.Run(ctx, m.rdb, []string{m.keys.user(tag, userID), m.keys.owner(tag, token)},
		sessionField+publicID, token, m.userKeyTTL(), name, email, role, owner(userID, publicID), m.lifetime.Milliseconds(),
		userID).Int()
	switch {
	case err != nil:
		return 0, fmt.Errorf("register session: %w", err)
	case n == -1:
		return 0, ErrAccountDisabled
	case n < 0:
		return 0, errTagCollision
	}
	return n, nil
}

// revoke ends the named sessions (mode "only") or all but them ("except"),
// marked with mark: one script per user hash, each atomic, and a kill
// switch for its own sessions. The user is then named in the ending set,
// outside the scripts (another slot); should that fail, the sweep finds
// the marks (sweep.go).
func (m *Manager) revoke(ctx context.Context, userID int64, mode string, publicIDs []string, mark endMark) ([]string, error) {
	args := make([]any, 0, 2+len(publicIDs))
	args = append(args, mark.String(), mode)
	for _, id := range publicIDs {
		args = append(args, id)
	}
	var ended []string
	for _, h := range m.keys.hashes(userID) {
		some, err := m.runRevoke(ctx, revokeScript, h.key, args...)
		if err != nil {
			return ended, fmt.Errorf("revoke sessions: %w", err)
		}
		ended = append(ended, some...)
	}
	m.afterEnd(ctx, userID, ended)
	return ended, nil
}

func (m *Manager) disable(ctx context.Context, userID int64, mark endMark) ([]string, error) {
	var ended []string
	for i, h := range m.keys.hashes(userID) {
		var some []string
		var err error
		if i == 0 {
			some, err = m.runRevoke(ctx, disableScript, h.key, mark.String(), m.userKeyTTL())
		} else {
			// Sessions from before tags: ended, and never registered again.
			some, err = m.runRevoke(ctx, revokeScript, h.key, mark.String(), "except")
		}
		if err != nil {
			return ended, fmt.Errorf("disable sessions: %w", err)
		}
		ended = append(ended, some...)
	}
	m.afterEnd(ctx, userID, ended)
	return ended, nil
}

func (m *Manager) enable(userID int64) error {
	tag := m.keys.tag(userID)
	if err := m.rdb.HDel(context.Background(), m.keys.user(tag, userID), "disabled").Err(); err != nil {
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

// live reads the user's sessions in Redis: each hash whole, then whether
// each session's data exists (pipelined), then the removal of the fields
// whose data is gone; three round trips per hash at most, whatever the
// number of sessions.
func (m *Manager) live(ctx context.Context, userID int64) (liveness, error) {
	l := liveness{ending: map[string]endMark{}}
	for _, h := range m.keys.hashes(userID) {
		all, err := m.rdb.HGetAll(ctx, h.key).Result()
		if err != nil {
			return liveness{}, fmt.Errorf("live sessions: %w", err)
		}
		type session struct{ id, token string }
		var sessions []session
		for field, v := range all {
			switch kind, id := field[:min(2, len(field))], field[min(2, len(field)):]; kind {
			case sessionField:
				if strings.HasPrefix(v, appFieldPrefix) {
					// An app session is judged by its record: its access
					// token expiring ends nothing (List).
					continue
				}
				sessions = append(sessions, session{id, v})
			case endField:
				if e, err := parseEndMark(v); err == nil {
					l.ending[id] = e
				}
			}
		}
		if len(sessions) == 0 {
			continue
		}
		pipe := m.rdb.Pipeline()
		exists := make([]*redis.IntCmd, len(sessions))
		for i, s := range sessions {
			exists[i] = pipe.Exists(ctx, m.keys.data(h.tag, s.token))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return liveness{}, fmt.Errorf("live sessions: %w", err)
		}
		forget := 0
		for i, s := range sessions {
			if exists[i].Val() == 1 {
				l.live = append(l.live, s.id)
				continue
			}
			l.gone = append(l.gone, s.id)
			forgetScript.Eval(ctx, pipe, []string{h.key}, sessionField+s.id, s.token)
			forget++
		}
		if forget > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return liveness{}, fmt.Errorf("live sessions: %w", err)
			}
		}
	}
	return l, nil
}

// SetProfile refreshes the name, email and role that every live session of
// the user shows, so a change made on one device shows on all of them.
func (m *Manager) SetProfile(userID int64, name, email, role string) error {
	for _, h := range m.keys.hashes(userID) {
		err := setProfileScript.Run(context.Background(), m.rdb, []string{h.key}, "name", name, "email", email, "role", role).Err()
		if err != nil {
			return fmt.Errorf("set profile: %w", err)
		}
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

// DataKey, OwnerKey and UserKey name the Redis keys of the session whose
// cookie value is cookie and of a user's (tagged) hash: for tests and
// tools that look at Redis behind the manager's back. Nothing else outside
// this package should know key names.
func (m *Manager) DataKey(cookie string) string {
	tag, token, _ := splitCookie(cookie)
	return m.keys.data(tag, token)
}

func (m *Manager) OwnerKey(cookie string) string {
	tag, token, _ := splitCookie(cookie)
	return m.keys.owner(tag, token)
}

func (m *Manager) UserKey(userID int64) string { return m.keys.user(m.keys.tag(userID), userID) }
