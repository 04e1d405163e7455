package handlers_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// Fault tests: Redis or Postgres down, or hung, while the app runs. See
// docs/reliability.md.

const signInUnavailable = "Sign-in is temporarily unavailable. Please try again in a moment."

// onPrivatePostgres starts an app on a Postgres cluster of the test's own,
// which the test may stop, start, pause and resume.
func onPrivatePostgres(t *testing.T, opts ...apptest.Option) (*apptest.PrivatePostgres, *apptest.Env) {
	t.Helper()
	pg := apptest.StartPostgres(t)
	opts = append([]apptest.Option{apptest.With("DATABASE_URL", pg.URL()), apptest.With("MIGRATE_ON_START", "true")}, opts...)
	return pg, apptest.New(t, opts...)
}

func check503(t *testing.T, what string, res *apptest.Response, wantMessage string) {
	t.Helper()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("%s: %d, want 503", what, res.StatusCode)
		return
	}
	if res.Header.Get("Retry-After") == "" {
		t.Errorf("%s: 503 without Retry-After", what)
	}
	if msg := strings.TrimSpace(errorMessage(t, res)); msg != wantMessage {
		t.Errorf("%s: the 503 page says %q, want %q", what, msg, wantMessage)
	}
	for _, internal := range []string{"dial", "connection refused", "redis", "postgres", "EOF"} {
		if strings.Contains(strings.ToLower(errorMessage(t, res)), strings.ToLower(internal)) {
			t.Errorf("%s: the 503 page shows internal error text %q", what, internal)
		}
	}
}

func TestRedisDownSaysSignInIsUnavailable(t *testing.T) {
	rd := apptest.StartRedis(t)
	env := apptest.New(t, apptest.With("REDIS_URL", rd.URL()))
	signedIn := env.Client(t)
	signedIn.SignUp("Ada", "ada@example.com", "analytical engine")
	anon := env.Client(t)
	anon.CSRFToken()
	rd.Stop()

	for _, p := range []string{"/account", "/account/sessions", "/account/activity"} {
		check503(t, "GET "+p, signedIn.Get(p), signInUnavailable)
	}
	check503(t, "POST /signout", signedIn.Post("/signout", nil), signInUnavailable)
	res := anon.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}})
	check503(t, "POST /signin", res, signInUnavailable)
	if setsSession(res) {
		t.Error("a sign-in with Redis down set a session cookie")
	}
	// The sign-in form itself needs no Redis.
	if res := env.Client(t).Get("/signin"); res.StatusCode != http.StatusOK {
		t.Errorf("GET /signin with Redis down: %d", res.StatusCode)
	}
	if res := env.Client(t).Get("/readyz"); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis down: %d", res.StatusCode)
	}
	if res := env.Client(t).Get("/healthz"); res.StatusCode != http.StatusOK {
		t.Errorf("/healthz with Redis down: %d", res.StatusCode)
	}

	// Redis returns (empty: this one keeps nothing); so does the app.
	rd.Start()
	if res := env.Client(t).Get("/readyz"); res.StatusCode != http.StatusOK {
		t.Errorf("/readyz after Redis returned: %d", res.StatusCode)
	}
	anon.SignIn("ada@example.com", "analytical engine")
	if res := anon.Get("/account"); res.StatusCode != http.StatusOK {
		t.Errorf("signed in after Redis returned: %d", res.StatusCode)
	}
}

func TestPostgresDownDuringSignIn(t *testing.T) {
	pg, env := onPrivatePostgres(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	c := env.Client(t)
	c.CSRFToken()
	pg.Stop()

	res := c.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}})
	check503(t, "POST /signin with Postgres down", res, "Gatehouse is temporarily unavailable. Please try again in a moment.")
	if setsSession(res) {
		t.Error("a sign-in with Postgres down set a session cookie")
	}
	pg.Start()
	// Nothing of the failed sign-in works, and the app is back without a
	// restart.
	if res := c.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("/account after the failed sign-in: %d, want 303 to sign in", res.StatusCode)
	}
	c.SignIn("ada@example.com", "analytical engine")
	if ids, _ := sessionIDs(t, c); len(ids) != 2 {
		t.Errorf("%d active sessions, want 2 (sign-up and the sign-in after the outage)", len(ids))
	}
}

// TestSignInFailsWhenItsRecordCannotBeWritten makes the session record's
// INSERT fail, as a Postgres dying mid-sign-in would, while everything else
// works: the sign-in must fail and leave no session behind, in either store.
func TestSignInFailsWhenItsRecordCannotBeWritten(t *testing.T) {
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	user := mustUser(t, env, "ada@example.com")
	before, err := env.App.Sessions.Records().Active(context.Background(), user.ID)
	if err != nil {
		t.Fatal(err)
	}
	err = env.HookableDB(t).Callback().Create().Before("gorm:create").Register("test:fail-session-insert", func(tx *gorm.DB) {
		if tx.Statement.Table == "sessions" {
			tx.AddError(fmt.Errorf("injected: %w", driver.ErrBadConn))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c := env.Client(t)
	res := c.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}})
	env.HookableDB(t).Callback().Create().Remove("test:fail-session-insert")

	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("sign-in whose record failed: %d, want 503", res.StatusCode)
	}
	if setsSession(res) {
		t.Error("the failed sign-in set a session cookie")
	}
	if c.Get("/account").StatusCode != http.StatusSeeOther {
		t.Error("the failed sign-in left the browser signed in")
	}
	after, err := env.App.Sessions.Records().Active(context.Background(), user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("%d active records, want %d", len(after), len(before))
	}
	// Redis holds exactly the sign-up's session: its data, its owner key
	// and its field.
	ctx := context.Background()
	for pattern, want := range map[string]int{"s:*": 1, "o:*": 1} {
		keys := apptest.Keys(t, env.App.Redis, env.Config.RedisPrefix+pattern)
		if len(keys) != want {
			t.Errorf("%d keys %s, want %d", len(keys), pattern, want)
		}
	}
	fields, err := env.App.Redis.HKeys(ctx, env.App.Sessions.UserKey(user.ID)).Result()
	if err != nil {
		t.Fatal(err)
	}
	sessions := 0
	for _, f := range fields {
		if strings.HasPrefix(f, "s:") {
			sessions++
		}
	}
	if sessions != 1 {
		t.Errorf("the user hash names %d sessions, want 1", sessions)
	}
}

func TestPostgresDownKeepsSessionOnlyPagesWorking(t *testing.T) {
	pg, env := onPrivatePostgres(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	sessionIDs(t, c)
	pg.Stop()
	// A last-seen write is due: it must not fail (or slow) the request.
	env.Clock.Advance(2 * time.Minute)

	if res := c.Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("/account with Postgres down: %d", res.StatusCode)
	} else if !strings.Contains(res.Body, "ada@example.com") {
		t.Error("/account with Postgres down does not show the profile")
	}
	check503(t, "/account/sessions with Postgres down", c.Get("/account/sessions"),
		"Gatehouse is temporarily unavailable. Please try again in a moment.")
	res := env.Client(t).Get("/readyz")
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(res.Body, "postgres: unreachable") ||
		!strings.Contains(res.Body, "redis: ok") {
		t.Errorf("/readyz with Postgres down: %d %q", res.StatusCode, res.Body)
	}
	if res := env.Client(t).Get("/healthz"); res.StatusCode != http.StatusOK {
		t.Errorf("/healthz with Postgres down: %d", res.StatusCode)
	}

	pg.Start()
	if res := c.Get("/account/sessions"); res.StatusCode != http.StatusOK {
		t.Fatalf("/account/sessions after Postgres returned: %d", res.StatusCode)
	}
	if res := env.Client(t).Get("/readyz"); res.StatusCode != http.StatusOK {
		t.Errorf("/readyz after Postgres returned: %d", res.StatusCode)
	}
}

// TestHungPostgresDoesNotStallSessionOnlyPages freezes Postgres (every
// process stopped, connections open and silent) while a last-seen write is
// due: the page that needs only the session answers at once, and last seen
// is written once Postgres is back.
func TestHungPostgresDoesNotStallSessionOnlyPages(t *testing.T) {
	pg, env := onPrivatePostgres(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	id := sessionID(t, c)
	pg.Pause()
	env.Clock.Advance(2 * time.Minute)
	for i := range 3 {
		start := time.Now()
		res := c.Get("/account")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d with Postgres hung: %d", i, res.StatusCode)
		}
		if took := time.Since(start); took > 800*time.Millisecond { // the old synchronous write took 1s or more
			t.Errorf("request %d with Postgres hung took %v", i, took)
		}
	}
	pg.Resume()

	env.Clock.Advance(time.Minute + time.Second)
	c.Get("/account")
	if err := env.App.Sessions.WaitLastSeen(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, err := env.App.Sessions.Records().ByPublicID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if want := env.Clock.Now().Add(-10 * time.Second); rec.LastSeenAt.Before(want) {
		t.Errorf("last seen %v after Postgres returned, want after %v", rec.LastSeenAt, want)
	}
}

// TestEndsDuringPostgresOutageAreRecordedLater revokes a session and signs
// out while Postgres is down: both work at once (the sessions are dead),
// wait in Redis for their record, and their records say why once Postgres
// returns.
func TestEndsDuringPostgresOutageAreRecordedLater(t *testing.T) {
	pg, env := onPrivatePostgres(t)
	a := env.Client(t)
	a.SignUp("Ada", "ada@example.com", "analytical engine")
	b := env.Client(t)
	b.SignIn("ada@example.com", "analytical engine")
	c := env.Client(t)
	c.SignIn("ada@example.com", "analytical engine")
	bID, cID := sessionID(t, b), sessionID(t, c)
	user := mustUser(t, env, "ada@example.com")
	// The sessions are a few minutes old: the Devices page only judges a
	// record the user hash does not name once it is a minute old.
	env.Clock.Advance(3 * time.Minute)
	pg.Stop()

	if res := a.Post("/account/sessions/"+bID+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke with Postgres down: %d", res.StatusCode)
	}
	if res := b.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the revoked session still works: %d", res.StatusCode)
	}
	if res := c.Post("/signout", nil); res.StatusCode != http.StatusSeeOther || !clearsSession(res) {
		t.Fatalf("sign-out with Postgres down: %d", res.StatusCode)
	}
	if res := c.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the signed-out session still works: %d", res.StatusCode)
	}
	if n, err := env.App.Sessions.PendingEnds(); err != nil || n != 2 {
		t.Fatalf("%d ends waiting for their record (%v), want 2", n, err)
	}

	pg.Start()
	// The Devices page, opened before the sweep, shows both as ended, from
	// their end marks in Redis.
	if ids, _ := sessionIDs(t, a); len(ids) != 1 {
		t.Fatalf("%d active sessions after the outage, want 1", len(ids))
	}
	// The sweep records them, unless the workers' 10-second retry of the
	// end recorder (running under the harness) got there first: the
	// records below are the proof either way.
	res, err := env.App.Sessions.Sweep(context.Background(), 0)
	if err != nil || res.Recorded > 2 {
		t.Fatalf("sweep: %+v, %v; want at most the 2 ends recorded", res, err)
	}
	for id, want := range map[string]models.EndReason{bID: models.EndRevokedByUser, cID: models.EndSignedOut} {
		rec, err := env.App.Sessions.Records().ByPublicID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.EndReason != want || rec.EndedBy == nil || *rec.EndedBy != user.ID {
			t.Errorf("record of %s: ended %v by %v, want %s by the user", id, rec.EndReason, rec.EndedBy, want)
		}
	}
	if n, _ := env.App.Sessions.PendingEnds(); n != 0 {
		t.Errorf("%d ends still waiting after the sweep", n)
	}
}

// TestRequestLogHasTheStatusTheClientGot checks the request log against
// what clients were answered: a 403 refused by the CSRF check and the 503s
// of a Redis outage (both were logged as 200). During the outage every
// request fails the same way, and its ERROR line is written once a second,
// not once a request; a WARN line counts the lines left out.
func TestRequestLogHasTheStatusTheClientGot(t *testing.T) {
	rd := apptest.StartRedis(t)
	env := apptest.New(t, apptest.With("REDIS_URL", rd.URL()))

	if res := env.Client(t).PostRaw("/signin", "email=ada%40example.com"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a sign-in without a CSRF token: %d, want 403", res.StatusCode)
	}
	if n := strings.Count(env.Logs.String(), "msg=request method=POST path=/signin status=403 "); n != 1 {
		t.Errorf("%d request lines with the 403, want 1:\n%s", n, env.Logs.String())
	}

	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	rd.Stop()
	const requests = 100
	start := time.Now()
	for range requests {
		if res := c.Get("/account"); res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/account with Redis down: %d, want 503", res.StatusCode)
		}
	}
	elapsed := time.Since(start)
	logs := env.Logs.String()
	if n := strings.Count(logs, "msg=request method=GET path=/account status=503 "); n != requests {
		t.Errorf("%d request lines with the 503, want %d", n, requests)
	}
	// One line per message per second: the burst took elapsed, so at most
	// one line for each second it touched.
	errorLines := strings.Count(logs, `msg="request failed"`)
	if max := int(elapsed/time.Second) + 2; errorLines < 1 || errorLines > max {
		t.Errorf("%d ERROR lines for %d failed requests in %v, want 1 to %d", errorLines, requests, elapsed, max)
	}
	// The rest are counted once their second is over.
	suppressed := regexp.MustCompile(`msg="repeated error lines suppressed" msg_suppressed="request failed" count=(\d+)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		total := 0
		for _, m := range suppressed.FindAllStringSubmatch(env.Logs.String(), -1) {
			n, _ := strconv.Atoi(m[1])
			total += n
		}
		if total+strings.Count(env.Logs.String(), `msg="request failed"`) == requests {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d failed requests logged or counted as suppressed, want %d:\n%s", total+errorLines, requests, env.Logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHungPostgresAnswers503WithinTheDeadline freezes Postgres while a
// burst of requests needs it. Each answers 503 once DATABASE_TIMEOUT has
// passed (before, they hung as long as Postgres did), the pool stays within
// DATABASE_MAX_CONNECTIONS, and nothing piles up: once the burst has been
// answered, the goroutines are back to what they were.
func TestHungPostgresAnswers503WithinTheDeadline(t *testing.T) {
	pg, env := onPrivatePostgres(t, apptest.With("DATABASE_TIMEOUT", "1s"), apptest.With("DATABASE_MAX_CONNECTIONS", "4"))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	// A client of its own: no keep-alive connections (their server
	// goroutines would count), and a timeout so the test fails, not hangs.
	hc := *c.HTTP
	hc.Transport = &http.Transport{DisableKeepAlives: true}
	hc.Timeout = 30 * time.Second
	get := func() (int, error) {
		res, err := hc.Get(c.Base + "/account/sessions")
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	if status, err := get(); status != http.StatusOK {
		t.Fatalf("/account/sessions before the pause: %d %v", status, err)
	}
	before := runtime.NumGoroutine()

	pg.Pause()
	const burst = 40
	errs := make(chan error, burst)
	for range burst {
		go func() {
			start := time.Now()
			status, err := get()
			switch {
			case err != nil:
				errs <- err
			case status != http.StatusServiceUnavailable:
				errs <- fmt.Errorf("status %d, want 503", status)
			case time.Since(start) > 10*time.Second: // 1s deadline; generous for a loaded machine
				errs <- fmt.Errorf("answered after %v", time.Since(start))
			default:
				errs <- nil
			}
		}()
	}
	for range burst {
		if err := <-errs; err != nil {
			t.Errorf("/account/sessions with Postgres hung: %v", err)
		}
	}
	if open := env.App.SQL.Stats().OpenConnections; open > 4 {
		t.Errorf("%d connections to Postgres open, want at most DATABASE_MAX_CONNECTIONS=4", open)
	}
	// The server's goroutines for the burst end once it is answered, and
	// the hung queries' connections are given up.
	deadline := time.Now().Add(10 * time.Second)
	for n := runtime.NumGoroutine(); n > before+5; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the burst, %d before it", n, before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// database/sql goes on opening connections for requests that have
	// given up; each attempt ends at the connect timeout.
	for env.App.SQL.Stats().InUse > 0 {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("connections still in use after every request was answered: %+v", env.App.SQL.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}

	pg.Resume()
	if status, err := get(); status != http.StatusOK {
		t.Errorf("/account/sessions after Postgres resumed: %d %v", status, err)
	}
}

// auditEvent returns the user's event of kind about session id (any
// session if id is empty), reading through Audit.List, which writes the
// queued events first; nil if there is none.
func auditEvent(t *testing.T, env *apptest.Env, userID int64, kind models.AuditKind, id string) *models.AuditEventView {
	t.Helper()
	events, err := env.App.Audit.List(context.Background(), models.AuditFilter{UserID: userID, Kind: kind, Limit: 100})
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	for _, e := range events {
		if id == "" || e.SessionID == id {
			return &e
		}
	}
	return nil
}

// waitWritten waits until env's audit queue writes without error: after
// an outage the first tries may meet connections the outage broke, which
// are then replaced.
func waitWritten(t *testing.T, env *apptest.Env) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := env.App.Auditing.Flush(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit events still not written: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// discardBrokenRedisConns takes every idle connection of env's Redis pool
// at once and pings it, so that those a Redis restart broke are dropped
// rather than met by the next request.
func discardBrokenRedisConns(env *apptest.Env) {
	var conns []*redis.Conn
	ctx := context.Background()
	for range env.App.Redis.PoolStats().IdleConns + 1 {
		c := env.App.Redis.(*redis.Client).Conn()
		c.Ping(ctx)
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
}

// checkEnded checks that the session's record and its audit event say it
// ended for reason, by the user.
func checkEnded(t *testing.T, env *apptest.Env, user *models.User, id string, reason models.EndReason, kind models.AuditKind) {
	t.Helper()
	rec, err := env.App.Sessions.Records().ByPublicID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.EndReason != reason || rec.EndedBy == nil || *rec.EndedBy != user.ID {
		t.Errorf("record of %s: ended %q by %v, want %q by the user", id, rec.EndReason, rec.EndedBy, reason)
	}
	e := auditEvent(t, env, user.ID, kind, id)
	if e == nil {
		t.Errorf("no %s event for %s in the audit log", kind, id)
	} else if e.ActorID == nil || *e.ActorID != user.ID {
		t.Errorf("%s event for %s: actor %v, want the user", kind, id, e.ActorID)
	}
}

// TestSessionEndsDoNotWaitForAHungPostgres freezes Postgres with a long
// DATABASE_TIMEOUT: revoking and signing out end the session in Redis and
// queue their audit event, so they answer at once (they used to wait for
// the audit INSERT); once Postgres is back, records and events are there.
func TestSessionEndsDoNotWaitForAHungPostgres(t *testing.T) {
	pg, env := onPrivatePostgres(t, apptest.With("DATABASE_TIMEOUT", "60s"))
	a := env.Client(t)
	a.SignUp("Ada", "ada@example.com", "analytical engine")
	b, c := env.Client(t), env.Client(t)
	b.SignIn("ada@example.com", "analytical engine")
	c.SignIn("ada@example.com", "analytical engine")
	bID, cID := sessionID(t, b), sessionID(t, c)
	user := mustUser(t, env, "ada@example.com")
	a.CSRFToken()
	c.CSRFToken()
	// Far less than DATABASE_TIMEOUT: a request waiting on Postgres fails.
	a.HTTP.Timeout, c.HTTP.Timeout = 10*time.Second, 10*time.Second

	pg.Pause()
	if res := a.Post("/account/sessions/"+bID+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke with Postgres hung: %d", res.StatusCode)
	}
	if res := c.Post("/signout", nil); res.StatusCode != http.StatusSeeOther || !clearsSession(res) {
		t.Fatalf("sign-out with Postgres hung: %d", res.StatusCode)
	}
	if res := b.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the revoked session still works: %d", res.StatusCode)
	}
	pg.Resume()

	if err := env.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkEnded(t, env, user, bID, models.EndRevokedByUser, models.AuditSessionRevoked)
	checkEnded(t, env, user, cID, models.EndSignedOut, models.AuditSignOut)
}

// TestEndsAndAuditEventsSurviveARedisRestartWhilePostgresIsDown revokes
// and signs out while Postgres is down, then restarts Redis (which keeps
// nothing on disk here), then brings Postgres back: every end is recorded
// with its reason and actor, and every audit event is written, from what
// the instance kept in memory. (They used to be lost, and the ends
// recorded as idle_timeout with no actor.)
func TestEndsAndAuditEventsSurviveARedisRestartWhilePostgresIsDown(t *testing.T) {
	rd := apptest.StartRedis(t)
	pg, env := onPrivatePostgres(t, apptest.With("REDIS_URL", rd.URL()))
	a := env.Client(t)
	a.SignUp("Ada", "ada@example.com", "analytical engine")
	b, c := env.Client(t), env.Client(t)
	b.SignIn("ada@example.com", "analytical engine")
	c.SignIn("ada@example.com", "analytical engine")
	bID, cID := sessionID(t, b), sessionID(t, c)
	user := mustUser(t, env, "ada@example.com")
	env.Clock.Advance(3 * time.Minute) // old enough for the Devices page to judge

	pg.Stop()
	if res := a.Post("/account/sessions/"+bID+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke with Postgres down: %d", res.StatusCode)
	}
	if res := c.Post("/signout", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out with Postgres down: %d", res.StatusCode)
	}
	// The end recorder has read the marks (and failed to record them).
	if err := env.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	rd.Stop()
	rd.Start()
	pg.Start()
	discardBrokenRedisConns(env)
	waitWritten(t, env)

	// Every session is gone with Redis; the Devices page, once signed in
	// again, closes records whose data is gone (as expired, unless their
	// end is recorded first).
	a.SignIn("ada@example.com", "analytical engine")
	sessionIDs(t, a)
	if err := env.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkEnded(t, env, user, bID, models.EndRevokedByUser, models.AuditSessionRevoked)
	checkEnded(t, env, user, cID, models.EndSignedOut, models.AuditSignOut)
}

// TestInstancesDrainTheAuditQueueOnce records events on two instances at
// once, each draining the same queue as it goes, and stops one while
// Postgres is down with events still queued: every event is written
// exactly once, the stopped instance's by the other.
func TestInstancesDrainTheAuditQueueOnce(t *testing.T) {
	pg, one := onPrivatePostgres(t)
	two := apptest.Start(t, one.Config)
	one.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	user := mustUser(t, one, "ada@example.com")
	count := func() (rows, ids int) {
		t.Helper()
		err := one.App.DB.Raw(`SELECT count(*), count(DISTINCT event_id) FROM audit_events WHERE detail LIKE 'test %'`).
			Row().Scan(&rows, &ids)
		if err != nil {
			t.Fatal(err)
		}
		return rows, ids
	}

	const perInstance = 300
	errs := make(chan error, 2*perInstance)
	for _, env := range []*apptest.Env{one, two} {
		for i := range perInstance {
			go func() {
				errs <- env.App.Audit.Record(context.Background(), &models.AuditEvent{
					Kind: models.AuditSignIn, UserID: &user.ID, Detail: fmt.Sprintf("test %p %d", env, i)})
			}()
		}
	}
	for range 2 * perInstance {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, env := range []*apptest.Env{one, two} {
		if err := env.App.Auditing.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if rows, ids := count(); rows != 2*perInstance || ids != 2*perInstance {
		t.Errorf("%d rows, %d distinct events; want %d of each", rows, ids, 2*perInstance)
	}

	// An instance that stops with Postgres down leaves its events queued.
	pg.Stop()
	if err := two.App.Audit.Record(context.Background(), &models.AuditEvent{
		Kind: models.AuditSignOut, UserID: &user.ID, Detail: "test left by the stopped instance"}); err != nil {
		t.Fatal(err)
	}
	two.Stop()
	pg.Start()
	waitWritten(t, one)
	if rows, ids := count(); rows != 2*perInstance+1 || ids != rows {
		t.Errorf("after the stopped instance: %d rows, %d distinct events; want %d of each", rows, ids, 2*perInstance+1)
	}
}
