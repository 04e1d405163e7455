// Package apptest runs the real Gatehouse against the real Postgres and
// Redis for tests. Each Env gets its own database (a copy of a migrated
// template, so it is fast) and its own Redis key prefix, and removes both
// when the test ends.
package apptest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/redisconn"
	"github.com/gatehouse/gatehouse/migrations"
)

// Where the test services are; override with TEST_DATABASE_URL and
// TEST_REDIS_URL.
func adminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func redisURL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// redisModes are the variables that choose a Redis: setting one of them
// (With) unsets the others.
var redisModes = []string{"REDIS_URL", "REDIS_SENTINEL_ADDRS", "REDIS_CLUSTER_ADDRS"}

var (
	hasherOnce sync.Once
	hasher     *password.Hasher
)

// Hasher is one password hasher shared by all tests in the process. It
// never sheds load: tests running side by side on a slow (race-detector)
// build would otherwise see 503s that production's limits give only to a
// flood. Its hashes take 64 KiB, not 19 MiB (password.NewTestHasher): the
// real cost was some 40% of the suite's CPU under -race. Tests of load
// shedding and of hashing's cost build apps with a hasher of their own
// (password.NewHasher or NewHasherWith).
func Hasher() *password.Hasher {
	hasherOnce.Do(func() { hasher = password.NewTestHasher(password.Limits{Queue: 10_000, MaxWait: time.Hour}) })
	return hasher
}

// Env is one isolated Gatehouse: its app, an HTTP server in front of it,
// and the configuration it runs with.
type Env struct {
	App    *app.App
	Server *httptest.Server
	Config config.Config
	Clock  *Clock
	Logs   *Logs // everything the app logged
	// Mail is the SMTP server the app sends to (nil when the test set
	// SMTP_URL itself, or for an instance started with Start).
	Mail *Sink
	// BaseURL is where browsers reach the server: Server.URL, or
	// http://localhost:PORT for NewOnLocalhost.
	BaseURL string

	stopRun  func() // stops the app's background work and waits for it
	stopOnce sync.Once
}

// Option changes an Env's configuration before it starts.
type Option func(env map[string]string)

// With sets an environment variable of the app's configuration.
func With(name, value string) Option {
	return func(env map[string]string) {
		if slices.Contains(redisModes, name) {
			for _, other := range redisModes {
				delete(env, other)
			}
		}
		env[name] = value
	}
}

// New starts an isolated Gatehouse for t.
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	cfg, sink := newConfig(t, opts)
	env := start(t, cfg, Hasher())
	env.Mail = sink
	return env
}

// NewOnLocalhost starts an isolated Gatehouse whose public URL (BASE_URL)
// is http://localhost:PORT, the address its server listens on: WebAuthn
// accepts localhost as a secure origin, but not 127.0.0.1. Browsers must
// use Env.BaseURL.
func NewOnLocalhost(t testing.TB, opts ...Option) *Env {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://localhost:%d", l.Addr().(*net.TCPAddr).Port)
	opts = append([]Option{With("BASE_URL", base)}, opts...)
	cfg, sink := newConfig(t, opts)
	env := startOn(t, cfg, Hasher(), l)
	env.Mail = sink
	return env
}

// NewWithHasher starts an isolated Gatehouse for t that hashes passwords
// with h, not the shared Hasher: for tests that make the hasher busy.
func NewWithHasher(t testing.TB, h *password.Hasher, opts ...Option) *Env {
	t.Helper()
	cfg, sink := newConfig(t, opts)
	env := start(t, cfg, h)
	env.Mail = sink
	return env
}

// newConfig is the configuration of a new Env: its own database, Redis
// prefix and SMTP sink, then opts.
func newConfig(t testing.TB, opts []Option) (config.Config, *Sink) {
	t.Helper()
	dbURL := NewDatabase(t)
	prefix := RedisPrefix(t)
	vars := map[string]string{
		"DATABASE_URL": dbURL, "REDIS_PREFIX": prefix,
		"MIGRATE_ON_START": "false",
		// Every instance of one test shares the key, as a deployment's do.
		"SECRET_KEY": randomHex(32),
	}
	maps.Copy(vars, redisVars())
	for _, o := range opts {
		o(vars)
	}
	var sink *Sink
	if _, set := vars["SMTP_URL"]; !set {
		sink = StartSink(t, nil)
		vars["SMTP_URL"] = sink.URL()
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg, sink
}

// Start runs another app with cfg, e.g. a second instance sharing an Env's
// database and Redis prefix.
func Start(t testing.TB, cfg config.Config) *Env {
	t.Helper()
	return start(t, cfg, Hasher())
}

func start(t testing.TB, cfg config.Config, hasher *password.Hasher) *Env {
	t.Helper()
	return startOn(t, cfg, hasher, nil)
}

// startOn runs the app on listener l (a new one on 127.0.0.1 when nil).
func startOn(t testing.TB, cfg config.Config, hasher *password.Hasher, l net.Listener) *Env {
	t.Helper()
	logs := &Logs{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clock := &Clock{}
	// A short SMTP timeout: the sink is local, and tests of a hung mail
	// server should not wait long.
	a, err := app.New(context.Background(), cfg, log, app.Options{Now: clock.Now, Hasher: hasher, SMTPTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("start app: %v", err)
	}
	srv := httptest.NewUnstartedServer(a.Handler)
	if l != nil {
		srv.Listener.Close()
		srv.Listener = l
	}
	srv.Start()
	// The app's background work runs as in `web serve` (App.Run): the
	// session workers with their sweeper, the audit writer, the mail
	// sender.
	runCtx, cancelRun := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		if err := a.Run(runCtx); err != nil {
			t.Errorf("app background work: %v", err)
		}
	}()
	// The sweep at start-up has run before the test does anything: it
	// queries Postgres, and a test may add GORM hooks (HookableDB).
	if err := a.Sessions.Workers().WaitSweep(context.Background()); err != nil {
		t.Fatalf("first sweep: %v", err)
	}
	env := &Env{App: a, Server: srv, Config: cfg, Clock: clock, Logs: logs, BaseURL: srv.URL,
		stopRun: func() { cancelRun(); <-runDone }}
	if l != nil {
		env.BaseURL = cfg.BaseURL.String()
	}
	t.Cleanup(func() {
		env.Stop()
		if t.Failed() {
			t.Logf("app log:\n%s", logs.String())
		}
	})
	return env
}

// Stop shuts the instance down as the web command does on SIGTERM: the
// server first, then the app's background work (with its final flush),
// then its connections. Its
// database and Redis keys stay until the test ends, so another instance
// can take over. Stopping twice is harmless.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		e.Server.Close()
		e.stopRun()
		e.App.Close()
	})
}

// Clock is the app's clock: real time, shifted by what the test adds.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
	frozen time.Time // Freeze's moment; zero while the clock runs
}

// Now returns the shifted time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen.Add(c.offset)
	}
	return time.Now().Add(c.offset)
}

// Freeze stops the app's clock: from now on only Advance moves it. A test
// whose requests must all fall within a wait measured by the app (a
// one-second lockout of the sign-in throttle) then holds however slowly a
// loaded machine runs them. Redis TTLs still run.
func (c *Clock) Freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen.IsZero() {
		c.frozen = time.Now()
	}
}

// Advance moves the app's clock by d (back when d is negative), as if the
// instance's clock were that far off. Redis TTLs are not affected.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Logs collects what an app logs. The app writes from its own goroutines
// (background writers, timers) while a test reads, so both take the lock.
type Logs struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// NewDatabase creates an empty, migrated database for t and drops it when
// t ends. It returns the database's URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate() })
	if templateErr != nil {
		t.Fatalf("test database template: %v", templateErr)
	}
	admin, err := sql.Open("pgx", adminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := "gatehouse_test_" + randomHex(8)
	if _, err := admin.Exec(fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, name, templateName)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", adminURL())
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec(fmt.Sprintf(`DROP DATABASE %q WITH (FORCE)`, name)); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return withDatabase(adminURL(), name)
}

// ensureTemplate creates a migrated template database named after the
// migrations' contents, once per machine: test processes running in
// parallel serialise on an advisory lock.
func ensureTemplate() (string, error) {
	sum := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		sum.Write([]byte(path))
		sum.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	name := "gatehouse_template_" + hex.EncodeToString(sum.Sum(nil))[:12]

	ctx := context.Background()
	admin, err := sql.Open("pgx", adminURL())
	if err != nil {
		return "", err
	}
	defer admin.Close()
	conn, err := admin.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("postgres for tests at %s: %w", adminURL(), err)
	}
	defer conn.Close()
	const lockKey = 7_420_815_001
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		return "", err
	}
	defer conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, lockKey)
	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	// Build under a temporary name and rename, so a crash never leaves a
	// half-migrated template behind.
	building := name + "_building"
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, building)); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %q`, building)); err != nil {
		return "", err
	}
	_, db, err := database.Open(ctx, withDatabase(adminURL(), building), database.Limits{})
	if err != nil {
		return "", err
	}
	err = database.Migrate(ctx, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	db.Close()
	if err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`ALTER DATABASE %q RENAME TO %q`, building, name)); err != nil {
		return "", err
	}
	return name, nil
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

// RedisPrefix returns a key prefix of t's own on the test Redis; every key
// under it is deleted when t ends.
func RedisPrefix(t testing.TB) string {
	prefix := "test:" + randomHex(6) + ":"
	t.Cleanup(func() { deleteKeys(t, prefix) })
	return prefix
}

// Redis returns a client of the test Redis (however the suite runs it),
// closed when t ends.
func Redis(t testing.TB) redis.UniversalClient {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return redisVars()[k] })
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := redisconn.New(cfg.Redis, config.DefaultRedisMaxConnections, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// deleteKeys removes every Redis key under prefix, on every primary. SCAN
// is fine here: it is test clean-up, never a request path.
func deleteKeys(t testing.TB, prefix string) {
	cfg, err := config.Load(func(k string) string { return redisVars()[k] })
	if err != nil {
		t.Error(err)
		return
	}
	rdb, err := redisconn.New(cfg.Redis, 4, nil)
	if err != nil {
		t.Error(err)
		return
	}
	defer rdb.Close()
	ctx := context.Background()
	clean := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		return iter.Err()
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, clean)
	} else {
		err = clean(ctx, rdb.(*redis.Client))
	}
	if err != nil {
		t.Errorf("redis clean-up: %v", err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// HookableDB returns the app's database for a test to register or remove
// a GORM callback (a hook), once the audit writer has nothing left to
// write: GORM's callback lists must not change while a query reads them,
// and the audit writer inserts in the background after every request that
// records an event. (The end recorder is not waited for: tests hold it in
// a hook on purpose, and it writes only when a session ends.)
func (e *Env) HookableDB(t testing.TB) *gorm.DB {
	t.Helper()
	if err := e.App.Auditing.Flush(context.Background()); err != nil {
		t.Fatalf("flush audit events: %v", err)
	}
	return e.App.DB
}
