// Package auditqueue carries audit events from the request that records
// them to Postgres, off the request's path and through outages of either
// store. Its list in Redis (P audit, and P audit:epoch) and its one script
// are its own; its writer runs in Queue.Run, beside the session workers.
package auditqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/loop"
	"github.com/gatehouse/gatehouse/internal/models"
)

// Queue carries audit events from the request that records them to
// Postgres, off the request's path and through outages of either store.
//
// Enqueue costs one RPUSH to the list P audit, beside the end marks, and
// never waits for Postgres. The instance also keeps the event in memory
// until it knows the event is written. A writer (one goroutine per
// instance; several instances may drain the list at once) inserts a batch
// from the head of the list together with what it holds in memory, and
// only then removes the batch from the list. Every event carries an id
// made when it happened, and inserts skip ids already stored, so an event
// written twice (two instances, a retry after a crash between insert and
// removal) is stored once.
//
// So an event is lost only if Redis loses it (a restart without
// persistence) and the instance that recorded it dies before Postgres has
// it. Kept in memory, events survive a Redis restart; kept in Redis, they
// survive the instance. An event that failed to reach Redis is pushed
// again on the next pass, so that it outlives the instance once Redis is
// back.
type Queue struct {
	rdb     redis.UniversalClient
	key     string
	store   *models.AuditStore
	log     *slog.Logger
	timeout time.Duration // of a pass, and of Flush
	loop    *loop.Loop

	mu    sync.Mutex
	held  map[string]*heldEvent // by event id
	err   error                 // of the last pass
	epoch string                // the value of P audit:epoch when last seen
}

type heldEvent struct {
	event  models.AuditEvent
	queued bool // the RPUSH succeeded
}

const (
	// auditBatch is how many events one INSERT writes.
	auditBatch = 500
	// auditHeldMax bounds the events an instance keeps in memory; beyond
	// it, new events rely on Redis alone.
	auditHeldMax = 100_000
	// auditRetry is how often the writer tries again while the instance
	// holds events (Postgres down). Events another instance left in the
	// list are written by the next pass of any instance: after its next
	// event, or when a page reads the log.
	auditRetry = 5 * time.Second
)

// New returns the queue under prefix; its writer runs in Run. A pass of
// the writer, and a Flush, take at most timeout (DATABASE_TIMEOUT: a
// reader that flushes answers 503 past it, like any database work).
func New(rdb redis.UniversalClient, prefix string, store *models.AuditStore, log *slog.Logger, timeout time.Duration) *Queue {
	q := &Queue{
		rdb: rdb, key: prefix + "audit", store: store, log: log, timeout: timeout,
		held: map[string]*heldEvent{},
	}
	q.loop = loop.New(q.writeInBackground)
	return q
}

// finalFlush bounds the write Run makes once its context is cancelled.
const finalFlush = 5 * time.Second

// Run writes queued events (after each event, every auditRetry while the
// instance holds some, and for Flush) until ctx is cancelled; then it
// writes what it can within finalFlush and returns. What is left stays in
// Redis for another instance (or this one's next start).
func (q *Queue) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.loop.Run(ctx)
	}()
	t := time.NewTicker(auditRetry)
	defer t.Stop()
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-t.C:
			if q.Held() > 0 {
				q.loop.Kick()
			}
		}
	}
	<-done
	flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlush)
	defer cancel()
	if err := q.Write(flush); err != nil {
		q.log.Warn("audit events left to write later", "err", err, "held_in_memory", q.Held())
	}
	return nil
}

// Enqueue implements models.AuditQueue. It fails only if the event could
// be neither queued in Redis nor kept in memory.
func (q *Queue) Enqueue(ctx context.Context, e models.AuditEvent) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("queue audit event: %w", err)
	}
	// The event has happened: a request that ends now must not lose it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	pushErr := q.push(ctx, b)
	q.mu.Lock()
	kept := len(q.held) < auditHeldMax
	if kept {
		q.held[e.EventID] = &heldEvent{event: e, queued: pushErr == nil}
	}
	q.mu.Unlock()
	q.loop.Kick()
	switch {
	case pushErr != nil && !kept:
		return fmt.Errorf("queue audit event (memory full): %w", pushErr)
	case pushErr != nil:
		q.log.WarnContext(ctx, "audit event kept in memory only until Redis is back", "kind", e.Kind, "err", pushErr)
	}
	return nil
}

func (q *Queue) push(ctx context.Context, items ...any) error {
	return q.rdb.RPush(ctx, q.key, items...).Err()
}

// Flush implements models.AuditQueue: it waits for a pass of the writer,
// which drains the list (every instance's events) and writes what this
// instance holds, and returns that pass's error.
func (q *Queue) Flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	if err := q.loop.Wait(ctx); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// Held is how many events this instance keeps until they are written.
func (q *Queue) Held() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.held)
}

// writeInBackground is the writer's pass: after each event, every
// auditRetry, and for Flush.
func (q *Queue) writeInBackground(ctx context.Context) bool {
	// A pass under way finishes even as Run stops, within its bound.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.timeout)
	defer cancel()
	err := q.Write(ctx)
	q.mu.Lock()
	q.err = err
	q.mu.Unlock()
	if err != nil {
		q.log.Warn("audit events not yet written; kept and retried", "err", err, "held_in_memory", q.Held())
	}
	return err == nil
}

// Lag is how long the oldest event handed to the writer has waited to be
// written (0: none waits).
func (q *Queue) Lag() time.Duration { return q.loop.Lag() }

// Write writes the queued events: the list, batch by batch, then what
// this instance still holds (events another instance took from the list,
// or that Redis lost). A failure of Redis does not stop the events held in
// memory from being written; a failure of Postgres stops the pass, and
// everything stays queued.
func (q *Queue) Write(ctx context.Context) error {
	redisErr := q.requeue(ctx)
	for redisErr == nil {
		events, raw, err := q.head(ctx)
		if err != nil {
			redisErr = err
			break
		}
		if len(raw) == 0 {
			break
		}
		if err := q.insert(ctx, events); err != nil {
			return err
		}
		if err := q.pop(ctx, raw); err != nil {
			return err
		}
		q.forget(events)
		if len(raw) < auditBatch {
			break
		}
	}
	held := q.heldEvents()
	for len(held) > 0 {
		n := min(len(held), auditBatch)
		if err := q.insert(ctx, held[:n]); err != nil {
			return errors.Join(redisErr, err)
		}
		q.forget(held[:n])
		held = held[n:]
	}
	return redisErr
}

// requeue pushes to the list the held events that are not in it: those
// whose RPUSH failed, and all of them when Redis has lost its data since
// the last pass (P audit:epoch, a random value set when missing, changed).
func (q *Queue) requeue(ctx context.Context) error {
	if q.Held() == 0 {
		return nil
	}
	epochKey := q.key + ":epoch"
	if err := q.rdb.SetNX(ctx, epochKey, models.NewEventID(), 0).Err(); err != nil {
		return err
	}
	epoch, err := q.rdb.Get(ctx, epochKey).Result()
	if err != nil {
		return err
	}
	q.mu.Lock()
	if q.epoch != "" && q.epoch != epoch {
		for _, h := range q.held {
			h.queued = false
		}
	}
	q.epoch = epoch
	var items []any
	var ids []string
	for id, h := range q.held {
		if !h.queued {
			b, _ := json.Marshal(h.event) // it was marshalled once already
			items, ids = append(items, b), append(ids, id)
		}
	}
	q.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	if err := q.rdb.RPush(ctx, q.key, items...).Err(); err != nil {
		return err
	}
	q.mu.Lock()
	for _, id := range ids {
		if h, ok := q.held[id]; ok {
			h.queued = true
		}
	}
	q.mu.Unlock()
	return nil
}

// head returns the first events of the list, decoded, and the items as
// they are in the list (to remove them once written). An item that cannot
// be decoded is logged and removed with the batch.
func (q *Queue) head(ctx context.Context) ([]models.AuditEvent, []string, error) {
	raw, err := q.rdb.LRange(ctx, q.key, 0, auditBatch-1).Result()
	if err != nil {
		return nil, nil, err
	}
	events := make([]models.AuditEvent, 0, len(raw))
	for _, item := range raw {
		var e models.AuditEvent
		if err := json.Unmarshal([]byte(item), &e); err != nil || e.EventID == "" {
			q.log.Error("dropping an audit event that cannot be read", "item", item, "err", err)
			continue
		}
		events = append(events, e)
	}
	return events, raw, nil
}

// insert writes events. If Postgres refuses the batch outright (bad data,
// a broken constraint), it writes them one by one and drops, with an
// ERROR line, those it refuses; anything else is an error to retry.
func (q *Queue) insert(ctx context.Context, events []models.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	err := q.store.Insert(ctx, events)
	if err == nil || !database.Refused(err) {
		return err
	}
	for _, e := range events {
		if err := q.store.Insert(ctx, []models.AuditEvent{e}); err != nil {
			if !database.Refused(err) {
				return err
			}
			q.log.Error("dropping an audit event that Postgres refuses", "kind", e.Kind, "event", e.EventID, "err", err)
		}
	}
	return nil
}

// popAuditScript removes written items from the head of the list: with
// one LTRIM when they are still its head, as they are unless another
// instance wrote and removed them meanwhile; otherwise each that is still
// there. Items are only ever appended, and each is unique (its event id).
var popAuditScript = redis.NewScript(`
-- KEYS[1]  the list
-- ARGV     the items written, in list order
-- Result: how many items it removed.
local n = #ARGV
local head = redis.call('LRANGE', KEYS[1], 0, n - 1)
local same = #head == n
for i = 1, #head do
  if head[i] ~= ARGV[i] then same = false break end
end
if same then redis.call('LTRIM', KEYS[1], n, -1) return n end
local removed = 0
for i = 1, n do removed = removed + redis.call('LREM', KEYS[1], 1, ARGV[i]) end
return removed`)

func (q *Queue) pop(ctx context.Context, raw []string) error {
	args := make([]any, len(raw))
	for i, item := range raw {
		args[i] = item
	}
	return popAuditScript.Run(ctx, q.rdb, []string{q.key}, args...).Err()
}

// heldEvents returns the events this instance still holds, oldest first.
func (q *Queue) heldEvents() []models.AuditEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]models.AuditEvent, 0, len(q.held))
	for _, h := range q.held {
		out = append(out, h.event)
	}
	slices.SortFunc(out, func(a, b models.AuditEvent) int { return a.At.Compare(b.At) })
	return out
}

// forget drops written events from memory.
func (q *Queue) forget(events []models.AuditEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range events {
		delete(q.held, e.EventID)
	}
}
