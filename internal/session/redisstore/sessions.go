package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/models"
)

// Errors of registering a session.
var (
	// ErrAccountDisabled means sign-in was refused because the account is
	// disabled (the "disabled" field of the user hash).
	ErrAccountDisabled = errors.New("account disabled")
	// ErrTagCollision means two users' tags are equal: sign-in is refused
	// rather than mixing their sessions in one hash.
	ErrTagCollision = errors.New("session tag collision: another user's hash has this tag")
	// ErrSessionEnded means an app session has an end mark: ended in
	// Redis, its end not yet recorded in Postgres, it must not come back.
	ErrSessionEnded = errors.New("session ended")
)

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

// registerScript adds a live session to the user hash and refreshes the
// user's chrome fields. The "disabled" field closes the race between a
// sign-in that checked the account and a disable that ended every session.
var registerScript = redis.NewScript(`
-- KEYS[1]  the user hash
-- KEYS[2]  the session's owner key
-- ARGV[1]  the session's field, "s:<public id>"
-- ARGV[2]  the session's token
-- ARGV[3]  TTL of the user hash, seconds (it is only ever lengthened)
-- ARGV[4]  the user's name
-- ARGV[5]  the user's email
-- ARGV[6]  the user's role
-- ARGV[7]  the owner key's value, "<user id>:<public id>"
-- ARGV[8]  the owner key's TTL, ms (the absolute lifetime)
-- ARGV[9]  the user id
-- Result: how many sessions the user now has; -1 if the account is
--   disabled; -2 if the hash belongs to another user (tags collide).` + luaRefuseUser + `
redis.call('SET', KEYS[2], ARGV[7], 'PX', ARGV[8])` + luaEnterSession)

// appScript enters a new access token for an app session: its owner key
// and data with the access token's TTL, and the session's field pointing at
// it. The previous access token's keys are deleted when the field still
// named it, so exactly one access token per session is live. It refuses a
// session with an end mark: ended in Redis, its end not yet recorded in
// Postgres, it must not come back.
var appScript = redis.NewScript(`
-- KEYS[1]  the user hash
-- KEYS[2]  the new owner key
-- KEYS[3]  the new data key
-- KEYS[4]  the old owner key (optional, with KEYS[5])
-- KEYS[5]  the old data key
-- ARGV[1]  the session's field, "s:<public id>"
-- ARGV[2]  the field's new value, "app:<token>"
-- ARGV[3]  TTL of the user hash, seconds (only ever lengthened)
-- ARGV[4]  the user's name
-- ARGV[5]  the user's email
-- ARGV[6]  the user's role
-- ARGV[7]  the owner key's value, "<user id>:<public id>"
-- ARGV[8]  the access token's TTL, ms
-- ARGV[9]  the user id
-- ARGV[10] the data, unless the old token's data is carried over
-- ARGV[11] the end mark's field, "e:<public id>"
-- ARGV[12] the field's old value (with KEYS[4..5])
-- Result: the user's number of sessions; -1 disabled; -2 tag collision;
--   -3 the session has ended.` + luaRefuseUser + `
if redis.call('HEXISTS', KEYS[1], ARGV[11]) == 1 then return -3 end
local data = ARGV[10]
if KEYS[4] and redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[12] then
  data = redis.call('GET', KEYS[5]) or data
  redis.call('DEL', KEYS[4], KEYS[5])
end
redis.call('SET', KEYS[2], ARGV[7], 'PX', ARGV[8])
redis.call('SET', KEYS[3], data, 'PX', ARGV[8])` + luaEnterSession)

// revokeScript ends sessions and leaves an end mark for each (ends.go).
var revokeScript = redis.NewScript(`
-- KEYS[1]  the user hash
-- ARGV[1]  the end mark
-- ARGV[2]  "only": end the public ids in ARGV[3..]; "except": end every session but those
-- ARGV[3..] public ids
-- Result: the public ids it ended.
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
var disableScript = redis.NewScript(`
-- KEYS[1]  the user hash
-- ARGV[1]  the end mark
-- ARGV[2]  TTL of the disabled mark, seconds (it is only ever lengthened)
-- Result: the public ids it ended.
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
// found without data (Live and the sweep's Gone).
var forgetScript = redis.NewScript(`
-- KEYS[1]  the user hash
-- ARGV[1]  the field, "s:<public id>"
-- ARGV[2]  the token
-- Result: 1 if removed, 0 if the field names another token or is gone.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`)

// setProfileScript refreshes the chrome fields of a user hash that exists
// (a user with no live session has none, and must not get one without a
// TTL).
var setProfileScript = redis.NewScript(`
-- KEYS[1]  the user hash
-- ARGV     field, value, field, value...
-- Result: 1 if refreshed, 0 if there is no hash.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`)

var scripts = []*redis.Script{findScript, commitScript, renewScript, registerScript, appScript, revokeScript, disableScript,
	forgetScript, setProfileScript, clearScript}

// LoadScripts loads the Lua scripts into Redis, so that even the first
// revoke is one EVALSHA round trip. (After a Redis restart go-redis falls
// back to EVAL once by itself.)
func LoadScripts(ctx context.Context, rdb redis.UniversalClient) error {
	for _, s := range scripts {
		if err := s.Load(ctx, rdb).Err(); err != nil {
			return fmt.Errorf("load redis script: %w", err)
		}
	}
	return nil
}

// Register enters a session in the user hash and returns the user's number
// of sessions, or ErrAccountDisabled, or ErrTagCollision.
func (s *Store) Register(ctx context.Context, userID int64, publicID, tag, token, name, email, role string) (int, error) {
	n, err := registerScript.Run(ctx, s.rdb, []string{s.keys.User(tag, userID), s.keys.Owner(tag, token)},
		sessionField+publicID, token, s.userKeyTTL(), name, email, role, Owner(userID, publicID), s.lifetime.Milliseconds(),
		userID).Int()
	switch {
	case err != nil:
		return 0, fmt.Errorf("register session: %w", err)
	case n == -1:
		return 0, ErrAccountDisabled
	case n < 0:
		return 0, ErrTagCollision
	}
	return n, nil
}

// Access is a new access token of an app session.
type Access struct {
	UserID            int64
	Name, Email, Role string
	PublicID          string
	Token             string        // the new token
	OldToken          string        // the token it replaces, if any
	Data              string        // its data, unless the old token's is carried over
	TTL               time.Duration // of this token
	MaxTTL            time.Duration // of any access token (ACCESS_TOKEN_TTL)
}

// IssueAccess enters a new access token (appScript) and returns the user's
// number of sessions, or ErrAccountDisabled, ErrTagCollision or
// ErrSessionEnded.
func (s *Store) IssueAccess(ctx context.Context, a Access) (int, error) {
	tag := s.keys.Tag(a.UserID)
	ks := []string{s.keys.User(tag, a.UserID), s.keys.Owner(tag, a.Token), s.keys.Data(tag, a.Token)}
	args := []any{sessionField + a.PublicID, appFieldPrefix + a.Token, max(s.userKeyTTL(), int64(a.MaxTTL/time.Second)+60),
		a.Name, a.Email, a.Role, Owner(a.UserID, a.PublicID), a.TTL.Milliseconds(),
		a.UserID, a.Data, endField + a.PublicID}
	if a.OldToken != "" {
		ks = append(ks, s.keys.Owner(tag, a.OldToken), s.keys.Data(tag, a.OldToken))
		args = append(args, appFieldPrefix+a.OldToken)
	}
	n, err := appScript.Run(ctx, s.rdb, ks, args...).Int()
	switch {
	case err != nil:
		return 0, fmt.Errorf("issue access token: %w", err)
	case n == -1:
		return 0, ErrAccountDisabled
	case n == -2:
		return 0, ErrTagCollision
	case n == -3:
		return 0, ErrSessionEnded
	}
	return n, nil
}

// Found is a live access token's session.
type Found struct {
	Data              string
	UserID            int64
	PublicID          string
	Name, Email, Role string
}

// FindAccess resolves an access token through findScript, without idle
// sliding: one command. It returns nil for a token that authenticates
// nothing (expired, revoked, replaced, forged).
func (s *Store) FindAccess(ctx context.Context, tag, token string) (*Found, error) {
	vals, err := findScript.Run(ctx, s.rdb, []string{s.keys.Data(tag, token), s.keys.Owner(tag, token), s.keys.User(tag, 0)},
		appFieldPrefix+token, 0).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("find access token: %w", err)
	}
	if len(vals) < 7 || vals[3] != "1" {
		return nil, nil
	}
	uid, _ := strconv.ParseInt(vals[1], 10, 64)
	return &Found{Data: vals[0], UserID: uid, PublicID: vals[2], Name: vals[4], Email: vals[5], Role: vals[6]}, nil
}

// AccessToken returns the access token the app session's field names, ""
// when there is none.
func (s *Store) AccessToken(ctx context.Context, userID int64, publicID string) string {
	v, err := s.rdb.HGet(ctx, s.keys.User(s.keys.Tag(userID), userID), sessionField+publicID).Result()
	if err != nil {
		return ""
	}
	t, ok := strings.CutPrefix(v, appFieldPrefix)
	if !ok {
		return ""
	}
	return t
}

// SetAccessData rewrites an access token's data, keeping its TTL; nothing
// when the token has expired.
func (s *Store) SetAccessData(ctx context.Context, tag, token, data string) error {
	return s.rdb.SetArgs(ctx, s.keys.Data(tag, token), data, redis.SetArgs{Mode: "XX", KeepTTL: true}).Err()
}

// Revoke ends the named sessions (mode "only") or all but them ("except"),
// marked with mark: one script per user hash, each atomic, and a kill
// switch for its own sessions, followed by the wait for replicas
// (durable.go). The user is then named in the ending set, outside the
// scripts (another slot); should that fail, the sweep finds the marks
// (Gone).
func (s *Store) Revoke(ctx context.Context, userID int64, mode string, publicIDs []string, mark EndMark) ([]string, error) {
	args := make([]any, 0, 2+len(publicIDs))
	args = append(args, mark.String(), mode)
	for _, id := range publicIDs {
		args = append(args, id)
	}
	var ended []string
	for _, h := range s.keys.hashes(userID) {
		some, err := s.runRevoke(ctx, revokeScript, h.key, args...)
		if err != nil {
			return ended, fmt.Errorf("revoke sessions: %w", err)
		}
		ended = append(ended, some...)
	}
	s.afterEnd(ctx, userID, ended)
	return ended, nil
}

// Disable ends every session of userID with mark and refuses new ones
// until Enable.
func (s *Store) Disable(ctx context.Context, userID int64, mark EndMark) ([]string, error) {
	var ended []string
	for i, h := range s.keys.hashes(userID) {
		var some []string
		var err error
		if i == 0 {
			some, err = s.runRevoke(ctx, disableScript, h.key, mark.String(), s.userKeyTTL())
		} else {
			// Sessions from before tags: ended, and never registered again.
			some, err = s.runRevoke(ctx, revokeScript, h.key, mark.String(), "except")
		}
		if err != nil {
			return ended, fmt.Errorf("disable sessions: %w", err)
		}
		ended = append(ended, some...)
	}
	s.afterEnd(ctx, userID, ended)
	return ended, nil
}

// Enable lets userID sign in again.
func (s *Store) Enable(userID int64) error {
	tag := s.keys.Tag(userID)
	if err := s.rdb.HDel(context.Background(), s.keys.User(tag, userID), "disabled").Err(); err != nil {
		return fmt.Errorf("enable sessions: %w", err)
	}
	return nil
}

// Liveness is what Redis says about a user's browser sessions.
type Liveness struct {
	Live   []string           // public ids of sessions whose data exists
	Gone   []string           // whose data is gone (their fields are now forgotten)
	Ending map[string]EndMark // ended, by public id, not yet recorded
}

// Live reads the user's sessions in Redis: each hash whole, then whether
// each session's data exists (pipelined), then the removal of the fields
// whose data is gone; three round trips per hash at most, whatever the
// number of sessions. App sessions are left out of Live and Gone: they are
// judged by their record, and their access token expiring ends nothing.
func (s *Store) Live(ctx context.Context, userID int64) (Liveness, error) {
	l := Liveness{Ending: map[string]EndMark{}}
	for _, h := range s.keys.hashes(userID) {
		all, err := s.rdb.HGetAll(ctx, h.key).Result()
		if err != nil {
			return Liveness{}, fmt.Errorf("live sessions: %w", err)
		}
		type session struct{ id, token string }
		var sessions []session
		for field, v := range all {
			switch kind, id := field[:min(2, len(field))], field[min(2, len(field)):]; kind {
			case sessionField:
				if strings.HasPrefix(v, appFieldPrefix) {
					continue
				}
				sessions = append(sessions, session{id, v})
			case endField:
				if e, err := ParseEndMark(v); err == nil {
					l.Ending[id] = e
				}
			}
		}
		if len(sessions) == 0 {
			continue
		}
		pipe := s.rdb.Pipeline()
		exists := make([]*redis.IntCmd, len(sessions))
		for i, ss := range sessions {
			exists[i] = pipe.Exists(ctx, s.keys.Data(h.tag, ss.token))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return Liveness{}, fmt.Errorf("live sessions: %w", err)
		}
		forget := 0
		for i, ss := range sessions {
			if exists[i].Val() == 1 {
				l.Live = append(l.Live, ss.id)
				continue
			}
			l.Gone = append(l.Gone, ss.id)
			forgetScript.Eval(ctx, pipe, []string{h.key}, sessionField+ss.id, ss.token)
			forget++
		}
		if forget > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return Liveness{}, fmt.Errorf("live sessions: %w", err)
			}
		}
	}
	return l, nil
}

// DropFields removes the fields of sessions (app sessions closed as
// expired) from their users' hashes, in one pipelined round trip.
func (s *Store) DropFields(ctx context.Context, sessions []models.SweepCandidate) error {
	if len(sessions) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, c := range sessions {
		for _, h := range s.keys.hashes(c.UserID) {
			pipe.HDel(ctx, h.key, sessionField+c.PublicID)
		}
	}
	_, err := pipe.Exec(ctx)
	return err
}

// SetProfile refreshes the name, email and role that every live session of
// the user shows.
func (s *Store) SetProfile(userID int64, name, email, role string) error {
	for _, h := range s.keys.hashes(userID) {
		err := setProfileScript.Run(context.Background(), s.rdb, []string{h.key}, "name", name, "email", email, "role", role).Err()
		if err != nil {
			return fmt.Errorf("set profile: %w", err)
		}
	}
	return nil
}

// userKeyTTL is how long the user hash must outlive the session being
// written: the absolute lifetime, plus a minute for clock skew.
func (s *Store) userKeyTTL() int64 {
	return int64((s.lifetime + time.Minute) / time.Second)
}

// Check pings Redis: a probe key written and deleted.
func (s *Store) Check(ctx context.Context) error { return CheckRedis(ctx, s.rdb, s.keys.prefix) }

// CheckRedis is Check before there is a Store (start-up): a probe key
// under prefix written and deleted.
func CheckRedis(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	probe := prefix + "probe"
	if err := rdb.Set(ctx, probe, "1", 5*time.Second).Err(); err != nil {
		return fmt.Errorf("redis write: %w", err)
	}
	if err := rdb.Del(ctx, probe).Err(); err != nil {
		return fmt.Errorf("redis delete: %w", err)
	}
	return nil
}

// EvictionWarning returns a warning when Redis's maxmemory-policy is not
// noeviction, "" when it is. Under any other policy a full Redis evicts
// keys: sessions (signing people out), throttle counters (unlocking
// accounts under attack) and user hashes (the kill switch). INFO is read
// rather than CONFIG GET, which managed services often disable.
func (s *Store) EvictionWarning(ctx context.Context) (string, error) {
	info, err := s.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return "", fmt.Errorf("redis info: %w", err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if policy, ok := strings.CutPrefix(line, "maxmemory_policy:"); ok && policy != "noeviction" {
			return "maxmemory-policy is " + policy + ", not noeviction: when Redis is full it will evict sessions, " +
				"throttle counters and revocations (docs/reliability.md)", nil
		}
	}
	return "", nil
}

// MakeOld moves the session whose cookie is cookie to the layout from
// before tags (P s:<token>, P o:<token>, P u:{<user id>}), as a session
// signed in before the upgrade left it, and returns its cookie then: the
// bare token. For tests of sessions from before tags.
func (s *Store) MakeOld(ctx context.Context, userID int64, cookie string) (string, error) {
	tag, token, _ := SplitCookie(cookie)
	data, err := s.rdb.Get(ctx, s.keys.Data(tag, token)).Bytes()
	if err != nil {
		return "", err
	}
	owner, err := s.rdb.Get(ctx, s.keys.Owner(tag, token)).Result()
	if err != nil {
		return "", err
	}
	dataTTL := s.rdb.PTTL(ctx, s.keys.Data(tag, token)).Val()
	ownerTTL := s.rdb.PTTL(ctx, s.keys.Owner(tag, token)).Val()
	_, publicID, _ := strings.Cut(owner, ":")
	user := s.keys.User(tag, userID)
	profile, err := s.rdb.HMGet(ctx, user, "name", "email", "role").Result()
	if err != nil {
		return "", err
	}
	old := s.keys.User("", userID)
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, s.keys.Data("", token), data, dataTTL)
	pipe.Set(ctx, s.keys.Owner("", token), owner, ownerTTL)
	pipe.HSet(ctx, old, sessionField+publicID, token, "name", profile[0], "email", profile[1], "role", profile[2])
	pipe.Expire(ctx, old, time.Hour)
	pipe.Del(ctx, s.keys.Data(tag, token), s.keys.Owner(tag, token))
	pipe.HDel(ctx, user, sessionField+publicID)
	_, err = pipe.Exec(ctx)
	return token, err
}

// CommitScriptHash is the SHA1 that EVALSHA names the commit script by,
// for tests that count commits in what MONITOR shows.
func CommitScriptHash() string { return commitScript.Hash() }
