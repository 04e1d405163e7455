package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/session/redisstore"
)

// SeedSession is one signed-in session to write straight into Redis, for
// load tests and demos (`web seed`).
type SeedSession = redisstore.SeedSession

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
	return redisstore.CookieValue(m.keys.Tag(userID), token)
}

// NewPublicID returns a new public session id.
func NewPublicID() (string, error) { return newPublicID() }

// Seed writes sessions into Redis exactly as a sign-in leaves them (Start,
// activate), with the manager's codec and expiry (redisstore's Seed).
func (m *Manager) Seed(ctx context.Context, sessions []SeedSession) error {
	return m.store.Seed(ctx, sessions, m.now, m.seedData)
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
