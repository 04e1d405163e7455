// Package metrics is Gatehouse's Prometheus instrumentation: what an
// operator watches (docs/operations.md). Every metric is named gatehouse_*
// and lives in a registry of the app's own, not Prometheus's global one,
// so several apps in one process (the tests) never share a series.
//
// The handlers and the session manager report events through a *Metrics;
// pools and background workers are read when Prometheus scrapes, through
// functions the app's wiring hands over (Watch*), so this package needs
// nothing from Redis's or Postgres's client libraries. A nil *Metrics
// records nothing.
package metrics

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds one app's collectors and their registry.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	signIns     *prometheus.CounterVec
	throttled   *prometheus.CounterVec
	revocations *prometheus.CounterVec
	redisErrors *prometheus.CounterVec
	pgErrors    *prometheus.CounterVec

	// series caches each (route, method, status)'s counter and histogram:
	// WithLabelValues hashes its labels and allocates on every call, twice
	// a request; a cached pair is found without allocating. Bounded as the
	// series are (routes × methods × statuses).
	seriesMu sync.RWMutex
	series   map[requestKey]requestSeries
}

type requestKey struct {
	route, method string
	status        int
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// Sign-in results (gatehouse_signin_attempts_total's result label).
const (
	SignInSuccess   = "success"
	SignInFailed    = "failed"    // wrong password or unknown email: one result, as on the page
	SignInDisabled  = "disabled"  // right password, account disabled
	SignInThrottled = "throttled" // refused before the password was checked: too many attempts
	SignInBusy      = "busy"      // refused: the hasher's queue was full (503)
	SignInInvalid   = "invalid"   // email or password missing
)

// Reasons a request was refused before password work
// (gatehouse_throttled_total's reason label).
const (
	ThrottleAttempts    = "attempts"    // too many attempts on the account or address (429)
	ThrottleSignUpRate  = "signup_rate" // SIGNUP_RATE_PER_IP reached (429)
	ThrottleConcurrency = "concurrency" // PASSWORD_CONCURRENCY_PER_IP reached (429)
	ThrottleBusy        = "hasher_busy" // the hasher's queue was full (503)
)

// New returns an app's metrics, with Go runtime and process metrics in the
// same registry.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), series: map[requestKey]requestSeries{}}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_http_requests_total",
		Help: "HTTP requests answered, by route pattern, method and status.",
	}, []string{"route", "method", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gatehouse_http_request_duration_seconds",
		Help: "Time to answer HTTP requests, by route pattern, method and status.",
		// From a Redis-only page (about a millisecond) to a password hash
		// waiting in the queue (up to a second) and a database timeout (5 s).
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "status"})
	m.signIns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_signin_attempts_total",
		Help: "Sign-in form submissions, by result.",
	}, []string{"result"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_throttled_total",
		Help: "Requests refused before any password work, by reason.",
	}, []string{"reason"})
	m.revocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_session_revocations_total",
		Help: "Sessions ended on request (sign-out, revoke, password change, disable, role change, session limit), by reason.",
	}, []string{"reason"})
	m.redisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_redis_errors_total",
		Help: "Failed Redis commands and dials, by kind: unavailable (unreachable, timed out, loading, full) or reply (an error reply from a serving Redis).",
	}, []string{"kind"})
	m.pgErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_postgres_errors_total",
		Help: "Failed Postgres statements run through GORM, by kind: unavailable (connection, timeout), constraint (a refused write, often a user's input), other.",
	}, []string{"kind"})
	m.reg.MustRegister(m.requests, m.duration, m.signIns, m.throttled, m.revocations, m.redisErrors, m.pgErrors)
	// Series that exist from the start, so a rate() over them is 0 rather
	// than absent before the first event.
	for _, r := range []string{SignInSuccess, SignInFailed, SignInDisabled, SignInThrottled, SignInBusy, SignInInvalid} {
		m.signIns.WithLabelValues(r)
	}
	for _, r := range []string{ThrottleAttempts, ThrottleSignUpRate, ThrottleConcurrency, ThrottleBusy} {
		m.throttled.WithLabelValues(r)
	}
	for _, k := range []string{"unavailable", "reply"} {
		m.redisErrors.WithLabelValues(k)
	}
	for _, k := range []string{"unavailable", "constraint", "other"} {
		m.pgErrors.WithLabelValues(k)
	}
	return m
}

// Registry is the registry every metric of this app is in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// unmatched is the route label of requests no route matched (404s, and
// 405s for a known path): a raw path there would let any client add
// series.
const unmatched = "unmatched"

// Middleware counts and times every request by its Echo route pattern
// (/account/sessions/:id/revoke, never the id itself): the router sets the
// pattern only from registered routes, and a request no route matched is
// "unmatched", so the series are bounded by the routes, whatever paths
// clients send. Use it first (outside Recover), so it sees every request
// with the status the client got.
func (m *Metrics) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if m == nil {
			return next
		}
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil && !c.Response().Committed {
				// Render the error page now, so the status is final;
				// Echo skips a committed response later.
				c.Error(err)
			}
			route := c.Path()
			if route == "" {
				route = unmatched
			}
			s := m.requestSeries(requestKey{route, methodLabel(c.Request().Method), c.Response().Status})
			s.count.Inc()
			s.duration.Observe(time.Since(start).Seconds())
			return err
		}
	}
}

// requestSeries returns k's counter and histogram, made on first use.
func (m *Metrics) requestSeries(k requestKey) requestSeries {
	m.seriesMu.RLock()
	s, ok := m.series[k]
	m.seriesMu.RUnlock()
	if ok {
		return s
	}
	status := strconv.Itoa(k.status)
	s = requestSeries{
		count:    m.requests.WithLabelValues(k.route, k.method, status),
		duration: m.duration.WithLabelValues(k.route, k.method, status),
	}
	m.seriesMu.Lock()
	m.series[k] = s
	m.seriesMu.Unlock()
	return s
}

// methodLabel bounds the method label: any method clients invent is
// "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// SignIn counts a sign-in attempt with its result (Sign* constants).
func (m *Metrics) SignIn(result string) {
	if m != nil {
		m.signIns.WithLabelValues(result).Inc()
	}
}

// Throttled counts a request refused before password work (Throttle*).
func (m *Metrics) Throttled(reason string) {
	if m != nil {
		m.throttled.WithLabelValues(reason).Inc()
	}
}

// Revoked counts n sessions ended for reason.
func (m *Metrics) Revoked(reason string, n int) {
	if m != nil && n > 0 {
		m.revocations.WithLabelValues(reason).Add(float64(n))
	}
}

// RedisError counts a failed Redis command or dial; unavailable says
// whether it meant Redis could not serve (session.ErrUnavailable).
func (m *Metrics) RedisError(unavailable bool) {
	if m == nil {
		return
	}
	kind := "reply"
	if unavailable {
		kind = "unavailable"
	}
	m.redisErrors.WithLabelValues(kind).Inc()
}

// PostgresError counts a failed Postgres statement of kind "unavailable",
// "constraint" or "other".
func (m *Metrics) PostgresError(kind string) {
	if m != nil {
		m.pgErrors.WithLabelValues(kind).Inc()
	}
}

// PoolStats is a connection pool at one moment.
type PoolStats struct {
	InUse, Idle int // connections lent out, and open but waiting
	Max         int // the most the pool opens (0: no limit)
	// Waits is how many times a caller waited for a free connection, and
	// WaitTime how long in all, since start.
	Waits    int64
	WaitTime time.Duration
}

// WatchRedisPool exports the Redis pool that stats reads, at each scrape:
// the app's wiring provides it, so a change of Redis client changes only
// that function.
func (m *Metrics) WatchRedisPool(stats func() PoolStats) { m.watchPool("redis", stats) }

// WatchPostgresPool exports db's connection pool.
func (m *Metrics) WatchPostgresPool(db *sql.DB) {
	m.watchPool("postgres", func() PoolStats {
		s := db.Stats()
		return PoolStats{InUse: s.InUse, Idle: s.Idle, Max: s.MaxOpenConnections, Waits: s.WaitCount, WaitTime: s.WaitDuration}
	})
}

func (m *Metrics) watchPool(name string, stats func() PoolStats) {
	m.reg.MustRegister(&poolCollector{stats: stats,
		conns: prometheus.NewDesc("gatehouse_"+name+"_connections",
			"Open connections to "+name+", by state (in_use, idle).", []string{"state"}, nil),
		max: prometheus.NewDesc("gatehouse_"+name+"_connections_max",
			"The most connections to "+name+" one instance opens.", nil, nil),
		waits: prometheus.NewDesc("gatehouse_"+name+"_connection_waits_total",
			"Times a caller waited for a free "+name+" connection.", nil, nil),
		waitTime: prometheus.NewDesc("gatehouse_"+name+"_connection_wait_seconds_total",
			"Time callers spent waiting for a free "+name+" connection.", nil, nil),
	})
}

type poolCollector struct {
	stats                       func() PoolStats
	conns, max, waits, waitTime *prometheus.Desc
}

func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.conns
	ch <- p.max
	ch <- p.waits
	ch <- p.waitTime
}

func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.stats()
	ch <- prometheus.MustNewConstMetric(p.conns, prometheus.GaugeValue, float64(s.InUse), "in_use")
	ch <- prometheus.MustNewConstMetric(p.conns, prometheus.GaugeValue, float64(s.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(p.max, prometheus.GaugeValue, float64(s.Max))
	ch <- prometheus.MustNewConstMetric(p.waits, prometheus.CounterValue, float64(s.Waits))
	ch <- prometheus.MustNewConstMetric(p.waitTime, prometheus.CounterValue, s.WaitTime.Seconds())
}

// WatchWorkerLag exports how far a background worker is behind: the age of
// the oldest work handed to it and not yet done (0 when it is idle). The
// workers are named end_recorder, last_seen_writer, audit_writer; an
// e-mail outbox sender registers here as "outbox".
func (m *Metrics) WatchWorkerLag(worker string, lag func() time.Duration) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "gatehouse_worker_lag_seconds",
		Help:        "Age of the oldest work a background worker was given and has not finished (0: idle), by worker.",
		ConstLabels: prometheus.Labels{"worker": worker},
	}, func() float64 { return lag().Seconds() }))
}

// WatchCounter exports a counter kept elsewhere (read at each scrape).
func (m *Metrics) WatchCounter(name, help string, labels prometheus.Labels, read func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: name, Help: help, ConstLabels: labels,
	}, func() float64 { return float64(read()) }))
}

// activeSessionsMaxAge is how long a count of active sessions is reused:
// counting reads every active record, so a scrape every few seconds must
// not repeat it.
const activeSessionsMaxAge = 30 * time.Second

// WatchActiveSessions exports count's answer as gatehouse_active_sessions,
// counted at most every 30 s (a scrape in between gets the last count) and
// within 5 s; a count that fails exports nothing, and the error counter of
// its store says why.
func (m *Metrics) WatchActiveSessions(count func(ctx context.Context) (int64, error)) {
	m.reg.MustRegister(&cachedGauge{
		desc:  prometheus.NewDesc("gatehouse_active_sessions", "Sessions whose record is not ended (counted at most every 30 s; records of sessions that expired in Redis count until the sweep or a listing closes them).", nil, nil),
		count: count, maxAge: activeSessionsMaxAge,
	})
}

type cachedGauge struct {
	desc   *prometheus.Desc
	count  func(ctx context.Context) (int64, error)
	maxAge time.Duration

	mu    sync.Mutex
	at    time.Time
	value int64
}

func (g *cachedGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *cachedGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.at) >= g.maxAge {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := g.count(ctx)
		cancel()
		if err != nil {
			return
		}
		g.at, g.value = time.Now(), n
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(g.value))
}
