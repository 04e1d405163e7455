// Package app wires Gatehouse together from its configuration: Postgres,
// Redis, the stores, the session manager and the HTTP handlers. The web
// command and the integration tests build the application the same way.
package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/internal/auditqueue"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/factor"
	"github.com/gatehouse/gatehouse/internal/handlers"
	"github.com/gatehouse/gatehouse/internal/logging"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/redisconn"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/session/redisstore"
	"github.com/gatehouse/gatehouse/internal/session/workers"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// App is a running Gatehouse, minus the listener.
type App struct {
	Handler  *echo.Echo
	DB       *gorm.DB
	SQL      *sql.DB
	Redis    redis.UniversalClient
	Users    *models.UserStore
	Audit    *models.AuditStore
	Auditing *auditqueue.Queue // writes Audit's events in the background (Run)
	Sessions *session.Manager
	Hasher   *password.Hasher
	// Mail sends the outbox (Run).
	Mail *mail.Sender
	// mailSQL is the mail worker's own small pool: background polling
	// never takes a connection a request needs, and a hung Postgres holds
	// at most two of them.
	mailSQL *sql.DB
	// Metrics are this app's Prometheus metrics, in a registry of its own;
	// the web command serves them on METRICS_ADDR.
	Metrics *metrics.Metrics
}

// Options adjust what New builds; the zero value is production.
type Options struct {
	Now    func() time.Time // the clock; time.Now when nil
	Hasher *password.Hasher // shared by tests, which build many apps
	// SMTPTimeout bounds each step of an SMTP conversation (15 s when 0);
	// tests of a hung mail server shorten it.
	SMTPTimeout time.Duration
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
	rdb, err := redisconn.New(cfg.Redis, cfg.RedisMaxConnections, m.RedisError)
	if err != nil {
		return nil, errors.Join(err, sqlDB.Close())
	}
	a := &App{DB: db, SQL: sqlDB, Redis: rdb, Metrics: m}
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
	a.Auditing = auditqueue.New(rdb, cfg.RedisPrefix, a.Audit, log, cfg.DBTimeout)
	a.Audit.UseQueue(a.Auditing)
	err = retryUntil(ctx, log, "redis", deadline, func(ctx context.Context) error {
		if err := redisstore.CheckRedis(ctx, rdb, cfg.RedisPrefix); err != nil {
			return fmt.Errorf("redis at %s is unreachable: %w", cfg.Redis.Addr(), err)
		}
		return redisstore.LoadScripts(ctx, rdb)
	})
	if err != nil {
		return fail(err)
	}
	tagKey, err := models.Secret(ctx, db, session.TagSecret, 32)
	if err != nil {
		return fail(fmt.Errorf("postgres: %w", err))
	}
	a.Sessions = session.New(session.Options{
		Redis: rdb, TagKey: tagKey, Cluster: cfg.Redis.Mode() == "cluster", Records: models.NewSessionStore(db), Prefix: cfg.RedisPrefix,
		IdleTimeout: cfg.IdleTimeout, Lifetime: cfg.Lifetime, MaxSessions: cfg.MaxSessions, SecureCookies: cfg.SecureCookies(),
		Logger: log, Now: opt.Now, Metrics: m, SweepInterval: cfg.SweepInterval, DeviceAuths: models.NewDeviceStore(db),
		AccessTokenTTL: cfg.AccessTokenTTL, RefreshGrace: cfg.RefreshGrace, AppIdleTimeout: cfg.AppIdleTimeout,
		AppLifetime: cfg.AppLifetime,
	})
	if err := a.Sessions.DetectReplicas(ctx, cfg.Redis.RevokeReplicas); err != nil {
		return fail(err)
	}
	if warning, err := a.Sessions.EvictionWarning(ctx); err != nil {
		log.Warn("start-up: cannot read Redis's maxmemory-policy", "err", err)
	} else if warning != "" {
		log.Warn("start-up: redis " + warning)
	}
	mailDB, mailSQL, err := database.Open(ctx, cfg.DatabaseURL, database.Limits{Timeout: cfg.DBTimeout, MaxConns: 2})
	if err != nil {
		return fail(err)
	}
	a.mailSQL = mailSQL
	a.Mail, err = newSender(cfg, mailDB, log, opt)
	if err != nil {
		return fail(err)
	}
	secretKey := cfg.SecretKey
	if secretKey == nil {
		// Only in development (config.Load requires SECRET_KEY elsewhere),
		// and only when the caller kept no key file (the web command does).
		log.Warn("start-up: SECRET_KEY is not set; second factors set up now stop working at the next start")
		secretKey = []byte(rand.Text() + rand.Text())
	}
	keys, err := factor.NewKeys(secretKey)
	if err != nil {
		return fail(err)
	}
	relyingParty, err := handlers.NewRelyingParty(cfg.BaseURL)
	if err != nil {
		return fail(fmt.Errorf("passkeys: BASE_URL: %w", err))
	}
	a.Hasher = opt.Hasher
	if a.Hasher == nil {
		a.Hasher = password.NewHasher()
	}
	a.Handler = handlers.New(handlers.Deps{
		Users: a.Users, Audit: a.Audit, Sessions: a.Sessions, Hasher: a.Hasher, Postgres: sqlDB, Logger: log,
		SecureCookies: cfg.SecureCookies(), TrustedProxies: cfg.TrustedProxies, Now: opt.Now,
		ReauthWindow: cfg.ReauthWindow,
		Throttle:     throttle.New(rdb, cfg.RedisPrefix+"t:", opt.Now), // nil Now: time.Now
		Keys:         keys, Factors: models.NewFactorStore(db),
		Passkeys: models.NewPasskeyStore(db), WebAuthn: relyingParty, DeviceAuths: models.NewDeviceStore(db), Require2FAForAdmins: cfg.Require2FAForAdmins,

		SignUpRatePerIP: cfg.SignUpRatePerIP, PasswordConcurrencyPerIP: cfg.PasswordConcurrencyPerIP,
		Store: models.NewDB(db), BaseURL: cfg.BaseURL, Mailer: a.Mail, DevMailbox: cfg.DevMailbox(),
		Metrics: m, CORSOrigins: cfg.CORSOrigins,
	})
	a.watch(cfg.RedisMaxConnections)
	return a, nil
}

// watch hands the metrics what they read at each scrape: the pools, the
// background workers and the count of active sessions.
func (a *App) watch(maxRedisConns int) {
	m := a.Metrics
	m.WatchRedisPool(redisPoolStats(a.Redis, maxRedisConns))
	m.WatchPostgresPool(a.SQL)
	w := a.Sessions.Workers()
	m.WatchWorkerLag("end_recorder", func() time.Duration { lag, _ := w.Lag(); return lag })
	m.WatchWorkerLag("last_seen_writer", func() time.Duration { _, lag := w.Lag(); return lag })
	m.WatchWorkerLag("audit_writer", a.Auditing.Lag)
	m.WatchWorkerLag("outbox", func() time.Duration {
		// At each scrape: one indexed query, bounded so a hung Postgres
		// cannot hang the metrics.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		age, _ := mail.OldestUnsentAge(ctx, a.DB)
		return age
	})
	for _, c := range []struct {
		result string
		read   func(workers.LastSeenStats) int64
	}{
		{"written", func(s workers.LastSeenStats) int64 { return s.Written }},
		{"failed", func(s workers.LastSeenStats) int64 { return s.Failed }},
		{"refused", func(s workers.LastSeenStats) int64 { return s.Refused }},
	} {
		m.WatchCounter("gatehouse_last_seen_writes_total",
			"Last-seen writes by result: written, failed (dropped, retried on a later request), refused (the writer was full).",
			prometheus.Labels{"result": c.result}, func() int64 { return c.read(w.LastSeenStats()) })
	}
	m.WatchActiveSessions(a.Sessions.Records().CountActive)
	m.WatchCounter("gatehouse_redis_revoke_replication_misses_total",
		"Revokes that no replica acknowledged in time (WAIT): they stand on the primary, but a failover before replication could undo them.",
		nil, a.Sessions.RevokeReplicationMisses)
}

// redisPoolStats is the one place the metrics read the Redis pool: a new
// Redis client changes this function only.
func redisPoolStats(rdb redis.UniversalClient, maxConns int) func() metrics.PoolStats {
	return func() metrics.PoolStats {
		s := rdb.PoolStats()
		// On a Cluster the counts are summed over the nodes, and each node
		// has a pool of its own of up to maxConns.
		return metrics.PoolStats{InUse: int(s.TotalConns) - int(s.IdleConns), Idle: int(s.IdleConns), Max: maxConns,
			Waits: int64(s.WaitCount), WaitTime: time.Duration(s.WaitDurationNs)}
	}
}

// Run runs the app's background work until ctx is cancelled: the session
// workers (last-seen writer, end recorder, sweeper), the audit writer and
// the mail sender. Once ctx is cancelled each makes its final flush, within
// five seconds (what is left waits in Redis or the outbox), and Run
// returns when all have. The web command and the test harness run it
// beside the HTTP server; cancel it after the server has stopped, and
// before Close.
func (a *App) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Go(func() { errs[0] = a.Sessions.Workers().Run(ctx) })
	wg.Go(func() { errs[1] = a.Auditing.Run(ctx) })
	wg.Go(func() { a.Mail.Run(ctx) })
	wg.Wait()
	return errors.Join(errs...)
}

// Close releases the connections. Close it after Run has returned (or
// when it never ran).
func (a *App) Close() error {
	var mailErr error
	if a.mailSQL != nil {
		mailErr = a.mailSQL.Close()
	}
	return errors.Join(a.Redis.Close(), a.SQL.Close(), mailErr)
}

// newSender builds the mail sender: to SMTP_URL, or to the development
// mailbox (mail kept, shown at /dev/mail), or, with neither, nowhere:
// mail then waits in the outbox for a configured instance. The SMTP server
// is not contacted here: the app starts and serves while it is down.
func newSender(cfg config.Config, db *gorm.DB, log *slog.Logger, opt Options) (*mail.Sender, error) {
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	accounts := &handlers.AccountMail{DB: models.NewDB(db), BaseURL: cfg.BaseURL, Now: now, Logger: log}
	so := mail.SenderOptions{GiveUpAfter: cfg.MailGiveUpAfter, Logger: log, Before: accounts.ProcessResetRequests}
	switch {
	case cfg.SMTPURL != "":
		t, err := mail.ParseSMTPURL(cfg.SMTPURL, cfg.MailFrom)
		if err != nil {
			return nil, fmt.Errorf("SMTP_URL: %w", err)
		}
		if opt.SMTPTimeout > 0 {
			t.Timeout = opt.SMTPTimeout
		}
		so.Transport = t
	case cfg.DevMailbox():
		so.Transport, so.KeepBodies = devMailbox{}, true
		log.Info("mail: SMTP_URL is unset; mail is kept in the development mailbox at " + cfg.BaseURL.String() + "/dev/mail")
	default:
		log.Warn("mail: SMTP_URL is unset and BASE_URL is not a loopback address: mail waits in the outbox until an instance with SMTP_URL sends it")
	}
	if opt.SMTPTimeout > 0 {
		so.SendTimeout = 2 * opt.SMTPTimeout
	}
	return mail.NewSender(db, so), nil
}

// devMailbox "sends" by keeping the message in the outbox, where /dev/mail
// shows it.
type devMailbox struct{}

func (devMailbox) Send(_ context.Context, msgs []mail.Message) ([]error, error) {
	return make([]error, len(msgs)), nil
}
