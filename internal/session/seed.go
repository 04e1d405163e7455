package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"
)

// SeedSession is one signed-in session to write straight into Redis, for
// load tests and demos (`web seed`). Its Postgres record is the caller's
// business, written before Seed as sign-in does.
type SeedSession struct {
	Token     string // NewToken makes one; the cookie value is CookieValue(UserID, Token)
	PublicID  string // NewPublicID makes one
	UserID    int64
	Name      string
	Email     string
	Role      string
	CreatedAt time.Time // sign-in time: the absolute lifetime counts from here
}

// NewToken returns a session token shaped like the ones scs issues: 32
// random bytes, base64url without padding.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// CookieValue is the session cookie's value for token of userID's
// session (its tag, a dot, the token).
func (m *Manager) CookieValue(userID int64, token string) string {
	return cookieValue(m.keys.tag(userID), token)
}

// NewPublicID returns a new public session id.
func NewPublicID() (string, error) { return newPublicID() }

// seedBatch is how many sessions Seed writes per pipeline flush.
const seedBatch = 1000

// Seed writes sessions into Redis exactly as a sign-in leaves them (Start,
// activate, register): the scs data, the owner key and the session's
// field plus the chrome fields in the user hash (redis.go), with the
// manager's codec and expiry. Writes are pipelined, a
// thousand sessions per flush, so a million sessions take seconds. Unlike
// register it neither checks the "disabled" mark nor enforces the session
// limit: it is for filling a test Redis, never for signing anyone in.
func (m *Manager) Seed(ctx context.Context, sessions []SeedSession) error {
	for start := 0; start < len(sessions); start += seedBatch {
		batch := sessions[start:min(start+seedBatch, len(sessions))]
		pipe := m.rdb.Pipeline()
		for _, s := range batch {
			data, expiry, err := m.seedData(s)
			if err != nil {
				return err
			}
			// Relative TTLs, as the session's own commits give them.
			now := m.now()
			ownerTTL := max(s.CreatedAt.Add(m.lifetime).Sub(now).Milliseconds(), 1)
			userTTL := max(int64(s.CreatedAt.Add(m.lifetime+time.Minute).Sub(now)/time.Second), 1)
			tag := m.keys.tag(s.UserID)
			user := m.keys.user(tag, s.UserID)
			pipe.Set(ctx, m.keys.data(tag, s.Token), data, time.Duration(max(expiry.Sub(now).Milliseconds(), 1))*time.Millisecond)
			pipe.Set(ctx, m.keys.owner(tag, s.Token), owner(s.UserID, s.PublicID), time.Duration(ownerTTL)*time.Millisecond)
			pipe.HSet(ctx, user, sessionField+s.PublicID, s.Token, "name", s.Name, "email", s.Email, "role", s.Role, "uid", s.UserID)
			pipe.ExpireGT(ctx, user, time.Duration(userTTL)*time.Second)
			// GT leaves a new hash (no TTL counts as infinite) alone: NX gives it one.
			pipe.ExpireNX(ctx, user, time.Duration(userTTL)*time.Second)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("seed sessions: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// seedData encodes s's scs data with the manager's codec, with the values
// Start puts there, and returns it with the expiry scs would give it on
// commit: the earlier of the idle timeout (from now) and the lifetime.
func (m *Manager) seedData(s SeedSession) ([]byte, time.Time, error) {
	deadline := s.CreatedAt.Add(m.lifetime).UTC()
	data, err := m.scs.Codec.Encode(deadline, map[string]any{
		keyUserID:      s.UserID,
		keyPublicID:    s.PublicID,
		keyAuthAt:      s.CreatedAt.Unix(),
		keySeenAt:      s.CreatedAt.Unix(),
		"__rememberMe": false, // what scs's RememberMe(ctx, false) stores
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("encode session: %w", err)
	}
	expiry := deadline
	if m.idle > 0 {
		if ie := m.now().Add(m.idle).UTC(); ie.Before(expiry) {
			expiry = ie
		}
	}
	return data, expiry, nil
}
