package loop

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// A worker's lag is the age of the oldest work handed to it and not yet
// done: it grows while runs fail, and is 0 once a run succeeds.
func TestLoopLag(t *testing.T) {
	var ok atomic.Bool
	l := New(func(context.Context) bool { return ok.Load() })
	ctx, cancel := context.WithCancel(context.Background())
	go l.Run(ctx)
	defer func() { cancel(); <-l.Done() }()
	if l.Lag() != 0 {
		t.Fatalf("idle loop lags %v", l.Lag())
	}
	l.Kick()
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	first := l.Lag()
	if first < 20*time.Millisecond {
		t.Fatalf("after a failed run the lag is %v, want at least 20ms", first)
	}
	l.Kick() // more work while the first still waits: the lag keeps its age
	l.Wait(context.Background())
	if l.Lag() < first {
		t.Fatalf("a later kick reset the lag: %v < %v", l.Lag(), first)
	}
	ok.Store(true)
	l.Kick()
	l.Wait(context.Background())
	if l.Lag() != 0 {
		t.Fatalf("after a successful run the lag is %v", l.Lag())
	}
}

// Kicks made before Run are served once it starts, and Wait returns once
// Run has returned rather than hanging.
func TestLoopRunsKicksMadeBeforeItStarts(t *testing.T) {
	var runs atomic.Int32
	l := New(func(context.Context) bool { runs.Add(1); return true })
	l.Kick()
	ctx, cancel := context.WithCancel(context.Background())
	go l.Run(ctx)
	for deadline := time.Now().Add(5 * time.Second); runs.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a kick made before Run was never served")
		}
	}
	cancel()
	<-l.Done()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := l.Wait(wctx); err != nil {
		t.Fatalf("Wait after Run returned: %v", err)
	}
}
