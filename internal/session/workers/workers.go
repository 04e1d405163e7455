// Package workers holds the sessions' background work: the last-seen
// writer (lastseen.go), the end recorder (ends.go) and the sweeper
// (sweep.go). Nothing runs until Run, which runs all three and returns
// when its context is cancelled, after a bounded final flush. The app
// starts Run beside its HTTP server (app.App.Run), and the test harness
// runs it for every instance it starts.
//
// The session API (package session) hands work over without waiting:
// Offer queues a last-seen write, Ended wakes the end recorder. The waits
// (WaitEnds, WaitLastSeen, WaitSweep) and the passes themselves
// (RecordEnds, Sweep) work while Run runs, for tests and tools.
package workers

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/loop"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session/redisstore"
)

// Options configure Workers.
type Options struct {
	Store   *redisstore.Store
	Records *models.SessionStore
	Logger  *slog.Logger
	Now     func() time.Time // the clock; time.Now when nil
	// Idle is the browsers' idle timeout (the sweep's candidates).
	Idle time.Duration
	// SweepInterval is how often the sweeper runs (SWEEP_INTERVAL); 0:
	// never by itself.
	SweepInterval time.Duration
	// ExpireApps closes the app sessions of a user (0: every user) past
	// their lifetimes; the sweep runs it for every user.
	ExpireApps func(ctx context.Context, userID int64) error
	// DeviceAuths are the device flow's codes, whose expired rows the
	// sweep deletes; nil: none.
	DeviceAuths *models.DeviceStore
}

// FinalFlush bounds the writes Run makes once its context is cancelled:
// last-seen writes still queued, and ends not yet recorded. What is left
// is dropped (last seen) or waits in Redis (ends) for another instance or
// the next start.
const FinalFlush = 5 * time.Second

// Workers are the sessions' background writers.
type Workers struct {
	store      *redisstore.Store
	records    *models.SessionStore
	log        *slog.Logger
	now        func() time.Time
	idle       time.Duration
	interval   time.Duration
	expireApps func(ctx context.Context, userID int64) error
	devices    *models.DeviceStore

	seen   *lastSeenWriter // last_seen_at (lastseen.go)
	ends   *loop.Loop      // the end recorder (ends.go)
	sweeps *loop.Loop      // the sweeper (sweep.go)
	// held keeps the end marks read from Redis until recorded (ends.go).
	held heldEnds

	running atomic.Bool
}

// New returns the workers; nothing runs until Run.
func New(o Options) *Workers {
	now, log := o.Now, o.Logger
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Workers{
		store: o.Store, records: o.Records, log: log, now: now, idle: o.Idle, interval: o.SweepInterval,
		expireApps: o.ExpireApps, devices: o.DeviceAuths,
		seen: newLastSeenWriter(o.Records, log, lastSeenMaxPending, lastSeenWriteTimeout),
	}
	w.ends = loop.New(w.recordEndsInBackground)
	w.sweeps = loop.New(w.sweepInBackground)
	return w
}

// Run runs the last-seen writer, the end recorder and the sweeper (now,
// then every SweepInterval) until ctx is cancelled. It then refuses
// further last-seen writes and, within FinalFlush, writes those still
// queued and records the ends not yet recorded. Run once.
func (w *Workers) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("session workers: Run called twice")
	}
	// The first sweep is kicked before any loop runs, so that a WaitSweep
	// made once Run has started covers it (the harness waits for it).
	if w.interval > 0 {
		w.sweeps.Kick()
	}
	var wg sync.WaitGroup
	for _, l := range []*loop.Loop{w.seen.loop, w.ends, w.sweeps} {
		wg.Go(func() { l.Run(ctx) })
	}
	wg.Go(func() { w.tick(ctx) })
	wg.Wait()

	flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), FinalFlush)
	defer cancel()
	w.seen.close(flush)
	if _, err := w.RecordEnds(flush); err != nil {
		w.log.Warn("session ends left to record later", "err", err)
	}
	return nil
}

// tick wakes the sweeper every interval, and the end recorder
// every endsRetryEvery (or interval, if shorter), until ctx ends.
func (w *Workers) tick(ctx context.Context) {
	retryEvery := endsRetryEvery
	var sweep <-chan time.Time
	if w.interval > 0 {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		sweep = t.C
		retryEvery = min(retryEvery, w.interval)
	}
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep:
			w.sweeps.Kick()
		case <-retry.C:
			w.ends.Kick()
		}
	}
}

// Offer queues a write of last_seen_at for the session publicID, without
// blocking. It reports whether the write was accepted: when it was not
// (the writer is full, or stopped), the caller offers again on the
// session's next request.
func (w *Workers) Offer(publicID, ip string, at time.Time) bool {
	return w.seen.offer(publicID, ip, at)
}

// WaitLastSeen returns once every last-seen write queued before the call
// has been tried (written or dropped), or ctx ends. Tests use it.
func (w *Workers) WaitLastSeen(ctx context.Context) error { return w.seen.wait(ctx) }

// LastSeenStats returns the last-seen writer's counters.
func (w *Workers) LastSeenStats() LastSeenStats { return w.seen.stats() }

// Lag is how long the oldest work handed to each background writer has
// waited: ends whose records are not yet written (or failed to be: they
// wait for the next try), and last-seen writes queued.
func (w *Workers) Lag() (endRecorder, lastSeen time.Duration) {
	return w.ends.Lag(), w.seen.loop.Lag()
}
