package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/models"
)

// End marks. The revoke script kills sessions and, in the same atomic
// step, leaves a mark for each in the user hash (field "e:<public id>",
// value "<unix ms>|<reason>|<actor id>"); the user is then named in the
// set P ending. The end recorder (package workers) writes the records and
// removes the marks (ClearMarks); readers show the marks as the ends they
// will be recorded as.

// EndMark is one end waiting for its record.
type EndMark struct {
	At     time.Time
	Reason models.EndReason
	Actor  *int64
}

func (e EndMark) String() string {
	actor := ""
	if e.Actor != nil {
		actor = strconv.FormatInt(*e.Actor, 10)
	}
	return strconv.FormatInt(e.At.UnixMilli(), 10) + "|" + string(e.Reason) + "|" + actor
}

// ParseEndMark reads a mark as String writes it.
func ParseEndMark(s string) (EndMark, error) {
	parts := strings.Split(s, "|")
	if len(parts) != 3 {
		return EndMark{}, fmt.Errorf("end mark %q: want three parts", s)
	}
	ms, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return EndMark{}, fmt.Errorf("end mark %q: %w", s, err)
	}
	e := EndMark{At: time.UnixMilli(ms), Reason: models.EndReason(parts[1])}
	if parts[2] != "" {
		actor, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			return EndMark{}, fmt.Errorf("end mark %q: %w", s, err)
		}
		e.Actor = &actor
	}
	return e, nil
}

// Apply shows r as ended the way its record will say.
func (e EndMark) Apply(r *models.SessionRecord) {
	at := e.At
	r.EndedAt, r.EndReason, r.EndedBy = &at, e.Reason, e.Actor
}

// afterEnd names the user in the ending set when sessions ended, so that
// the recorder finds their marks. It runs after the revoke script, on its
// own: the set has a slot of its own on a Cluster. If it fails (or the
// instance dies first), the marks still wait in the user hash, and the
// sweep puts the user back in the set when it meets one (Gone).
func (s *Store) afterEnd(ctx context.Context, userID int64, ended []string) {
	if len(ended) == 0 {
		return
	}
	if err := s.rdb.SAdd(ctx, s.keys.Ending(), userID).Err(); err != nil {
		s.log.WarnContext(ctx, "sessions ended; their records wait for the sweep", "user", userID, "err", err)
	}
}

// clearScript removes the marks that were recorded, if they are unchanged.
var clearScript = redis.NewScript(`
-- KEYS[1]  the user hash
-- ARGV     public id, mark, public id, mark...
-- Result: how many marks are left in the hash.
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], 'e:' .. ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], 'e:' .. ARGV[i]) end
end
local left = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 2) == 'e:' then left = left + 1 end
end
return left`)

// ClearMarks removes the recorded marks (public id, mark pairs) from the
// user's hashes and, when none is left, the user from the ending set. A
// revoke that marks a session between the two is seen by the check after
// the removal, which names the user again.
func (s *Store) ClearMarks(ctx context.Context, userID int64, recorded []any) error {
	left := int64(0)
	for _, h := range s.keys.hashes(userID) {
		n, err := clearScript.Run(ctx, s.rdb, []string{h.key}, recorded...).Int64()
		if err != nil {
			return err
		}
		left += n
	}
	if left > 0 {
		return nil
	}
	if err := s.rdb.SRem(ctx, s.keys.Ending(), userID).Err(); err != nil {
		return err
	}
	marks, err := s.EndMarks(ctx, userID)
	if err != nil {
		return err
	}
	if len(marks) > 0 {
		return s.rdb.SAdd(ctx, s.keys.Ending(), userID).Err()
	}
	return nil
}

// Unmark removes a user whose marks are all gone from the ending set.
func (s *Store) Unmark(ctx context.Context, userID int64) {
	s.rdb.SRem(ctx, s.keys.Ending(), userID)
}

// EndMarks returns the user's marks by public id.
func (s *Store) EndMarks(ctx context.Context, userID int64) (map[string]string, error) {
	marks := map[string]string{}
	for _, h := range s.keys.hashes(userID) {
		all, err := s.rdb.HGetAll(ctx, h.key).Result()
		if err != nil {
			return nil, fmt.Errorf("read session ends: %w", err)
		}
		for field, v := range all {
			if id, ok := strings.CutPrefix(field, endField); ok {
				marks[id] = v
			}
		}
	}
	return marks, nil
}

// EndingUsers returns the users with end marks.
func (s *Store) EndingUsers(ctx context.Context) ([]int64, error) {
	members, err := s.rdb.SMembers(ctx, s.keys.Ending()).Result()
	if err != nil {
		return nil, fmt.Errorf("read session ends: %w", err)
	}
	users := make([]int64, 0, len(members))
	for _, m := range members {
		if id, err := strconv.ParseInt(m, 10, 64); err == nil {
			users = append(users, id)
		}
	}
	return users, nil
}

// PendingEnds is how many ended sessions wait for their record.
func (s *Store) PendingEnds(ctx context.Context) (int, error) {
	users, err := s.EndingUsers(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, userID := range users {
		marks, err := s.EndMarks(ctx, userID)
		if err != nil {
			return 0, err
		}
		n += len(marks)
	}
	return n, nil
}

// DropEnded leaves out of a page of records (the admin's list of active
// sessions) those that have ended but whose end is not yet recorded: one
// pipelined round trip for the page.
func (s *Store) DropEnded(ctx context.Context, page []models.SessionView) ([]models.SessionView, error) {
	if len(page) == 0 {
		return page, nil
	}
	pipe := s.rdb.Pipeline()
	ended := make([][]*redis.BoolCmd, len(page))
	for i, v := range page {
		for _, h := range s.keys.hashes(v.UserID) {
			ended[i] = append(ended[i], pipe.HExists(ctx, h.key, endField+v.PublicID))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read session ends: %w", err)
	}
	out := page[:0:0]
	for i, v := range page {
		if !slices.ContainsFunc(ended[i], func(c *redis.BoolCmd) bool { return c.Val() }) {
			out = append(out, v)
		}
	}
	return out, nil
}

// Gone returns the sweep's candidates whose session no longer exists in
// Redis, and removes their stale fields. Three round trips at most,
// whatever the batch: HMGET of every session's field and end mark (in each
// of the user's hashes), EXISTS of every token found, and the removal of
// stale fields, each pipelined.
//
// A candidate with an end mark is not gone but ended, and waits for the
// end recorder: Gone names its user in the ending set again, the safety
// net for a revoke whose instance died between its script and naming the
// user there, and reports marked so that the caller wakes the recorder.
func (s *Store) Gone(ctx context.Context, cands []models.SweepCandidate) (gone []models.SweepCandidate, marked bool, err error) {
	if len(cands) == 0 {
		return nil, false, nil
	}
	type found struct {
		hash  userHash
		token string
	}
	pipe := s.rdb.Pipeline()
	fields := make([][]*redis.SliceCmd, len(cands))
	hashes := make([][]userHash, len(cands))
	for i, c := range cands {
		hashes[i] = s.keys.hashes(c.UserID)
		for _, h := range hashes[i] {
			fields[i] = append(fields[i], pipe.HMGet(ctx, h.key, sessionField+c.PublicID, endField+c.PublicID))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, false, fmt.Errorf("sweep: read sessions: %w", err)
	}
	tokens := make([]found, len(cands))
	ended := make([]bool, len(cands))
	users := map[int64]bool{}
	for i, c := range cands {
		for j, f := range fields[i] {
			v := f.Val()
			if len(v) == 2 && v[1] != nil {
				ended[i], users[c.UserID] = true, true
			}
			if t, ok := v[0].(string); ok && len(v) == 2 {
				tokens[i] = found{hashes[i][j], t} // no field: revoked, or forgotten by Live
			}
		}
	}
	exists := make([]*redis.IntCmd, len(cands))
	for i, t := range tokens {
		if t.token != "" {
			exists[i] = pipe.Exists(ctx, s.keys.Data(t.hash.tag, t.token))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, fmt.Errorf("sweep: check session data: %w", err)
	}
	stale := 0
	for i, c := range cands {
		if exists[i] != nil && exists[i].Val() == 1 || ended[i] {
			continue
		}
		gone = append(gone, c)
		if t := tokens[i]; t.token != "" {
			forgetScript.Eval(ctx, pipe, []string{t.hash.key}, sessionField+c.PublicID, t.token)
			stale++
		}
	}
	for userID := range users {
		pipe.SAdd(ctx, s.keys.Ending(), userID)
		stale++
	}
	if stale > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			// The records are still right to close: the data is gone.
			s.log.Warn("sweep: removing stale session fields", "err", err)
		}
	}
	return gone, len(users) > 0, nil
}
