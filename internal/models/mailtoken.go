package models

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// TokenPurpose says what a mailed token may be used for; a token of one
// purpose is refused for every other.
type TokenPurpose string

// The purposes of mailed tokens.
const (
	TokenVerifyEmail     TokenPurpose = "verify_email"
	TokenResetPassword   TokenPurpose = "reset_password"
	TokenChangeEmail     TokenPurpose = "change_email"
	TokenUndoEmailChange TokenPurpose = "undo_email_change"
	TokenNotMe           TokenPurpose = "not_me"
)

// MailToken is a single-use secret sent by mail. Only its SHA-256 is
// stored: the database never holds a token that works.
type MailToken struct {
	ID        int64
	Hash      []byte
	Purpose   TokenPurpose
	UserID    int64
	Email     string // the address the token is about
	SessionID string // the session a "this wasn't me" link ends
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// ErrTokenInvalid means a token is unknown (forged, altered, truncated),
// of another purpose, used, or expired. One error for all: the page says
// the link no longer works.
var ErrTokenInvalid = errors.New("token invalid, used or expired")

// tokenLen is the length of a token's text: 32 random bytes, base64url.
const tokenLen = 43

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// WellFormedToken reports whether s could be a token, so a malformed one
// is refused without a query.
func WellFormedToken(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// IssueToken stores a new token of purpose for t.UserID (with t.Email and
// t.SessionID), valid for ttl from now, within tx; it returns the token's
// text, which only the mail will hold.
func (tx *Tx) IssueToken(ctx context.Context, t MailToken, ttl time.Duration, now time.Time) (string, error) {
	b := make([]byte, 32)
	rand.Read(b) // never fails (Go 1.24 and later)
	token := base64.RawURLEncoding.EncodeToString(b)
	t.ID, t.Hash, t.CreatedAt, t.ExpiresAt, t.UsedAt = 0, hashToken(token), now, now.Add(ttl), nil
	if err := tx.db.WithContext(ctx).Create(&t).Error; err != nil {
		return "", fmt.Errorf("issue %s token: %w", t.Purpose, err)
	}
	return token, nil
}

// PeekToken returns the token's record if it is valid for purpose at now,
// without using it (the page a link opens, before its form is sent).
func (d *DB) PeekToken(ctx context.Context, token string, purpose TokenPurpose, now time.Time) (*MailToken, error) {
	if !WellFormedToken(token) {
		return nil, ErrTokenInvalid
	}
	var t MailToken
	err := d.db.WithContext(ctx).Where("hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
		hashToken(token), purpose, now).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrTokenInvalid
	} else if err != nil {
		return nil, fmt.Errorf("peek token: %w", err)
	}
	return &t, nil
}

// UseToken marks the token used, within tx, if it is valid for purpose at
// now, and returns its record; ErrTokenInvalid otherwise. It is one
// conditional UPDATE: of two uses at once, the second waits for the first
// transaction and then finds the token used, so exactly one wins (and if
// the first rolls back, the token is still good).
func (tx *Tx) UseToken(ctx context.Context, token string, purpose TokenPurpose, now time.Time) (*MailToken, error) {
	if !WellFormedToken(token) {
		return nil, ErrTokenInvalid
	}
	var ts []MailToken
	err := tx.db.WithContext(ctx).Raw(`UPDATE mail_tokens SET used_at = ?
		WHERE hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ? RETURNING *`,
		now, hashToken(token), purpose, now).Scan(&ts).Error
	if err != nil {
		return nil, fmt.Errorf("use token: %w", err)
	}
	if len(ts) == 0 {
		return nil, ErrTokenInvalid
	}
	return &ts[0], nil
}

// RetireTokens marks every unused token of purpose of userID used, within
// tx: after a reset, older reset links stop working.
func (tx *Tx) RetireTokens(ctx context.Context, userID int64, purpose TokenPurpose, now time.Time) error {
	err := tx.db.WithContext(ctx).Model(&MailToken{}).
		Where("user_id = ? AND purpose = ? AND used_at IS NULL", userID, purpose).
		Update("used_at", now).Error
	if err != nil {
		return fmt.Errorf("retire %s tokens: %w", purpose, err)
	}
	return nil
}
