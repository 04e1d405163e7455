package apptest

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/localserver"
)

// PrivateRedis is a redis-server of a test's own, on a free port, that the
// test may stop and start without disturbing other tests. It is run by
// internal/localserver, which `web dev` uses too.
type PrivateRedis struct {
	t    testing.TB
	Port int
	r    *localserver.Redis
}

// URL is the server's redis:// URL.
func (r *PrivateRedis) URL() string { return r.r.URL() }

// StartRedis starts a private redis-server for t; it is stopped when t ends.
// args are passed to redis-server after the defaults, for example
// "--maxmemory", "2mb". It fails t when redis-server is not installed.
func StartRedis(t testing.TB, args ...string) *PrivateRedis {
	t.Helper()
	if err := localserver.FindRedis(); err != nil {
		t.Fatalf("private Redis: %v", err)
	}
	port, err := localserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// A directory of its own: a replica writes the snapshot it receives
	// from its primary, which would otherwise land in the package's folder.
	args = append([]string{"--dir", t.TempDir()}, args...)
	r := &PrivateRedis{t: t, Port: port, r: &localserver.Redis{Port: port, Args: args}}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start (re)starts the server and waits until it answers.
func (r *PrivateRedis) Start() {
	r.t.Helper()
	if err := r.r.Start(); err != nil {
		r.t.Fatal(err)
	}
}

// Stop kills the server.
func (r *PrivateRedis) Stop() { r.r.Stop() }

// Client returns a client of the server, closed when the test ends: for
// a test to look at or break the server behind the app's back.
func (r *PrivateRedis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port), Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// Pause stops the server process (SIGSTOP) without closing its
// connections: to a replica, replication stands still.
func (r *PrivateRedis) Pause() {
	r.t.Helper()
	if err := r.r.Signal(syscall.SIGSTOP); err != nil {
		r.t.Fatal(err)
	}
}

// Resume continues a paused server (SIGCONT).
func (r *PrivateRedis) Resume() {
	r.t.Helper()
	if err := r.r.Signal(syscall.SIGCONT); err != nil {
		r.t.Fatal(err)
	}
}
