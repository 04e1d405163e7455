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
	Token     string // the cookie value; NewToken makes one
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

// NewPublicID returns a new public session id.
func NewPublicID() (string, error) { return newPublicID() }

// seedBatch is how many sessions Seed writes per pipeline flush.
const seedBatch = 1000

// Seed writes sessions into Redis exactly as a sign-in leaves them (Start,
// activate, register): the scs data under P s:<token> with the manager's
// codec and expiry, the owner key P o:<token>, and the session's field plus
// the chrome fields in the user hash P u:{uid}. Writes are pipelined, a
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
			pipe.Set(ctx, m.keys.data()+s.Token, data, time.Duration(max(expiry.Sub(now).Milliseconds(), 1))*time.Millisecond)
			pipe.Set(ctx, m.keys.owner(s.Token), owner(s.UserID, s.PublicID), time.Duration(ownerTTL)*time.Millisecond)
			pipe.HSet(ctx, m.keys.user(s.UserID), sessionField+s.PublicID, s.Token, "name", s.Name, "email", s.Email, "role", s.Role)
			pipe.ExpireGT(ctx, m.keys.user(s.UserID), time.Duration(userTTL)*time.Second)
			// GT leaves a new hash (no TTL counts as infinite) alone: NX gives it one.
			pipe.ExpireNX(ctx, m.keys.user(s.UserID), time.Duration(userTTL)*time.Second)
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
