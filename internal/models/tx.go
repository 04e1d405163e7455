package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/internal/mail"
)

// DB runs the work that must commit as one (a change, the mail it causes
// and its audit row) and the few reads and writes of that work's tables
// made outside a transaction, so handlers never hold a *gorm.DB.
type DB struct{ db *gorm.DB }

// NewDB returns a DB on db.
func NewDB(db *gorm.DB) *DB { return &DB{db: db} }

// InTx runs fn in one Postgres transaction: it commits if fn returns nil
// and rolls back otherwise.
func (d *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	return d.db.WithContext(ctx).Transaction(func(db *gorm.DB) error { return fn(&Tx{db: db}) })
}

// Tx is an open transaction (DB.InTx): the stores and writes bound to it
// commit or roll back together.
type Tx struct{ db *gorm.DB }

// Users is the UserStore within tx.
func (tx *Tx) Users() *UserStore { return NewUserStore(tx.db) }

// Factors is the FactorStore within tx.
func (tx *Tx) Factors() *FactorStore { return NewFactorStore(tx.db) }

// Passkeys is the PasskeyStore within tx.
func (tx *Tx) Passkeys() *PasskeyStore { return NewPasskeyStore(tx.db) }

// LockUser returns the user with id, locked FOR UPDATE until the commit
// (a disable or another link racing this transaction waits, and is seen),
// or ErrNotFound.
func (tx *Tx) LockUser(ctx context.Context, id int64) (*User, error) {
	var u User
	if err := tx.db.WithContext(ctx).Raw(`SELECT * FROM users WHERE id = ? FOR UPDATE`, id).Scan(&u).Error; err != nil {
		return nil, fmt.Errorf("lock user %d: %w", id, err)
	}
	if u.ID == 0 {
		return nil, fmt.Errorf("lock user %d: %w", id, ErrNotFound)
	}
	return &u, nil
}

// Audit writes e within tx, so the event is recorded exactly when the
// change it describes commits (AuditStore.Record may write later).
func (tx *Tx) Audit(ctx context.Context, e AuditEvent) error {
	if e.EventID == "" {
		e.EventID = NewEventID()
	}
	if err := tx.db.WithContext(ctx).Create(&e).Error; err != nil {
		return fmt.Errorf("audit %s: %w", e.Kind, err)
	}
	return nil
}

// EnqueueMail puts m in the outbox within tx: it is sent once tx commits,
// and never if it rolls back (mail.Enqueue).
func (tx *Tx) EnqueueMail(m mail.Message) error { return mail.Enqueue(tx.db, m) }

// ResetRequest is a "forgot password" request, written whatever the
// address and handled in the background (ClaimResetRequests).
type ResetRequest struct {
	ID          int64
	Email       string
	IP          string
	UserAgent   string
	RequestedAt time.Time
}

// TableName maps ResetRequest onto its table.
func (ResetRequest) TableName() string { return "password_reset_requests" }

// AddResetRequest stores r.
func (d *DB) AddResetRequest(ctx context.Context, r ResetRequest) error {
	if err := d.db.WithContext(ctx).Create(&r).Error; err != nil {
		return fmt.Errorf("add reset request: %w", err)
	}
	return nil
}

// ClaimResetRequests removes and returns up to limit of the oldest
// requests, within tx; requests another transaction claimed are skipped
// (SKIP LOCKED), so instances share the work, and a rollback puts them
// back.
func (tx *Tx) ClaimResetRequests(ctx context.Context, limit int) ([]ResetRequest, error) {
	var reqs []ResetRequest
	err := tx.db.WithContext(ctx).Raw(`DELETE FROM password_reset_requests WHERE id IN (
		SELECT id FROM password_reset_requests ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING *`,
		limit).Scan(&reqs).Error
	if err != nil {
		return nil, fmt.Errorf("claim reset requests: %w", err)
	}
	return reqs, nil
}

// RecentMail returns the newest messages of the outbox, for the
// development mailbox.
func (d *DB) RecentMail(ctx context.Context, limit int) ([]mail.Message, error) {
	return mail.Recent(ctx, d.db, limit)
}

// Mail returns the outbox's message id, or ErrNotFound.
func (d *DB) Mail(ctx context.Context, id int64) (*mail.Message, error) {
	var m mail.Message
	if err := d.db.WithContext(ctx).Take(&m, id).Error; err != nil {
		return nil, fmt.Errorf("mail %d: %w", id, translate(err))
	}
	return &m, nil
}
