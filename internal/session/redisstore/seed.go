package redisstore

import (
	"context"
	"fmt"
	"time"
)

// SeedSession is one signed-in session to write straight into Redis, for
// load tests and demos (`web seed`). Its Postgres record is the caller's
// business, written before Seed as sign-in does.
type SeedSession struct {
	Token     string // a token shaped like scs's; the cookie value is CookieValue(tag, Token)
	PublicID  string
	UserID    int64
	Name      string
	Email     string
	Role      string
	CreatedAt time.Time // sign-in time: the absolute lifetime counts from here
}

// seedBatch is how many sessions Seed writes per pipeline flush.
const seedBatch = 1000

// Seed writes sessions into Redis exactly as a sign-in leaves them: the
// scs data (encode gives it, with its expiry), the owner key and the
// session's field plus the chrome fields in the user hash. Writes are
// pipelined, a thousand sessions per flush, so a million sessions take
// seconds. Unlike Register it neither checks the "disabled" mark nor
// enforces the session limit: it is for filling a test Redis, never for
// signing anyone in.
func (s *Store) Seed(ctx context.Context, sessions []SeedSession, clock func() time.Time,
	encode func(SeedSession) ([]byte, time.Time, error)) error {
	for start := 0; start < len(sessions); start += seedBatch {
		batch := sessions[start:min(start+seedBatch, len(sessions))]
		pipe := s.rdb.Pipeline()
		for _, ss := range batch {
			data, expiry, err := encode(ss)
			if err != nil {
				return err
			}
			// Relative TTLs, as the session's own commits give them.
			now := clock()
			ownerTTL := max(ss.CreatedAt.Add(s.lifetime).Sub(now).Milliseconds(), 1)
			userTTL := max(int64(ss.CreatedAt.Add(s.lifetime+time.Minute).Sub(now)/time.Second), 1)
			tag := s.keys.Tag(ss.UserID)
			user := s.keys.User(tag, ss.UserID)
			pipe.Set(ctx, s.keys.Data(tag, ss.Token), data, time.Duration(max(expiry.Sub(now).Milliseconds(), 1))*time.Millisecond)
			pipe.Set(ctx, s.keys.Owner(tag, ss.Token), Owner(ss.UserID, ss.PublicID), time.Duration(ownerTTL)*time.Millisecond)
			pipe.HSet(ctx, user, sessionField+ss.PublicID, ss.Token, "name", ss.Name, "email", ss.Email, "role", ss.Role, "uid", ss.UserID)
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
