package redisconn

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/config"
)

// TestDriverLinesGoToSlog: a dial go-redis cannot make is logged through
// the app's logger, at WARN and tagged, not printed to stderr by go-redis.
func TestDriverLinesGoToSlog(t *testing.T) {
	var out bytes.Buffer
	LogTo(slog.New(slog.NewTextHandler(&out, nil)))
	t.Cleanup(func() { redis.SetLogger(defaultLog{log.New(os.Stderr, "redis: ", log.LstdFlags|log.Lshortfile)}) })

	// A port nothing listens on: bind one, then close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := New(config.Redis{URL: "redis://" + addr}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping to a closed port succeeded")
	}
	got := out.String()
	if !strings.Contains(got, "level=WARN") || !strings.Contains(got, "component=go-redis") ||
		!strings.Contains(got, "failed to dial") || !strings.Contains(got, addr) {
		t.Fatalf("go-redis's dial failure was not logged through slog as a tagged WARN line:\n%s", got)
	}
}

// defaultLog puts back a logger like go-redis's own after the test.
type defaultLog struct{ l *log.Logger }

func (d defaultLog) Printf(_ context.Context, format string, v ...any) { d.l.Printf(format, v...) }
