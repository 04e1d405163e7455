package session_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/session"
)

// BenchmarkHotPath serves GET /account, an authenticated page that needs no
// Postgres data, through the whole Echo app (every middleware, the session
// load and commit against the real Redis, the templ render), in process,
// so allocations show per request (docs/performance.md):
//
//	go test -run '^$' -bench HotPath -benchmem ./internal/session/
//
// The app logs requests as in production (text to a writer), here to
// io.Discard. The client accepts no compression; BenchmarkHotPathBrotli
// and BenchmarkHotPathGzip are the same request from a browser that does.
func BenchmarkHotPath(b *testing.B) { benchHotPath(b, "") }

func BenchmarkHotPathBrotli(b *testing.B) { benchHotPath(b, "gzip, deflate, br, zstd") }

func BenchmarkHotPathGzip(b *testing.B) { benchHotPath(b, "gzip") }

// BenchmarkHotPathBearer is BenchmarkHotPath for an app: the same page
// with an access token (Authorization: Bearer) instead of the cookie. Both
// resolve through one lookup script, so they should cost the same.
func BenchmarkHotPathBearer(b *testing.B) { benchHotPath(b, "bearer") }

func benchHotPath(b *testing.B, acceptEncoding string) {
	env := apptest.New(b)
	c := env.Client(b)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	token := c.SessionToken()
	bearer := acceptEncoding == "bearer"
	if bearer {
		acceptEncoding = ""
	}

	a, err := app.New(context.Background(), env.Config, slog.New(slog.NewTextHandler(io.Discard, nil)),
		app.Options{Hasher: apptest.Hasher()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	req := httptest.NewRequest(http.MethodGet, "/account", nil)
	req.Header.Set("User-Agent", apptest.DefaultUserAgent)
	if bearer {
		u, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
		if err != nil {
			b.Fatal(err)
		}
		tok, err := a.Sessions.StartApp(context.Background(), u, session.AppClient{Name: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	} else {
		req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: token})
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		w := httptest.NewRecorder()
		a.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK || acceptEncoding == "" && !strings.Contains(w.Body.String(), "ada@example.com") {
			b.Fatalf("GET /account: %d", w.Code)
		}
	}
	// Wall time per op is mostly waiting for Redis; CPU time per op is what
	// the request costs this process (and is steadier on a busy machine).
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	w := httptest.NewRecorder()
	a.Handler.ServeHTTP(w, req)
	b.ReportMetric(float64(w.Body.Len()), "body-bytes")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
