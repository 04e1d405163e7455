package main

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// METRICS_ADDR serves /metrics on a listener of its own; the public port
// answers 404 there.
func TestMetricsListener(t *testing.T) {
	addr, metricsAddr, pprofAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	vars := map[string]string{
		"ADDR": addr, "METRICS_ADDR": metricsAddr, "PPROF_ADDR": pprofAddr,
		"DATABASE_URL": apptest.NewDatabase(t), "REDIS_PREFIX": apptest.RedisPrefix(t),
		"MIGRATE_ON_START": "false",
	}
	maps.Copy(vars, apptest.RedisVars())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return vars[k] }, strings.NewReader(""), io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	get := func(url string) (int, string) {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			res, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				return res.StatusCode, string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", url, err)
			}
		}
	}
	if status, _ := get("http://" + addr + "/signin"); status != http.StatusOK {
		t.Fatalf("GET /signin: %d", status)
	}
	status, body := get("http://" + metricsAddr + "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics on METRICS_ADDR: %d", status)
	}
	for _, want := range []string{
		`gatehouse_http_requests_total{method="GET",route="/signin",status="200"} 1`,
		"gatehouse_http_request_duration_seconds_bucket", "gatehouse_signin_attempts_total",
		"gatehouse_redis_connections", "gatehouse_postgres_connections", "gatehouse_worker_lag_seconds",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if status, body := get("http://" + addr + "/metrics"); status != http.StatusNotFound || strings.Contains(body, "gatehouse_") {
		t.Errorf("GET /metrics on the public port: %d", status)
	}
	if status, _ := get("http://" + metricsAddr + "/signin"); status != http.StatusNotFound {
		t.Errorf("the metrics port serves the app: GET /signin answered %d", status)
	}
	// PPROF_ADDR serves Go's profiles there and nowhere else.
	if status, body := get("http://" + pprofAddr + "/debug/pprof/"); status != http.StatusOK || !strings.Contains(body, "profile") {
		t.Errorf("GET /debug/pprof/ on PPROF_ADDR: %d", status)
	}
	if status, body := get("http://" + pprofAddr + "/debug/pprof/profile?seconds=1"); status != http.StatusOK || len(body) == 0 {
		t.Errorf("a CPU profile on PPROF_ADDR: %d, %d bytes", status, len(body))
	}
	for _, other := range []string{addr, metricsAddr} {
		if status, _ := get("http://" + other + "/debug/pprof/"); status != http.StatusNotFound {
			t.Errorf("GET /debug/pprof/ on %s: %d", other, status)
		}
	}
	if status, _ := get("http://" + pprofAddr + "/signin"); status != http.StatusNotFound {
		t.Errorf("the pprof port serves the app: GET /signin answered %d", status)
	}
}

func TestMetricsAddrMustDifferFromAddr(t *testing.T) {
	env := map[string]string{"ADDR": "127.0.0.1:8080", "METRICS_ADDR": "127.0.0.1:8080"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "METRICS_ADDR") {
		t.Fatalf("run: %v", err)
	}
}
