package session

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session/redisstore"
	"github.com/gatehouse/gatehouse/internal/session/workers"
)

// What the manager passes through to its store (redisstore) and its
// workers (workers), for the app, the handlers and tests.

// TagSecret names the secret (models.Secret) that keys the tags
// (Options.TagKey).
const TagSecret = redisstore.TagSecret

// SetProfile refreshes the name, email and role that every live session of
// the user shows, so a change made on one device shows on all of them.
func (m *Manager) SetProfile(userID int64, name, email, role string) error {
	return m.store.SetProfile(userID, name, email, role)
}

// DropEnded leaves out of a page of records (the admin's list of active
// sessions) those that have ended but whose end is not yet recorded.
func (m *Manager) DropEnded(ctx context.Context, page []models.SessionView) ([]models.SessionView, error) {
	return m.store.DropEnded(ctx, page)
}

// DetectReplicas sets how many replicas a revoke waits for
// (redisstore's durable.go).
func (m *Manager) DetectReplicas(ctx context.Context, want int) error {
	return m.store.DetectReplicas(ctx, want)
}

// RevokeReplicas is how many replicas a revoke waits for.
func (m *Manager) RevokeReplicas() int { return m.store.RevokeReplicas() }

// RevokeReplicationMisses is how many revokes the replicas did not
// acknowledge in time since start-up.
func (m *Manager) RevokeReplicationMisses() int64 { return m.store.RevokeReplicationMisses() }

// PendingEnds is how many ended sessions wait for their record.
func (m *Manager) PendingEnds() (int, error) { return m.store.PendingEnds(context.Background()) }

// WaitEnds returns once every end made before the call has had its record
// written (or the try failed), or ctx ends: workers.WaitEnds.
func (m *Manager) WaitEnds(ctx context.Context) error { return m.workers.WaitEnds(ctx) }

// WaitLastSeen returns once every last-seen write queued before the call
// has been tried: workers.WaitLastSeen.
func (m *Manager) WaitLastSeen(ctx context.Context) error { return m.workers.WaitLastSeen(ctx) }

// RecordEnds writes the records of every marked end: workers.RecordEnds.
func (m *Manager) RecordEnds(ctx context.Context) (int, error) { return m.workers.RecordEnds(ctx) }

// Sweep runs the sweep once: workers.Sweep.
func (m *Manager) Sweep(ctx context.Context, batch int) (workers.SweepResult, error) {
	return m.workers.Sweep(ctx, batch)
}

// DataKey, OwnerKey and UserKey name the Redis keys of the session whose
// cookie value is cookie and of a user's (tagged) hash: for tests and
// tools that look at Redis behind the manager's back.
func (m *Manager) DataKey(cookie string) string {
	tag, token, _ := redisstore.SplitCookie(cookie)
	return m.keys.Data(tag, token)
}

func (m *Manager) OwnerKey(cookie string) string {
	tag, token, _ := redisstore.SplitCookie(cookie)
	return m.keys.Owner(tag, token)
}

func (m *Manager) UserKey(userID int64) string { return m.keys.User(m.keys.Tag(userID), userID) }
