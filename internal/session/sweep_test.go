package session_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
)

// devicesID reads the id of the session c is using from its Devices page.
func devicesID(t *testing.T, c *apptest.Client) string {
	t.Helper()
	res := c.Get("/account/sessions")
	id, ok := res.Doc(t).Find(`tr[data-session-id][data-current="true"]`).Attr("data-session-id")
	if !ok {
		t.Fatalf("no current session on the Devices page (%d)", res.StatusCode)
	}
	return id
}

func record(t *testing.T, env *apptest.Env, id string) *models.SessionRecord {
	t.Helper()
	r, err := env.App.Sessions.Records().ByPublicID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// orphans inserts n active records of a new user that have no session in
// Redis, created and last seen age ago.
func orphans(t *testing.T, env *apptest.Env, n int, age time.Duration) (*models.User, []string) {
	t.Helper()
	ctx := context.Background()
	u := &models.User{Name: "Orphan", Email: fmt.Sprintf("orphan%d@example.com", time.Now().UnixNano()), PasswordHash: "x"}
	if err := env.App.Users.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	then := env.Clock.Now().Add(-age)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("orphan%020d", i)
		err := env.App.Sessions.Records().Create(ctx, &models.SessionRecord{
			PublicID: ids[i], UserID: u.ID, CreatedAt: then, LastSeenAt: then, ExpiresAt: then.Add(12 * time.Hour),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return u, ids
}

func TestSweepEndsRecordsWhoseRedisDataIsGone(t *testing.T) {
	env := apptest.New(t)
	live := env.Client(t)
	live.SignUp("Ada", "ada@example.com", "analytical engine")
	expired := env.Client(t)
	expired.SignIn("ada@example.com", "analytical engine")
	lost := env.Client(t)
	lost.SignIn("ada@example.com", "analytical engine")
	other := env.Client(t)
	other.SignUp("Grace", "grace@example.com", "cobol forever")
	liveID, expiredID, lostID, otherID := devicesID(t, live), devicesID(t, expired), devicesID(t, lost), devicesID(t, other)
	user, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}

	ctx, rdb := context.Background(), env.App.Redis
	userHash := env.App.Sessions.UserKey(user.ID)
	// One session's data expires (as its TTL would remove it); another
	// loses its field (a revoke whose record was never written).
	if err := rdb.Del(ctx, env.App.Sessions.DataKey(expired.SessionToken())).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HDel(ctx, userHash, "s:"+lostID).Err(); err != nil {
		t.Fatal(err)
	}

	// Nothing is judged before the clock says it could have expired.
	res, err := env.App.Sessions.Sweep(context.Background(), 2)
	if err != nil || res.Checked != 0 {
		t.Fatalf("sweep right away: %+v, %v; want nothing checked", res, err)
	}
	// Past the idle timeout by the app's clock, every record is a
	// candidate; Redis (whose TTLs the test clock does not move) decides.
	env.Clock.Advance(31 * time.Minute)
	res, err = env.App.Sessions.Sweep(context.Background(), 2) // batches of 2
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked != 4 || res.Expired != 2 {
		t.Errorf("sweep: %+v, want 4 checked, 2 expired", res)
	}
	for id, want := range map[string]models.EndReason{liveID: "", otherID: "", expiredID: models.EndIdleTimeout, lostID: models.EndIdleTimeout} {
		if got := record(t, env, id).EndReason; got != want {
			t.Errorf("record %s ended %q, want %q", id, got, want)
		}
	}
	// The stale field of the expired session is gone from the user hash.
	if found, _ := rdb.HExists(ctx, userHash, "s:"+expiredID).Result(); found {
		t.Error("the expired session's field is still in the user hash")
	}
	for _, c := range []*apptest.Client{live, other} {
		if res := c.Get("/account"); res.StatusCode != http.StatusOK {
			t.Errorf("a live session stopped working after the sweep: %d", res.StatusCode)
		}
	}
	// A second sweep finds nothing more to do.
	if res, err := env.App.Sessions.Sweep(context.Background(), 2); err != nil || res.Expired != 0 {
		t.Errorf("second sweep: %+v, %v", res, err)
	}
}

// TestSweepLeavesNewRecordsAlone: a sign-in writes its record before it
// enters the session in Redis. A record only seconds old that Redis does
// not know yet must not be judged, even when the idle timeout is shorter.
func TestSweepLeavesNewRecordsAlone(t *testing.T) {
	env := apptest.New(t, apptest.With("SESSION_IDLE_TIMEOUT", "1s"))
	_, ids := orphans(t, env, 1, 0)
	env.Clock.Advance(5 * time.Second)
	res, err := env.App.Sessions.Sweep(context.Background(), 0)
	if err != nil || res.Checked != 0 {
		t.Fatalf("sweep of a 5-second-old record: %+v, %v; want it left alone", res, err)
	}
	if record(t, env, ids[0]).EndedAt != nil {
		t.Fatal("a brand-new record was closed")
	}
	env.Clock.Advance(2 * time.Minute)
	if res, err := env.App.Sessions.Sweep(context.Background(), 0); err != nil || res.Expired != 1 {
		t.Fatalf("sweep of a 2-minute-old record missing from Redis: %+v, %v", res, err)
	}
}

// TestSweepIsSafeWithSeveralInstances runs the sweep on two instances at
// once, in small batches: every expired record is closed exactly once.
func TestSweepIsSafeWithSeveralInstances(t *testing.T) {
	one := apptest.New(t)
	two := apptest.Start(t, one.Config)
	user, _ := orphans(t, one, 300, 2*time.Hour)

	var wg sync.WaitGroup
	results := make([]int, 2)
	for i, env := range []*apptest.Env{one, two} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := env.App.Sessions.Sweep(context.Background(), 20)
			if err != nil {
				t.Error(err)
			}
			results[i] = res.Expired
		}()
	}
	wg.Wait()
	if results[0]+results[1] != 300 {
		t.Errorf("the instances closed %d + %d records, want 300 in all", results[0], results[1])
	}
	active, err := one.App.Sessions.Records().Active(context.Background(), user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 0 {
		t.Errorf("%d records still active", len(active))
	}
	t.Logf("instance one closed %d, instance two %d", results[0], results[1])
}

// TestLateEndRecordsCorrectOnlyGuesses: a replayed end replaces an expiry
// the sweep or the Devices page guessed, never an end that was recorded.
func TestLateEndRecordsCorrectOnlyGuesses(t *testing.T) {
	env := apptest.New(t)
	user, ids := orphans(t, env, 2, time.Hour)
	ctx := context.Background()
	store := env.App.Sessions.Records()
	now := env.Clock.Now()
	if err := store.MarkExpired(ctx, user.ID, ids[:1], 30*time.Minute, now); err != nil {
		t.Fatal(err)
	}
	if err := store.MarkEnded(ctx, user.ID, ids[1:], models.EndSignedOut, &user.ID, now); err != nil {
		t.Fatal(err)
	}
	if err := store.RecordEnd(ctx, user.ID, ids, models.EndRevokedByAdmin, nil, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := record(t, env, ids[0]).EndReason; got != models.EndRevokedByAdmin {
		t.Errorf("a guessed expiry was not corrected: %q", got)
	}
	if got := record(t, env, ids[1]).EndReason; got != models.EndSignedOut {
		t.Errorf("a recorded sign-out was overwritten: %q", got)
	}
}

// TestSweeperStopsWithItsContext: the workers' Run (which the harness
// runs for every Env, as `web serve` does) returns once its context is
// cancelled, however often it sweeps, and no sweep failed meanwhile.
func TestSweeperStopsWithItsContext(t *testing.T) {
	env := apptest.New(t, apptest.With("SWEEP_INTERVAL", "20ms"))
	time.Sleep(100 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.Stop()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the workers did not stop")
	}
	if strings.Contains(env.Logs.String(), "sweep failed") {
		t.Errorf("the sweeper failed:\n%s", env.Logs.String())
	}
}

// TestSweeperRunsUnderTheHarness: with a short SWEEP_INTERVAL, a record
// whose session Redis no longer knows is closed as expired by the
// sweeper that the harness runs (as `web serve` does), with no call to
// Sweep.
func TestSweeperRunsUnderTheHarness(t *testing.T) {
	env := apptest.New(t, apptest.With("SWEEP_INTERVAL", "50ms"))
	_, ids := orphans(t, env, 1, 2*time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for record(t, env, ids[0]).Active() {
		if time.Now().After(deadline) {
			t.Fatal("the record of a session gone from Redis is still active: the sweeper did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := record(t, env, ids[0]).EndReason; got != models.EndIdleTimeout {
		t.Errorf("swept record ended %q, want %q", got, models.EndIdleTimeout)
	}
}

// TestEndMarksLeftInRedisAreRecordedUnderTheHarness: an instance that
// died after its revoke script left end marks in Redis and never recorded
// them. The workers the harness runs record them by themselves (the end
// recorder's retry), with no call to WaitEnds, RecordEnds or Sweep.
func TestEndMarksLeftInRedisAreRecordedUnderTheHarness(t *testing.T) {
	env := apptest.New(t, apptest.With("SWEEP_INTERVAL", "50ms"))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	id := devicesID(t, c)
	user, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	// What the revoke script and the ending set hold after the user
	// revoked the session from another device, written behind the
	// manager's back.
	ctx, rdb, hash := context.Background(), env.App.Redis, env.App.Sessions.UserKey(user.ID)
	mark := fmt.Sprintf("%d|%s|%d", env.Clock.Now().UnixMilli(), models.EndRevokedByUser, user.ID)
	if err := rdb.HDel(ctx, hash, "s:"+id).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, hash, "e:"+id, mark).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, env.App.Sessions.EndingKey(), user.ID).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for record(t, env, id).Active() {
		if time.Now().After(deadline) {
			t.Fatal("an end marked in Redis was never recorded by the workers")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec := record(t, env, id)
	if rec.EndReason != models.EndRevokedByUser || rec.EndedBy == nil || *rec.EndedBy != user.ID {
		t.Errorf("record: ended %q by %v, want %q by the user", rec.EndReason, rec.EndedBy, models.EndRevokedByUser)
	}
	if exists, _ := rdb.HExists(ctx, hash, "e:"+id).Result(); exists {
		t.Error("the recorded mark is still in Redis")
	}
}

// TestListingBeforeAnEndIsRecordedShowsIt replays a race the soak found: a
// sign-out removes the session from Redis, then, before its record is
// written, the Devices page of another device lists the sessions and finds
// this one gone from Redis. It used to close the record as expired (and
// the late record corrected it); the end mark now tells the listing how
// the session ended, and the record says the same.
func TestListingBeforeAnEndIsRecordedShowsIt(t *testing.T) {
	env := apptest.New(t)
	a := env.Client(t)
	a.SignUp("Ada", "ada@example.com", "analytical engine")
	b := env.Client(t)
	b.SignIn("ada@example.com", "analytical engine")
	bID := devicesID(t, b)
	user, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	// The session is a few minutes old (a brand-new one is never judged),
	// and its last-seen write is done before the hook goes in.
	env.Clock.Advance(3 * time.Minute)
	b.Get("/account")
	if err := env.App.Sessions.WaitLastSeen(context.Background()); err != nil {
		t.Fatal(err)
	}
	var listed atomic.Bool
	hook := func(tx *gorm.DB) {
		// The first UPDATE of sessions is the sign-out's record (the end
		// recorder's); the listing's own UPDATE would come through here
		// too, and pass. Stores
		// update through GORM's Update chain or, with raw SQL, its Raw one.
		isUpdate := tx.Statement.Table == "sessions" ||
			strings.HasPrefix(strings.TrimSpace(tx.Statement.SQL.String()), "UPDATE sessions")
		if !isUpdate || !listed.CompareAndSwap(false, true) {
			return
		}
		l, err := env.App.Sessions.List(context.Background(), user.ID, 10)
		if err != nil {
			t.Error(err)
		}
		for _, r := range l.Ended {
			if r.PublicID == bID && r.EndReason == models.EndSignedOut && r.EndedBy != nil && *r.EndedBy == user.ID {
				return
			}
		}
		t.Errorf("the listing does not show the signing-out session as signed out: %+v", l)
	}
	cb := env.HookableDB(t).Callback()
	if err := cb.Update().Before("gorm:update").Register("test:list-in-between", hook); err != nil {
		t.Fatal(err)
	}
	if err := cb.Raw().Before("gorm:raw").Register("test:list-in-between", hook); err != nil {
		t.Fatal(err)
	}
	res := b.Post("/signout", nil)
	if err := env.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	cb = env.HookableDB(t).Callback()
	cb.Update().Remove("test:list-in-between")
	cb.Raw().Remove("test:list-in-between")
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", res.StatusCode)
	}
	if !listed.Load() {
		t.Fatal("the listing never ran between the Redis kill and the record write")
	}
	if got := record(t, env, bID); got.EndReason != models.EndSignedOut || got.EndedBy == nil || *got.EndedBy != user.ID {
		t.Errorf("record of the signed-out session: %q by %v, want signed_out by the user", got.EndReason, got.EndedBy)
	}
}

// TestListingDuringASignInLeavesItsRecordAlone lists a user's sessions at
// the moment another device signs in, between its record's INSERT and its
// entry in Redis: the listing must not close the new session's record.
func TestListingDuringASignInLeavesItsRecordAlone(t *testing.T) {
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	user, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	var listed atomic.Bool
	err = env.HookableDB(t).Callback().Create().After("gorm:create").Register("test:list-mid-sign-in", func(tx *gorm.DB) {
		if tx.Statement.Table != "sessions" || !listed.CompareAndSwap(false, true) {
			return
		}
		if _, err := env.App.Sessions.List(context.Background(), user.ID, 10); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c := env.Client(t)
	c.SignIn("ada@example.com", "analytical engine")
	env.HookableDB(t).Callback().Create().Remove("test:list-mid-sign-in")
	if !listed.Load() {
		t.Fatal("the listing did not run mid-sign-in")
	}
	id := devicesID(t, c)
	if r := record(t, env, id); r.EndedAt != nil {
		t.Fatalf("the new session works but its record ended: %q", r.EndReason)
	}
}

// TestListingWhileAnEndIsRecorded lets the end recorder write a revoke's
// record and clear its mark at the moment the listing reads Postgres, just
// before or just after the query: whichever it is, a session revoked
// before the listing started is never listed as active (a session under a
// minute old, missing from Redis, used to be kept as "still signing in").
func TestListingWhileAnEndIsRecorded(t *testing.T) {
	for _, when := range []string{"before", "after"} {
		t.Run(when+" the Postgres read", func(t *testing.T) {
			t.Parallel()
			env := apptest.New(t)
			ctx := context.Background()
			user, clients := signInMany(t, env, 2)
			phoneID := devicesID(t, clients[1])
			_, release := holdEndRecords(t, env)
			if err := env.App.Sessions.Revoke(ctx, user.ID, phoneID, models.EndRevokedByUser, &user.ID); err != nil {
				t.Fatal(err)
			}

			// At the listing's first query of sessions (its read of the
			// active records), let the held recorder finish: record
			// written, mark cleared.
			var fired atomic.Bool
			hook := func(tx *gorm.DB) {
				if tx.Statement.Table != "sessions" || !fired.CompareAndSwap(false, true) {
					return
				}
				release()
				if err := env.App.Sessions.WaitEnds(ctx); err != nil {
					t.Error(err)
				}
			}
			cb := env.HookableDB(t).Callback().Query()
			var err error
			if when == "before" {
				err = cb.Before("gorm:query").Register("test:record-in-between", hook)
			} else {
				err = cb.After("gorm:query").Register("test:record-in-between", hook)
			}
			if err != nil {
				t.Fatal(err)
			}
			l, err := env.App.Sessions.List(ctx, user.ID, 10)
			env.HookableDB(t).Callback().Query().Remove("test:record-in-between")
			if err != nil {
				t.Fatal(err)
			}
			if !fired.Load() {
				t.Fatal("the recorder never ran during the listing")
			}
			for _, r := range l.Active {
				if r.PublicID == phoneID {
					t.Fatalf("the revoked session is listed as active: %+v", r)
				}
			}
			if len(l.Ended) != 1 || l.Ended[0].PublicID != phoneID || l.Ended[0].EndReason != models.EndRevokedByUser {
				t.Errorf("ended: %+v, want the phone, revoked by the user", l.Ended)
			}
		})
	}
}

// TestSweepPrunesWhatEndedSessionsLeft: the sweep deletes the retired
// refresh tokens of ended app sessions (a live one's stay, for reuse
// detection) and device codes an hour past their expiry, which hold an
// app's address and user agent, even when no new code is asked for.
func TestSweepPrunesWhatEndedSessionsLeft(t *testing.T) {
	env := apptest.New(t)
	u := env.User(t, "Ada", "ada@example.com", "analytical engine")
	ctx := context.Background()
	var err error
	client := session.AppClient{Name: "cli", UserAgent: "cli/1", IP: "192.0.2.1"}
	var live, ended session.AppTokens
	for _, tok := range []*session.AppTokens{&live, &ended} {
		if *tok, err = env.App.Sessions.StartApp(ctx, u, client); err != nil {
			t.Fatal(err)
		}
		if *tok, err = env.App.Sessions.Refresh(ctx, tok.RefreshToken, client); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.App.Sessions.Revoke(ctx, u.ID, ended.SessionID, models.EndRevokedByUser, &u.ID); err != nil {
		t.Fatal(err)
	}
	devices := models.NewDeviceStore(env.App.DB)
	old, _, err := devices.Create(ctx, models.NewDeviceAuthorization{ClientName: "CLI", IP: "192.0.2.1", UserAgent: "cli/1"},
		time.Now().Add(-3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	res, err := env.App.Sessions.Sweep(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pruned != 2 {
		t.Errorf("sweep pruned %d rows, want 2 (the ended session's retired token and the old code)", res.Pruned)
	}
	var retired []string
	env.App.DB.Raw(`SELECT s.public_id FROM retired_refresh_tokens t JOIN sessions s ON s.id = t.session_id`).Scan(&retired)
	if len(retired) != 1 || retired[0] != live.SessionID {
		t.Errorf("retired tokens left for sessions %v, want only the live %s", retired, live.SessionID)
	}
	var codes int64
	env.App.DB.Model(&models.DeviceAuthorization{}).Where("id = ?", old.ID).Count(&codes)
	if codes != 0 {
		t.Error("the device code three hours old is still there")
	}
}

// TestNoSweepRunsBehindTheTestsBack: the harness returns an Env only after
// the start-up sweep, and the next comes a SWEEP_INTERVAL later; a record
// a test makes for a session Redis never had stays as the test left it.
// (The first sweep's kick once raced the harness's wait for it, and a
// sweep closed a test's records under it.)
func TestNoSweepRunsBehindTheTestsBack(t *testing.T) {
	for range 8 {
		env := apptest.New(t)
		_, ids := orphans(t, env, 1, time.Hour)
		time.Sleep(30 * time.Millisecond)
		if got := record(t, env, ids[0]); !got.Active() {
			t.Fatalf("a sweep ran after the harness returned: the record ended %q", got.EndReason)
		}
		env.Stop()
	}
}
