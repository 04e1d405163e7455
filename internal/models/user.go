package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Roles a user can have.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// User is an account.
type User struct {
	ID           int64
	Email        string
	Name         string
	PasswordHash string
	Role         string
	DisabledAt   *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Disabled reports whether an administrator has disabled the account.
func (u *User) Disabled() bool { return u.DisabledAt != nil }

// IsAdmin reports whether the user has the administrator role.
func (u *User) IsAdmin() bool { return u.Role == RoleAdmin }

// UserStore reads and writes users.
type UserStore struct{ db *gorm.DB }

// NewUserStore returns a UserStore on db.
func NewUserStore(db *gorm.DB) *UserStore { return &UserStore{db: db} }

// Create inserts u; ErrConflict if its email is taken (whatever its case).
func (s *UserStore) Create(ctx context.Context, u *User) error {
	if u.Role == "" {
		u.Role = RoleUser
	}
	if err := s.db.WithContext(ctx).Create(u).Error; err != nil {
		return fmt.Errorf("create user: %w", translate(err))
	}
	return nil
}

// ByID returns the user with id, or ErrNotFound.
func (s *UserStore) ByID(ctx context.Context, id int64) (*User, error) {
	var u User
	if err := s.db.WithContext(ctx).Take(&u, id).Error; err != nil {
		return nil, fmt.Errorf("user %d: %w", id, translate(err))
	}
	return &u, nil
}

// ByEmail returns the user whose email matches, ignoring case, or ErrNotFound.
func (s *UserStore) ByEmail(ctx context.Context, email string) (*User, error) {
	var u User
	if err := s.db.WithContext(ctx).Where("lower(email) = lower(?)", email).Take(&u).Error; err != nil {
		return nil, fmt.Errorf("user by email: %w", translate(err))
	}
	return &u, nil
}

// UpdateProfile sets the user's name and email; ErrConflict if the email is
// taken by someone else.
func (s *UserStore) UpdateProfile(ctx context.Context, id int64, name, email string) error {
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).
		Updates(map[string]any{"name": name, "email": email, "updated_at": gorm.Expr("now()")})
	if res.Error != nil {
		return fmt.Errorf("update profile: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("update profile of user %d: %w", id, ErrNotFound)
	}
	return nil
}

// SetPasswordHash replaces the user's password hash.
func (s *UserStore) SetPasswordHash(ctx context.Context, id int64, hash string) error {
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).
		Updates(map[string]any{"password_hash": hash, "updated_at": gorm.Expr("now()")})
	if res.Error != nil {
		return fmt.Errorf("set password: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("set password of user %d: %w", id, ErrNotFound)
	}
	return nil
}
