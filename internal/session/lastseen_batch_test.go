package session_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// TestLastSeenIsWrittenInBatches: the writer writes through the store's
// TouchMany, one statement for many sessions, which never moves
// last_seen_at backwards and leaves ended sessions alone.
func TestLastSeenIsWrittenInBatches(t *testing.T) {
	env := apptest.New(t)
	user, clients := signInMany(t, env, 5)
	ctx := context.Background()
	if err := env.App.Sessions.WaitLastSeen(ctx); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(2 * time.Minute)
	for i, c := range clients {
		if res := c.Get("/account"); res.StatusCode != http.StatusOK {
			t.Fatalf("client %d: %d", i, res.StatusCode)
		}
	}
	if err := env.App.Sessions.WaitLastSeen(ctx); err != nil {
		t.Fatal(err)
	}
	active, err := env.App.Sessions.Records().Active(ctx, user.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := env.Clock.Now().Add(-time.Minute)
	for _, r := range active {
		if r.LastSeenAt.Before(want) {
			t.Errorf("session %s last seen %v, want after %v", r.PublicID, r.LastSeenAt, want)
		}
	}

	// Directly: an older sighting changes nothing; an ended session is left
	// alone; a newer one is written.
	store := env.App.Sessions.Records()
	if _, err := env.App.Sessions.RevokeAll(ctx, user.ID, []string{active[0].PublicID}, models.EndRevokedByUser, nil); err != nil {
		t.Fatal(err)
	}
	if err := env.App.Sessions.WaitEnds(ctx); err != nil {
		t.Fatal(err)
	}
	// countQueries hooks GORM: the audit writer must be done first.
	if err := env.App.Auditing.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	later := env.Clock.Now().Add(time.Hour).Truncate(time.Microsecond)
	queries := countQueries(t, env, func() {
		err = store.TouchMany(ctx, []models.Sighting{
			{PublicID: active[0].PublicID, IP: "10.9.9.9", At: later},
			{PublicID: active[1].PublicID, IP: "10.9.9.9", At: later},
			{PublicID: active[0].PublicID + "x", IP: "10.9.9.9", At: later}, // no such session
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if queries != 1 {
		t.Errorf("%d statements for three sightings, want 1", queries)
	}
	if err := store.TouchMany(ctx, []models.Sighting{{PublicID: active[0].PublicID, IP: "10.1.1.1", At: later.Add(-time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	got, _ := store.ByPublicID(ctx, active[0].PublicID)
	if !got.LastSeenAt.Equal(later) || got.IP != "10.9.9.9" {
		t.Errorf("live session: last seen %v from %s, want %v from 10.9.9.9", got.LastSeenAt, got.IP, later)
	}
	ended, _ := store.ByPublicID(ctx, active[1].PublicID)
	if ended.LastSeenAt.Equal(later) {
		t.Error("an ended session's last seen was written")
	}
}
