package session

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ErrUnavailable marks an error that means Redis could not be reached (or
// cannot serve right now): every page that needs a session answers it with
// "Sign-in is temporarily unavailable" rather than a generic failure.
// Test with errors.Is.
var ErrUnavailable = errors.New("session store unavailable")

// unavailableError is a Redis failure marked ErrUnavailable; its text and
// its chain are the original error's, so errors.As still finds net.Error.
type unavailableError struct{ err error }

func (e unavailableError) Error() string   { return e.err.Error() }
func (e unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// busyReplies are the error replies of a Redis that is up but cannot serve
// yet (loading its data after a restart, a replica cut off, and the like),
// or cannot store more: OOM, a full Redis under maxmemory-policy
// noeviction, which refuses writes that need memory until some expires.
var busyReplies = []string{"LOADING ", "BUSY ", "MASTERDOWN ", "READONLY ", "TRYAGAIN ", "CLUSTERDOWN ", "OOM "}

// markUnavailable marks err ErrUnavailable unless it is an error reply
// from a Redis that is serving. Those keep their type: redigo's Script
// recognises NOSCRIPT by a type assertion, not errors.As.
func markUnavailable(err error) error {
	if err == nil {
		return nil
	}
	if reply, ok := err.(redis.Error); ok {
		for _, p := range busyReplies {
			if strings.HasPrefix(string(reply), p) {
				return unavailableError{err}
			}
		}
		return err
	}
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return unavailableError{err}
}

// MarkUnavailable wraps a Redis connection so that its failures to reach
// Redis are marked ErrUnavailable. The app's pool dials through it (see
// DialMarked), so every Redis user (sessions, throttling, readiness) gets
// the same treatment in one place.
func MarkUnavailable(c redis.Conn) redis.Conn { return markedConn{c: c} }

// DialMarked wraps a pool's dial function with MarkUnavailable, marking
// dial failures too.
func DialMarked(dial func(ctx context.Context) (redis.Conn, error)) func(ctx context.Context) (redis.Conn, error) {
	return DialMarkedCounting(dial, nil)
}

// DialMarkedCounting is DialMarked that also tells count of every failure
// (the metrics' Redis error counter), saying whether it was marked
// ErrUnavailable; nil counts nothing.
func DialMarkedCounting(dial func(ctx context.Context) (redis.Conn, error), count func(unavailable bool)) func(ctx context.Context) (redis.Conn, error) {
	return func(ctx context.Context) (redis.Conn, error) {
		c, err := dial(ctx)
		if err != nil {
			return nil, counted(count, markUnavailable(err))
		}
		return markedConn{c: c, count: count}, nil
	}
}

// counted tells count of err, if any, and returns it.
func counted(count func(unavailable bool), err error) error {
	if err != nil && count != nil {
		count(errors.Is(err, ErrUnavailable))
	}
	return err
}

// markedConn marks the errors of the connection it wraps. It keeps the
// connection's own Err (the pool reads it to discard broken connections)
// and passes timeouts and contexts through.
type markedConn struct {
	c     redis.Conn
	count func(unavailable bool) // nil: not counted
}

func (m markedConn) mark(err error) error { return counted(m.count, markUnavailable(err)) }

var (
	_ redis.ConnWithTimeout = markedConn{}
	_ redis.ConnWithContext = markedConn{}
)

func (m markedConn) Close() error { return m.c.Close() }
func (m markedConn) Err() error   { return m.c.Err() }
func (m markedConn) Flush() error { return m.mark(m.c.Flush()) }

func (m markedConn) Send(cmd string, args ...any) error {
	return m.mark(m.c.Send(cmd, args...))
}

func (m markedConn) Do(cmd string, args ...any) (any, error) {
	r, err := m.c.Do(cmd, args...)
	return r, m.mark(err)
}

func (m markedConn) Receive() (any, error) {
	r, err := m.c.Receive()
	return r, m.mark(err)
}

func (m markedConn) DoWithTimeout(d time.Duration, cmd string, args ...any) (any, error) {
	r, err := redis.DoWithTimeout(m.c, d, cmd, args...)
	return r, m.mark(err)
}

func (m markedConn) ReceiveWithTimeout(d time.Duration) (any, error) {
	r, err := redis.ReceiveWithTimeout(m.c, d)
	return r, m.mark(err)
}

func (m markedConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	r, err := redis.DoContext(m.c, ctx, cmd, args...)
	return r, m.mark(err)
}

func (m markedConn) ReceiveContext(ctx context.Context) (any, error) {
	r, err := redis.ReceiveContext(m.c, ctx)
	return r, m.mark(err)
}
