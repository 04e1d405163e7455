package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// The three ways connecting fails each have their own message, because
// each has its own fix: a database that does not exist (create it, or let
// Gatehouse create it), credentials Postgres refuses (fix DATABASE_URL),
// and a server that does not answer (start it, or wait). Only the last
// may fix itself, so only it is worth retrying at start-up.
var (
	// ErrNoDatabase: the server answered, and the database in the URL does
	// not exist.
	ErrNoDatabase = errors.New("database does not exist")
	// ErrRefused: the server answered, and refused the user or password.
	ErrRefused = errors.New("user or password refused")
)

// Permanent reports whether err is a connection failure that waiting will
// not fix (ErrNoDatabase, ErrRefused): start-up says so at once instead of
// retrying.
func Permanent(err error) bool {
	return errors.Is(err, ErrNoDatabase) || errors.Is(err, ErrRefused)
}

// explainConnectError turns a failed first connection into one of the
// three messages.
func explainConnectError(url string, cfg *pgx.ConnConfig, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "3D000": // invalid_catalog_name
			return fmt.Errorf("postgres at %s: %w: database %q (Gatehouse creates it at start when user %q may; "+
				"otherwise create it, e.g. createdb -h %s -p %d -U <a user who may> %s): %w",
				redact(url), ErrNoDatabase, cfg.Database, cfg.User, cfg.Host, cfg.Port, cfg.Database, err)
		case strings.HasPrefix(pgErr.Code, "28"): // invalid_authorization_specification, invalid_password
			return fmt.Errorf("postgres at %s: %w: user %q could not sign in (check the user and password in DATABASE_URL, "+
				"and pg_hba.conf): %w", redact(url), ErrRefused, cfg.User, err)
		}
	}
	return fmt.Errorf("postgres at %s is unreachable: %w", redact(url), err)
}

// OpenOrCreate is Open that, when the database does not exist, creates it
// (connecting to the server's postgres maintenance database, as the same
// user) and logs that it did. When the user may not create it, the error
// is ErrNoDatabase with the reason.
func OpenOrCreate(ctx context.Context, url string, lim Limits, log *slog.Logger) (*gorm.DB, *sql.DB, error) {
	db, sqlDB, err := Open(ctx, url, lim)
	if !errors.Is(err, ErrNoDatabase) {
		return db, sqlDB, err
	}
	if cerr := createDatabase(ctx, url); cerr != nil {
		return nil, nil, fmt.Errorf("%w\ncreating it failed: %w", err, cerr)
	}
	cfg, _ := pgx.ParseConfig(url) // Open parsed it already
	log.Info("created the database, which did not exist", "database", cfg.Database, "server", fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	return Open(ctx, url, lim)
}

// createDatabase creates url's database, connected to the same server's
// postgres database. Creating copies template1, which can take seconds on
// a busy server: it gets 30 s of its own, whatever the attempt had left.
func createDatabase(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to the postgres database to create %q: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: another instance was first
			return nil
		}
		if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
			return fmt.Errorf("user %q may not create databases (grant CREATEDB, or create %q as a user who may): %w", cfg.User, name, err)
		}
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}
