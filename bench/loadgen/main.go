// Command loadgen is Gatehouse's closed-loop HTTP load generator
// (docs/performance.md).
//
// C connections each send a request, read the whole response, and send
// the next, for a fixed duration after a warm-up. Every request carries a
// session cookie taken in turn from a tokens file (one token a line, as
// `web seed -tokens` and `floor -tokens` write them), or with -bearer an
// app's access token in an Authorization header, so each is a real
// authenticated request, spread over every session in the file. It
// reports requests per second, latency percentiles, and how many responses
// had an unexpected status and how many requests failed outright.
//
//	loadgen -url http://127.0.0.1:8080/account -tokens FILE [-cookie gatehouse_session | -bearer]
//	        [-c 16] [-d 20s] [-warmup 2s] [-expect 200-299]
//	        [-method POST -body 'email=seed{i}%40example.test&password=...' -i 1000]
//	        [-H 'Name: value']... [-label NAME -out FILE]
//
// In -body and -H, {i} becomes a number that cycles from 1 to -i, one per
// request (the same in both).
// Responses are read with net/http's parser on plain keep-alive
// connections: no client-side pooling or redirects, so the generator costs
// little CPU and measures the server.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

type config struct {
	target   *url.URL
	method   string
	body     string
	iMax     int
	cookie   string
	bearer   bool // send the tokens as "Authorization: Bearer", not as the cookie
	tokens   []string
	headers  []string
	expectLo int
	expectHi int
	keep     bool // keep the other cookies the server sets, as a browser does
}

// result is one worker's tally.
type result struct {
	lat    []time.Duration
	bad    int
	errs   int
	status map[int]int
}

func main() {
	rawURL := flag.String("url", "http://127.0.0.1:8080/account", "URL to request")
	method := flag.String("method", "GET", "request method")
	body := flag.String("body", "", "request body (a urlencoded form); {i} cycles from 1 to -i")
	iMax := flag.Int("i", 1, "upper bound of {i} in -body and -H")
	tokensFile := flag.String("tokens", "", "file of session tokens, one a line (none: no session cookie)")
	cookie := flag.String("cookie", "gatehouse_session", "name of the session cookie")
	bearer := flag.Bool("bearer", false, "send each token as an app's access token (Authorization: Bearer) instead of the session cookie")
	conns := flag.Int("c", 16, "connections (each one request at a time)")
	dur := flag.Duration("d", 20*time.Second, "how long to measure")
	warmup := flag.Duration("warmup", 2*time.Second, "how long to load before measuring")
	expect := flag.String("expect", "200-299", "statuses that count as success: a code or a range lo-hi")
	label := flag.String("label", "", "name of this run in -out")
	out := flag.String("out", "", "append a one-line key=value summary to this file")
	keep := flag.Bool("keep-cookies", true, "send back the cookies each connection was given, other than the session cookie (a browser's CSRF cookie, say)")
	pids := flag.String("pids", "", `comma-separated process ids (the server, Redis...): report each one's CPU time per request; "all" is the whole machine`)
	var hs headers
	flag.Var(&hs, "H", "extra request header 'Name: value' (repeatable)")
	flag.Parse()

	u, err := url.Parse(*rawURL)
	if err != nil || u.Host == "" {
		log.Fatalf("loadgen: bad -url %q", *rawURL)
	}
	cfg := config{target: u, method: *method, body: *body, iMax: max(*iMax, 1), cookie: *cookie, bearer: *bearer, headers: hs, keep: *keep}
	if cfg.expectLo, cfg.expectHi, err = parseExpect(*expect); err != nil {
		log.Fatalf("loadgen: -expect: %v", err)
	}
	if *tokensFile != "" {
		b, err := os.ReadFile(*tokensFile)
		if err != nil {
			log.Fatal(err)
		}
		cfg.tokens = strings.Fields(string(b))
		if len(cfg.tokens) == 0 {
			log.Fatalf("loadgen: no tokens in %s", *tokensFile)
		}
	}

	var next atomic.Uint64 // which token and {i} the next request uses
	var measuring, stop atomic.Bool
	results := make([]*result, *conns)
	var wg sync.WaitGroup
	for w := range results {
		r := &result{status: map[int]int{}}
		results[w] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker(&cfg, &next, &measuring, &stop, r)
		}()
	}
	procs := strings.FieldsFunc(*pids, func(r rune) bool { return r == ',' })
	time.Sleep(*warmup)
	cpu0 := cpuTimes(procs)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(*dur)
	stop.Store(true)
	elapsed := time.Since(start)
	cpu1 := cpuTimes(procs)
	wg.Wait()

	var all []time.Duration
	total := &result{status: map[int]int{}}
	for _, r := range results {
		all = append(all, r.lat...)
		total.bad += r.bad
		total.errs += r.errs
		for k, v := range r.status {
			total.status[k] += v
		}
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)-1))
		return float64(all[i]) / float64(time.Millisecond)
	}
	rps := float64(len(all)) / elapsed.Seconds()
	var codes []string
	for _, k := range slices.Sorted(func(yield func(int) bool) {
		for k := range total.status {
			if !yield(k) {
				return
			}
		}
	}) {
		codes = append(codes, fmt.Sprintf("%d:%d", k, total.status[k]))
	}
	fmt.Printf("%s %s  c=%d  %v\n", cfg.method, u, *conns, elapsed.Round(time.Millisecond))
	fmt.Printf("  requests %d  %.0f/s  bad %d  errors %d  statuses %s\n", len(all), rps, total.bad, total.errs, strings.Join(codes, " "))
	fmt.Printf("  latency ms  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", pct(0.50), pct(0.90), pct(0.99), pct(1))
	var cpu []string
	for i, p := range procs {
		us := 0.0
		if len(all) > 0 {
			us = (cpu1[i] - cpu0[i]).Seconds() * 1e6 / float64(len(all))
		}
		cpu = append(cpu, fmt.Sprintf("%.1f", us))
		fmt.Printf("  process %s: %.1f µs CPU per request\n", p, us)
	}
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(f, "label=%s rps=%.1f p50=%.3f p90=%.3f p99=%.3f max=%.3f n=%d bad=%d errors=%d statuses=%s cpu_us=%s\n",
			*label, rps, pct(0.50), pct(0.90), pct(0.99), pct(1), len(all), total.bad, total.errs, strings.Join(codes, ","),
			strings.Join(cpu, ","))
		f.Close()
	}
}

// cpuTimes returns the user+system CPU time each process has used so far
// (from /proc/PID/stat; 0 where it cannot be read).
func cpuTimes(pids []string) []time.Duration {
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		if pid == "all" {
			out[i] = machineCPU()
			continue
		}
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command name, which is in parentheses:
		// state is field 3, utime 14 and stime 15, in clock ticks (100 Hz
		// on Linux).
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[i] = time.Duration(ut+st) * 10 * time.Millisecond
	}
	return out
}

// machineCPU is the CPU time every CPU has spent busy (not idle or waiting
// for I/O), from /proc/stat, in clock ticks of 10 ms.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is counted in user already
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

func parseExpect(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if lo, err = strconv.Atoi(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if ok {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, err
		}
	}
	return lo, hi, nil
}

// request builds the bytes of request number n, sending the cookies in jar.
func (c *config) request(buf *bytes.Buffer, n uint64, jar map[string]string) {
	buf.Reset()
	fmt.Fprintf(buf, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-loadgen\r\n", c.method, c.target.RequestURI(), c.target.Host)
	var cookies []string
	if len(c.tokens) > 0 {
		token := c.tokens[n%uint64(len(c.tokens))]
		if c.bearer {
			fmt.Fprintf(buf, "Authorization: Bearer %s\r\n", token)
		} else {
			cookies = append(cookies, c.cookie+"="+token)
		}
	}
	for k, v := range jar {
		cookies = append(cookies, k+"="+v)
	}
	if len(cookies) > 0 {
		fmt.Fprintf(buf, "Cookie: %s\r\n", strings.Join(cookies, "; "))
	}
	i := strconv.FormatUint(n%uint64(c.iMax)+1, 10)
	for _, h := range c.headers {
		buf.WriteString(strings.ReplaceAll(h, "{i}", i))
		buf.WriteString("\r\n")
	}
	if c.body != "" || c.method == http.MethodPost {
		body := strings.ReplaceAll(c.body, "{i}", i)
		fmt.Fprintf(buf, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return
	}
	buf.WriteString("\r\n")
}

func worker(c *config, next *atomic.Uint64, measuring, stop *atomic.Bool, r *result) {
	var conn net.Conn
	var br *bufio.Reader
	var req bytes.Buffer
	jar := map[string]string{}
	fail := func() {
		if measuring.Load() {
			r.errs++
		}
		if conn != nil {
			conn.Close()
			conn = nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	for !stop.Load() {
		if conn == nil {
			var err error
			if conn, err = net.Dial("tcp", c.target.Host); err != nil {
				fail()
				continue
			}
			br = bufio.NewReaderSize(conn, 64<<10)
		}
		c.request(&req, next.Add(1)-1, jar)
		start := time.Now()
		if _, err := conn.Write(req.Bytes()); err != nil {
			fail()
			continue
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			fail()
			continue
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		lat := time.Since(start)
		if err != nil {
			fail()
			continue
		}
		if c.keep {
			for _, ck := range res.Cookies() {
				switch {
				case ck.Name == c.cookie:
				case ck.MaxAge < 0:
					delete(jar, ck.Name)
				default:
					jar[ck.Name] = ck.Value
				}
			}
		}
		if measuring.Load() && !stop.Load() {
			r.lat = append(r.lat, lat)
			r.status[res.StatusCode]++
			if res.StatusCode < c.expectLo || res.StatusCode > c.expectHi {
				r.bad++
			}
		}
		if res.Close {
			conn.Close()
			conn = nil
		}
	}
	if conn != nil {
		conn.Close()
	}
}
