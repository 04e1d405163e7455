package database_test

import (
	"context"
	"database/sql"
	"io"
	"io/fs"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/migrations"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// migrationFiles names every migration, SQL or Go, in version order.
func migrationFiles(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(migrations.FS, "[0-9]*")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	return names
}

// TestMigrationVersionsIncrease: each migration has its own version, in
// file order. Versions may leave gaps: work done in parallel reserves a
// range of numbers per branch, so that branches merge without clashes.
func TestMigrationVersionsIncrease(t *testing.T) {
	re := regexp.MustCompile(`^(\d{5})_[a-z0-9_]+\.(sql|go)$`)
	last := 0
	for _, name := range migrationFiles(t) {
		m := re.FindStringSubmatch(name)
		if m == nil {
			t.Fatalf("%s: want NNNNN_what.sql or NNNNN_what.go", name)
		}
		v, _ := strconv.Atoi(m[1])
		if v <= last {
			t.Fatalf("%s: version %d, want more than %d", name, v, last)
		}
		last = v
	}
}

// unmigratedDatabase returns a test database with every migration rolled
// back (test databases come migrated), and a goose provider on it.
func unmigratedDatabase(t *testing.T) (string, *sql.DB, *goose.Provider) {
	t.Helper()
	url := apptest.NewDatabase(t)
	_, db, err := database.Open(context.Background(), url, database.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(migrations.Go()...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(context.Background(), 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	return url, db, p
}

// TestMigrationsGoUpAndDown applies every migration to an empty database,
// rolls them all back, and applies them again.
func TestMigrationsGoUpAndDown(t *testing.T) {
	ctx := context.Background()
	_, db, p := unmigratedDatabase(t)
	var tables int
	if err := db.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('users', 'sessions')`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("%d tables left after migrating down", tables)
	}
	if err := database.Migrate(ctx, db, quiet); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if current, target, err := p.GetVersions(ctx); err != nil || current != target {
		t.Fatalf("after up: version %d of %d (%v)", current, target, err)
	}
}

// TestConcurrentMigrateAppliesOnce starts several migrators on one empty
// database at once, as several instances starting together would.
func TestConcurrentMigrateAppliesOnce(t *testing.T) {
	ctx := context.Background()
	url, db, _ := unmigratedDatabase(t)

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, conn, err := database.Open(ctx, url, database.Limits{})
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close()
			errs[i] = database.Migrate(ctx, conn, quiet)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	var applied int
	if err := db.QueryRow(`SELECT count(*) FROM goose_db_version WHERE version_id > 0 AND is_applied`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if names := migrationFiles(t); applied != len(names) {
		t.Fatalf("%d migrations recorded as applied, want %d (each exactly once)", applied, len(names))
	}
}

// TestMigrationMakesEmailsCanonical runs migration 4 over addresses stored
// before it: they become canonical (models.NormalizeEmail) and unique as
// such; an address without a canonical form, or two accounts sharing one,
// stop the migration with the accounts named and nothing changed.
func TestMigrationMakesEmailsCanonical(t *testing.T) {
	ctx := context.Background()
	migrateWith := func(t *testing.T, emails ...string) (*sql.DB, []int64, error) {
		t.Helper()
		_, db, p := unmigratedDatabase(t)
		if _, err := p.UpTo(ctx, 3); err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, len(emails))
		for i, e := range emails {
			err := db.QueryRow(`INSERT INTO users (email, name, password_hash) VALUES ($1, 'x', 'x') RETURNING id`, e).Scan(&ids[i])
			if err != nil {
				t.Fatalf("insert %q: %v", e, err)
			}
		}
		return db, ids, database.Migrate(ctx, db, quiet)
	}
	emailOf := func(t *testing.T, db *sql.DB, id int64) string {
		t.Helper()
		var e string
		if err := db.QueryRow(`SELECT email FROM users WHERE id = $1`, id).Scan(&e); err != nil {
			t.Fatal(err)
		}
		return e
	}

	t.Run("canonical", func(t *testing.T) {
		db, ids, err := migrateWith(t, "Sam@Example.COM", "ÉLODIE@example.fr", "ab@xn--bcher-kva.de", "kate@example.com")
		if err != nil {
			t.Fatalf("migrate: %v", err)
		}
		for i, want := range []string{"sam@example.com", "élodie@example.fr", "ab@bücher.de", "kate@example.com"} {
			if got := emailOf(t, db, ids[i]); got != want {
				t.Errorf("user %d: %q, want %q", ids[i], got, want)
			}
		}
		_, err = db.Exec(`INSERT INTO users (email, name, password_hash) VALUES ('sam@example.com', 'y', 'y')`)
		if err == nil || !strings.Contains(err.Error(), "users_email_key") {
			t.Errorf("a second sam@example.com: %v, want a users_email_key violation", err)
		}
	})

	for name, emails := range map[string][]string{
		"look-alikes":   {"sam@example.com", "\u017fam@example.com", "kate@example.com"},
		"invisible":     {"sa\u200bm@example.com", "kate@example.com"},
		"mixed scripts": {"\u0430dmin@example.com", "kate@example.com"},
		"bidi override": {"\u202emoc.elpmaxe@mas", "kate@example.com"},
		"ligature":      {"file@example.com", "\ufb01le@example.com", "kate@example.com"},
	} {
		t.Run(name, func(t *testing.T) {
			db, ids, err := migrateWith(t, emails...)
			if err == nil {
				t.Fatal("the migration went through")
			}
			for _, id := range ids[:len(ids)-1] {
				if !strings.Contains(err.Error(), strconv.FormatInt(id, 10)) {
					t.Errorf("the error does not name user %d: %v", id, err)
				}
			}
			for i, id := range ids {
				if got := emailOf(t, db, id); got != emails[i] {
					t.Errorf("user %d is now %q, want %q unchanged", id, got, emails[i])
				}
			}
			var version int64
			if err := db.QueryRow(`SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&version); err != nil || version != 3 {
				t.Errorf("schema version %d (%v), want 3", version, err)
			}
		})
	}
}
