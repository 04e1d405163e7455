package models

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// EmailVerifiedAt is when the owner opened a verification link sent
	// to the current address; nil while it is unproved.
	EmailVerifiedAt *time.Time
	// NewDeviceAlerts: a sign-in from a device the account has not seen
	// mails the owner (flow 4 of issue 12). On unless the owner turns it
	// off; the default tag keeps Create from storing false for it.
	NewDeviceAlerts bool `gorm:"default:true"`
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Disabled reports whether an administrator has disabled the account.
func (u *User) Disabled() bool { return u.DisabledAt != nil }

// IsAdmin reports whether the user has the administrator role.
func (u *User) IsAdmin() bool { return u.Role == RoleAdmin }

// UserStore reads and writes users.
type UserStore struct{ db *gorm.DB }

// NewUserStore returns a UserStore on db.
func NewUserStore(db *gorm.DB) *UserStore { return &UserStore{db: db} }

// Create inserts u with its email in canonical form (NormalizeEmail);
// ErrConflict if another account has that address, an *InvalidEmailError if
// it has no canonical form.
func (s *UserStore) Create(ctx context.Context, u *User) error {
	if u.Role == "" {
		u.Role = RoleUser
	}
	email, err := NormalizeEmail(u.Email)
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	u.Email = email
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

// ByEmail returns the user whose email has the canonical form of email
// (NormalizeEmail), or ErrNotFound; an address without one names nobody.
func (s *UserStore) ByEmail(ctx context.Context, email string) (*User, error) {
	canonical, err := NormalizeEmail(email)
	if err != nil {
		return nil, fmt.Errorf("user by email: %w", errors.Join(ErrNotFound, err))
	}
	var u User
	if err := s.db.WithContext(ctx).Where("email = ?", canonical).Take(&u).Error; err != nil {
		return nil, fmt.Errorf("user by email: %w", translate(err))
	}
	return &u, nil
}

// UpdateProfile sets the user's name and email, the email in canonical form
// (NormalizeEmail); ErrConflict if another account has that address, an
// *InvalidEmailError if it has no canonical form.
func (s *UserStore) UpdateProfile(ctx context.Context, id int64, name, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return fmt.Errorf("update profile: %w", err)
	}
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).
		Updates(map[string]any{"name": name, "email": email, "updated_at": gorm.Expr("now()"),
			// A new address is unproved.
			"email_verified_at": gorm.Expr("CASE WHEN email = ? THEN email_verified_at END", email)})
	if res.Error != nil {
		return fmt.Errorf("update profile: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("update profile of user %d: %w", id, ErrNotFound)
	}
	return nil
}

// SetProvenEmail stores an address the user proved by opening a link
// mailed to it (an address change, or its undo): verified now.
// ErrConflict if another account has taken it since.
func (s *UserStore) SetProvenEmail(ctx context.Context, id int64, email string, now time.Time) error {
	err := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).
		Updates(map[string]any{"email": email, "email_verified_at": now, "updated_at": gorm.Expr("now()")}).Error
	if err != nil {
		return fmt.Errorf("set proven email: %w", translate(err))
	}
	return nil
}

// MarkEmailVerified records that the user proved their current address
// at now.
func (s *UserStore) MarkEmailVerified(ctx context.Context, id int64, now time.Time) error {
	if err := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).Update("email_verified_at", now).Error; err != nil {
		return fmt.Errorf("mark email verified: %w", err)
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

// SetNewDeviceAlerts turns the user's new-device alerts on or off.
func (s *UserStore) SetNewDeviceAlerts(ctx context.Context, id int64, on bool) error {
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).
		Updates(map[string]any{"new_device_alerts": on, "updated_at": gorm.Expr("now()")})
	if res.Error != nil {
		return fmt.Errorf("set new-device alerts: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("set new-device alerts of user %d: %w", id, ErrNotFound)
	}
	return nil
}

// ErrLastAdmin means the change would leave no enabled administrator.
var ErrLastAdmin = errors.New("no administrator would be left")

// UserSummary is a user as the admin list shows them.
type UserSummary struct {
	User
	ActiveSessions int
	LastActive     *time.Time
}

// UserFilter selects a page of users. Pages go by id, newest first: Before
// asks for the users older than that id, After for those newer.
type UserFilter struct {
	Query  string // matches any part of the email or name, ignoring case
	Before int64
	After  int64
	Limit  int
}

// Search returns a page of users matching f, newest first, with their
// active session count and when they were last active, and whether more
// users lie beyond the page in the direction it was read.
func (s *UserStore) Search(ctx context.Context, f UserFilter) (users []UserSummary, more bool, err error) {
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		page, err := matchingUsers(tx, f.Query)
		if err != nil {
			return err
		}
		order := "id DESC"
		switch {
		case f.After != 0:
			page, order = page.Where("id > ?", f.After), "id ASC"
		case f.Before != 0:
			page = page.Where("id < ?", f.Before)
		}
		page = page.Order(order).Limit(f.Limit + 1)
		return tx.Table("(?) AS u", page).
			Select("u.*, st.active_sessions, st.last_active").
			Joins(`LEFT JOIN LATERAL (
				SELECT count(*) FILTER (WHERE ended_at IS NULL) AS active_sessions, max(last_seen_at) AS last_active
				FROM sessions WHERE user_id = u.id) st ON true`).
			Order("u." + order).Scan(&users).Error
	})
	if err != nil {
		return nil, false, fmt.Errorf("search users: %w", err)
	}
	if len(users) > f.Limit {
		users, more = users[:f.Limit], true
	}
	if f.After != 0 {
		slices.Reverse(users)
	}
	return users, more, nil
}

// Count returns how many users match query (as Search matches it).
func (s *UserStore) Count(ctx context.Context, query string) (n int64, err error) {
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q, err := matchingUsers(tx, query)
		if err != nil {
			return err
		}
		return q.Count(&n).Error
	})
	if err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// matchingUsers selects the users whose email or name contains query, all
// users when it is empty, inside the transaction tx.
func matchingUsers(tx *gorm.DB, query string) (*gorm.DB, error) {
	page := tx.Model(&User{})
	q := strings.TrimSpace(query)
	if q == "" {
		return page, nil
	}
	// Postgres underestimates what ILIKE costs per row and would
	// rather scan 100,000 users than use the trigram indexes; its
	// other choice, walking the primary key, stays open for queries
	// that match often. And the plan must be made for this pattern:
	// a generic plan of the prepared statement (pgx prepares, and
	// Postgres goes generic after five runs) cannot judge it.
	err := tx.Exec(`SELECT set_config('enable_seqscan', 'off', true),
		set_config('plan_cache_mode', 'force_custom_plan', true)`).Error
	if err != nil {
		return nil, err
	}
	like := "%" + escapeLike(q) + "%"
	return page.Where("email ILIKE ? OR name ILIKE ?", like, like), nil
}

// escapeLike makes s match itself literally inside a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// SetDisabled disables or enables the account. Disabling the last enabled
// administrator is refused with ErrLastAdmin.
func (s *UserStore) SetDisabled(ctx context.Context, id int64, disabled bool) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if disabled {
			if err := guardLastAdmin(tx, id); err != nil {
				return err
			}
		}
		value := gorm.Expr("NULL")
		if disabled {
			value = gorm.Expr("COALESCE(disabled_at, now())")
		}
		res := tx.Model(&User{}).Where("id = ?", id).
			Updates(map[string]any{"disabled_at": value, "updated_at": gorm.Expr("now()")})
		if res.Error != nil {
			return fmt.Errorf("set disabled: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("set disabled of user %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// SetRole changes the user's role. Demoting the last enabled administrator
// is refused with ErrLastAdmin.
func (s *UserStore) SetRole(ctx context.Context, id int64, role string) error {
	if role != RoleUser && role != RoleAdmin {
		return fmt.Errorf("set role: unknown role %q", role)
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if role != RoleAdmin {
			if err := guardLastAdmin(tx, id); err != nil {
				return err
			}
		}
		res := tx.Model(&User{}).Where("id = ?", id).
			Updates(map[string]any{"role": role, "updated_at": gorm.Expr("now()")})
		if res.Error != nil {
			return fmt.Errorf("set role: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("set role of user %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// guardLastAdmin fails with ErrLastAdmin when id is the only enabled
// administrator. It locks the administrators' rows until the transaction
// ends, so two admins demoting each other at once cannot both succeed.
func guardLastAdmin(tx *gorm.DB, id int64) error {
	var admins []int64
	err := tx.Raw(`SELECT id FROM users WHERE role = ? AND disabled_at IS NULL ORDER BY id FOR UPDATE`, RoleAdmin).
		Scan(&admins).Error
	if err != nil {
		return fmt.Errorf("lock administrators: %w", err)
	}
	if len(admins) == 1 && admins[0] == id {
		return ErrLastAdmin
	}
	return nil
}

// EmailsByID returns the emails of the users with the given ids.
func (s *UserStore) EmailsByID(ctx context.Context, ids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []User
	if err := s.db.WithContext(ctx).Select("id", "email").Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("emails by id: %w", err)
	}
	for _, u := range rows {
		out[u.ID] = u.Email
	}
	return out, nil
}
