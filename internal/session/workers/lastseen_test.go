package workers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeToucher records writes; while hang is open-ended (not closed), every
// write blocks until its context ends, as on a hung Postgres.
type fakeToucher struct {
	mu      sync.Mutex
	writes  map[string][]time.Time
	hang    chan struct{} // writes block until this is closed (nil: never block)
	entered chan string   // if set, each write sends its id on entry
	fail    error
}

func (f *fakeToucher) Touch(ctx context.Context, id, _ string, at time.Time) error {
	if f.entered != nil {
		f.entered <- id
	}
	if f.hang != nil {
		select {
		case <-f.hang:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if f.writes == nil {
		f.writes = map[string][]time.Time{}
	}
	f.writes[id] = append(f.writes[id], at)
	return nil
}

func (f *fakeToucher) of(id string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.writes[id]...)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// running runs w's loop as Workers.Run does; stop(ctx) stops it as Run
// does when its context is cancelled: after the write in progress, then
// the final flush within ctx. Stopping twice is harmless.
func running(w *lastSeenWriter) (stop func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	go w.loop.Run(ctx)
	return func(flush context.Context) {
		cancel()
		<-w.loop.Done()
		w.close(flush)
	}
}

func TestLastSeenOffersNeverBlockOnAHungDatabase(t *testing.T) {
	f := &fakeToucher{hang: make(chan struct{}), entered: make(chan string, 10)}
	w := newLastSeenWriter(f, quiet, 3, time.Hour)
	stop := running(w)
	t0 := time.Unix(1_700_000_000, 0)

	start := time.Now()
	// The first offer is taken by the goroutine, which then hangs in its
	// write; the writer holds three more sessions, then refuses.
	accepted := 0
	for i, id := range []string{"a", "b", "c", "d", "e", "f"} {
		if w.offer(id, "ip", t0.Add(time.Duration(i)*time.Second)) {
			accepted++
		}
		if i == 0 {
			<-f.entered // the goroutine is now stuck writing "a"
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("offers took %v with the database hung", took)
	}
	if accepted != 4 || w.dropped.Load() != 2 {
		t.Fatalf("accepted %d, refused %d; want 4 and 2 (one in flight, three waiting)", accepted, w.dropped.Load())
	}
	// A session already waiting is updated in place, even when full.
	if !w.offer("b", "ip", t0.Add(time.Minute)) {
		t.Fatal("an offer for a session already waiting was refused")
	}
	close(f.hang)
	if err := w.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.of("b"); len(got) != 1 || !got[0].Equal(t0.Add(time.Minute)) {
		t.Errorf("session b written %v, want once, with the latest sighting", got)
	}
	for _, id := range []string{"a", "c", "d"} {
		if len(f.of(id)) != 1 {
			t.Errorf("session %s written %d times, want 1", id, len(f.of(id)))
		}
	}
	stop(context.Background())
	if w.offer("a", "ip", t0) {
		t.Error("a stopped writer accepted an offer")
	}
}

func TestLastSeenFailureDropsTheBatch(t *testing.T) {
	f := &fakeToucher{fail: errors.New("connection refused")}
	w := newLastSeenWriter(f, quiet, 100, time.Second)
	stop := running(w)
	defer stop(context.Background())
	f.mu.Lock() // hold writes back until all three are queued
	for _, id := range []string{"a", "b", "c"} {
		w.offer(id, "ip", time.Now())
	}
	f.mu.Unlock()
	if err := w.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.failed.Load() != 3 || w.written.Load() != 0 {
		t.Fatalf("failed %d, written %d; want 3 and 0", w.failed.Load(), w.written.Load())
	}
	// Postgres is back: the next offer is written.
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	w.offer("a", "ip", time.Now())
	w.wait(context.Background())
	if len(f.of("a")) != 1 {
		t.Fatal("a write after the failure was not made")
	}
}

func TestLastSeenCloseWritesWhatIsQueued(t *testing.T) {
	f := &fakeToucher{hang: make(chan struct{})}
	w := newLastSeenWriter(f, quiet, 100, time.Hour)
	stop := running(w)
	w.offer("a", "ip", time.Now())
	time.Sleep(20 * time.Millisecond) // the goroutine hangs on "a"
	w.offer("b", "ip", time.Now())
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(f.hang)
	}()
	stop(context.Background())
	if len(f.of("a")) != 1 || len(f.of("b")) != 1 {
		t.Fatalf("after close: a written %d times, b %d; want 1 each", len(f.of("a")), len(f.of("b")))
	}
	stop(context.Background()) // twice is harmless
}

func TestLastSeenCloseGivesUpWhenItsContextEnds(t *testing.T) {
	f := &fakeToucher{hang: make(chan struct{})}
	defer close(f.hang)
	w := newLastSeenWriter(f, quiet, 100, 50*time.Millisecond)
	stop := running(w)
	w.offer("a", "ip", time.Now())
	time.Sleep(20 * time.Millisecond)
	w.offer("b", "ip", time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	stop(ctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("close took %v on a hung database", took)
	}
	if w.failed.Load() != 2 {
		t.Errorf("failed %d, want 2 (both writes dropped)", w.failed.Load())
	}
}

// TestLastSeenIsRaceFree offers from many goroutines while the writer
// writes, waits and closes; run with -race.
func TestLastSeenIsRaceFree(t *testing.T) {
	f := &fakeToucher{}
	w := newLastSeenWriter(f, quiet, 50, time.Second)
	stop := running(w)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				w.offer(string(rune('a'+g))+string(rune('a'+i%26)), "ip", time.Now())
				if i%50 == 0 {
					w.wait(context.Background())
				}
			}
		}()
	}
	wg.Wait()
	stop(context.Background())
	total := w.written.Load() + w.failed.Load()
	if total == 0 || w.failed.Load() != 0 {
		t.Fatalf("written %d, failed %d", w.written.Load(), w.failed.Load())
	}
}
