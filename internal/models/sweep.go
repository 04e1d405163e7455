package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// SweepCandidate is an active session record that the sweep checks
// against Redis.
type SweepCandidate struct {
	ID       int64
	PublicID string
	UserID   int64
}

// SweepQuery selects one batch of the sweep.
type SweepQuery struct {
	After int64 // only records with a larger id (the cursor)
	Limit int
	Now   time.Time
	// Idle is the idle timeout: a record last seen more recently than this
	// cannot have timed out, so it is not a candidate.
	Idle time.Duration
	// Settle leaves out records younger than this: a sign-in writes its
	// record before it enters the session in Redis, so a brand-new record
	// missing from Redis may simply not be there yet.
	Settle time.Duration
}

// SweepBatch runs one batch of the sweep in a transaction. It locks up to
// q.Limit active browser records (an app session's short-lived access
// token says nothing about whether the session has ended: ExpireApps) after q.After that may have expired (their
// absolute lifetime has passed, or they were last seen longer ago than the
// idle timeout) and are older than q.Settle, skipping records another
// instance has locked (FOR UPDATE SKIP LOCKED), so several instances
// sweeping at once share the work and never judge a record twice. gone
// returns the candidates whose session no longer exists in Redis; those are
// closed as expired, as MarkExpired does, in the same transaction.
//
// It returns the largest id it saw (the next cursor; 0 when the batch was
// empty), how many candidates it saw, and how many it closed.
func (s *SessionStore) SweepBatch(ctx context.Context, q SweepQuery,
	gone func([]SweepCandidate) ([]SweepCandidate, error)) (last int64, seen, closed int, err error) {
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var cands []SweepCandidate
		err := tx.Raw(`SELECT id, public_id, user_id FROM sessions
			WHERE ended_at IS NULL AND kind = 'browser' AND id > ? AND created_at <= ?
			  AND (expires_at <= ? OR last_seen_at <= ?)
			ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED`,
			q.After, q.Now.Add(-q.Settle), q.Now, q.Now.Add(-q.Idle), q.Limit).Scan(&cands).Error
		if err != nil {
			return fmt.Errorf("sweep candidates: %w", err)
		}
		seen = len(cands)
		if seen == 0 {
			return nil
		}
		last = cands[seen-1].ID
		expired, err := gone(cands)
		if err != nil {
			return err
		}
		byUser := map[int64][]string{}
		for _, c := range expired {
			byUser[c.UserID] = append(byUser[c.UserID], c.PublicID)
		}
		in := NewSessionStore(tx)
		for userID, ids := range byUser {
			if err := in.MarkExpired(ctx, userID, ids, q.Idle, q.Now); err != nil {
				return err
			}
		}
		closed = len(expired)
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}
	return last, seen, closed, nil
}

// RecordEnd records that userID's sessions publicIDs ended at at for
// reason, when the session manager has just ended them in Redis, or late,
// for an end whose record could not be written when it happened (Postgres
// was down). Unlike MarkEnded it also corrects a record that has meanwhile
// been closed as expired, a guess made because the session was already
// gone from Redis, but it never overwrites another recorded end. Running
// it twice is harmless.
func (s *SessionStore) RecordEnd(ctx context.Context, userID int64, publicIDs []string, reason EndReason, actor *int64, at time.Time) error {
	if len(publicIDs) == 0 {
		return nil
	}
	// One text[] parameter joined with unnest, not an IN list of as many
	// parameters as sessions (textArray, docs/performance.md).
	err := s.db.WithContext(ctx).Exec(`UPDATE sessions s SET ended_at = ?, end_reason = ?, ended_by = ?
		WHERE s.public_id = ANY(?::text[]) AND s.user_id + 0 = ? AND (s.ended_at IS NULL OR s.end_reason IN (?, ?))`,
		at, reason, actor, textArray(publicIDs), userID, EndIdleTimeout, EndLifetimeReached).Error
	if err != nil {
		return fmt.Errorf("record session end: %w", err)
	}
	return nil
}
