package workers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/session/redisstore"
)

// Ending a session and recording why are two steps, and only the first is
// on the request's path.
//
// The revoke script kills sessions in Redis and, in the same atomic step,
// leaves a mark for each in the user hash (redisstore's EndMark), and the
// user is named in the set of users with marks. From that moment the session is dead on every
// instance and its end cannot be lost, short of losing Redis. The record in
// Postgres is written next, by the end recorder here, in the
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

// endsTimeout bounds one background recording pass.
const endsTimeout = 10 * time.Second

// recordEndsInBackground is the end recorder's pass: it runs after every
// end (and the sweep runs RecordEnds too).
func (w *Workers) recordEndsInBackground(ctx context.Context) bool {
	// A pass under way finishes even as Run stops, within its bound.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endsTimeout)
	defer cancel()
	if _, err := w.RecordEnds(ctx); err != nil {
		w.log.Warn("session ends not yet recorded; kept in Redis and retried on the next end or sweep", "err", err)
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
func (w *Workers) RecordEnds(ctx context.Context) (int, error) {
	readErr := w.holdMarkedEnds(ctx)
	done := 0
	for _, userID := range w.held.users() {
		n, err := w.recordUserEnds(ctx, userID)
		done += n
		if err != nil {
			return done, errors.Join(readErr, err)
		}
	}
	return done, readErr
}

// holdMarkedEnds reads every user's marks from Redis into w.held.
func (w *Workers) holdMarkedEnds(ctx context.Context) error {
	users, err := w.store.EndingUsers(ctx)
	if err != nil {
		return err
	}
	for _, userID := range users {
		marks, err := w.store.EndMarks(ctx, userID)
		if err != nil {
			return err
		}
		if len(marks) == 0 {
			// Recorded meanwhile, or the set outlived its marks.
			w.store.Unmark(ctx, userID)
		}
		w.held.add(userID, marks)
	}
	return nil
}

// recordUserEnds records one user's held ends: an UPDATE per distinct
// mark (a revoke-all is one), in mark order so that instances recording
// the same user at once take row locks in the same order; then it removes
// the recorded marks from Redis and from memory.
func (w *Workers) recordUserEnds(ctx context.Context, userID int64) (int, error) {
	byMark := map[string][]string{}
	for id, mark := range w.held.of(userID) {
		byMark[mark] = append(byMark[mark], id)
	}
	done := 0
	var recorded []any
	var failure error
	for _, mark := range slices.Sorted(maps.Keys(byMark)) {
		ids := byMark[mark]
		e, err := redisstore.ParseEndMark(mark)
		if err == nil {
			err = w.records.RecordEnd(ctx, userID, ids, e.Reason, e.Actor, e.At)
			if err != nil && !database.Refused(err) {
				failure = fmt.Errorf("record session ends: %w", err)
				break
			}
		}
		if err != nil {
			w.log.ErrorContext(ctx, "dropping a session end that cannot be recorded",
				"user", userID, "sessions", ids, "mark", mark, "err", err)
		} else {
			done += len(ids)
		}
		for _, id := range ids {
			recorded = append(recorded, id, mark)
		}
	}
	if len(recorded) > 0 {
		w.held.drop(userID, recorded)
		// Should this fail, the marks stay in Redis and are recorded again
		// later, which is harmless.
		if err := w.store.ClearMarks(ctx, userID, recorded); err != nil {
			failure = errors.Join(failure, fmt.Errorf("clear recorded session ends: %w", err))
		}
	}
	return done, failure
}

// WaitEnds returns once every end made before the call has had its record
// written (or the try failed), or ctx ends. Tests use it before reading
// records straight from Postgres.
func (w *Workers) WaitEnds(ctx context.Context) error { return w.ends.Wait(ctx) }

// Ended wakes the end recorder: sessions ended, and their marks wait in
// Redis.
func (w *Workers) Ended() { w.ends.Kick() }
