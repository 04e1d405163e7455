package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse/gatehouse/internal/apptest"
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

// A wrong password against a server that asks for one (scram-sha-256 over
// TCP, as on a real host) is refused at once, with the message that says
// so; the right one starts (and creates the database). Look-alike
// passwords are wrong too, and no password appears in what is printed.
func TestWrongPasswordSaysSoAtOnce(t *testing.T) {
	pg := apptest.StartPostgres(t)
	const role, right = "gh_app", "correct horse battery"
	admin, err := sql.Open("pgx", pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`CREATE ROLE ` + role + ` LOGIN CREATEDB PASSWORD '` + right + `'`); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	pg.RequirePasswords()
	serverURL := func(user *url.Userinfo) string {
		return (&url.URL{Scheme: "postgres", User: user, Host: fmt.Sprintf("127.0.0.1:%d", pg.Port),
			Path: "/gatehouse", RawQuery: "sslmode=disable&connect_timeout=2"}).String()
	}

	for name, user := range map[string]*url.Userinfo{
		"wrong":             url.UserPassword(role, "hunter2-wrong"),
		"another case":      url.UserPassword(role, "Correct horse battery"),
		"a trailing space":  url.UserPassword(role, right+" "),
		"a prefix of it":    url.UserPassword(role, "correct horse"),
		"empty":             url.UserPassword(role, ""),
		"none":              url.User(role),
		"another user's":    url.UserPassword("postgres", right),
		"utf-8 look-alike":  url.UserPassword(role, "correct horse battеry"), // Cyrillic е
		"bytes, not UTF-8":  url.UserPassword(role, "correct\xffhorse"),
		"percent-encoded %": url.UserPassword(role, "correct%20horse%20battery"),
	} {
		t.Run(name, func(t *testing.T) {
			log, took, err := runWeb(t, map[string]string{"DATABASE_URL": serverURL(user), "STARTUP_TIMEOUT": "10s"})
			if err == nil {
				t.Fatal("start-up succeeded")
			}
			msg := err.Error()
			for _, want := range []string{"user or password refused", "check the user and password in DATABASE_URL"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not say %q:\n%s", want, msg)
				}
			}
			for _, not := range []string{"unreachable", "does not exist"} {
				if strings.Contains(msg, not) {
					t.Errorf("error says %q:\n%s", not, msg)
				}
			}
			if pw, ok := user.Password(); ok && len(pw) > 3 && (strings.Contains(msg, pw) || strings.Contains(log, pw)) {
				t.Errorf("the password is printed:\n%s\n%s", msg, log)
			}
			// Refused at the first attempt: nowhere near STARTUP_TIMEOUT.
			if strings.Contains(log, "waiting for postgres") || took > 5*time.Second {
				t.Errorf("retried for %v:\n%s", took, log)
			}
		})
	}

	log, _, err := runWeb(t, map[string]string{"DATABASE_URL": serverURL(url.UserPassword(role, right)), "STARTUP_TIMEOUT": "30s"}, "migrate")
	if err != nil {
		t.Fatalf("the right password: %v\n%s", err, log)
	}
	if !strings.Contains(log, "created the database") || strings.Contains(log, right) {
		t.Errorf("the right password: the log does not say the database was created, or shows the password:\n%s", log)
	}
}
