package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLimitErrorsWritesEachMessageOncePerInterval: repeats of an ERROR
// line are held back, across loggers derived with With (they share the
// limit), and counted when the interval ends; other levels pass.
func TestLimitErrorsWritesEachMessageOncePerInterval(t *testing.T) {
	var out lockedBuffer
	log := slog.New(LimitErrors(slog.NewTextHandler(&out, nil), 200*time.Millisecond))
	for i := range 5 {
		log.With("request", i).Error("request failed", "status", 503)
	}
	log.Error("other failure")
	log.Info("request")
	log.Info("request")
	got := out.String()
	for line, want := range map[string]int{`msg="request failed"`: 1, `msg="other failure"`: 1, "msg=request\n": 2} {
		if n := strings.Count(got, line); n != want {
			t.Errorf("%d lines with %s, want %d:\n%s", n, line, want, got)
		}
	}
	summary := `msg="repeated error lines suppressed" msg_suppressed="request failed" count=4`
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), summary); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no summary line %q:\n%s", summary, out.String())
		}
	}
	if strings.Contains(out.String(), `msg_suppressed="other failure"`) {
		t.Error("a message that was not repeated got a summary line")
	}
	// The interval is over: the next line is written.
	log.Error("request failed")
	if n := strings.Count(out.String(), `msg="request failed"`); n != 2 {
		t.Errorf("%d lines after the interval, want 2", n)
	}
}
