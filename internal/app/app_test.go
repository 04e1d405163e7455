package app_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/config"
)

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func load(t *testing.T, vars map[string]string) config.Config {
	t.Helper()
	if vars["REDIS_PREFIX"] == "" {
		vars["REDIS_PREFIX"] = apptest.RedisPrefix(t)
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startLate runs app.New while the test brings a service up once the log
// says app.New is waiting for it (waiting, e.g. "waiting for redis"; then
// delay more), or after delay when waiting is "".
func startLate(t *testing.T, cfg config.Config, waiting string, delay time.Duration, bringUp func()) (*app.App, string, time.Duration, error) {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	type result struct {
		a   *app.App
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		a, err := app.New(context.Background(), cfg, log, app.Options{Hasher: apptest.Hasher()})
		done <- result{a, err}
	}()
	// A fixed delay alone raced a loaded machine: app.New could reach
	// the service after it was already up, and never wait for it.
	for deadline := time.Now().Add(30 * time.Second); waiting != "" && !strings.Contains(logs.String(), waiting); {
		if time.Now().After(deadline) {
			t.Fatalf("app.New never said %q:\n%s", waiting, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(delay)
	if bringUp != nil {
		bringUp()
	}
	r := <-done
	if r.a != nil {
		t.Cleanup(func() { r.a.Close() })
	}
	return r.a, logs.String(), time.Since(start), r.err
}

func TestStartupWaitsForRedis(t *testing.T) {
	rd := apptest.StartRedis(t)
	rd.Stop()
	cfg := load(t, map[string]string{
		"DATABASE_URL": apptest.NewDatabase(t), "MIGRATE_ON_START": "false",
		"REDIS_URL": rd.URL(), "STARTUP_TIMEOUT": "30s",
	})
	_, logs, took, err := startLate(t, cfg, "waiting for redis", 500*time.Millisecond, rd.Start)
	if err != nil {
		t.Fatalf("start-up did not wait for Redis: %v\n%s", err, logs)
	}
	if !strings.Contains(logs, "waiting for redis") || !strings.Contains(logs, "redis is reachable") {
		t.Errorf("the log does not say start-up waited for Redis:\n%s", logs)
	}
	t.Logf("started after %v", took)
}

func TestStartupWaitsForPostgres(t *testing.T) {
	pg := apptest.StartPostgres(t)
	pg.Stop()
	cfg := load(t, map[string]string{
		"DATABASE_URL": pg.URL(), "MIGRATE_ON_START": "true", "STARTUP_TIMEOUT": "30s",
	})
	a, logs, took, err := startLate(t, cfg, "waiting for postgres", 500*time.Millisecond, pg.Start)
	if err != nil {
		t.Fatalf("start-up did not wait for Postgres: %v\n%s", err, logs)
	}
	if !strings.Contains(logs, "waiting for postgres") {
		t.Errorf("the log does not say start-up waited for Postgres:\n%s", logs)
	}
	// It migrated once Postgres was up.
	var n int
	if err := a.SQL.QueryRow(`SELECT count(*) FROM sessions`).Scan(&n); err != nil {
		t.Errorf("the schema is not there: %v", err)
	}
	t.Logf("started after %v", took)
}

func TestStartupGivesUpAfterStartupTimeout(t *testing.T) {
	cfg := load(t, map[string]string{
		"DATABASE_URL": apptest.NewDatabase(t), "MIGRATE_ON_START": "false",
		"REDIS_URL": "redis://127.0.0.1:1/0", "STARTUP_TIMEOUT": "2s",
	})
	_, logs, took, err := startLate(t, cfg, "", 0, nil)
	if err == nil || !strings.Contains(err.Error(), "redis at redis://127.0.0.1:1/0 is unreachable") {
		t.Fatalf("start-up with Redis down: %v", err)
	}
	if took < 2*time.Second || took > 6*time.Second {
		t.Errorf("gave up after %v, want about STARTUP_TIMEOUT=2s", took)
	}
	if n := strings.Count(logs, "waiting for redis"); n < 2 {
		t.Errorf("%d retries logged, want a few (back-off):\n%s", n, logs)
	}
}
