package workers

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/loop"
)

// Last-seen writes happen off the request path, so a slow or hung Postgres
// never stalls a page that needs only the session.
//
// A request that is due to write last_seen_at (once a minute per session)
// offers the write to a lastSeenWriter and moves on. The writer keeps at
// most one waiting write per session (a later sighting replaces an earlier
// one) and at most maxPending sessions in all; one goroutine writes them.
// A request whose offer is refused (the writer is full, or stopped) does
// not advance the session's seen_at, so the next request offers again. A
// write that fails is logged and dropped, and the session's next request
// after touchInterval writes again: last_seen_at lags, it is never wrong,
// and it never goes backwards (SessionStore.Touch only moves it forward).
const (
	// lastSeenMaxPending bounds the writer's memory: a few hundred bytes a
	// session.
	lastSeenMaxPending = 10_000
	// lastSeenWriteTimeout bounds one write. After a failed write the rest
	// of that batch is dropped rather than waited for one by one, so a hung
	// Postgres costs the writer one timeout per batch.
	lastSeenWriteTimeout = 2 * time.Second
	// dropLogEvery rate-limits the warning about refused offers.
	dropLogEvery = 10 * time.Second
)

// toucher writes last_seen_at: *models.SessionStore, or a fake in tests.
type toucher interface {
	Touch(ctx context.Context, publicID, ip string, at time.Time) error
}

type sighting struct {
	ip string
	at time.Time
}

// lastSeenWriter is the bounded background writer of last_seen_at.
type lastSeenWriter struct {
	records    toucher
	log        *slog.Logger
	maxPending int
	timeout    time.Duration

	mu      sync.Mutex
	pending map[string]sighting // by public id
	closed  bool

	loop *loop.Loop // runs writeBatch (Workers.Run)

	written, failed, dropped atomic.Int64
	lastDropLog              atomic.Int64 // Unix nanoseconds
}

func newLastSeenWriter(records toucher, log *slog.Logger, maxPending int, timeout time.Duration) *lastSeenWriter {
	w := &lastSeenWriter{
		records: records, log: log, maxPending: maxPending, timeout: timeout,
		pending: map[string]sighting{},
	}
	w.loop = loop.New(func(ctx context.Context) bool {
		// A write under way finishes even as Run stops (close then writes
		// the rest). A failed write is dropped, not retried (each session
		// offers again): the work handed over is done either way.
		w.writeBatch(context.WithoutCancel(ctx))
		return true
	})
	return w
}

// offer queues a write of last_seen_at for the session publicID, without
// blocking. It reports whether the write was accepted.
func (w *lastSeenWriter) offer(publicID, ip string, at time.Time) bool {
	w.mu.Lock()
	_, waiting := w.pending[publicID]
	if w.closed || (!waiting && len(w.pending) >= w.maxPending) {
		closed := w.closed
		w.mu.Unlock()
		if !closed {
			w.refused()
		}
		return false
	}
	w.pending[publicID] = sighting{ip: ip, at: at}
	w.mu.Unlock()
	w.loop.Kick()
	return true
}

// refused counts an offer turned away because the writer is full, and says
// so in the log at most every dropLogEvery.
func (w *lastSeenWriter) refused() {
	n := w.dropped.Add(1)
	now := time.Now().UnixNano()
	last := w.lastDropLog.Load()
	if now-last >= int64(dropLogEvery) && w.lastDropLog.CompareAndSwap(last, now) {
		w.log.Warn("last-seen writer full: writes refused, each retried on the session's next request",
			"refused_total", n, "pending", w.maxPending)
	}
}

// take empties the queue and returns what it held.
func (w *lastSeenWriter) take() map[string]sighting {
	w.mu.Lock()
	defer w.mu.Unlock()
	batch := w.pending
	w.pending = map[string]sighting{}
	return batch
}

// writeBatch writes everything queued. After the first failure it drops the
// rest: Postgres is most likely down, and each session retries on its next
// request.
func (w *lastSeenWriter) writeBatch(ctx context.Context) {
	batch := w.take()
	if bt, ok := w.records.(batchToucher); ok {
		w.writeMany(ctx, bt, batch) // lastseen_batch.go
		return
	}
	var failure error
	dropped := 0
	for id, s := range batch {
		if failure != nil || ctx.Err() != nil {
			dropped++
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, w.timeout)
		err := w.records.Touch(wctx, id, s.ip, s.at)
		cancel()
		if err != nil {
			failure = err
			dropped++
			continue
		}
		w.written.Add(1)
	}
	if dropped > 0 {
		w.failed.Add(int64(dropped))
		w.log.Warn("writing last seen failed; dropped, retried on each session's next request after a minute",
			"dropped", dropped, "err", failure)
	}
}

// wait returns once every write offered before the call has been tried,
// or ctx ends.
func (w *lastSeenWriter) wait(ctx context.Context) error { return w.loop.Wait(ctx) }

// close refuses further offers and writes what is still queued, giving up
// (and counting the rest as dropped) when ctx ends. Call it once the loop's
// Run has returned, so that it is the only writer; only the first call
// does anything.
func (w *lastSeenWriter) close(ctx context.Context) {
	w.mu.Lock()
	first := !w.closed
	w.closed = true
	w.mu.Unlock()
	if first {
		w.writeBatch(ctx)
	}
}

// LastSeenStats are the counters of the last-seen writer.
type LastSeenStats struct {
	Written int64 // rows written
	Failed  int64 // writes dropped after a failure (retried on a later request)
	Refused int64 // offers refused because the writer was full
}

func (w *lastSeenWriter) stats() LastSeenStats {
	return LastSeenStats{Written: w.written.Load(), Failed: w.failed.Load(), Refused: w.dropped.Load()}
}
