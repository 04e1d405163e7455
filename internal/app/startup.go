package app

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Start-up back-off: the first retry comes quickly (a service started at
// the same moment as the app is usually up within a second), later ones
// every few seconds.
const (
	firstRetry = 250 * time.Millisecond
	maxRetry   = 4 * time.Second
	attemptMax = 5 * time.Second // one attempt, however long the budget
	attemptMin = time.Second     // the last attempt gets at least this
)

// retryUntil calls attempt until it succeeds, ctx ends, or deadline passes,
// waiting longer after each failure and logging what it waits for. It
// returns attempt's last error, so the message that ends start-up is the
// one that says what is wrong.
func retryUntil(ctx context.Context, log *slog.Logger, what string, deadline time.Time, attempt func(context.Context) error) error {
	wait := firstRetry
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, min(max(time.Until(deadline), attemptMin), attemptMax))
		err := attempt(actx)
		cancel()
		var stop stopRetrying
		if errors.As(err, &stop) {
			return stop.err
		}
		if err == nil {
			if n > 1 {
				log.Info("start-up: "+what+" is reachable", "attempts", n)
			}
			return nil
		}
		left := time.Until(deadline)
		if ctx.Err() != nil || left <= 0 {
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				err = errors.Join(err, ctx.Err())
			}
			return err
		}
		wait = min(wait, left)
		log.Warn("start-up: waiting for "+what, "attempt", n, "retry_in", wait.Round(time.Millisecond),
			"gives_up_in", left.Round(time.Second), "err", err)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRetry)
	}
}

// stopRetrying wraps an attempt's error that waiting will not fix:
// retryUntil returns it at once.
type stopRetrying struct{ err error }

func (s stopRetrying) Error() string { return s.err.Error() }
func (s stopRetrying) Unwrap() error { return s.err }
