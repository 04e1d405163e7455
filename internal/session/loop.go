package session

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// loop runs one function in a goroutine of its own whenever it is kicked:
// the shape of the manager's background writers (last seen, session ends).
// Kicks while it runs coalesce into one more run. run reports whether it
// finished the work handed over (false: it failed, and the work waits).
type loop struct {
	run   func() bool
	wake  chan struct{}      // capacity 1: "there is work"
	flush chan chan struct{} // wait asks for a run and a report when it is done
	stop  chan struct{}      // closed by halt
	done  chan struct{}      // closed when the goroutine has returned

	halting sync.Once

	// since is when the oldest kick not yet followed by a successful run
	// came (Unix nanoseconds; 0: none): the worker's lag (metrics).
	since atomic.Int64
}

func startLoop(run func() bool) *loop {
	l := &loop{
		run:   run,
		wake:  make(chan struct{}, 1),
		flush: make(chan chan struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go l.serve()
	return l
}

func (l *loop) serve() {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			return
		case <-l.wake:
			l.runOnce()
		case reply := <-l.flush:
			// This run starts after every kick made so far: it does
			// their work too.
			select {
			case <-l.wake:
			default:
			}
			l.runOnce()
			close(reply)
		}
	}
}

// runOnce runs once and, when the run finished its work, clears the lag of
// the kicks it served; a kick that came during the run is due another run,
// and its lag starts at the run's start.
func (l *loop) runOnce() {
	started := time.Now().UnixNano()
	if !l.run() {
		return
	}
	if since := l.since.Load(); since != 0 && since <= started {
		l.since.CompareAndSwap(since, 0)
	}
	if len(l.wake) > 0 {
		l.since.CompareAndSwap(0, started)
	}
}

// lag is how long the oldest work handed over and not yet done has waited
// (0: none).
func (l *loop) lag() time.Duration {
	since := l.since.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since))
}

// kick asks for a run without waiting for it.
func (l *loop) kick() {
	l.since.CompareAndSwap(0, time.Now().UnixNano())
	select {
	case l.wake <- struct{}{}:
	default: // a run is already due
	}
}

// wait returns after a run that started after the call has finished, so
// everything handed over before the call has been tried; or when ctx ends,
// or the loop has stopped.
func (l *loop) wait(ctx context.Context) error {
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

// halt stops the goroutine, after the run in progress, and returns once it
// has.
func (l *loop) halt() {
	l.halting.Do(func() { close(l.stop) })
	<-l.done
}
