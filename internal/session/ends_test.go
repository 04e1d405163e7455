package session_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// holdEndRecords makes the first UPDATE that records session ends wait
// until the returned release is called, and reports through held when it
// is waiting.
func holdEndRecords(t *testing.T, env *apptest.Env) (held <-chan struct{}, release func()) {
	t.Helper()
	waiting := make(chan struct{})
	released := make(chan struct{})
	var once atomic.Bool
	hook := func(tx *gorm.DB) {
		sql := tx.Statement.SQL.String()
		if !strings.HasPrefix(strings.TrimSpace(sql), "UPDATE sessions s SET ended_at") || !once.CompareAndSwap(false, true) {
			return
		}
		close(waiting)
		<-released
	}
	cb := env.HookableDB(t).Callback()
	if err := cb.Raw().Before("gorm:raw").Register("test:hold-end-records", hook); err != nil {
		t.Fatal(err)
	}
	var releasing atomic.Bool
	release = func() {
		if releasing.CompareAndSwap(false, true) {
			close(released)
		}
	}
	t.Cleanup(func() {
		release()
		env.HookableDB(t).Callback().Raw().Remove("test:hold-end-records")
	})
	return waiting, release
}

// TestRevokeAllAnswersBeforeItsRecordIsWritten: revoke-all returns once
// Redis has killed and marked the sessions, while Postgres is still
// writing their records; meanwhile every reader shows the ends as they
// will be recorded, and the records then say exactly that.
func TestRevokeAllAnswersBeforeItsRecordIsWritten(t *testing.T) {
	env := apptest.New(t)
	ctx := context.Background()
	admin := int64(424242)
	user, clients := signInMany(t, env, 6)
	env.Client(t).SignUp("Grace", "grace@example.com", "cobol forever")
	held, release := holdEndRecords(t, env)

	revoked := make(chan int, 1)
	go func() {
		n, err := env.App.Sessions.RevokeAll(ctx, user.ID, nil, models.EndRevokedByAdmin, &admin)
		if err != nil {
			t.Error(err)
		}
		revoked <- n
	}()
	select {
	case n := <-revoked:
		if n != 6 {
			t.Fatalf("revoked %d sessions, want 6", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("revoke-all waited for Postgres to record the ends")
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the end recorder never started writing")
	}

	// The record write is held: Postgres still calls every session active.
	if active, err := env.App.Sessions.Records().Active(ctx, user.ID); err != nil || len(active) != 6 {
		t.Fatalf("%d records active while their end is being written (%v), want 6", len(active), err)
	}
	// The sessions are dead all the same, and the browser is told why.
	res := clients[1].Get("/account")
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("a revoked session still works: %d", res.StatusCode)
	}
	if got := clients[1].Get(res.Location()).Doc(t).Find(`[data-testid="flash"]`).Text(); !strings.Contains(got, "An administrator ended your session") {
		t.Errorf("the revoked browser is told %q", got)
	}
	// The Devices page's listing shows the ends, not expiries.
	l, err := env.App.Sessions.List(ctx, user.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Active) != 0 || len(l.Ended) != 6 {
		t.Fatalf("listing while recording: %d active, %d ended; want 0 and 6", len(l.Active), len(l.Ended))
	}
	listed := map[string]models.SessionRecord{}
	for _, r := range l.Ended {
		if r.EndReason != models.EndRevokedByAdmin || r.EndedBy == nil || *r.EndedBy != admin || r.EndedAt == nil {
			t.Errorf("listed %s: ended %v for %q by %v", r.PublicID, r.EndedAt, r.EndReason, r.EndedBy)
		}
		listed[r.PublicID] = r
	}
	// The admin's list of active sessions leaves them out too.
	all, _, err := env.App.Sessions.Records().ActiveAll(ctx, models.SessionFilter{Limit: 50})
	if err != nil || len(all) != 7 {
		t.Fatalf("%d active records in all (%v), want 7", len(all), err)
	}
	shown, err := env.App.Sessions.DropEnded(ctx, all)
	if err != nil || len(shown) != 1 || shown[0].UserEmail != "grace@example.com" {
		t.Errorf("the admin list shows %+v (%v), want Grace's session alone", shown, err)
	}
	if n, err := env.App.Sessions.PendingEnds(); err != nil || n != 6 {
		t.Errorf("%d ends waiting for their record (%v), want 6", n, err)
	}

	release()
	if err := env.App.Sessions.WaitEnds(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range listed {
		got := record(t, env, id)
		if got.EndReason != want.EndReason || got.EndedBy == nil || *got.EndedBy != admin || !got.EndedAt.Equal(*want.EndedAt) {
			t.Errorf("record of %s: ended %v for %q by %v; listed as %v for %q", id, got.EndedAt, got.EndReason, got.EndedBy, want.EndedAt, want.EndReason)
		}
	}
	if n, err := env.App.Sessions.PendingEnds(); err != nil || n != 0 {
		t.Errorf("%d ends still waiting after the recorder ran (%v)", n, err)
	}
	// And the listing, now from the records alone, says the same.
	if l, err := env.App.Sessions.List(ctx, user.ID, 10); err != nil || len(l.Active) != 0 || len(l.Ended) != 6 {
		t.Errorf("listing after recording: %+v, %v", l, err)
	}
}

// TestUnreadableEndMarksAreDropped: a mark that cannot be read, or that
// Postgres refuses, is logged and dropped, and does not block the user's
// later ends.
func TestUnreadableEndMarksAreDropped(t *testing.T) {
	env := apptest.New(t)
	ctx := context.Background()
	user, _ := signInMany(t, env, 2)
	l, err := env.App.Sessions.List(ctx, user.ID, 0)
	if err != nil || len(l.Active) != 2 {
		t.Fatalf("listing: %+v, %v", l, err)
	}
	rdb := env.App.Redis
	hash := env.App.Sessions.UserKey(user.ID)
	// One garbled mark, one with a reason the schema refuses; the user's
	// sessions are revoked properly afterwards.
	if err := rdb.HSet(ctx, hash, "e:garbled", "not a mark", "e:"+l.Active[0].PublicID, "1700000000000|no_such_reason|").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, env.App.Sessions.EndingKey(), user.ID).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := env.App.Sessions.RecordEnds(ctx); err != nil {
		t.Fatalf("unreadable marks stopped the recorder: %v", err)
	}
	if n, err := env.App.Sessions.PendingEnds(); err != nil || n != 0 {
		t.Fatalf("%d ends still waiting (%v), want the bad marks dropped", n, err)
	}
	if got := record(t, env, l.Active[0].PublicID); !got.Active() {
		t.Errorf("a refused mark ended the record: %q", got.EndReason)
	}

	if n, err := env.App.Sessions.RevokeAll(ctx, user.ID, nil, models.EndRevokedByUser, &user.ID); err != nil || n != 2 {
		t.Fatalf("revoke-all: %d, %v", n, err)
	}
	if err := env.App.Sessions.WaitEnds(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range l.Active {
		if got := record(t, env, r.PublicID); got.EndReason != models.EndRevokedByUser {
			t.Errorf("record of %s after revoke-all: %q", r.PublicID, got.EndReason)
		}
	}
}
