package database_test

import (
	"context"
	"database/sql"
	"io"
	"io/fs"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/migrations"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestMigrationVersionsAreContiguous(t *testing.T) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	re := regexp.MustCompile(`^(\d{5})_[a-z0-9_]+\.sql$`)
	for i, name := range names {
		m := re.FindStringSubmatch(name)
		if m == nil {
			t.Fatalf("%s: want NNNNN_what.sql", name)
		}
		if v, _ := strconv.Atoi(m[1]); v != i+1 {
			t.Fatalf("%s: version %d, want %d", name, v, i+1)
		}
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
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithDisableGlobalRegistry(true))
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
	names, _ := fs.Glob(migrations.FS, "*.sql")
	if applied != len(names) {
		t.Fatalf("%d migrations recorded as applied, want %d (each exactly once)", applied, len(names))
	}
}
