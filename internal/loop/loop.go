// Package loop runs one function whenever it is kicked: the shape of
// Gatehouse's background writers (last seen, session ends, the sweep, the
// audit queue). Its goroutine is the caller's: Run serves until its
// context is cancelled, so whoever starts the work also stops it.
package loop

import (
	"context"
	"sync/atomic"
	"time"
)

// Loop runs its function in Run's goroutine whenever it is kicked, with
// Run's context. Kicks while it runs coalesce into one more run. The
// function reports whether it finished the work handed over (false: it
// failed, and the work waits).
// Kick, Wait and Lag may be called before Run starts: kicks are kept, and
// Wait waits for Run.
type Loop struct {
	run   func(ctx context.Context) bool
	wake  chan struct{}      // capacity 1: "there is work"
	flush chan chan struct{} // Wait asks for a run and a report when it is done
	done  chan struct{}      // closed when Run has returned

	// since is when the oldest kick not yet followed by a successful run
	// came (Unix nanoseconds; 0: none): the worker's lag (metrics).
	since atomic.Int64
}

// New returns a loop of run; nothing runs until Run.
func New(run func(ctx context.Context) bool) *Loop {
	return &Loop{
		run:   run,
		wake:  make(chan struct{}, 1),
		flush: make(chan chan struct{}),
		done:  make(chan struct{}),
	}
}

// Run serves kicks until ctx is cancelled, and returns after the run in
// progress. Call it once.
func (l *Loop) Run(ctx context.Context) {
	defer close(l.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
			l.runOnce(ctx)
		case reply := <-l.flush:
			// This run starts after every kick made so far: it does
			// their work too.
			select {
			case <-l.wake:
			default:
			}
			l.runOnce(ctx)
			close(reply)
		}
	}
}

// runOnce runs once and, when the run finished its work, clears the lag of
// the kicks it served; a kick that came during the run is due another run,
// and its lag starts at the run's start.
func (l *Loop) runOnce(ctx context.Context) {
	started := time.Now().UnixNano()
	if !l.run(ctx) {
		return
	}
	if since := l.since.Load(); since != 0 && since <= started {
		l.since.CompareAndSwap(since, 0)
	}
	if len(l.wake) > 0 {
		l.since.CompareAndSwap(0, started)
	}
}

// Lag is how long the oldest work handed over and not yet done has waited
// (0: none).
func (l *Loop) Lag() time.Duration {
	since := l.since.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since))
}

// Kick asks for a run without waiting for it.
func (l *Loop) Kick() {
	l.since.CompareAndSwap(0, time.Now().UnixNano())
	select {
	case l.wake <- struct{}{}:
	default: // a run is already due
	}
}

// Wait returns after a run that started after the call has finished, so
// everything handed over before the call has been tried; or when ctx ends,
// or Run has returned.
func (l *Loop) Wait(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case l.flush <- reply:
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when Run has returned.
func (l *Loop) Done() <-chan struct{} { return l.done }
