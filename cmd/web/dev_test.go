package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/localserver"
)

// syncBuffer is a strings.Builder safe to write from the command's
// goroutine while the test reads it.
type syncBuffer = lockedBuffer

// TestDevStartsPrivateServersAndStopsThem runs `web dev` where nothing
// answers at DATABASE_URL and REDIS_URL: it starts a private Postgres and
// redis-server under -dir, creates an administrator whose password it
// prints once, serves, and stops both servers on exit. A second start
// reuses the data: the administrator still signs in, and no new password
// is printed.
func TestDevStartsPrivateServersAndStopsThem(t *testing.T) {
	// Not t.TempDir: as root the cluster runs as the postgres user, who
	// must be able to reach the directory.
	dir, err := os.MkdirTemp("", "ghdev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	devDir := filepath.Join(dir, ".gatehouse", "dev")

	start := func() (addr string, out *syncBuffer, stop func()) {
		t.Helper()
		addr = freeAddr(t)
		vars := map[string]string{
			"ADDR": addr, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/gatehouse?sslmode=disable",
			"REDIS_URL": "redis://127.0.0.1:1/0", "LOG_LEVEL": "warn",
		}
		out, logs := &syncBuffer{}, &syncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"dev", "-dir", devDir}, func(k string) string { return vars[k] }, strings.NewReader(""), out, logs)
		}()
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if res, err := http.Get("http://" + addr + "/signin"); err == nil {
				res.Body.Close()
				break
			}
			select {
			case err := <-done:
				t.Fatalf("web dev ended: %v\n%s", err, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("web dev did not answer:\n%s", logs.String())
			}
		}
		return addr, out, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("web dev: %v\n%s", err, logs.String())
			}
		}
	}

	addr, out, stop := start()
	m := regexp.MustCompile(`e-mail:\s+(\S+)\s+password:\s+(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		stop()
		t.Fatalf("no administrator printed:\n%s", out.String())
	}
	email, pw := m[1], m[2]
	if status := signIn(t, addr, email, pw); status != "/account" {
		t.Errorf("the printed administrator cannot sign in: %s", status)
	}
	pg, err := localserver.NewPostgres(filepath.Join(devDir, "postgres"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !pg.Running() {
		t.Error("no private Postgres runs under -dir")
	}
	stop()
	if pg.Running() {
		t.Error("the private Postgres still runs after web dev ended")
		pg.Stop()
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still serving after web dev ended")
	}

	addr, out, stop = start()
	defer stop()
	if strings.Contains(out.String(), "password:") {
		t.Errorf("a second start printed a password again:\n%s", out.String())
	}
	if status := signIn(t, addr, email, pw); status != "/account" {
		t.Errorf("after a restart the administrator cannot sign in: %s", status)
	}
}

// signIn signs in through the form and returns where it led (or the
// status when it did not redirect).
func signIn(t *testing.T, addr, email, pw string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get("http://" + addr + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF field on /signin")
	}
	res, err = c.PostForm("http://"+addr+"/signin", url.Values{"_csrf": {string(m[1])}, "email": {email}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); loc != "" {
		return loc
	}
	return res.Status
}

// A missing binary is named, with how to install it.
func TestDevSaysWhichBinaryIsMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing on it
	t.Setenv("PG_BIN", "")
	vars := map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/gatehouse", "REDIS_URL": "redis://127.0.0.1:1/0"}
	dir, _ := os.MkdirTemp("", "ghdev-")
	defer os.RemoveAll(dir)
	err := run(context.Background(), []string{"dev", "-dir", dir}, func(k string) string { return vars[k] }, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("web dev started without the servers' binaries")
	}
	// Postgres comes first; on a machine with /usr/lib/postgresql it is
	// found there, and then runuser (as root) or redis-server is missing.
	msg := err.Error()
	if !strings.Contains(msg, "apt-get install") ||
		!strings.Contains(msg, "redis-server") && !strings.Contains(msg, "initdb") && !strings.Contains(msg, "runuser") {
		t.Errorf("the error does not say what to install: %v", err)
	}
}

// `web help` lists every command the switch in run knows, one line each,
// even with a configuration that would not load.
func TestHelpListsEveryCommand(t *testing.T) {
	var out strings.Builder
	bad := map[string]string{"SESSION_LIFETIME": "forever"}
	if err := run(context.Background(), []string{"help"}, func(k string) string { return bad[k] }, strings.NewReader(""), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"serve", "dev", "migrate", "user create", "seed", "help"} {
		if !regexp.MustCompile(`(?m)^  ` + cmd + `\b.*\S`).MatchString(out.String()) {
			t.Errorf("help has no line for %q:\n%s", cmd, out.String())
		}
	}
}
