package workers

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/models"
)

// The sweep brings session records up to date with Redis, in the
// background, so that the Devices page, the admin views and the history do
// not depend on someone opening the Devices page (List closes records
// lazily too):
//
//  1. it writes the records of ended sessions still waiting (RecordEnds:
//     the end recorder missed them, most likely while Postgres was down);
//  2. it closes, as expired, the app sessions past their lifetimes, and the
//     records of browser sessions whose Redis data is gone;
//  3. it deletes what only served sessions that have ended: the retired
//     refresh tokens of ended app sessions, and the device flow's codes
//     an hour past their expiry (they hold the app's address and user
//     agent).
//
// Step 2 reads candidate records in batches of at most sweepBatch, in id
// order, each batch in a transaction that locks its rows FOR UPDATE SKIP
// LOCKED: instances sweeping at the same time take different records, and
// a record is judged by one of them only.
//
// A record is judged only when it could have expired by the clock (its
// lifetime has passed, or it was last seen longer ago than the idle
// timeout; last_seen_at only ever lags) and is older than SweepSettle. The
// second rule closes the race documented in List: a sign-in writes its
// record before it enters the session in Redis, so a record a few seconds
// old may be missing from Redis only because it is not there yet. The
// first keeps the sweep away from sessions in use, such as one renewing
// its token between the sweep's two reads below (the field read names the
// old token, whose data the renewal has deleted by the time EXISTS runs).
// Then Redis decides (redisstore's Gone): the session is gone when its
// field in the user hash is missing, or names a token without data. A gone
// session's stale field is removed, if it still names the same token.
// SweepSettle is exported for the listing (session.Manager.List), which
// judges records by the same rule.
const (
	sweepBatch  = 500
	SweepSettle = time.Minute
)

// SweepResult is what one sweep did.
type SweepResult struct {
	Recorded int // ended sessions whose record was written (ends.go)
	Checked  int // candidate records checked against Redis
	Expired  int // records closed as expired
	Pruned   int // retired refresh tokens and device codes deleted
}

// Sweep runs the sweep once: waiting ends first, then expired records, in
// batches of batch records (sweepBatch when batch <= 0), until no
// candidate is left or ctx ends.
func (w *Workers) Sweep(ctx context.Context, batch int) (SweepResult, error) {
	if batch <= 0 {
		batch = sweepBatch
	}
	var res SweepResult
	var err error
	res.Recorded, err = w.RecordEnds(ctx)
	if err != nil {
		// Records can still be closed as expired: they are ends of another
		// kind, and a late replay corrects them (RecordEnd).
		w.log.WarnContext(ctx, "sweep: session ends not yet recorded", "err", err)
	}
	if err := w.expireApps(ctx, 0); err != nil {
		w.log.WarnContext(ctx, "sweep: closing expired app sessions", "err", err)
	}
	var after int64
	for ctx.Err() == nil {
		q := models.SweepQuery{After: after, Limit: batch, Now: w.now(), Idle: w.idle, Settle: SweepSettle}
		last, seen, closed, serr := w.records.SweepBatch(ctx, q, w.gone(ctx))
		res.Checked += seen
		res.Expired += closed
		if serr != nil {
			return res, errors.Join(err, serr)
		}
		if seen < batch {
			break
		}
		after = last
	}
	n, perr := w.prune(ctx, batch)
	res.Pruned = n
	return res, errors.Join(err, perr, ctx.Err())
}

// prune is the sweep's step 3, in batches of batch rows.
func (w *Workers) prune(ctx context.Context, batch int) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := w.records.PruneRetiredRefresh(ctx, batch)
		total += n
		if err != nil {
			return total, err
		}
		if n < batch {
			break
		}
	}
	if w.devices != nil {
		n, err := w.devices.PruneExpired(ctx, w.now())
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// gone is the sweep's check of a batch against Redis; a candidate found
// with an end mark wakes the end recorder.
func (w *Workers) gone(ctx context.Context) func([]models.SweepCandidate) ([]models.SweepCandidate, error) {
	return func(cands []models.SweepCandidate) ([]models.SweepCandidate, error) {
		gone, marked, err := w.store.Gone(ctx, cands)
		if marked {
			w.ends.Kick()
		}
		return gone, err
	}
}

// endsRetryEvery is how often the workers wake the end recorder, so that
// ends marked while Postgres was down are recorded soon after it returns
// rather than at the next end or sweep.
const endsRetryEvery = 10 * time.Second

// sweepInBackground is the sweeper's pass: at start-up, then every
// interval. It logs what the sweep did.
func (w *Workers) sweepInBackground(ctx context.Context) bool {
	start := time.Now()
	res, err := w.Sweep(ctx, 0)
	switch {
	case ctx.Err() != nil:
		return false
	case err != nil:
		w.log.WarnContext(ctx, "sweep failed; retried next interval", "err", err,
			"recorded", res.Recorded, "checked", res.Checked, "expired", res.Expired, "pruned", res.Pruned)
		return false
	case res.Recorded > 0 || res.Expired > 0 || res.Pruned > 0:
		w.log.InfoContext(ctx, "sweep", "recorded", res.Recorded, "checked", res.Checked,
			"expired", res.Expired, "pruned", res.Pruned, "took", time.Since(start))
	}
	return true
}

// WaitSweep returns once a sweep that started after the call has run, or
// ctx ends, or Run has returned.
func (w *Workers) WaitSweep(ctx context.Context) error { return w.sweeps.Wait(ctx) }
