package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// The kinds of session (SessionRecord.Kind).
const (
	SessionBrowser = "browser"
	SessionApp     = "app"
)

// IsApp reports whether the record is an app session's.
func (r *SessionRecord) IsApp() bool { return r.Kind == SessionApp }

// AppIdleSince is when an app session's idle timeout started counting:
// its last refresh, or its sign-in.
func (r *SessionRecord) AppIdleSince() time.Time {
	if r.RefreshedAt != nil {
		return *r.RefreshedAt
	}
	return r.CreatedAt
}

// Transaction runs fn with a store inside one Postgres transaction.
func (s *SessionStore) Transaction(ctx context.Context, fn func(tx *SessionStore) error) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return fn(NewSessionStore(tx)) })
}

// LockByRefresh returns, locked FOR UPDATE (inside Transaction), the app
// session whose current or previous refresh token hashes to hash, or
// ErrNotFound.
func (s *SessionStore) LockByRefresh(ctx context.Context, hash []byte) (*SessionRecord, error) {
	var r SessionRecord
	err := s.db.WithContext(ctx).Raw(`SELECT * FROM sessions
		WHERE kind = 'app' AND (refresh_hash = ? OR prev_refresh_hash = ?) LIMIT 1 FOR UPDATE`, hash, hash).
		Scan(&r).Error
	if err != nil {
		return nil, fmt.Errorf("session by refresh token: %w", err)
	}
	if r.ID == 0 {
		return nil, fmt.Errorf("session by refresh token: %w", ErrNotFound)
	}
	return &r, nil
}

// LockByRetiredRefresh returns, locked FOR UPDATE, the app session that
// once rotated away from the refresh token hashing to hash, or ErrNotFound.
func (s *SessionStore) LockByRetiredRefresh(ctx context.Context, hash []byte) (*SessionRecord, error) {
	var r SessionRecord
	err := s.db.WithContext(ctx).Raw(`SELECT s.* FROM sessions s
		JOIN retired_refresh_tokens t ON t.session_id = s.id WHERE t.hash = ? FOR UPDATE OF s`, hash).Scan(&r).Error
	if err != nil {
		return nil, fmt.Errorf("session by retired refresh token: %w", err)
	}
	if r.ID == 0 {
		return nil, fmt.Errorf("session by retired refresh token: %w", ErrNotFound)
	}
	return &r, nil
}

// RotateRefresh makes next the session's refresh token: the current one
// becomes the previous one (its one grace use not yet spent) and is
// retired for good.
func (s *SessionStore) RotateRefresh(ctx context.Context, id int64, next []byte, ip string, now time.Time) error {
	return s.rotate(ctx, id, `UPDATE sessions SET prev_refresh_hash = refresh_hash, refresh_hash = ?,
		prev_refresh_used = false, refreshed_at = ?, last_seen_at = GREATEST(last_seen_at, ?), ip = ? WHERE id = ?`,
		next, now, now, ip, id)
}

// UseRefreshGrace spends the previous refresh token's one grace use: next
// replaces the current token (which is retired, so that whoever holds it
// now is seen reusing it), and the previous one stays, marked used.
func (s *SessionStore) UseRefreshGrace(ctx context.Context, id int64, next []byte, ip string, now time.Time) error {
	return s.rotate(ctx, id, `UPDATE sessions SET refresh_hash = ?, prev_refresh_used = true,
		refreshed_at = ?, last_seen_at = GREATEST(last_seen_at, ?), ip = ? WHERE id = ?`, next, now, now, ip, id)
}

func (s *SessionStore) rotate(ctx context.Context, id int64, update string, args ...any) error {
	db := s.db.WithContext(ctx)
	err := db.Exec(`INSERT INTO retired_refresh_tokens (hash, session_id)
		SELECT refresh_hash, id FROM sessions WHERE id = ? AND refresh_hash IS NOT NULL
		ON CONFLICT DO NOTHING`, id).Error
	if err == nil {
		err = db.Exec(update, args...).Error
	}
	if err != nil {
		return fmt.Errorf("rotate refresh token: %w", translate(err))
	}
	return nil
}

// EndApps records at once the end of userID's active app sessions: those
// named by publicIDs (mode "only") or all but them ("except"). Every path
// that ends sessions calls it right after the Redis step, because an app
// session's refresh state outlives its Redis state: an end known only to
// Redis (its end mark waiting for the recorder) would be lost with Redis,
// and a refresh would bring the session back. It returns the public ids it
// ended.
func (s *SessionStore) EndApps(ctx context.Context, userID int64, mode string, publicIDs []string,
	reason EndReason, actor *int64, at time.Time) ([]string, error) {
	match := "app.public_id = ANY(?::text[])"
	if mode != "only" {
		match = "NOT (app.public_id = ANY(?::text[]))"
	} else if len(publicIDs) == 0 {
		return nil, nil
	}
	var ended []string
	err := s.db.WithContext(ctx).Raw(`UPDATE sessions AS app SET ended_at = ?, end_reason = ?, ended_by = ?
		WHERE app.user_id = ? AND app.kind = 'app' AND app.ended_at IS NULL AND `+match+` RETURNING app.public_id`,
		at, reason, actor, userID, textArray(publicIDs)).Scan(&ended).Error
	if err != nil {
		return nil, fmt.Errorf("end app sessions: %w", err)
	}
	return ended, nil
}

// PruneRetiredRefresh deletes up to limit retired refresh tokens of app
// sessions that have ended, and says how many it deleted. They only serve
// to tell reuse while a session lives: the refresh of an ended session is
// refused whatever token it presents. A session refreshed every hour for
// its 30-day lifetime leaves 720 rows, so the sweep calls this in batches.
func (s *SessionStore) PruneRetiredRefresh(ctx context.Context, limit int) (int, error) {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM retired_refresh_tokens WHERE hash IN (
		SELECT t.hash FROM retired_refresh_tokens t JOIN sessions s ON s.id = t.session_id
		WHERE s.ended_at IS NOT NULL LIMIT ?)`, limit)
	if res.Error != nil {
		return 0, fmt.Errorf("prune retired refresh tokens: %w", res.Error)
	}
	return int(res.RowsAffected), nil
}

// ExpireApps closes, as timed out, the active app sessions past their
// absolute lifetime (expires_at) or idle longer than idle since their last
// refresh, dated when that happened, and returns them. userID 0 means
// every user's (the sweep).
func (s *SessionStore) ExpireApps(ctx context.Context, userID int64, idle time.Duration, now time.Time) ([]SweepCandidate, error) {
	q := `UPDATE sessions s SET
			end_reason = CASE WHEN s.expires_at <= LEAST(?, COALESCE(s.refreshed_at, s.created_at) + make_interval(secs => ?))
				THEN ? ELSE ? END,
			ended_at = LEAST(s.expires_at, COALESCE(s.refreshed_at, s.created_at) + make_interval(secs => ?), ?)
		WHERE s.kind = 'app' AND s.ended_at IS NULL
		  AND (s.expires_at <= ? OR COALESCE(s.refreshed_at, s.created_at) <= ?)`
	args := []any{now, idle.Seconds(), EndLifetimeReached, EndIdleTimeout, idle.Seconds(), now, now, now.Add(-idle)}
	if userID != 0 {
		q += " AND s.user_id = ?"
		args = append(args, userID)
	}
	var out []SweepCandidate
	if err := s.db.WithContext(ctx).Raw(q+" RETURNING s.id, s.public_id, s.user_id", args...).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("expire app sessions: %w", err)
	}
	return out, nil
}

// EndLocked records the end of the session id (locked by the caller's
// transaction) unless it has ended already.
func (s *SessionStore) EndLocked(ctx context.Context, id int64, reason EndReason, actor *int64, at time.Time) error {
	err := s.db.WithContext(ctx).Exec(`UPDATE sessions SET ended_at = ?, end_reason = ?, ended_by = ?
		WHERE id = ? AND ended_at IS NULL`, at, reason, actor, id).Error
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// User reads a user through the store's connection (inside Transaction:
// the same transaction).
func (s *SessionStore) User(ctx context.Context, id int64) (*User, error) {
	return NewUserStore(s.db).ByID(ctx, id)
}
