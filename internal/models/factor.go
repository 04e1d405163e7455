package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// AuthMethod is how a session was established.
type AuthMethod string

// The ways to sign in.
const (
	AuthPassword        AuthMethod = "password"
	AuthPasswordTOTP    AuthMethod = "password+totp"
	AuthPasswordPasskey AuthMethod = "password+passkey"
	AuthPasskey         AuthMethod = "passkey"
	AuthRecoveryCode    AuthMethod = "recovery_code"
	// AuthDeviceCode: an app signed in through the device flow, approved
	// from a signed-in browser (the record's ApprovedBy).
	AuthDeviceCode AuthMethod = "device_code"
)

// TOTPFactor is a user's authenticator app. Secret is sealed
// (factor.Keys); ConfirmedAt is nil while set-up waits for a first code.
type TOTPFactor struct {
	UserID      int64 `gorm:"primaryKey"`
	Secret      []byte
	ConfirmedAt *time.Time
	LastStep    int64 // the last time step whose code was accepted
	CreatedAt   time.Time
}

// TableName maps TOTPFactor onto totp_factors.
func (TOTPFactor) TableName() string { return "totp_factors" }

// Confirmed reports whether the app is turned on.
func (f *TOTPFactor) Confirmed() bool { return f.ConfirmedAt != nil }

// RecoveryCode is the keyed hash of one recovery code.
type RecoveryCode struct {
	ID        int64
	UserID    int64
	CodeHash  []byte
	UsedAt    *time.Time
	CreatedAt time.Time
}

// SignInChallenge is a sign-in whose password was right, waiting for the
// second factor; named by the hash of the token in the browser's cookie.
type SignInChallenge struct {
	TokenHash []byte `gorm:"primaryKey"`
	UserID    int64
	Remember  bool
	Next      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// TableName maps SignInChallenge onto signin_challenges.
func (SignInChallenge) TableName() string { return "signin_challenges" }

// Factors says which second factors a user has.
type Factors struct {
	TOTP          bool
	RecoveryCodes int // unused ones
	Passkeys      int
}

// Any reports whether the user has a second factor.
func (f Factors) Any() bool { return f.TOTP || f.Passkeys > 0 }

// FactorStore reads and writes second factors and pending sign-ins.
type FactorStore struct{ db *gorm.DB }

// NewFactorStore returns a FactorStore on db.
func NewFactorStore(db *gorm.DB) *FactorStore { return &FactorStore{db: db} }

// TOTP returns userID's authenticator app, confirmed or not, or ErrNotFound.
func (s *FactorStore) TOTP(ctx context.Context, userID int64) (*TOTPFactor, error) {
	var f TOTPFactor
	if err := s.db.WithContext(ctx).Where("user_id = ?", userID).Take(&f).Error; err != nil {
		return nil, fmt.Errorf("totp factor: %w", translate(err))
	}
	return &f, nil
}

// StartTOTP keeps sealed as userID's authenticator secret waiting for
// confirmation, replacing one that waits; ErrConflict if an app is
// already turned on.
func (s *FactorStore) StartTOTP(ctx context.Context, userID int64, sealed []byte, now time.Time) error {
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "user_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"secret", "created_at", "last_step"}),
		Where:     clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "totp_factors.confirmed_at IS NULL"}}},
	}).Create(&TOTPFactor{UserID: userID, Secret: sealed, CreatedAt: now})
	if res.Error != nil {
		return fmt.Errorf("start totp: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("start totp: %w", ErrConflict)
	}
	return nil
}

// ConfirmTOTP turns userID's waiting authenticator app on, the code of
// step having been accepted, and replaces the recovery codes with
// codeHashes, in one transaction. ErrConflict if the app is no longer
// waiting (another tab confirmed it) or the step was already used.
func (s *FactorStore) ConfirmTOTP(ctx context.Context, userID, step int64, codeHashes [][]byte, now time.Time) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&TOTPFactor{}).
			Where("user_id = ? AND confirmed_at IS NULL AND last_step < ?", userID, step).
			Updates(map[string]any{"confirmed_at": now, "last_step": step})
		if res.Error != nil {
			return fmt.Errorf("confirm totp: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("confirm totp: %w", ErrConflict)
		}
		return replaceRecoveryCodes(tx, userID, codeHashes, now)
	})
}

// UseTOTPStep records that a code of step was accepted for userID's
// confirmed app. It reports false when that step (or a later one) was
// used already: the atomic check that makes each code work once, also
// when two requests race with it.
func (s *FactorStore) UseTOTPStep(ctx context.Context, userID, step int64) (bool, error) {
	res := s.db.WithContext(ctx).Model(&TOTPFactor{}).
		Where("user_id = ? AND confirmed_at IS NOT NULL AND last_step < ?", userID, step).
		Update("last_step", step)
	if res.Error != nil {
		return false, fmt.Errorf("use totp step: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// UseRecoveryCode marks userID's unused recovery code with hash as used.
// It reports false when there is no such unused code; of two requests
// racing with one code, one gets true.
func (s *FactorStore) UseRecoveryCode(ctx context.Context, userID int64, hash []byte, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&RecoveryCode{}).
		Where("user_id = ? AND code_hash = ? AND used_at IS NULL", userID, hash).
		Update("used_at", now)
	if res.Error != nil {
		return false, fmt.Errorf("use recovery code: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// ReplaceRecoveryCodes voids userID's recovery codes and stores new ones;
// ErrNotFound unless the user has a confirmed authenticator app.
func (s *FactorStore) ReplaceRecoveryCodes(ctx context.Context, userID int64, codeHashes [][]byte, now time.Time) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Lock the factor row: a concurrent turning off cannot leave codes
		// behind, nor two new sets mix.
		var f TOTPFactor
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("user_id = ? AND confirmed_at IS NOT NULL", userID).Take(&f).Error
		if err != nil {
			return fmt.Errorf("replace recovery codes: %w", translate(err))
		}
		return replaceRecoveryCodes(tx, userID, codeHashes, now)
	})
}

func replaceRecoveryCodes(tx *gorm.DB, userID int64, codeHashes [][]byte, now time.Time) error {
	if err := tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error; err != nil {
		return fmt.Errorf("void recovery codes: %w", err)
	}
	codes := make([]RecoveryCode, len(codeHashes))
	for i, h := range codeHashes {
		codes[i] = RecoveryCode{UserID: userID, CodeHash: h, CreatedAt: now}
	}
	if len(codes) == 0 {
		return nil
	}
	if err := tx.Create(&codes).Error; err != nil {
		return fmt.Errorf("store recovery codes: %w", translate(err))
	}
	return nil
}

// RemoveSecondFactors deletes userID's authenticator app and recovery
// codes; it reports whether there was a confirmed app.
func (s *FactorStore) RemoveSecondFactors(ctx context.Context, userID int64) (bool, error) {
	var had bool
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Where("user_id = ? AND confirmed_at IS NOT NULL", userID).Delete(&TOTPFactor{})
		if res.Error != nil {
			return res.Error
		}
		had = res.RowsAffected > 0
		if err := tx.Where("user_id = ?", userID).Delete(&TOTPFactor{}).Error; err != nil {
			return err
		}
		return tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error
	})
	if err != nil {
		return false, fmt.Errorf("remove second factors: %w", err)
	}
	return had, nil
}

// HasSecondFactor reports whether userID must prove a second factor to
// sign in: an authenticator app, or a passkey.
func (s *FactorStore) HasSecondFactor(ctx context.Context, userID int64) (bool, error) {
	var has bool
	err := s.db.WithContext(ctx).Raw(`SELECT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = ? AND confirmed_at IS NOT NULL)
		OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?)`, userID, userID).Scan(&has).Error
	if err != nil {
		return false, fmt.Errorf("has second factor: %w", err)
	}
	return has, nil
}

// Factors says which second factors userID has.
func (s *FactorStore) Factors(ctx context.Context, userID int64) (Factors, error) {
	var f Factors
	var n int64
	db := s.db.WithContext(ctx)
	err := db.Model(&TOTPFactor{}).Where("user_id = ? AND confirmed_at IS NOT NULL", userID).Count(&n).Error
	if err != nil {
		return f, fmt.Errorf("factors: %w", err)
	}
	f.TOTP = n > 0
	if err := db.Model(&RecoveryCode{}).Where("user_id = ? AND used_at IS NULL", userID).Count(&n).Error; err != nil {
		return f, fmt.Errorf("factors: %w", err)
	}
	f.RecoveryCodes = int(n)
	if err := db.Model(&Passkey{}).Where("user_id = ?", userID).Count(&n).Error; err != nil {
		return f, fmt.Errorf("factors: %w", err)
	}
	f.Passkeys = int(n)
	return f, nil
}

// CreateChallenge stores a pending sign-in, and deletes expired ones.
func (s *FactorStore) CreateChallenge(ctx context.Context, ch *SignInChallenge) error {
	db := s.db.WithContext(ctx)
	if err := db.Where("expires_at < ?", ch.CreatedAt).Delete(&SignInChallenge{}).Error; err != nil {
		return fmt.Errorf("delete expired sign-in challenges: %w", err)
	}
	if err := db.Create(ch).Error; err != nil {
		return fmt.Errorf("create sign-in challenge: %w", translate(err))
	}
	return nil
}

// Challenge returns the pending sign-in named by tokenHash that has not
// expired at now, or ErrNotFound.
func (s *FactorStore) Challenge(ctx context.Context, tokenHash []byte, now time.Time) (*SignInChallenge, error) {
	var ch SignInChallenge
	err := s.db.WithContext(ctx).Where("token_hash = ? AND expires_at > ?", tokenHash, now).Take(&ch).Error
	if err != nil {
		return nil, fmt.Errorf("sign-in challenge: %w", translate(err))
	}
	return &ch, nil
}

// ConsumeChallenge deletes the pending sign-in named by tokenHash,
// reporting whether this call did (so, of two racing, one wins) while it
// had not expired at now.
func (s *FactorStore) ConsumeChallenge(ctx context.Context, tokenHash []byte, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Where("token_hash = ? AND expires_at > ?", tokenHash, now).Delete(&SignInChallenge{})
	if res.Error != nil {
		return false, fmt.Errorf("consume sign-in challenge: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// DropChallenge deletes a pending sign-in, used or not.
func (s *FactorStore) DropChallenge(ctx context.Context, tokenHash []byte) error {
	if err := s.db.WithContext(ctx).Where("token_hash = ?", tokenHash).Delete(&SignInChallenge{}).Error; err != nil {
		return fmt.Errorf("drop sign-in challenge: %w", err)
	}
	return nil
}
