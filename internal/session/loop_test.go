package session

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
	l := startLoop(func() bool { return ok.Load() })
	defer l.halt()
	if l.lag() != 0 {
		t.Fatalf("idle loop lags %v", l.lag())
	}
	l.kick()
	if err := l.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	first := l.lag()
	if first < 20*time.Millisecond {
		t.Fatalf("after a failed run the lag is %v, want at least 20ms", first)
	}
	l.kick() // more work while the first still waits: the lag keeps its age
	l.wait(context.Background())
	if l.lag() < first {
		t.Fatalf("a later kick reset the lag: %v < %v", l.lag(), first)
	}
	ok.Store(true)
	l.kick()
	l.wait(context.Background())
	if l.lag() != 0 {
		t.Fatalf("after a successful run the lag is %v", l.lag())
	}
}
