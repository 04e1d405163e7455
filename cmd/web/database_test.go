package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// serverURL is the test Postgres (TEST_DATABASE_URL, as internal/apptest
// reads it), with database and user replaced.
func serverURL(t *testing.T, user, database string) string {
	t.Helper()
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		raw = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		u.User = url.User(user)
	}
	u.Path = "/" + database
	return u.String()
}

func adminDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", serverURL(t, "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func uniqueName(prefix string) string { return prefix + strings.ToLower(rand.Text()[:10]) }

// runWeb runs the web command with vars and returns its error, its log,
// and how long it took.
func runWeb(t *testing.T, vars map[string]string, args ...string) (string, time.Duration, error) {
	t.Helper()
	var stderr bytes.Buffer
	start := time.Now()
	err := run(context.Background(), args, func(k string) string { return vars[k] }, strings.NewReader(""), io.Discard, &stderr)
	return stderr.String(), time.Since(start), err
}

// A configured database that does not exist is created at start (and the
// log says so) when the user may.
func TestMissingDatabaseIsCreated(t *testing.T) {
	name := uniqueName("gh_create_")
	admin := adminDB(t)
	t.Cleanup(func() { admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`) })
	log, _, err := runWeb(t, map[string]string{"DATABASE_URL": serverURL(t, "", name)}, "migrate")
	if err != nil {
		t.Fatalf("migrate into a missing database: %v\n%s", err, log)
	}
	if !strings.Contains(log, "created the database") || !strings.Contains(log, name) {
		t.Errorf("the log does not say the database was created:\n%s", log)
	}
	var n int
	if err := admin.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil || n != 1 {
		t.Fatalf("database %s: %d, %v", name, n, err)
	}
}

// A missing database the user may not create, credentials the server
// refuses, and a server that does not answer are three different
// messages; the first two are not retried through STARTUP_TIMEOUT.
func TestDatabaseFailuresSayWhichAndDoNotWait(t *testing.T) {
	admin := adminDB(t)
	role := uniqueName("gh_nocreate_")
	if _, err := admin.Exec(`CREATE ROLE ` + role + ` LOGIN NOCREATEDB`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(`DROP ROLE IF EXISTS ` + role) })

	for name, tc := range map[string]struct {
		url       string
		want      []string
		permanent bool
	}{
		"missing database, not creatable": {url: serverURL(t, role, uniqueName("gh_missing_")),
			want: []string{"database does not exist", "may not create databases", role}, permanent: true},
		"refused user": {url: serverURL(t, uniqueName("gh_nobody_"), "postgres"),
			want: []string{"user or password refused", "check the user and password in DATABASE_URL"}, permanent: true},
		"unreachable": {url: "postgres://postgres@127.0.0.1:1/gatehouse?connect_timeout=1",
			want: []string{"postgres at 127.0.0.1:1/gatehouse is unreachable"}},
	} {
		t.Run(name, func(t *testing.T) {
			log, took, err := runWeb(t, map[string]string{"DATABASE_URL": tc.url, "STARTUP_TIMEOUT": "4s"})
			if err == nil {
				t.Fatal("start-up succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			waited := strings.Contains(log, "waiting for postgres")
			if tc.permanent && (waited || took > 3*time.Second) {
				t.Errorf("retried for %v (log says waiting: %v):\n%s", took, waited, log)
			}
			if !tc.permanent && !waited {
				t.Errorf("an unreachable server was not waited for:\n%s", log)
			}
		})
	}
}
