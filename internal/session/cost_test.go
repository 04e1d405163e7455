package session_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
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

// monitor records the Redis commands that touch keys under prefix, as
// MONITOR sees them, while fn runs. Commands run inside Lua scripts are
// left out: each script call is one round trip.
func monitor(t *testing.T, env *apptest.Env, fn func()) []string {
	t.Helper()
	var cmds []string
	for _, line := range monitorLines(t, env, fn) {
		// A line reads: 1700000000.123456 [0 127.0.0.1:5555] "GET" "key"
		if i := strings.Index(line, "] \""); i >= 0 {
			rest := line[i+3:]
			cmds = append(cmds, strings.ToUpper(rest[:strings.IndexByte(rest, '"')]))
		}
	}
	return cmds
}

// monitorLines is monitor's MONITOR lines themselves, with their keys and
// arguments.
func monitorLines(t *testing.T, env *apptest.Env, fn func()) []string {
	t.Helper()
	apptest.SingleRedisOnly(t, "MONITOR watches one server; the counts are the same on the others")
	// A plain connection: MONITOR's replies are lines of RESP simple strings.
	conn, err := net.Dial("tcp", "127.0.0.1:6379")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	// Audit events of what came before are written now, not during fn.
	if err := env.App.Auditing.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.ReadString('\n'); err != nil || ok != "+OK\r\n" {
		t.Fatalf("MONITOR: %q, %v", ok, err)
	}
	prefix := env.Config.RedisPrefix
	sentinel := prefix + "end-of-monitor"
	fn()
	if err := env.App.Redis.Echo(context.Background(), sentinel).Err(); err != nil {
		t.Fatal(err)
	}

	var lines []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		conn.SetReadDeadline(deadline)
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, sentinel) {
			return lines
		}
		if !strings.Contains(line, prefix) || strings.Contains(line, "[0 lua]") {
			continue
		}
		lines = append(lines, line)
	}
	t.Fatal("monitor: sentinel never seen")
	return nil
}

// countQueries counts the SQL statements GORM runs on env's database while
// fn runs. It runs inside monitor, which has let the audit writer finish
// (HookableDB would flush again, and be counted).
func countQueries(t *testing.T, env *apptest.Env, fn func()) int {
	t.Helper()
	var n atomic.Int64
	count := func(*gorm.DB) { n.Add(1) }
	cb := env.App.DB.Callback()
	name := fmt.Sprintf("test:count:%p", t)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(cb.Query().After("gorm:query").Register(name, count))
	must(cb.Create().After("gorm:create").Register(name, count))
	must(cb.Update().After("gorm:update").Register(name, count))
	must(cb.Delete().After("gorm:delete").Register(name, count))
	must(cb.Row().After("gorm:row").Register(name, count))
	must(cb.Raw().After("gorm:raw").Register(name, count))
	defer func() {
		cb.Query().Remove(name)
		cb.Create().Remove(name)
		cb.Update().Remove(name)
		cb.Delete().Remove(name)
		cb.Row().Remove(name)
		cb.Raw().Remove(name)
	}()
	fn()
	return int(n.Load())
}

// signInMany signs n browsers in to one new account and returns the user.
func signInMany(t *testing.T, env *apptest.Env, n int) (*models.User, []*apptest.Client) {
	t.Helper()
	clients := make([]*apptest.Client, n)
	clients[0] = env.Client(t)
	clients[0].SignUp("Ada", "ada@example.com", "analytical engine")
	var wg sync.WaitGroup
	// Two at a time: the app admits four password checks per address at
	// once (PASSWORD_CONCURRENCY_PER_IP), and one that has answered may not
	// have left its slot yet.
	slots := make(chan struct{}, 2)
	for i := 1; i < n; i++ {
		clients[i] = env.Client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			clients[i].SignIn("ada@example.com", "analytical engine")
		}()
	}
	wg.Wait()
	u, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	return u, clients
}

func TestRevokeAllIsOneRoundTripPerStore(t *testing.T) {
	env := apptest.New(t, apptest.With("MAX_SESSIONS_PER_USER", "100"))
	user, clients := signInMany(t, env, 40)
	ctx := context.Background()
	keep := "keepthisoneaaaaaaaaaaaaaaa"
	var ended int
	var queries int
	cmds := monitor(t, env, func() {
		queries = countQueries(t, env, func() {
			var err error
			ended, err = env.App.Sessions.RevokeAll(ctx, user.ID, []string{keep}, models.EndRevokedByAdmin, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The record is written in the background (workers' end recorder).
			if err := env.App.Sessions.WaitEnds(ctx); err != nil {
				t.Fatal(err)
			}
		})
	})
	if ended != 40 {
		t.Fatalf("revoked %d sessions, want 40", ended)
	}
	// The revoke is one script per user hash (the tagged one, and on a
	// single Redis the one from before tags), then the user is named in
	// the ending set; then the end recorder reads the users waiting, this
	// user's marks, writes, and clears them. Nothing is per session.
	sadd := slices.Index(cmds, "SADD")
	if sadd < 1 || sadd > 2 || slices.ContainsFunc(cmds[:sadd], func(c string) bool { return c != "EVALSHA" }) {
		t.Errorf("Redis commands for revoke-all of 40 sessions: %v, want one EVALSHA per user hash, then SADD", cmds)
	}
	if len(cmds) > 20 {
		t.Errorf("revoke-all of 40 sessions and its record took %d Redis commands: %v", len(cmds), cmds)
	}
	// One statement ends the user's app sessions at once (their refresh
	// state outlives Redis: app.go's endApps), one records the rest in the
	// background: two, whatever the number of sessions.
	if queries != 2 {
		t.Errorf("Postgres statements to record revoke-all of 40 sessions: %d, want 2", queries)
	}
	for i, c := range clients {
		if c.Get("/account").StatusCode != http.StatusSeeOther {
			t.Fatalf("client %d still signed in", i)
		}
	}
}

func TestListingCostsOnlyTheUsersSessions(t *testing.T) {
	env := apptest.New(t)
	// Someone else's sessions must not be read.
	other := env.Client(t)
	other.SignUp("Grace", "grace@example.com", "cobol forever")
	user, _ := signInMany(t, env, 10)
	var listing int
	cmds := monitor(t, env, func() {
		l, err := env.App.Sessions.List(context.Background(), user.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		listing = len(l.Active)
	})
	if listing != 10 {
		t.Fatalf("listed %d sessions, want 10", listing)
	}
	for _, c := range cmds {
		if c == "KEYS" || c == "SCAN" {
			t.Fatalf("listing ran %s over all keys", c)
		}
	}
	// Per user hash: HGETALL, then one pipeline of EXISTS for its
	// sessions' data (three round trips on a single Redis, with the empty
	// hash from before tags; two on a Cluster).
	want := append([]string{"HGETALL"}, slices.Repeat([]string{"EXISTS"}, 10)...)
	if !slices.Equal(cmds[:min(len(cmds), 11)], want) || len(cmds) > 12 || len(cmds) == 12 && cmds[11] != "HGETALL" {
		t.Errorf("Redis commands for listing: %v, want %v (and HGETALL of the old hash)", cmds, want)
	}
}

// TestHotPathCost counts what an authenticated page that needs no Postgres
// data costs: one Redis command (the store's lookup script, which reads
// the data, checks the kill switch and slides the idle expiry; nothing is
// written back when nothing changed) and no SQL, request after request.
func TestHotPathCost(t *testing.T) {
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	var queries int
	cmds := monitor(t, env, func() {
		queries = countQueries(t, env, func() {
			for range 3 {
				if res := c.Get("/account"); res.StatusCode != http.StatusOK {
					t.Fatalf("GET /account: %d", res.StatusCode)
				}
			}
		})
	})
	if want := []string{"EVALSHA", "EVALSHA", "EVALSHA"}; !slices.Equal(cmds, want) {
		t.Errorf("Redis commands: %v, want %v", cmds, want)
	}
	if queries != 0 {
		t.Errorf("%d SQL statements on the hot path, want 0", queries)
	}
}

// TestBadCookiesCostAtMostOneLookup: a malformed session cookie is refused
// without touching Redis; an unknown well-formed one costs one lookup (a
// bare token, the shape from before tags, a GET of its owner key).
func TestBadCookiesCostAtMostOneLookup(t *testing.T) {
	env := apptest.New(t)
	for _, tc := range []struct {
		cookie string
		want   []string
	}{
		{"not-a-token", nil},
		{strings.Repeat("A", 500), nil},
		{strings.Repeat("*", 43), nil},
		{strings.Repeat("A", 16) + "-" + strings.Repeat("A", 43), nil},
		{strings.Repeat("A", 16) + "." + strings.Repeat("A", 43), []string{"EVALSHA"}},
		{strings.Repeat("A", 43), []string{"GET"}},
	} {
		c := env.Client(t)
		c.SetCookie("gatehouse_session", tc.cookie)
		cmds := monitor(t, env, func() {
			if res := c.Get("/account"); res.StatusCode != http.StatusSeeOther {
				t.Errorf("cookie %.10q: status %d", tc.cookie, res.StatusCode)
			}
		})
		if !slices.Equal(cmds, tc.want) {
			t.Errorf("cookie %.10q: Redis commands %v, want %v", tc.cookie, cmds, tc.want)
		}
	}
}

// TestSignInStoresTheSessionOnce: a sign-in writes the new session's data
// once, in Start. The response's commit, which only writes the cookie, ran
// the commit script again; a Redis failing at that moment (a failover under
// load, TestSentinelFailoverUnderLoad) left a 303 to /account with no
// cookie for a session that worked.
func TestSignInStoresTheSessionOnce(t *testing.T) {
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	c := env.Client(t)
	c.CSRFToken()
	var res *apptest.Response
	lines := monitorLines(t, env, func() { res = c.SignIn("ada@example.com", "analytical engine") })
	if res.StatusCode != http.StatusSeeOther || c.Cookie(env.App.Sessions.CookieName()) == "" {
		t.Fatalf("sign-in: %d, cookie %q", res.StatusCode, c.Cookie(env.App.Sessions.CookieName()))
	}
	commits := 0
	for _, line := range lines {
		if strings.Contains(line, session.CommitScriptHash) {
			commits++
		}
	}
	if commits != 1 {
		t.Errorf("the commit script ran %d times in a sign-in, want 1:\n%s", commits, strings.Join(lines, ""))
	}
}

// TestAccessTokenSentAsCookie: an app's access token never signs a browser
// in. With its gh_at_ prefix it is not shaped like a cookie and costs no
// lookup; stripped of it, it is (<tag>.<token>), and the lookup finds the
// user hash naming app:<token>, not the token: anonymous, and, as for any
// token its field no longer names, its data is deleted, so the token is
// ended. Only its holder can do that, who could revoke it anyway.
func TestAccessTokenSentAsCookie(t *testing.T) {
	env := apptest.New(t)
	u := env.User(t, "Ada", "ada@example.com", "analytical engine")
	ctx := context.Background()
	tok, err := env.App.Sessions.StartApp(ctx, u, session.AppClient{Name: "cli", UserAgent: "cli/1", IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	bearerWorks := func() bool {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, env.BaseURL+"/api/v1/session", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	if !bearerWorks() {
		t.Fatal("the access token does not work as a bearer token")
	}
	for _, tc := range []struct {
		cookie string
		want   []string
	}{
		{tok.AccessToken, nil},
		{strings.TrimPrefix(tok.AccessToken, session.AccessTokenPrefix), []string{"EVALSHA"}},
	} {
		c := env.Client(t)
		c.SetCookie("gatehouse_session", tc.cookie)
		cmds := monitor(t, env, func() {
			if res := c.Get("/account"); res.StatusCode != http.StatusSeeOther {
				t.Errorf("access token as cookie %.12q: status %d, want the sign-in redirect", tc.cookie, res.StatusCode)
			}
		})
		if !slices.Equal(cmds, tc.want) {
			t.Errorf("access token as cookie %.12q: Redis commands %v, want %v", tc.cookie, cmds, tc.want)
		}
	}
	if bearerWorks() {
		t.Error("the access token still works after its bare form was looked up as a cookie")
	}
}
