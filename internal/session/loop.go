package session

import (
	"context"
	"sync"
)

// loop runs one function in a goroutine of its own whenever it is kicked:
// the shape of the manager's background writers (last seen, session ends).
// Kicks while it runs coalesce into one more run.
type loop struct {
	run   func()
	wake  chan struct{}      // capacity 1: "there is work"
	flush chan chan struct{} // wait asks for a run and a report when it is done
	stop  chan struct{}      // closed by halt
	done  chan struct{}      // closed when the goroutine has returned

	halting sync.Once
}

func startLoop(run func()) *loop {
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
			l.run()
		case reply := <-l.flush:
			// This run starts after every kick made so far: it does
			// their work too.
			select {
			case <-l.wake:
			default:
			}
			l.run()
			close(reply)
		}
	}
}

// kick asks for a run without waiting for it.
func (l *loop) kick() {
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
