// Package app wires Gatehouse together from its configuration: Postgres,
// Redis, the stores, the session manager and the HTTP handlers. The web
// command and the integration tests build the application the same way.
package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/handlers"
	"github.com/gatehouse/gatehouse/internal/logging"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// App is a running Gatehouse, minus the listener.
type App struct {
	Handler  *echo.Echo
	DB       *gorm.DB
	SQL      *sql.DB
	Redis    *redis.Pool
	Users    *models.UserStore
	Audit    *models.AuditStore
	Auditing *session.AuditQueue // writes Audit's events in the background
	Sessions *session.Manager
	Hasher   *password.Hasher
	// Metrics are this app's Prometheus metrics, in a registry of its own;
	// the web command serves them on METRICS_ADDR.
	Metrics *metrics.Metrics
}

// Options adjust what New builds; the zero value is production.
type Options struct {
	Now    func() time.Time // the clock; time.Now when nil
	Hasher *password.Hasher // shared by tests, which build many apps
}

// New connects to Postgres and Redis (checking both, and saying which one
// failed), applies migrations if configured to, and builds the handlers.
//
// A service that is down at start-up is retried with back-off for up to
// cfg.StartupTimeout, logging what start-up waits for; then New fails with
// the last attempt's error, which names the service.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opt Options) (*App, error) {
	// An outage makes every request fail the same way: one ERROR line per
	// message a second is enough.
	log = slog.New(logging.LimitErrors(log.Handler(), time.Second))
	deadline := time.Now().Add(cfg.StartupTimeout)
	var db *gorm.DB
	var sqlDB *sql.DB
	err := retryUntil(ctx, log, "postgres", deadline, func(ctx context.Context) (err error) {
		db, sqlDB, err = database.OpenOrCreate(ctx, cfg.DatabaseURL,
			database.Limits{Timeout: cfg.DBTimeout, MaxConns: cfg.DBMaxConns}, log)
		if database.Permanent(err) {
			// A missing database or refused credentials will not
			// fix themselves: say so now, not after STARTUP_TIMEOUT.
			return stopRetrying{err}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	if err := database.CountErrors(db, m.PostgresError); err != nil {
		return nil, errors.Join(err, sqlDB.Close())
	}
	pool := newRedisPool(cfg.RedisURL, cfg.RedisMaxConnections, m.RedisError)
	a := &App{DB: db, SQL: sqlDB, Redis: pool, Metrics: m}
	fail := func(err error) (*App, error) {
		return nil, errors.Join(err, a.Close())
	}
	if cfg.MigrateOnStart {
		if err := database.Migrate(ctx, sqlDB, log); err != nil {
			return fail(err)
		}
	}
	a.Users = models.NewUserStore(db)
	a.Audit = models.NewAuditStore(db)
	a.Auditing = session.NewAuditQueue(pool, cfg.RedisPrefix, a.Audit, log, cfg.DBTimeout)
	a.Audit.UseQueue(a.Auditing)
	a.Sessions = session.New(session.Options{
		Pool: pool, Records: models.NewSessionStore(db), Prefix: cfg.RedisPrefix,
		IdleTimeout: cfg.IdleTimeout, Lifetime: cfg.Lifetime, MaxSessions: cfg.MaxSessions, SecureCookies: cfg.SecureCookies(),
		Logger: log, Now: opt.Now, Metrics: m,
	})
	err = retryUntil(ctx, log, "redis", deadline, func(ctx context.Context) error {
		if err := a.Sessions.Check(ctx); err != nil {
			return fmt.Errorf("redis at %s is unreachable: %w", redactRedis(cfg.RedisURL), err)
		}
		return a.Sessions.LoadScripts(ctx)
	})
	if err != nil {
		return fail(err)
	}
	if warning, err := a.Sessions.EvictionWarning(ctx); err != nil {
		log.Warn("start-up: cannot read Redis's maxmemory-policy", "err", err)
	} else if warning != "" {
		log.Warn("start-up: redis " + warning)
	}
	a.Hasher = opt.Hasher
	if a.Hasher == nil {
		a.Hasher = password.NewHasher()
	}
	a.Handler = handlers.New(handlers.Deps{
		Users: a.Users, Audit: a.Audit, Sessions: a.Sessions, Hasher: a.Hasher, DB: sqlDB, Logger: log,
		SecureCookies: cfg.SecureCookies(), TrustedProxies: cfg.TrustedProxies, Now: opt.Now,
		ReauthWindow: cfg.ReauthWindow,
		Throttle:     throttle.New(pool, cfg.RedisPrefix+"t:", opt.Now), // nil Now: time.Now

		SignUpRatePerIP: cfg.SignUpRatePerIP, PasswordConcurrencyPerIP: cfg.PasswordConcurrencyPerIP,
		Metrics: m,
	})
	a.watch()
	return a, nil
}

// watch hands the metrics what they read at each scrape: the pools, the
// background workers and the count of active sessions.
func (a *App) watch() {
	m := a.Metrics
	m.WatchRedisPool(redisPoolStats(a.Redis))
	m.WatchPostgresPool(a.SQL)
	m.WatchWorkerLag("end_recorder", func() time.Duration { lag, _ := a.Sessions.WorkerLag(); return lag })
	m.WatchWorkerLag("last_seen_writer", func() time.Duration { _, lag := a.Sessions.WorkerLag(); return lag })
	m.WatchWorkerLag("audit_writer", a.Auditing.Lag)
	// An e-mail outbox sender adds its own here:
	// m.WatchWorkerLag("outbox", <the sender's lag>).
	for _, c := range []struct {
		result string
		read   func(session.LastSeenStats) int64
	}{
		{"written", func(s session.LastSeenStats) int64 { return s.Written }},
		{"failed", func(s session.LastSeenStats) int64 { return s.Failed }},
		{"refused", func(s session.LastSeenStats) int64 { return s.Refused }},
	} {
		m.WatchCounter("gatehouse_last_seen_writes_total",
			"Last-seen writes by result: written, failed (dropped, retried on a later request), refused (the writer was full).",
			prometheus.Labels{"result": c.result}, func() int64 { return c.read(a.Sessions.LastSeenStats()) })
	}
	m.WatchActiveSessions(a.Sessions.Records().CountActive)
}

// redisPoolStats is the one place the metrics read the Redis pool: a new
// Redis client changes this function only.
func redisPoolStats(pool *redis.Pool) func() metrics.PoolStats {
	return func() metrics.PoolStats {
		s := pool.Stats()
		return metrics.PoolStats{InUse: s.ActiveCount - s.IdleCount, Idle: s.IdleCount, Max: pool.MaxActive,
			Waits: s.WaitCount, WaitTime: s.WaitDuration}
	}
}

// Close stops the background work (audit events and last-seen writes
// still queued and ends not yet recorded get five seconds in all; what is
// left waits in Redis) and releases the connections. Close it after the
// HTTP server has stopped.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if a.Auditing != nil {
		a.Auditing.Close(ctx)
	}
	if a.Sessions != nil {
		a.Sessions.Close(ctx)
	}
	return errors.Join(a.Redis.Close(), a.SQL.Close())
}

// NewRedisPool returns a redigo pool for url of at most maxConns
// connections. Timeouts keep a hung Redis from hanging requests: they fail,
// and the page says the service is down. When all maxConns are in use a
// caller waits for one (GetContext: until its context ends) instead of
// opening another, so a stalled Redis costs a bounded number of them.
func NewRedisPool(url string, maxConns int) *redis.Pool { return newRedisPool(url, maxConns, nil) }

// newRedisPool is NewRedisPool telling countError (the metrics) of every
// failed command and dial.
func newRedisPool(url string, maxConns int, countError func(unavailable bool)) *redis.Pool {
	return &redis.Pool{
		MaxActive: maxConns,
		Wait:      true,
		// Idle connections are kept up to the bound: closing one only to
		// dial another moments later would churn under load.
		MaxIdle:     maxConns,
		IdleTimeout: 4 * time.Minute,
		// Failures to reach Redis are marked session.ErrUnavailable: the
		// user is told sign-in is temporarily unavailable.
		DialContext: session.DialMarkedCounting(func(ctx context.Context) (redis.Conn, error) {
			return redis.DialURLContext(ctx, url,
				redis.DialConnectTimeout(2*time.Second),
				redis.DialReadTimeout(2*time.Second),
				redis.DialWriteTimeout(2*time.Second))
		}, countError),
		TestOnBorrow: func(c redis.Conn, idleSince time.Time) error {
			if time.Since(idleSince) < time.Minute {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}
}

// redactRedis drops any password from a Redis URL so it can be logged.
func redactRedis(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
