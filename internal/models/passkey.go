package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Passkey is a WebAuthn credential of a user. Credential is the library's
// record of it (go-webauthn's Credential as JSON).
type Passkey struct {
	ID           int64
	UserID       int64
	CredentialID []byte
	Credential   []byte `gorm:"type:jsonb"`
	Name         string
	CreatedAt    time.Time
	LastUsedAt   *time.Time
}

// Ceremony purposes.
const (
	CeremonyRegister     = "register"
	CeremonySignIn       = "signin"
	CeremonySecondFactor = "second_factor"
)

// WebAuthnCeremony is a WebAuthn ceremony under way, named by the hash of
// the token in the browser's cookie.
type WebAuthnCeremony struct {
	TokenHash   []byte `gorm:"primaryKey"`
	UserID      *int64
	Purpose     string
	SessionData []byte `gorm:"type:jsonb"`
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// PasskeyStore reads and writes passkeys and WebAuthn ceremonies.
type PasskeyStore struct{ db *gorm.DB }

// NewPasskeyStore returns a PasskeyStore on db.
func NewPasskeyStore(db *gorm.DB) *PasskeyStore { return &PasskeyStore{db: db} }

// List returns userID's passkeys, oldest first.
func (s *PasskeyStore) List(ctx context.Context, userID int64) ([]Passkey, error) {
	var out []Passkey
	if err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list passkeys: %w", err)
	}
	return out, nil
}

// ByCredentialID returns the passkey with credential id, or ErrNotFound.
func (s *PasskeyStore) ByCredentialID(ctx context.Context, id []byte) (*Passkey, error) {
	var p Passkey
	if err := s.db.WithContext(ctx).Where("credential_id = ?", id).Take(&p).Error; err != nil {
		return nil, fmt.Errorf("passkey: %w", translate(err))
	}
	return &p, nil
}

// Create stores a new passkey; ErrConflict if its credential id is taken.
func (s *PasskeyStore) Create(ctx context.Context, p *Passkey) error {
	if err := s.db.WithContext(ctx).Create(p).Error; err != nil {
		return fmt.Errorf("create passkey: %w", translate(err))
	}
	return nil
}

// Used records a sign-in with userID's passkey: its credential as the
// library updated it (signature counter) and when. The counter only moves
// forward: a stale write of two racing sign-ins changes nothing, and
// reports false.
func (s *PasskeyStore) Used(ctx context.Context, userID, id int64, credential []byte, signCount uint32, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE passkeys SET credential = ?, last_used_at = ?
		WHERE id = ? AND user_id = ? AND (? = 0 OR COALESCE((credential->'authenticator'->>'signCount')::bigint, 0) < ?)`,
		credential, now, id, userID, signCount, signCount)
	if res.Error != nil {
		return false, fmt.Errorf("passkey used: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// Rename renames userID's passkey id; ErrNotFound if they have none such.
func (s *PasskeyStore) Rename(ctx context.Context, userID, id int64, name string) error {
	res := s.db.WithContext(ctx).Model(&Passkey{}).Where("id = ? AND user_id = ?", id, userID).Update("name", name)
	if res.Error != nil {
		return fmt.Errorf("rename passkey: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("rename passkey: %w", ErrNotFound)
	}
	return nil
}

// Remove deletes userID's passkey id; ErrNotFound if they have none such.
func (s *PasskeyStore) Remove(ctx context.Context, userID, id int64) (*Passkey, error) {
	var p Passkey
	res := s.db.WithContext(ctx).Clauses(clause.Returning{}).Where("id = ? AND user_id = ?", id, userID).Delete(&p)
	if res.Error != nil {
		return nil, fmt.Errorf("remove passkey: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("remove passkey: %w", ErrNotFound)
	}
	return &p, nil
}

// RemoveAll deletes userID's passkeys (an administrator's reset).
func (s *PasskeyStore) RemoveAll(ctx context.Context, userID int64) (int64, error) {
	res := s.db.WithContext(ctx).Where("user_id = ?", userID).Delete(&Passkey{})
	if res.Error != nil {
		return 0, fmt.Errorf("remove passkeys: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// Count is how many passkeys userID has.
func (s *PasskeyStore) Count(ctx context.Context, userID int64) (int, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&Passkey{}).Where("user_id = ?", userID).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count passkeys: %w", err)
	}
	return int(n), nil
}

// StartCeremony stores a ceremony, and deletes expired ones.
func (s *PasskeyStore) StartCeremony(ctx context.Context, c *WebAuthnCeremony) error {
	db := s.db.WithContext(ctx)
	if err := db.Where("expires_at < ?", c.CreatedAt).Delete(&WebAuthnCeremony{}).Error; err != nil {
		return fmt.Errorf("delete expired ceremonies: %w", err)
	}
	if err := db.Create(c).Error; err != nil {
		return fmt.Errorf("start ceremony: %w", translate(err))
	}
	return nil
}

// TakeCeremony deletes and returns the ceremony named by tokenHash for
// purpose, if it had not expired at now; ErrNotFound otherwise. Of two
// requests racing with one ceremony, one gets it.
func (s *PasskeyStore) TakeCeremony(ctx context.Context, tokenHash []byte, purpose string, now time.Time) (*WebAuthnCeremony, error) {
	var c WebAuthnCeremony
	res := s.db.WithContext(ctx).Clauses(clause.Returning{}).
		Where("token_hash = ? AND purpose = ? AND expires_at > ?", tokenHash, purpose, now).Delete(&c)
	if res.Error != nil {
		return nil, fmt.Errorf("take ceremony: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("take ceremony: %w", ErrNotFound)
	}
	return &c, nil
}

// TableName maps WebAuthnCeremony onto webauthn_ceremonies.
func (WebAuthnCeremony) TableName() string { return "webauthn_ceremonies" }
