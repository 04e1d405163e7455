package models

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// EndReason says why a session ended. The empty reason means it has not.
type EndReason string

// The ways a session ends.
const (
	EndSignedOut       EndReason = "signed_out"
	EndRevokedByUser   EndReason = "revoked_by_user"
	EndRevokedByAdmin  EndReason = "revoked_by_admin"
	EndPasswordChanged EndReason = "password_changed"
	EndAccountDisabled EndReason = "account_disabled"
	EndIdleTimeout     EndReason = "idle_timeout"
	EndLifetimeReached EndReason = "lifetime_reached"
	EndSessionLimit    EndReason = "session_limit"
	EndRoleChanged     EndReason = "role_changed"
	EndPasswordReset   EndReason = "password_reset"
	EndEmailUndone     EndReason = "email_change_undone"
	// EndRefreshReused: a refresh token already rotated away from was
	// presented again (docs/api.md), so the whole app session ends.
	EndRefreshReused EndReason = "refresh_token_reused"
)

// Value stores the empty reason as NULL, as the schema requires.
func (r EndReason) Value() (driver.Value, error) {
	if r == "" {
		return nil, nil
	}
	return string(r), nil
}

// Scan reads NULL as the empty reason.
func (r *EndReason) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*r = ""
	case string:
		*r = EndReason(v)
	case []byte:
		*r = EndReason(v)
	default:
		return fmt.Errorf("end reason: cannot scan %T", v)
	}
	return nil
}

// SessionRecord is the Postgres record of one signed-in browser. It never
// holds the session token: it is named by PublicID.
type SessionRecord struct {
	ID         int64
	PublicID   string
	UserID     int64
	UserAgent  string
	Browser    string
	OS         string
	DeviceType string
	IP         string
	Remember   bool
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // the absolute lifetime's end
	EndedAt    *time.Time
	EndReason  EndReason
	EndedBy    *int64 // the user who ended it, when someone did
	// AuthMethod is how the session signed in (password, password and a
	// second factor, passkey, recovery code).
	AuthMethod AuthMethod `gorm:"default:password"`
	// Kind is SessionBrowser or SessionApp (an app or a CLI holding tokens,
	// appsession.go).
	Kind string `gorm:"default:browser"`
	// ClientName is the name an app gave itself ("Gatehouse CLI"); "" for
	// browsers.
	ClientName string
	// ApprovedBy is the public id of the browser session that approved a
	// device-flow sign-in; nil otherwise.
	ApprovedBy *string
	// The refresh state of an app session (appsession.go): SHA-256 of the
	// current refresh token and of the previous one, whether the previous
	// one has had its one grace use, and when the session last refreshed.
	RefreshHash     []byte `json:"-"`
	PrevRefreshHash []byte `json:"-"`
	PrevRefreshUsed bool   `json:"-"`
	RefreshedAt     *time.Time
}

// TableName maps SessionRecord onto the sessions table.
func (SessionRecord) TableName() string { return "sessions" }

// Active reports whether the session has not ended.
func (r *SessionRecord) Active() bool { return r.EndedAt == nil }

// SessionStore reads and writes session records.
type SessionStore struct{ db *gorm.DB }

// NewSessionStore returns a SessionStore on db.
func NewSessionStore(db *gorm.DB) *SessionStore { return &SessionStore{db: db} }

// Create inserts a new record.
func (s *SessionStore) Create(ctx context.Context, r *SessionRecord) error {
	if err := s.db.WithContext(ctx).Create(r).Error; err != nil {
		return fmt.Errorf("create session record: %w", translate(err))
	}
	return nil
}

// ByPublicID returns the record named publicID, or ErrNotFound.
func (s *SessionStore) ByPublicID(ctx context.Context, publicID string) (*SessionRecord, error) {
	var r SessionRecord
	if err := s.db.WithContext(ctx).Where("public_id = ?", publicID).Take(&r).Error; err != nil {
		return nil, fmt.Errorf("session record: %w", translate(err))
	}
	return &r, nil
}

// Touch records that the session was used at at, from ip. It never moves
// last_seen_at backwards: a write that arrives late changes nothing.
func (s *SessionStore) Touch(ctx context.Context, publicID, ip string, at time.Time) error {
	err := s.db.WithContext(ctx).Model(&SessionRecord{}).
		Where("public_id = ? AND ended_at IS NULL AND last_seen_at < ?", publicID, at).
		Updates(map[string]any{"last_seen_at": at, "ip": ip}).Error
	if err != nil {
		return fmt.Errorf("touch session record: %w", err)
	}
	return nil
}

// Idlest returns the public ids of up to n of userID's active sessions idle
// the longest, leaving out keep.
func (s *SessionStore) Idlest(ctx context.Context, userID int64, keep string, n int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&SessionRecord{}).
		Where("user_id = ? AND ended_at IS NULL AND public_id <> ?", userID, keep).
		Order("last_seen_at, id").Limit(n).Pluck("public_id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("idlest sessions: %w", err)
	}
	return ids, nil
}

// Active returns userID's sessions that have not ended, most recently used
// first.
func (s *SessionStore) Active(ctx context.Context, userID int64) ([]SessionRecord, error) {
	var rs []SessionRecord
	err := s.db.WithContext(ctx).Where("user_id = ? AND ended_at IS NULL", userID).
		Order("last_seen_at DESC, id DESC").Find(&rs).Error
	if err != nil {
		return nil, fmt.Errorf("active sessions: %w", err)
	}
	return rs, nil
}

// CountActive counts the records of every user that have not ended
// (including those whose Redis data expired and that the sweep has not
// closed yet). It reads every active record: the metrics call it at most
// every 30 s.
func (s *SessionStore) CountActive(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&SessionRecord{}).Where("ended_at IS NULL").Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count active sessions: %w", err)
	}
	return n, nil
}

// RecentlyEnded returns up to limit of userID's ended sessions, latest first.
func (s *SessionStore) RecentlyEnded(ctx context.Context, userID int64, limit int) ([]SessionRecord, error) {
	var rs []SessionRecord
	err := s.db.WithContext(ctx).Where("user_id = ? AND ended_at IS NOT NULL", userID).
		Order("ended_at DESC, id DESC").Limit(limit).Find(&rs).Error
	if err != nil {
		return nil, fmt.Errorf("ended sessions: %w", err)
	}
	return rs, nil
}

// Delete removes a record; only for a sign-in that failed half-way, whose
// session never worked.
func (s *SessionStore) Delete(ctx context.Context, publicID string) error {
	if err := s.db.WithContext(ctx).Where("public_id = ?", publicID).Delete(&SessionRecord{}).Error; err != nil {
		return fmt.Errorf("delete session record: %w", err)
	}
	return nil
}

// MarkEnded records that userID's active sessions named by publicIDs ended
// at at for reason; actor is the user who ended them, if any.
func (s *SessionStore) MarkEnded(ctx context.Context, userID int64, publicIDs []string, reason EndReason, actor *int64, at time.Time) error {
	if len(publicIDs) == 0 {
		return nil
	}
	// One text[] parameter joined with unnest, not an IN list of as many
	// parameters as sessions (textArray).
	err := s.db.WithContext(ctx).Exec(`UPDATE sessions s SET ended_at = ?, end_reason = ?, ended_by = ?
		WHERE s.public_id = ANY(?::text[]) AND s.user_id + 0 = ? AND s.ended_at IS NULL`,
		at, reason, actor, textArray(publicIDs), userID).Error
	if err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	return nil
}

// MarkExpired closes userID's active records named by publicIDs as timed
// out, dating the end when the timeout fell due as far as the record knows:
// at its absolute expiry, or idle after it was last seen (last_seen_at lags
// by up to a minute, so this errs early).
func (s *SessionStore) MarkExpired(ctx context.Context, userID int64, publicIDs []string, idle time.Duration, now time.Time) error {
	if len(publicIDs) == 0 {
		return nil
	}
	err := s.db.WithContext(ctx).Exec(`UPDATE sessions s SET
			end_reason = CASE WHEN s.expires_at <= ? THEN ? ELSE ? END,
			ended_at = CASE WHEN s.expires_at <= ? THEN s.expires_at
				ELSE LEAST(?, s.last_seen_at + make_interval(secs => ?)) END
		WHERE s.public_id = ANY(?::text[]) AND s.user_id + 0 = ? AND s.ended_at IS NULL`,
		now, EndLifetimeReached, EndIdleTimeout, now, now, idle.Seconds(), textArray(publicIDs), userID).Error
	if err != nil {
		return fmt.Errorf("mark sessions expired: %w", err)
	}
	return nil
}

// SessionView is a record with its user's email, for the admin views.
type SessionView struct {
	SessionRecord
	UserEmail string
}

// SessionFilter selects a page of active sessions across users, newest
// first. Zero values match everything.
type SessionFilter struct {
	Email  string // part of the user's email
	IP     string // the IP, or its beginning
	Before int64  // only records with a smaller id (the next page)
	Limit  int
}

// ActiveAll returns a page of active sessions of every user matching f, and
// whether more follow.
func (s *SessionStore) ActiveAll(ctx context.Context, f SessionFilter) ([]SessionView, bool, error) {
	q := s.db.WithContext(ctx).Table("sessions AS s").Select("s.*, u.email AS user_email").
		Joins("JOIN users u ON u.id = s.user_id").Where("s.ended_at IS NULL")
	if f.Email != "" {
		q = q.Where("u.email ILIKE ?", "%"+escapeLike(f.Email)+"%")
	}
	if f.IP != "" {
		q = q.Where("s.ip LIKE ?", escapeLike(f.IP)+"%")
	}
	if f.Before != 0 {
		q = q.Where("s.id < ?", f.Before)
	}
	var out []SessionView
	if err := q.Order("s.id DESC").Limit(f.Limit + 1).Scan(&out).Error; err != nil {
		return nil, false, fmt.Errorf("list sessions: %w", err)
	}
	if len(out) > f.Limit {
		return out[:f.Limit], true, nil
	}
	return out, false, nil
}
