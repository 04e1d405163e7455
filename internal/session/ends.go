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

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5/pgconn"

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

// markEndedLua, the end of the revoke and disable scripts, marks the
// sessions in the list ended as ending for the recorder. KEYS[1] user
// hash, KEYS[2] the ending set; ARGV[1] the mark, ARGV[2] the user id.
const markEndedLua = `
for _, id in ipairs(ended) do redis.call('HSET', KEYS[1], 'e:' .. id, ARGV[1]) end
if #ended > 0 then redis.call('SADD', KEYS[2], ARGV[2]) end
return ended`

// pendingScript returns a user's marks, {public id, mark, ...}, and takes
// the user out of the ending set when there are none. KEYS[1] user hash,
// KEYS[2] ending set; ARGV[1] user id.
var pendingScript = redis.NewScript(2, `
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'e:' then
    table.insert(out, string.sub(all[i], 3))
    table.insert(out, all[i + 1])
  end
end
if #out == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return out`)

// clearScript removes the marks that were recorded, if they are unchanged,
// and takes the user out of the ending set when none is left. KEYS[1] user
// hash, KEYS[2] ending set; ARGV[1] user id, then public id, mark pairs.
var clearScript = redis.NewScript(2, `
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], 'e:' .. ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], 'e:' .. ARGV[i]) end
end
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 2) == 'e:' then return 0 end
end
redis.call('SREM', KEYS[2], ARGV[1])
return 1`)

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
	conn, err := m.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("read session ends: %w", err)
	}
	defer conn.Close()
	users, err := redis.Int64s(conn.Do("SMEMBERS", m.keys.ending()))
	if err != nil {
		return fmt.Errorf("read session ends: %w", err)
	}
	for _, userID := range users {
		marks, err := m.endMarks(conn, userID)
		if err != nil {
			return err
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
		conn, err := m.pool.GetContext(ctx)
		if err == nil {
			args := append([]any{m.keys.user(userID), m.keys.ending(), userID}, recorded...)
			_, err = clearScript.Do(conn, args...)
			conn.Close()
		}
		if err != nil {
			failure = errors.Join(failure, fmt.Errorf("clear recorded session ends: %w", err))
		}
	}
	return done, failure
}

// endMarks returns the user's marks by public id.
func (m *Manager) endMarks(conn redis.Conn, userID int64) (map[string]string, error) {
	pairs, err := redis.StringMap(pendingScript.Do(conn, m.keys.user(userID), m.keys.ending(), userID))
	if err != nil {
		return nil, fmt.Errorf("read session ends: %w", err)
	}
	return pairs, nil
}

// refused reports whether Postgres answered err and the answer will not
// change on a retry: bad data or a broken constraint. Anything else
// (unreachable, timeouts, deadlocks, a shutdown) is worth another try.
func refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	class := pgErr.Code[:2]
	return class == "22" || class == "23"
}

// PendingEnds is how many ended sessions wait for their record.
func (m *Manager) PendingEnds() (int, error) {
	conn := m.pool.Get()
	defer conn.Close()
	users, err := redis.Int64s(conn.Do("SMEMBERS", m.keys.ending()))
	if err != nil {
		return 0, fmt.Errorf("count session ends: %w", err)
	}
	n := 0
	for _, userID := range users {
		marks, err := m.endMarks(conn, userID)
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
	conn, err := m.pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	defer conn.Close()
	ended := make([]bool, len(page))
	err = pipeline(conn, len(page), func(i int) error {
		return conn.Send("HEXISTS", m.keys.user(page[i].UserID), endField+page[i].PublicID)
	}, func(i int, reply any) error {
		n, err := redis.Int(reply, nil)
		ended[i] = n == 1
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read session ends: %w", err)
	}
	out := page[:0:0]
	for i, v := range page {
		if !ended[i] {
			out = append(out, v)
		}
	}
	return out, nil
}
