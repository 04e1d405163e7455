// Package database opens Postgres for GORM and applies the embedded
// migrations under an advisory lock, so instances starting together migrate
// exactly once.
package database

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gatehouse/gatehouse/migrations"
)

// Limits bound what one process asks of Postgres.
type Limits struct {
	// Timeout bounds each statement and each transaction run through GORM
	// whose context has no deadline of its own (a request's, say): waiting
	// for a connection, connecting, and the round trips. It is also the
	// connect timeout, unless url sets connect_timeout. When it passes,
	// pgx abandons the connection (database/sql replaces it) and the
	// caller gets an error wrapping context.DeadlineExceeded, which the
	// handlers answer with 503. Zero means no bound, for commands such as
	// seeding that may run long statements.
	Timeout time.Duration
	// MaxConns caps open connections; callers wait for one (within
	// Timeout). Zero means DefaultMaxConns.
	MaxConns int
}

// DefaultMaxConns is the connection cap when Limits gives none.
const DefaultMaxConns = 20

// Open connects to the Postgres at url and checks it answers. The returned
// *sql.DB is the pool GORM uses; close it to release connections. The
// migrations run on the *sql.DB directly, without lim.Timeout.
func Open(ctx context.Context, url string, lim Limits) (*gorm.DB, *sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		// database/sql also connects in the background, for requests
		// waiting for a connection: without a timeout, such an attempt on
		// a hung Postgres would hold its place in the pool until it woke.
		cfg.ConnectTimeout = lim.Timeout
	}
	sqlDB := stdlib.OpenDB(*cfg)
	maxConns := lim.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	sqlDB.SetMaxOpenConns(maxConns)
	sqlDB.SetMaxIdleConns(min(maxConns, 10))
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)

	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		sqlDB.Close()
		return nil, nil, explainConnectError(url, cfg, err)
	}

	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true, // single statements need no transaction of their own
		TranslateError:         true, // unique violations become gorm.ErrDuplicatedKey
		// GORM applies these only to contexts without a deadline.
		DefaultContextTimeout:     lim.Timeout,
		DefaultTransactionTimeout: lim.Timeout,
	})
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("gorm: %w", err)
	}
	return db, sqlDB, nil
}

// Migrate applies every pending migration. A Postgres session-level advisory
// lock makes concurrent callers wait for each other.
func Migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 120))
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(migrations.Go()...))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "took", r.Duration)
	}
	return nil
}

// redact drops the password from a connection URL so it can be logged.
func redact(raw string) string {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
}
