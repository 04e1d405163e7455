package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/models"
)

// The sweep brings session records up to date with Redis, in the
// background, so that the Devices page, the admin views and the history do
// not depend on someone opening the Devices page (List closes records
// lazily too):
//
//  1. it writes the records of ended sessions still waiting (RecordEnds:
//     the end recorder missed them, most likely while Postgres was down);
//  2. it closes, as expired, the records of sessions whose Redis data is
//     gone.
//
// Step 2 reads candidate records in batches of at most sweepBatch, in id
// order, each batch in a transaction that locks its rows FOR UPDATE SKIP
// LOCKED: instances sweeping at the same time take different records, and
// a record is judged by one of them only.
//
// A record is judged only when it could have expired by the clock (its
// lifetime has passed, or it was last seen longer ago than the idle
// timeout; last_seen_at only ever lags) and is older than sweepSettle. The
// second rule closes the race documented in List: a sign-in writes its
// record before it enters the session in Redis, so a record a few seconds
// old may be missing from Redis only because it is not there yet. The
// first keeps the sweep away from sessions in use, such as one renewing
// its token between the sweep's two reads below (the field read names the
// old token, whose data the renewal has deleted by the time EXISTS runs).
// Then Redis decides: the session is gone when its field in the user hash
// is missing, or names a token without data. A gone session's stale field
// is removed, if it still names the same token.
const (
	sweepBatch  = 500
	sweepSettle = time.Minute
)

// SweepResult is what one sweep did.
type SweepResult struct {
	Recorded int // ended sessions whose record was written (ends.go)
	Checked  int // candidate records checked against Redis
	Expired  int // records closed as expired
}

// Sweep runs the sweep once: waiting ends first, then expired records, in
// batches of batch records (sweepBatch when batch <= 0), until no
// candidate is left or ctx ends.
func (m *Manager) Sweep(ctx context.Context, batch int) (SweepResult, error) {
	if batch <= 0 {
		batch = sweepBatch
	}
	var res SweepResult
	var err error
	res.Recorded, err = m.RecordEnds(ctx)
	if err != nil {
		// Records can still be closed as expired: they are ends of another
		// kind, and a late replay corrects them (RecordEnd).
		m.log.WarnContext(ctx, "sweep: session ends not yet recorded", "err", err)
	}
	if err := m.expireApps(ctx, 0); err != nil {
		m.log.WarnContext(ctx, "sweep: closing expired app sessions", "err", err)
	}
	var after int64
	for ctx.Err() == nil {
		q := models.SweepQuery{After: after, Limit: batch, Now: m.now(), Idle: m.idle, Settle: sweepSettle}
		last, seen, closed, serr := m.records.SweepBatch(ctx, q, m.gone)
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
	return res, errors.Join(err, ctx.Err())
}

// gone returns the candidates whose session no longer exists in Redis, and
// removes their stale fields. Three round trips at most, whatever the
// batch: HMGET of every session's field and end mark (in each of the
// user's hashes), EXISTS of every token found, and the removal of stale
// fields, each pipelined.
//
// A candidate with an end mark is not gone but ended, and waits for the
// end recorder: the sweep names its user in the ending set again, the
// safety net for a revoke whose instance died between its script and
// naming the user there (ends.go).
func (m *Manager) gone(cands []models.SweepCandidate) ([]models.SweepCandidate, error) {
	ctx := context.Background()
	if len(cands) == 0 {
		return nil, nil
	}
	type found struct {
		hash  userHash
		token string
	}
	pipe := m.rdb.Pipeline()
	fields := make([][]*redis.SliceCmd, len(cands))
	hashes := make([][]userHash, len(cands))
	for i, c := range cands {
		hashes[i] = m.keys.hashes(c.UserID)
		for _, h := range hashes[i] {
			fields[i] = append(fields[i], pipe.HMGet(ctx, h.key, sessionField+c.PublicID, endField+c.PublicID))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("sweep: read sessions: %w", err)
	}
	tokens := make([]found, len(cands))
	ended := make([]bool, len(cands))
	marked := map[int64]bool{}
	for i, c := range cands {
		for j, f := range fields[i] {
			v := f.Val()
			if len(v) == 2 && v[1] != nil {
				ended[i], marked[c.UserID] = true, true
			}
			if t, ok := v[0].(string); ok && len(v) == 2 {
				tokens[i] = found{hashes[i][j], t} // no field: revoked, or forgotten by List
			}
		}
	}
	exists := make([]*redis.IntCmd, len(cands))
	for i, t := range tokens {
		if t.token != "" {
			exists[i] = pipe.Exists(ctx, m.keys.data(t.hash.tag, t.token))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("sweep: check session data: %w", err)
	}
	var gone []models.SweepCandidate
	stale := 0
	for i, c := range cands {
		if exists[i] != nil && exists[i].Val() == 1 || ended[i] {
			continue
		}
		gone = append(gone, c)
		if t := tokens[i]; t.token != "" {
			forgetScript.Eval(ctx, pipe, []string{t.hash.key}, sessionField+c.PublicID, t.token)
			stale++
		}
	}
	for userID := range marked {
		pipe.SAdd(ctx, m.keys.ending(), userID)
		stale++
	}
	if stale > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			// The records are still right to close: the data is gone.
			m.log.Warn("sweep: removing stale session fields", "err", err)
		}
	}
	if len(marked) > 0 {
		m.endsLoop.kick()
	}
	return gone, nil
}

// endsRetryEvery is how often the sweeper wakes the end recorder, so that
// ends marked while Postgres was down are recorded soon after it returns
// rather than at the next end or sweep.
const endsRetryEvery = 10 * time.Second

// RunSweeper sweeps now and then every interval until ctx ends, logging
// what each run did, and in between retries ends waiting for their record.
// `web serve` runs it; it returns when ctx is done.
func (m *Manager) RunSweeper(ctx context.Context, interval time.Duration) {
	sweep := time.NewTicker(interval)
	defer sweep.Stop()
	retry := time.NewTicker(min(endsRetryEvery, interval))
	defer retry.Stop()
	for {
		start := time.Now()
		res, err := m.Sweep(ctx, 0)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			m.log.WarnContext(ctx, "sweep failed; retried next interval", "err", err,
				"recorded", res.Recorded, "checked", res.Checked, "expired", res.Expired)
		case res.Recorded > 0 || res.Expired > 0:
			m.log.InfoContext(ctx, "sweep", "recorded", res.Recorded, "checked", res.Checked,
				"expired", res.Expired, "took", time.Since(start))
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-sweep.C:
				break wait
			case <-retry.C:
				m.endsLoop.kick()
			}
		}
	}
}
