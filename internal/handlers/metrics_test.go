package handlers_test

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// The public port never serves metrics: they are on METRICS_ADDR only
// (cmd/web TestMetricsListener).
func TestMetricsAreNotOnThePublicPort(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	for _, path := range []string{"/metrics", "/metrics/", "/debug/metrics"} {
		if res := c.Get(path); res.StatusCode != http.StatusNotFound || strings.Contains(res.Body, "gatehouse_http_requests_total") {
			t.Errorf("GET %s on the public port: %d", path, res.StatusCode)
		}
	}
}

// Requests are labelled by route pattern, never by the raw path: a client
// sending a thousand made-up paths, ids and methods adds no series.
func TestMetricsRouteLabelsAreBounded(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	c.Get("/account")
	c.Get("/account/sessions")
	before := len(env.Series(t, "gatehouse_http_requests_total"))

	for range 200 {
		r := rand.Text()
		c.Get("/" + r)
		c.Get("/account/sessions/" + r + "/revoke")
		c.Post("/account/sessions/"+r+"/revoke", nil)
		c.Get("/admin/users/" + r)
		c.Get("/static/" + r + ".css")
		req, _ := http.NewRequest("BREW"+r[:4], env.Server.URL+"/account", nil)
		c.Do(req)
	}
	after := env.Series(t, "gatehouse_http_requests_total")
	// A few new (route, method, status) combinations are fine: the
	// made-up requests above hit a handful of patterns and statuses.
	if len(after) > before+20 {
		t.Errorf("%d series before, %d after 1,200 requests with random paths", before, len(after))
	}
	for _, ls := range after {
		route := ls["route"]
		if route != "unmatched" && !strings.HasPrefix(route, "/") || strings.ContainsAny(route, "0123456789") && !strings.Contains(route, ":") {
			t.Errorf("route label %q is not a route pattern", route)
		}
		if strings.Contains(route, "BREW") || strings.Contains(ls["method"], "BREW") {
			t.Errorf("a made-up method reached a label: %v", ls)
		}
	}
	if n := env.Metric(t, "gatehouse_http_requests_total", "route", "/account/sessions/:id/revoke", "method", "POST"); n < 200 {
		t.Errorf("revokes of random ids counted %v times under their pattern, want 200", n)
	}
	if n := env.Metric(t, "gatehouse_http_request_duration_seconds", "route", "/account", "method", "GET", "status", "200"); n < 1 {
		t.Errorf("no latency observed for GET /account")
	}
}

// Sign-ins are counted by result, throttled attempts by reason, and
// revocations by reason.
func TestMetricsCountSignInsThrottlingAndRevocations(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	a := env.Client(t)
	a.SignUp("Ada", "ada@example.com", "analytical engine")
	b := env.Client(t)
	b.SignIn("ada@example.com", "analytical engine")
	_, bID := sessionIDs(t, b)

	if res := a.Post("/account/sessions/"+bID+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	if n := env.Metric(t, "gatehouse_session_revocations_total", "reason", "revoked_by_user"); n != 1 {
		t.Errorf("revocations by user: %v, want 1", n)
	}

	// Wrong passwords until the account is throttled.
	x := env.Client(t)
	throttled := 0
	for range 30 {
		res := x.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"wrong guess"}})
		if res.StatusCode == http.StatusTooManyRequests {
			throttled++
		}
	}
	if throttled == 0 {
		t.Fatal("30 wrong passwords were never throttled")
	}
	x.Post("/signin", url.Values{"email": {""}, "password": {""}})
	for result, want := range map[string]float64{"success": 1, "failed": float64(30 - throttled), "throttled": float64(throttled), "invalid": 1} {
		if n := env.Metric(t, "gatehouse_signin_attempts_total", "result", result); n != want {
			t.Errorf("sign-ins %s: %v, want %v", result, n, want)
		}
	}
	if n := env.Metric(t, "gatehouse_throttled_total", "reason", "attempts"); n != float64(throttled) {
		t.Errorf("throttled attempts: %v, want %d", n, throttled)
	}

	b.Post("/signout", nil) // b's session is already revoked: nothing to end
	a.Post("/signout", nil)
	if n := env.Metric(t, "gatehouse_session_revocations_total", "reason", "signed_out"); n != 1 {
		t.Errorf("sign-outs: %v, want 1", n)
	}
	// Pools and workers are read at each scrape.
	if n := env.Metric(t, "gatehouse_redis_connections_max"); n != float64(env.Config.RedisMaxConnections) {
		t.Errorf("redis connections max: %v", n)
	}
	if n := env.Metric(t, "gatehouse_postgres_connections", "state", "idle"); n < 1 {
		t.Errorf("postgres idle connections: %v", n)
	}
	if len(env.Series(t, "gatehouse_worker_lag_seconds")) != 4 {
		t.Errorf("worker lag series: %v", env.Series(t, "gatehouse_worker_lag_seconds"))
	}
	if n := env.Metric(t, "gatehouse_redis_revoke_replication_misses_total"); n != 0 {
		t.Errorf("revoke replication misses on a Redis without replicas: %v", n)
	}
	if len(env.Series(t, "gatehouse_active_sessions")) != 1 {
		t.Error("no active sessions gauge")
	}
}

// Redis failures are counted as they are classified: a stopped Redis
// counts as unavailable.
func TestMetricsCountRedisErrors(t *testing.T) {
	t.Parallel()
	rd := apptest.StartRedis(t)
	env := apptest.New(t, apptest.With("REDIS_URL", rd.URL()))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	if n := env.Metric(t, "gatehouse_redis_errors_total", "kind", "unavailable"); n != 0 {
		t.Fatalf("redis errors before the outage: %v", n)
	}
	rd.Stop()
	if res := c.Get("/account"); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /account with Redis down: %d", res.StatusCode)
	}
	if n := env.Metric(t, "gatehouse_redis_errors_total", "kind", "unavailable"); n < 1 {
		t.Errorf("redis errors after the outage: %v", n)
	}
	if n := env.Metric(t, "gatehouse_http_requests_total", "route", "/account", "status", "503"); n != 1 {
		t.Errorf("503s of /account counted: %v", n)
	}
}
