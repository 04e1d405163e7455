package apptest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/localserver"
)

// PrivatePostgres is a Postgres cluster of a test's own, on a free port,
// that the test may stop, start, pause and resume without disturbing other
// tests. Its data lives in a temporary directory removed when the test
// ends. The cluster is run by internal/localserver, which `web dev` uses
// too: it is copied from a template made once per machine, which makes a
// cluster cost about half a second instead of a few.
type PrivatePostgres struct {
	t    testing.TB
	Port int
	pg   *localserver.Postgres
}

// URL is the cluster's postgres:// URL (the postgres database, user
// postgres, no password).
func (p *PrivatePostgres) URL() string { return p.pg.URL("postgres") }

// StartPostgres starts a private Postgres cluster for t; it is stopped and
// removed when t ends. It fails t, saying why, if no cluster can be run
// here (no Postgres binaries, or root without a postgres user): a fault
// test that silently skipped would let CI pass without proving anything.
func StartPostgres(t testing.TB) *PrivatePostgres {
	t.Helper()
	dir, err := os.MkdirTemp("", "ghpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := localserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := localserver.NewPostgres(dir, port)
	if err != nil {
		t.Fatalf("private Postgres: %v", err)
	}
	if err := pg.InitFromTemplate(); err != nil {
		t.Fatalf("private Postgres: %v", err)
	}
	p := &PrivatePostgres{t: t, Port: port, pg: pg}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start (re)starts the cluster and waits until it accepts connections.
// fsync is off (only an OS crash could lose data); commits stay
// synchronous, so a Stop (a crash of Postgres alone) loses nothing
// committed.
func (p *PrivatePostgres) Start() {
	p.t.Helper()
	if err := p.pg.Start(false); err != nil {
		p.t.Fatal(err)
	}
}

// Stop kills the cluster at once, as a crash would (pg_ctl -m immediate):
// connections break, and the next Start recovers.
func (p *PrivatePostgres) Stop() {
	if err := p.pg.Stop(); err != nil {
		p.t.Error(err)
	}
}

// Pause freezes every process of the cluster (SIGSTOP), so Postgres hangs:
// connections stay open and nothing answers, as with a stuck server or a
// network partition. Resume undoes it; Stop resumes first.
func (p *PrivatePostgres) Pause() {
	p.t.Helper()
	if err := p.pg.Pause(); err != nil {
		p.t.Fatal(err)
	}
}

// Resume wakes a paused cluster.
func (p *PrivatePostgres) Resume() { p.pg.Resume() }

// RequirePasswords makes TCP connections to the cluster sign in with a
// password (scram-sha-256) from now on, and returns once the server
// refuses URL, whose postgres user has none. Create the roles the test
// signs in with, and their passwords, before.
func (p *PrivatePostgres) RequirePasswords() {
	p.t.Helper()
	if err := p.pg.RequirePasswords(); err != nil {
		p.t.Fatal(err)
	}
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		conn, err := pgx.Connect(ctx, p.URL())
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "28P01" { // invalid_password
			return
		}
		if err == nil {
			conn.Close(ctx)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("private Postgres still lets URL in without a password after the reload (%v)", err)
		}
	}
}
