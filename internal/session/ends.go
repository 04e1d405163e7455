package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/models"
)

// Ending a session and recording why are two steps, and only the first is
// on the request's path.
//
// The revoke script kills sessions in Redis and, in the same atomic step,
// leaves a mark for each in the user hash (P u:{uid}, field
// "e:<public id>", value "<unix ms>|<reason>|<actor id>") and names the
// user in the set P ending. From that moment the session is dead on every
// instance and its end cannot be lost, short of losing Redis. The record in
// Postgres is written next, by the manager's end recorder, in the
// background: a revoke-all of a thousand sessions answers in the time of
// one Redis script instead of waiting for Postgres to rewrite a thousand
// rows (docs/performance.md). Readers do not wait for it either: List and
// Ended read the marks alongside the records and show the end as it will
// be recorded.
//
// A mark is removed only once its record is written, so ends made while
// Postgres is down wait in Redis until it answers; each later end and
// every sweep try again. The recorder also keeps the marks it has read in
// memory until they are recorded (heldEnds), so a Redis restart meanwhile
// does not lose an end's reason and actor. Recording is idempotent
// (RecordEnd), so instances may record the same marks at once.

func (k keys) ending() string { return k.prefix + "ending" }

const endField = "e:"

// endMark is one end waiting for its record.
type endMark struct {
	at     time.Time
	reason models.EndReason
	actor  *int64
}

func (e endMark) String() string {
	actor := ""
	if e.actor != nil {
		actor = strconv.FormatInt(*e.actor, 10)
	}
	return strconv.FormatInt(e.at.UnixMilli(), 10) + "|" + string(e.reason) + "|" + actor
}

func parseEndMark(s string) (endMark, error) {
	parts := strings.Split(s, "|")
	if len(parts) != 3 {
		return endMark{}, fmt.Errorf("end mark %q: want three parts", s)
	}
	ms, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return endMark{}, fmt.Errorf("end mark %q: %w", s, err)
	}
	e := endMark{at: time.UnixMilli(ms), reason: models.EndReason(parts[1])}
	if parts[2] != "" {
		actor, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			return endMark{}, fmt.Errorf("end mark %q: %w", s, err)
		}
		e.actor = &actor
	}
	return e, nil
}

// apply shows r as ended the way its record will say.
func (e endMark) apply(r *models.SessionRecord) {
	at := e.at
	r.EndedAt, r.EndReason, r.EndedBy = &at, e.reason, e.actor
}

// afterEnd names the user in the ending set when sessions ended, so that
// the recorder finds their marks. It runs after the revoke script, on its
// own: the set has a slot of its own on a Cluster. If it fails (or the
// instance dies first), the marks still wait in the user hash, and the
// sweep puts the user back in the set when it meets one (sweep.go).
func (m *Manager) afterEnd(ctx context.Context, userID int64, ended []string) {
	if len(ended) == 0 {
		return
	}
	if err := m.rdb.SAdd(ctx, m.keys.ending(), userID).Err(); err != nil {
		m.log.WarnContext(ctx, "sessions ended; their records wait for the sweep", "user", userID, "err", err)
	}
}

// clearScript removes the marks that were recorded, if they are unchanged.
// KEYS[1]  the user hash
// ARGV     public id, mark, public id, mark...
// Result: how many marks are left in the hash.
var clearScript = redis.NewScript(`
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], 'e:' .. ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], 'e:' .. ARGV[i]) end
end
local left = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 2) == 'e:' then left = left + 1 end
end
return left`)

// endsTimeout bounds one background recording pass.
const endsTimeout = 10 * time.Second

// recordEndsInBackground is the end recorder's pass: it runs after every
// end (and the sweep runs RecordEnds too).
func (m *Manager) recordEndsInBackground() bool {
	ctx, cancel := context.WithTimeout(context.Background(), endsTimeout)
	defer cancel()
	if _, err := m.RecordEnds(ctx); err != nil {
		m.log.Warn("session ends not yet recorded; kept in Redis and retried on the next end or sweep", "err", err)
		return false
	}
	return true
}

// heldEnds keeps the marks the recorder has read, by user and public id,
// until their records are written. Redis here may keep nothing on disk: if
// it restarts while Postgres is down, the marks in it are gone, but the
// instance that read them still records each end with its reason and
// actor once Postgres is back.
type heldEnds struct {
	mu    sync.Mutex
	marks map[int64]map[string]string
	count int
}

// heldEndsMax bounds the marks held in memory; beyond it, new marks wait
// in Redis only.
const heldEndsMax = 100_000

func (h *heldEnds) add(userID int64, marks map[string]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.marks == nil {
		h.marks = map[int64]map[string]string{}
	}
	for id, mark := range marks {
		if _, ok := h.marks[userID][id]; !ok {
			if h.count >= heldEndsMax {
				return
			}
			h.count++
		}
		if h.marks[userID] == nil {
			h.marks[userID] = map[string]string{}
		}
		h.marks[userID][id] = mark
	}
}

// users returns the users with held marks, in order.
func (h *heldEnds) users() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.marks))
}

func (h *heldEnds) of(userID int64) map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.marks[userID])
}

// drop forgets the recorded marks, given as public id, mark pairs, unless
// a later mark replaced one meanwhile.
func (h *heldEnds) drop(userID int64, recorded []any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := 0; i < len(recorded); i += 2 {
		id, mark := recorded[i].(string), recorded[i+1].(string)
		if h.marks[userID][id] == mark {
			delete(h.marks[userID], id)
			h.count--
		}
	}
	if len(h.marks[userID]) == 0 {
		delete(h.marks, userID)
	}
}

// RecordEnds writes the records of every marked end and returns how many
// sessions' records it wrote. It stops at the first failure that Postgres
// may get over (the marks wait for the next try); a mark that cannot be
// read, or that Postgres refuses outright, is logged and dropped. With
// Redis down it still records the marks it holds from earlier passes.
func (m *Manager) RecordEnds(ctx context.Context) (int, error) {
	readErr := m.holdMarkedEnds(ctx)
	done := 0
	for _, userID := range m.held.users() {
		n, err := m.recordUserEnds(ctx, userID)
		done += n
		if err != nil {
			return done, errors.Join(readErr, err)
		}
	}
	return done, readErr
}

// holdMarkedEnds reads every user's marks from Redis into m.held.
func (m *Manager) holdMarkedEnds(ctx context.Context) error {
	users, err := m.endingUsers(ctx)
	if err != nil {
		return err
	}
	for _, userID := range users {
		marks, err := m.endMarks(ctx, userID)
		if err != nil {
			return err
		}
		if len(marks) == 0 {
			// Recorded meanwhile, or the set outlived its marks.
			m.rdb.SRem(ctx, m.keys.ending(), userID)
		}
		m.held.add(userID, marks)
	}
	return nil
}

// recordUserEnds records one user's held ends: an UPDATE per distinct
// mark (a revoke-all is one), in mark order so that instances recording
// the same user at once take row locks in the same order; then it removes
// the recorded marks from Redis and from memory.
func (m *Manager) recordUserEnds(ctx context.Context, userID int64) (int, error) {
	byMark := map[string][]string{}
	for id, mark := range m.held.of(userID) {
		byMark[mark] = append(byMark[mark], id)
	}
	done := 0
	var recorded []any
	var failure error
	for _, mark := range slices.Sorted(maps.Keys(byMark)) {
		ids := byMark[mark]
		e, err := parseEndMark(mark)
		if err == nil {
			err = m.records.RecordEnd(ctx, userID, ids, e.reason, e.actor, e.at)
			if err != nil && !refused(err) {
				failure = fmt.Errorf("record session ends: %w", err)
				break
			}
		}
		if err != nil {
			m.log.ErrorContext(ctx, "dropping a session end that cannot be recorded",
				"user", userID, "sessions", ids, "mark", mark, "err", err)
		} else {
			done += len(ids)
		}
		for _, id := range ids {
			recorded = append(recorded, id, mark)
		}
	}
	if len(recorded) > 0 {
		m.held.drop(userID, recorded)
		// Should this fail, the marks stay in Redis and are recorded again
		// later, which is harmless.
		if err := m.clearMarks(ctx, userID, recorded); err != nil {
			failure = errors.Join(failure, fmt.Errorf("clear recorded session ends: %w", err))
		}
	}
	return done, failure
}

// clearMarks removes the recorded marks (public id, mark pairs) from the
// user's hashes and, when none is left, the user from the ending set. A
// revoke that marks a session between the two is seen by the check after
// the removal, which names the user again.
func (m *Manager) clearMarks(ctx context.Context, userID int64, recorded []any) error {
	left := int64(0)
	for _, h := range m.keys.hashes(userID) {
		n, err := clearScript.Run(ctx, m.rdb, []string{h.key}, recorded...).Int64()
		if err != nil {
			return err
		}
		left += n
	}
	if left > 0 {
		return nil
	}
	if err := m.rdb.SRem(ctx, m.keys.ending(), userID).Err(); err != nil {
		return err
	}
	marks, err := m.endMarks(ctx, userID)
	if err != nil {
		return err
	}
	if len(marks) > 0 {
		return m.rdb.SAdd(ctx, m.keys.ending(), userID).Err()
	}
	return nil
}

// endMarks returns the user's marks by public id.
func (m *Manager) endMarks(ctx context.Context, userID int64) (map[string]string, error) {
	marks := map[string]string{}
	for _, h := range m.keys.hashes(userID) {
		all, err := m.rdb.HGetAll(ctx, h.key).Result()
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

// endingUsers returns the users with end marks.
func (m *Manager) endingUsers(ctx context.Context) ([]int64, error) {
	members, err := m.rdb.SMembers(ctx, m.keys.ending()).Result()
	if err != nil {
		return nil, fmt.Errorf("read session ends: %w", err)
	}
	users := make([]int64, 0, len(members))
	for _, s := range members {
		if id, err := strconv.ParseInt(s, 10, 64); err == nil {
			users = append(users, id)
		}
	}
	return users, nil
}

// refused reports whether Postgres refused err for good (database.Refused).
func refused(err error) bool { return database.Refused(err) }

// PendingEnds is how many ended sessions wait for their record.
func (m *Manager) PendingEnds() (int, error) {
	ctx := context.Background()
	users, err := m.endingUsers(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, userID := range users {
		marks, err := m.endMarks(ctx, userID)
		if err != nil {
			return 0, err
		}
		n += len(marks)
	}
	return n, nil
}

// WaitEnds returns once every end made before the call has had its record
// written (or the try failed), or ctx ends. Tests use it before reading
// records straight from Postgres.
func (m *Manager) WaitEnds(ctx context.Context) error { return m.endsLoop.wait(ctx) }

// DropEnded leaves out of a page of records (the admin's list of active
// sessions) those that have ended but whose end is not yet recorded: one
// pipelined round trip for the page.
func (m *Manager) DropEnded(ctx context.Context, page []models.SessionView) ([]models.SessionView, error) {
	if len(page) == 0 {
		return page, nil
	}
	pipe := m.rdb.Pipeline()
	ended := make([][]*redis.BoolCmd, len(page))
	for i, v := range page {
		for _, h := range m.keys.hashes(v.UserID) {
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
