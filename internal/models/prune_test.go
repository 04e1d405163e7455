package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
)

// TestPruneRetiredRefresh: the retired refresh tokens of an ended app
// session go, in batches of the limit; a live session's stay, so its
// reuse is still caught.
func TestPruneRetiredRefresh(t *testing.T) {
	env := apptest.New(t)
	u := env.User(t, "Ada", "ada@example.com", "correct horse battery")
	ctx := context.Background()
	var err error
	client := session.AppClient{Name: "cli", UserAgent: "cli/1", IP: "192.0.2.1"}
	// Two app sessions, each refreshed three times: three retired tokens each.
	var live, ended session.AppTokens
	var liveFirst string // the live session's first refresh token, retired
	for _, s := range []*session.AppTokens{&live, &ended} {
		if *s, err = env.App.Sessions.StartApp(ctx, u, client); err != nil {
			t.Fatal(err)
		}
		if liveFirst == "" {
			liveFirst = s.RefreshToken
		}
		for range 3 {
			if *s, err = env.App.Sessions.Refresh(ctx, s.RefreshToken, client); err != nil {
				t.Fatal(err)
			}
		}
	}
	retired := func() (n int64) {
		t.Helper()
		if err := env.App.DB.Raw(`SELECT count(*) FROM retired_refresh_tokens`).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := retired(); n != 6 {
		t.Fatalf("%d retired tokens after 2×3 refreshes, want 6", n)
	}
	store := env.App.Sessions.Records()
	if n, err := store.PruneRetiredRefresh(ctx, 100); err != nil || n != 0 {
		t.Fatalf("prune with no ended session: %d, %v; want 0", n, err)
	}
	if err := env.App.Sessions.Revoke(ctx, u.ID, ended.SessionID, models.EndRevokedByUser, &u.ID); err != nil {
		t.Fatal(err)
	}
	if err := env.App.Sessions.WaitEnds(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := store.PruneRetiredRefresh(ctx, 2); err != nil || n != 2 {
		t.Fatalf("prune, limit 2: %d, %v; want 2", n, err)
	}
	if n, err := store.PruneRetiredRefresh(ctx, 2); err != nil || n != 1 {
		t.Fatalf("prune, limit 2, again: %d, %v; want the last 1", n, err)
	}
	if n := retired(); n != 3 {
		t.Fatalf("%d retired tokens left, want the live session's 3", n)
	}
	// The live session still tells reuse: its first refresh token ends it.
	if _, err := env.App.Sessions.Refresh(ctx, liveFirst, client); !errors.Is(err, session.ErrRefreshReused) {
		t.Fatalf("reusing the live session's first refresh token after the prune: %v, want ErrRefreshReused", err)
	}
}

// TestPruneExpiredDeviceAuthorizations: rows an hour past their expiry go
// without waiting for the next code; newer ones stay usable.
func TestPruneExpiredDeviceAuthorizations(t *testing.T) {
	store, _ := deviceEnv(t)
	ctx := context.Background()
	now := time.Now()
	req := models.NewDeviceAuthorization{ClientName: "CLI", IP: "192.0.2.1", UserAgent: "cli/1"}
	// Newest first: Create prunes too, and must not get to the old row.
	fresh, _, err := store.Create(ctx, req, now)
	if err != nil {
		t.Fatal(err)
	}
	_, recent, err := store.Create(ctx, req, now.Add(-30*time.Minute)) // expired, but not long ago
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Create(ctx, req, now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := store.PruneExpired(ctx, now); err != nil || n != 1 {
		t.Fatalf("PruneExpired: %d, %v; want the one expired over an hour ago", n, err)
	}
	if n, err := store.PruneExpired(ctx, now); err != nil || n != 0 {
		t.Fatalf("PruneExpired again: %d, %v; want 0", n, err)
	}
	if _, err := store.Pending(ctx, fresh.UserCode, now); err != nil {
		t.Fatalf("the fresh code after pruning: %v", err)
	}
	// The recently expired row stays, so its late poll hears expired_token.
	if got := pollCode(t, store.Poll(ctx, recent, now, nil)); got != models.PollExpired {
		t.Fatalf("late poll of the recently expired code: %q, want %q", got, models.PollExpired)
	}
}
