// Package logging holds Gatehouse's slog plumbing.
package logging

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LimitErrors returns a handler that writes at most one ERROR line with a
// given message per interval through h; repeats within the interval are
// counted, and when it ends one WARN line says how many were suppressed.
// During an outage every failing request would otherwise log its own
// ERROR line (thousands a second); the first line of each kind still shows
// at once, with its details. Lines below ERROR pass through untouched.
func LimitErrors(h slog.Handler, every time.Duration) slog.Handler {
	return &limited{Handler: h, state: &limiter{base: h, every: every, windows: map[string]*window{}}}
}

type limited struct {
	slog.Handler
	state *limiter // shared by the handlers WithAttrs and WithGroup derive
}

type limiter struct {
	base    slog.Handler // writes the summaries, without any logger's attributes
	every   time.Duration
	mu      sync.Mutex
	windows map[string]*window // by message
}

// window is one message's current interval: open while it is in the map.
type window struct{ suppressed int }

func (l *limited) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError || l.state.admit(r.Message) {
		return l.Handler.Handle(ctx, r)
	}
	return nil
}

// admit reports whether a line with msg may be written now, opening an
// interval for msg if it does; the interval's end reports the repeats.
func (s *limiter) admit(msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w, open := s.windows[msg]; open {
		w.suppressed++
		return false
	}
	w := &window{}
	s.windows[msg] = w
	time.AfterFunc(s.every, func() {
		s.mu.Lock()
		delete(s.windows, msg)
		n := w.suppressed
		s.mu.Unlock()
		if n > 0 {
			r := slog.NewRecord(time.Now(), slog.LevelWarn, "repeated error lines suppressed", 0)
			r.AddAttrs(slog.String("msg_suppressed", msg), slog.Int("count", n), slog.Duration("within", s.every))
			_ = s.base.Handle(context.Background(), r)
		}
	})
	return true
}

func (l *limited) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &limited{Handler: l.Handler.WithAttrs(attrs), state: l.state}
}

func (l *limited) WithGroup(name string) slog.Handler {
	return &limited{Handler: l.Handler.WithGroup(name), state: l.state}
}
