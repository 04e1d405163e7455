package models

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
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
	// Mail-driven events.
	AuditResetRequested       AuditKind = "password_reset_requested"
	AuditPasswordReset        AuditKind = "password_reset"
	AuditEmailVerifySent      AuditKind = "email_verification_sent"
	AuditEmailVerified        AuditKind = "email_verified"
	AuditEmailChangeRequested AuditKind = "email_change_requested"
	AuditEmailChangeUndone    AuditKind = "email_change_undone"
	AuditNewDeviceAlert       AuditKind = "new_device_alert" // a sign-in from a new device was mailed about
	AuditThisWasntMe          AuditKind = "this_wasnt_me"    // the owner used that mail's "This wasn't me" link
	AuditAlertsOn             AuditKind = "new_device_alerts_on"
	AuditAlertsOff            AuditKind = "new_device_alerts_off"
	// Second factors (docs/security.md).
	AuditTwoFactorEnabled     AuditKind = "2fa_enabled"
	AuditTwoFactorDisabled    AuditKind = "2fa_disabled"
	AuditTwoFactorReset       AuditKind = "2fa_reset" // by an administrator
	AuditRecoveryCodesRenewed AuditKind = "recovery_codes_renewed"
	AuditRecoveryCodeUsed     AuditKind = "recovery_code_used"
	AuditPasskeyAdded         AuditKind = "passkey_added"
	AuditPasskeyRemoved       AuditKind = "passkey_removed"
	AuditPasskeyRefused       AuditKind = "passkey_refused" // a ceremony that failed its checks
	// A refresh token already rotated away from was presented: the app
	// session was ended (docs/api.md).
	AuditRefreshReused AuditKind = "refresh_token_reused"

	// A device-flow sign-in (RFC 8628) answered from a browser.
	AuditDeviceApproved AuditKind = "device_approved"
	AuditDeviceDenied   AuditKind = "device_denied"
)

// AuditKinds lists every kind, for filters.
var AuditKinds = []AuditKind{
	AuditSignUp, AuditSignIn, AuditSignInFailed, AuditSignOut, AuditSessionRevoked, AuditSessionsRevoked,
	AuditPasswordChanged, AuditEmailChanged, AuditRoleChanged, AuditAccountDisabled, AuditAccountEnabled,
	AuditResetRequested, AuditPasswordReset, AuditEmailVerifySent, AuditEmailVerified,
	AuditEmailChangeRequested, AuditEmailChangeUndone, AuditNewDeviceAlert, AuditThisWasntMe, AuditAlertsOn, AuditAlertsOff,
	AuditTwoFactorEnabled, AuditTwoFactorDisabled, AuditTwoFactorReset, AuditRecoveryCodesRenewed,
	AuditRecoveryCodeUsed, AuditPasskeyAdded, AuditPasskeyRemoved, AuditPasskeyRefused, AuditRefreshReused,
	AuditDeviceApproved, AuditDeviceDenied,
}

// AuditEvent is one entry of the security event log.
type AuditEvent struct {
	ID int64
	// EventID names the event from the moment it happens, so that writing
	// it again (the queue may) stores it once.
	EventID   string `gorm:"default:null"`
	At        time.Time
	Kind      AuditKind
	ActorID   *int64 // who did it; nil for the system or an anonymous visitor
	UserID    *int64 // whose account it concerns
	SessionID string // the public id of the session concerned, if one
	IP        string
	UserAgent string
	// Browser and OS name the device the event came from ("Firefox",
	// "Windows"), parsed from UserAgent when it is recorded; empty on
	// events recorded before they were kept.
	Browser string
	OS      string `gorm:"column:os"`
	Detail  string // e.g. "3 sessions", "user -> admin"
}

// AuditEventView is an event with the emails of its actor and subject,
// and the device of the session it names, if it names one.
type AuditEventView struct {
	AuditEvent
	ActorEmail string
	UserEmail  string
	// SessionBrowser and SessionOS are the device of the session the event
	// concerns (a revoked one, say), which need not be the device the
	// event came from.
	SessionBrowser string
	SessionOS      string `gorm:"column:session_os"`
}

// AuditStore writes and reads the security event log.
type AuditStore struct {
	db    *gorm.DB
	queue AuditQueue
}

// AuditQueue holds events until they are written to Postgres, in the
// background (auditqueue.Queue keeps them in Redis and in memory).
type AuditQueue interface {
	// Enqueue takes e; once it returns, e will be written.
	Enqueue(ctx context.Context, e AuditEvent) error
	// Flush returns once every event enqueued before the call, on any
	// instance, has been written, or the try failed.
	Flush(ctx context.Context) error
}

// NewAuditStore returns an AuditStore on db that writes each event at
// once, until UseQueue gives it a queue.
func NewAuditStore(db *gorm.DB) *AuditStore { return &AuditStore{db: db} }

// UseQueue makes Record hand events to q, and List flush q first.
func (s *AuditStore) UseQueue(q AuditQueue) { s.queue = q }

// Record appends e to the log: through the queue when there is one, so the
// caller never waits for Postgres, and an outage loses nothing.
func (s *AuditStore) Record(ctx context.Context, e *AuditEvent) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	if e.EventID == "" {
		e.EventID = NewEventID()
	}
	if s.queue != nil {
		return s.queue.Enqueue(ctx, *e)
	}
	return s.Insert(ctx, []AuditEvent{*e})
}

// Insert writes events, skipping those already written (by event id).
func (s *AuditStore) Insert(ctx context.Context, events []AuditEvent) error {
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "event_id"}}, DoNothing: true,
	}).Create(&events).Error
	if err != nil {
		return fmt.Errorf("record audit events: %w", err)
	}
	return nil
}

// NewEventID returns a random (version 4) UUID.
func NewEventID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (Go 1.24 and later)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// AuditFilter narrows a listing of the log. Zero values match everything.
type AuditFilter struct {
	UserID int64
	// Email matches the events of the users whose email contains it.
	Email string
	IP    string // the address an event came from, exactly
	// From and To bound when events happened: From <= at < To.
	From, To time.Time
	Kind     AuditKind
	// SessionID matches the events about one session (by public id).
	SessionID string
	Before    int64 // only events with a smaller id (the next page)
	Limit     int
}

// List returns events matching f, newest first. It flushes the queue
// first, so a page never misses an event that has already happened.
func (s *AuditStore) List(ctx context.Context, f AuditFilter) ([]AuditEventView, error) {
	if s.queue != nil {
		if err := s.queue.Flush(ctx); err != nil {
			return nil, fmt.Errorf("list audit events: %w", err)
		}
	}
	q := s.db.WithContext(ctx).Table("audit_events AS e").
		Select(`e.*, COALESCE(a.email, '') AS actor_email, COALESCE(u.email, '') AS user_email,
			COALESCE(s.browser, '') AS session_browser, COALESCE(s.os, '') AS session_os`).
		Joins("LEFT JOIN users a ON a.id = e.actor_id").
		Joins("LEFT JOIN users u ON u.id = e.user_id").
		Joins("LEFT JOIN sessions s ON e.session_id <> '' AND s.public_id = e.session_id")
	if f.UserID != 0 {
		q = q.Where("e.user_id = ?", f.UserID)
	}
	if email := strings.TrimSpace(f.Email); email != "" {
		q = q.Where("e.user_id IN (SELECT id FROM users WHERE email ILIKE ?)", "%"+escapeLike(email)+"%")
	}
	if f.SessionID != "" {
		q = q.Where("e.session_id = ?", f.SessionID)
	}
	if f.IP != "" {
		q = q.Where("e.ip = ?", f.IP)
	}
	if !f.From.IsZero() {
		q = q.Where("e.at >= ?", f.From)
	}
	if !f.To.IsZero() {
		q = q.Where("e.at < ?", f.To)
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
