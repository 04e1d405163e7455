package session

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/session/redisstore"
)

// CommitWithExpiry saves data of the session whose cookie is cookie through the store, as scs does
// at the end of a request, handing it the absolute expiry scs computed
// from its instance's clock.
func (m *Manager) CommitWithExpiry(ctx context.Context, cookie string, data []byte, expiry time.Time) error {
	tag, token, _ := redisstore.SplitCookie(cookie)
	ctx = redisstore.WithLookup(ctx, &redisstore.Lookup{Tag: tag})
	return m.store.CommitCtx(ctx, token, data, expiry)
}

// EndingKey names the set of users with end marks.
func (m *Manager) EndingKey() string { return m.keys.Ending() }

// MakeOld moves the session whose cookie is cookie to the layout from
// before tags, as a session signed in before the upgrade left it, and
// returns its cookie then: the bare token.
func (m *Manager) MakeOld(ctx context.Context, userID int64, cookie string) (string, error) {
	return m.store.MakeOld(ctx, userID, cookie)
}

// CommitScriptHash is the SHA1 that EVALSHA names the commit script by.
var CommitScriptHash = redisstore.CommitScriptHash()
