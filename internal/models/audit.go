package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// AuditKind names a security event.
type AuditKind string

// The security events Gatehouse records.
const (
	AuditSignUp          AuditKind = "sign_up"
	AuditSignIn          AuditKind = "sign_in"
	AuditSignInFailed    AuditKind = "sign_in_failed"
	AuditSignOut         AuditKind = "sign_out"
	AuditSessionRevoked  AuditKind = "session_revoked"
	AuditSessionsRevoked AuditKind = "sessions_revoked"
	AuditPasswordChanged AuditKind = "password_changed"
	AuditEmailChanged    AuditKind = "email_changed"
	AuditRoleChanged     AuditKind = "role_changed"
	AuditAccountDisabled AuditKind = "account_disabled"
	AuditAccountEnabled  AuditKind = "account_enabled"
)

// AuditKinds lists every kind, for filters.
var AuditKinds = []AuditKind{
	AuditSignUp, AuditSignIn, AuditSignInFailed, AuditSignOut, AuditSessionRevoked, AuditSessionsRevoked,
	AuditPasswordChanged, AuditEmailChanged, AuditRoleChanged, AuditAccountDisabled, AuditAccountEnabled,
}

// AuditEvent is one entry of the security event log.
type AuditEvent struct {
	ID        int64
	At        time.Time
	Kind      AuditKind
	ActorID   *int64 // who did it; nil for the system or an anonymous visitor
	UserID    *int64 // whose account it concerns
	SessionID string // the public id of the session concerned, if one
	IP        string
	UserAgent string
	Detail    string // e.g. "3 sessions", "user -> admin"
}

// AuditEventView is an event with the emails of its actor and subject.
type AuditEventView struct {
	AuditEvent
	ActorEmail string
	UserEmail  string
}

// AuditStore writes and reads the security event log.
type AuditStore struct{ db *gorm.DB }

// NewAuditStore returns an AuditStore on db.
func NewAuditStore(db *gorm.DB) *AuditStore { return &AuditStore{db: db} }

// Record appends e to the log.
func (s *AuditStore) Record(ctx context.Context, e *AuditEvent) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	if err := s.db.WithContext(ctx).Create(e).Error; err != nil {
		return fmt.Errorf("record audit event: %w", err)
	}
	return nil
}

// AuditFilter narrows a listing of the log. Zero values match everything.
type AuditFilter struct {
	UserID int64
	Kind   AuditKind
	Before int64 // only events with a smaller id (the next page)
	Limit  int
}

// List returns events matching f, newest first.
func (s *AuditStore) List(ctx context.Context, f AuditFilter) ([]AuditEventView, error) {
	q := s.db.WithContext(ctx).Table("audit_events AS e").
		Select("e.*, COALESCE(a.email, '') AS actor_email, COALESCE(u.email, '') AS user_email").
		Joins("LEFT JOIN users a ON a.id = e.actor_id").
		Joins("LEFT JOIN users u ON u.id = e.user_id")
	if f.UserID != 0 {
		q = q.Where("e.user_id = ?", f.UserID)
	}
	if f.Kind != "" {
		q = q.Where("e.kind = ?", f.Kind)
	}
	if f.Before != 0 {
		q = q.Where("e.id < ?", f.Before)
	}
	var out []AuditEventView
	if err := q.Order("e.id DESC").Limit(f.Limit).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}
