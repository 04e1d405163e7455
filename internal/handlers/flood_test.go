package handlers_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/password"
)

// TestSignInFloodMeasurement measures, rather than asserts, how a
// legitimate sign-in fares while one client floods sign-in (issue 11, item
// 5; docs/performance.md). It runs only when asked:
//
//	GATEHOUSE_FLOOD=1 go test -count=1 -run TestSignInFloodMeasurement -v ./internal/handlers/
//
// FLOOD_CONNS (700) flooding connections send wrong sign-ins, as fast as
// they are answered, from FLOOD_IPS (1) addresses (X-Forwarded-For through
// TRUST_PROXY); meanwhile one browser from another address signs in with
// the right password, one sign-in after another, for FLOOD_DURATION (20s).
// The app uses the production hasher limits. It logs the honest sign-ins'
// latencies and the flood's statuses. FLOOD_CONNS=0 gives the baseline.
func TestSignInFloodMeasurement(t *testing.T) {
	if os.Getenv("GATEHOUSE_FLOOD") == "" {
		t.Skip("a measurement: set GATEHOUSE_FLOOD=1 to run it")
	}
	conns := envInt(t, "FLOOD_CONNS", 700)
	ips := envInt(t, "FLOOD_IPS", 1)
	dur := 20 * time.Second
	if v := os.Getenv("FLOOD_DURATION"); v != "" {
		var err error
		if dur, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	env := apptest.NewWithHasher(t, password.NewHasher(), apptest.With("TRUST_PROXY", "true"),
		apptest.With("LOG_LEVEL", "warn"))
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")

	// The flood: raw keep-alive requests with a fixed CSRF cookie and token.
	csrf := env.Client(t).CSRFToken()
	transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer transport.CloseIdleConnections()
	flood := &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var stop atomic.Bool
	var mu sync.Mutex
	floodStatus := map[int]int{}
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			ip := fmt.Sprintf("10.0.%d.%d", i%ips/250, 1+i%ips%250)
			body := url.Values{"email": {fmt.Sprintf("user%d@example.com", i)}, "password": {"Summer2026!"}, "_csrf": {csrf}}.Encode()
			seen := map[int]int{}
			for !stop.Load() {
				req, _ := http.NewRequest(http.MethodPost, env.Server.URL+"/signin", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Forwarded-For", ip)
				req.AddCookie(&http.Cookie{Name: "gatehouse_csrf", Value: csrf})
				res, err := flood.Do(req)
				if err != nil {
					seen[-1]++
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				seen[res.StatusCode]++
			}
			mu.Lock()
			for k, v := range seen {
				floodStatus[k] += v
			}
			mu.Unlock()
		})
	}
	time.Sleep(2 * time.Second) // let the flood reach its steady state

	honest := env.Client(t)
	honest.Header.Set("X-Forwarded-For", "198.51.100.7")
	var lat []time.Duration
	honestStatus := map[int]int{}
	for end := time.Now().Add(dur); time.Now().Before(end); {
		start := time.Now()
		res := signInAttempt(honest, "ada@example.com", "analytical engine")
		lat = append(lat, time.Since(start))
		honestStatus[res.StatusCode]++
		honest.Post("/signout", nil)
	}
	stop.Store(true)
	wg.Wait()

	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	total := 0
	for _, v := range floodStatus {
		total += v
	}
	t.Logf("flood: %d connections from %d address(es), %v: %d requests (%.0f/s), statuses %v",
		conns, ips, dur, total, float64(total)/(dur.Seconds()+2), floodStatus)
	t.Logf("honest sign-ins from another address: %d, statuses %v; latency p50 %v, p90 %v, p99 %v, max %v",
		len(lat), honestStatus, pct(0.5).Round(time.Millisecond), pct(0.9).Round(time.Millisecond),
		pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}
