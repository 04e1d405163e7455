package apptest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// PrivateRedis is a redis-server of a test's own, on a free port, that the
// test may stop and start without disturbing other tests.
type PrivateRedis struct {
	t    testing.TB
	Port int
	cmd  *exec.Cmd
	args []string // extra redis-server arguments
}

// URL is the server's redis:// URL.
func (r *PrivateRedis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// StartRedis starts a private redis-server for t; it is stopped when t ends.
// args are passed to redis-server after the defaults, for example
// "--maxmemory", "2mb". It fails t when redis-server is not installed.
func StartRedis(t testing.TB, args ...string) *PrivateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("private Redis: redis-server is not on the PATH (install the redis-server package): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &PrivateRedis{t: t, Port: port, args: args}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start (re)starts the server and waits until it answers.
func (r *PrivateRedis) Start() {
	r.t.Helper()
	args := append([]string{"--port", fmt.Sprint(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no"}, r.args...)
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port), Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	for range 100 {
		if err := c.Ping(context.Background()).Err(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("redis-server on port %d did not start", r.Port)
}

// Stop kills the server.
func (r *PrivateRedis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

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
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		r.t.Fatal(err)
	}
}

// Resume continues a paused server (SIGCONT).
func (r *PrivateRedis) Resume() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		r.t.Fatal(err)
	}
}
