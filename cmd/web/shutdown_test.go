package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// The graceful-shutdown tests run the real binary, as a process manager
// would, and send it SIGTERM while a request is in flight. The request is
// held open by sending its body slowly: the server is reading it, so the
// request has started and must be allowed to finish.

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type webProcess struct {
	cmd  *exec.Cmd
	addr string
	logs *lockedBuffer
	done chan error // the exit, once
}

func buildWeb(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "web")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startWeb runs bin on a free port, a fresh database and a Redis prefix of
// the test's own, and waits until it answers.
func startWeb(t *testing.T, bin string, env ...string) *webProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &webProcess{addr: addr, logs: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin)
	p.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"ADDR=" + addr,
		"DATABASE_URL=" + apptest.NewDatabase(t),
		"REDIS_PREFIX=" + apptest.RedisPrefix(t),
		"MIGRATE_ON_START=false",
	}
	// The test Redis, whatever its shape; then env, which wins.
	for k, v := range apptest.RedisVars() {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("web log:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("web exited at start-up: %v\n%s", err, p.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("web did not answer on %s\n%s", addr, p.logs.String())
	return nil
}

// waitLog waits until the process has logged s.
func (p *webProcess) waitLog(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.logs.String(), s) {
			return
		}
	}
	t.Fatalf("web never logged %q", s)
}

// wait returns the process's exit, failing t if it takes longer than d.
func (p *webProcess) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(d):
		t.Fatalf("web still running %v after SIGTERM", d)
		return nil
	}
}

// slowSignUp starts a sign-up whose body is sent in two parts: it returns
// the connection (request headers and half the body sent) and the rest.
func slowSignUp(t *testing.T, p *webProcess) (net.Conn, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	res, err := browser.Get("http://" + p.addr + "/signup")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var csrf string
	for _, ck := range jar.Cookies(&url.URL{Scheme: "http", Host: p.addr}) {
		if ck.Name == "gatehouse_csrf" {
			csrf = ck.Value
		}
	}
	if csrf == "" {
		t.Fatal("no CSRF cookie")
	}
	body := url.Values{"name": {"Ada"}, "email": {"ada@example.com"}, "password": {"analytical engine"}, "_csrf": {csrf}}.Encode()
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	half := len(body) / 2
	_, err = fmt.Fprintf(conn, "POST /signup HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"Content-Length: %d\r\nCookie: gatehouse_csrf=%s\r\nUser-Agent: %s\r\n\r\n%s",
		p.addr, len(body), csrf, apptest.DefaultUserAgent, body[:half])
	if err != nil {
		t.Fatal(err)
	}
	return conn, body[half:]
}

func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildWeb(t)

	t.Run("requests in flight finish, then exit 0", func(t *testing.T) {
		p := startWeb(t, bin, "SHUTDOWN_TIMEOUT=10s")
		conn, rest := slowSignUp(t, p)
		time.Sleep(200 * time.Millisecond) // the handler is reading the body
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.waitLog(t, "shutting down")
		// The listener is closed: no new request gets in.
		if c, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
			c.Close()
			t.Error("a new connection was accepted after SIGTERM")
		}
		time.Sleep(300 * time.Millisecond) // still in flight, during shutdown
		if _, err := conn.Write([]byte(rest)); err != nil {
			t.Fatalf("finishing the request: %v", err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("the request in flight got no response: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account" {
			t.Errorf("the sign-up in flight answered %d to %q, want 303 to /account", res.StatusCode, res.Header.Get("Location"))
		}
		if !strings.Contains(strings.Join(res.Header.Values("Set-Cookie"), "\n"), "gatehouse_session=") {
			t.Error("the sign-up in flight set no session cookie")
		}
		if err := p.wait(t, 10*time.Second); err != nil {
			t.Fatalf("exit after SIGTERM: %v, want status 0\n%s", err, p.logs.String())
		}
		if !strings.Contains(p.logs.String(), "every request finished") {
			t.Errorf("the log does not say shutdown was clean:\n%s", p.logs.String())
		}
	})

	t.Run("requests still running after SHUTDOWN_TIMEOUT are cut off", func(t *testing.T) {
		p := startWeb(t, bin, "SHUTDOWN_TIMEOUT=1s")
		slowSignUp(t, p) // never finished
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		err := p.wait(t, 10*time.Second)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("exit: %v, want status 1", err)
		}
		if took := time.Since(start); took < time.Second || took > 5*time.Second {
			t.Errorf("exited %v after SIGTERM, want about SHUTDOWN_TIMEOUT=1s", took)
		}
		if !strings.Contains(p.logs.String(), "cut off") {
			t.Errorf("the log does not say a request was cut off:\n%s", p.logs.String())
		}
	})
	t.Run("with Postgres hung, requests answer 503 and shutdown exits 0", func(t *testing.T) {
		pg := apptest.StartPostgres(t)
		p := startWeb(t, bin, "DATABASE_URL="+pg.URL(), "MIGRATE_ON_START=true",
			"SHUTDOWN_TIMEOUT=5s", "DATABASE_TIMEOUT=2s")
		conn, rest := slowSignUp(t, p)
		if _, err := conn.Write([]byte(rest)); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || res.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-up: %v %v", res, err)
		}
		res.Body.Close()
		var cookie string
		for _, ck := range res.Cookies() {
			if ck.Name == "gatehouse_session" {
				cookie = ck.String()
			}
		}

		pg.Pause()
		const inFlight = 5
		statuses := make(chan int, inFlight)
		for range inFlight {
			go func() {
				req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/account/sessions", nil)
				req.Header.Set("Cookie", cookie)
				res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
				if err != nil {
					statuses <- 0
					return
				}
				res.Body.Close()
				statuses <- res.StatusCode
			}()
		}
		time.Sleep(200 * time.Millisecond) // the requests are waiting on Postgres
		start := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		for range inFlight {
			if status := <-statuses; status != http.StatusServiceUnavailable {
				t.Errorf("a request in flight with Postgres hung: status %d, want 503", status)
			}
		}
		// SHUTDOWN_TIMEOUT, then up to 5 s for the background writers.
		if err := p.wait(t, 15*time.Second); err != nil {
			t.Errorf("exit after SIGTERM with Postgres hung: %v, want status 0", err)
		}
		t.Logf("exited %v after SIGTERM", time.Since(start))
		if !strings.Contains(p.logs.String(), "every request finished") {
			t.Errorf("the log does not say shutdown was clean:\n%s", p.logs.String())
		}
	})
}
