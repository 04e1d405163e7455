package localserver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// InstallRedis says how to get redis-server.
const InstallRedis = "install Redis (Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis; macOS: brew install redis)"

// Redis is a redis-server on 127.0.0.1:Port, started with Args after the
// defaults (for example "--maxmemory", "2mb", or "--dir", d for a server
// that keeps its data).
type Redis struct {
	Port int
	Args []string
	cmd  *exec.Cmd
}

// FindRedis fails, saying what to install, when redis-server is not on
// the PATH.
func FindRedis() error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return errors.New("redis-server is not on the PATH: " + InstallRedis)
	}
	return nil
}

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// Start starts the server and waits until it answers PING. Without Args
// of their own it keeps nothing on disk.
func (r *Redis) Start() error {
	if err := FindRedis(); err != nil {
		return err
	}
	args := append([]string{"--port", fmt.Sprint(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no"}, r.Args...)
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	var err error
	for range 250 {
		if err = Ping(r.URL()); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Stop()
	return fmt.Errorf("redis-server on port %d did not start: %w", r.Port, err)
}

// Stop kills the server.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// Signal sends sig to the server process: SIGSTOP and SIGCONT pause and
// resume it without closing its connections (tests that hold a replica's
// replication back).
func (r *Redis) Signal(sig os.Signal) error {
	if r.cmd == nil || r.cmd.Process == nil {
		return errors.New("redis-server is not running")
	}
	return r.cmd.Process.Signal(sig)
}

// Shutdown asks the server to save its data and exit, waiting up to 10 s,
// then kills it.
func (r *Redis) Shutdown() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.Port), time.Second); err == nil {
		c.Write([]byte("*1\r\n$8\r\nSHUTDOWN\r\n"))
		c.Close()
		done := make(chan struct{})
		go func() { r.cmd.Wait(); close(done) }()
		select {
		case <-done:
			r.cmd = nil
			return
		case <-time.After(10 * time.Second):
		}
	}
	r.Stop()
}

// Ping sends PING to the Redis at a redis://host:port URL in the protocol
// itself, so this package needs no Redis client library.
func Ping(url string) error {
	addr := strings.TrimPrefix(url, "redis://")
	if i := strings.IndexAny(addr, "/?"); i >= 0 {
		addr = addr[:i]
	}
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		addr = addr[at+1:]
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Answers reports whether a Redis answers at url: any reply to PING counts
// (one that wants a password too), so a server needing AUTH is not taken
// for a missing one.
func Answers(url string) bool {
	err := Ping(url)
	return err == nil || strings.Contains(err.Error(), "answered")
}
