package session

import (
	"context"
	"time"
)

// CommitWithExpiry saves data under token through the store, as scs does
// at the end of a request, handing it the absolute expiry scs computed
// from its instance's clock.
func (m *Manager) CommitWithExpiry(ctx context.Context, token string, data []byte, expiry time.Time) error {
	return m.scs.Store.(*store).CommitCtx(ctx, token, data, expiry)
}

// EndingKey names the set of users with end marks.
func (m *Manager) EndingKey() string { return m.keys.ending() }
