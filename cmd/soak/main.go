// Command soak runs two Gatehouse instances (the real web binary, built
// from this module) against one fresh database and one fresh Redis key
// prefix, drives mixed traffic through both for a while, and reports what
// happened. It is not part of `go test`:
//
//	go run ./cmd/soak                 # ten minutes
//	go run ./cmd/soak -duration 1m    # a quick run
//	task soak -- -duration 1m
//
// Traffic: sign-ups, sign-ins, page views (profile, Devices, activity),
// revoking another of the user's sessions, and sign-outs, each request sent
// to either instance at random. Some new sessions are abandoned, so that
// idle expiry and the background sweep run too.
//
// The report gives requests and latencies per action, errors by kind, the
// sessions created against the records in Postgres, revokes and sign-outs
// against the cookies that still work afterwards (which must be none), and
// the memory (RSS) and threads of both processes at the start and the end.
// It exits 1 if an invariant was broken.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gomodule/redigo/redis"
	_ "github.com/jackc/pgx/v5/stdlib"
)

type options struct {
	duration    time.Duration
	workers     int
	think       time.Duration
	adminURL    string
	redisURL    string
	idle        time.Duration
	sweep       time.Duration
	abandon     float64
	maxPerUser  int
	web         string
	keep        bool
	logDir      string
	warmupUsers int
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to drive traffic")
	flag.IntVar(&o.workers, "workers", 6, "concurrent simulated users")
	flag.DurationVar(&o.think, "think", 20*time.Millisecond, "pause between a worker's actions")
	flag.StringVar(&o.adminURL, "database-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "Postgres to create the soak database in")
	flag.StringVar(&o.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis")
	flag.DurationVar(&o.idle, "idle", 2*time.Minute, "SESSION_IDLE_TIMEOUT of the instances (short, so abandoned sessions expire during the run)")
	flag.DurationVar(&o.sweep, "sweep", time.Minute, "SWEEP_INTERVAL of the instances")
	flag.Float64Var(&o.abandon, "abandon", 0.1, "share of new sessions never used again")
	flag.IntVar(&o.maxPerUser, "sessions-per-user", 5, "most live sessions the soak keeps per user")
	flag.StringVar(&o.web, "web", "", "a built web binary (default: build ./cmd/web)")
	flag.BoolVar(&o.keep, "keep", false, "keep the database and Redis keys afterwards")
	flag.StringVar(&o.logDir, "logs", "", "where the instances' logs go (default: a new temporary directory, kept)")
	flag.IntVar(&o.warmupUsers, "users", 10, "accounts signed up before the measured run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) (bool, error) {
	id := randomHex(4)
	if o.logDir == "" {
		d, err := os.MkdirTemp("", "gatehouse-soak-"+id+"-")
		if err != nil {
			return false, err
		}
		o.logDir = d
	}
	if o.web == "" {
		o.web = filepath.Join(o.logDir, "web")
		defer os.Remove(o.web) // the logs stay
		fmt.Fprintln(out, "building cmd/web ...")
		if b, err := exec.Command("go", "build", "-o", o.web, "github.com/gatehouse/gatehouse/cmd/web").CombinedOutput(); err != nil {
			return false, fmt.Errorf("go build: %v\n%s", err, b)
		}
	}

	// A fresh database and Redis prefix.
	admin, err := sql.Open("pgx", o.adminURL)
	if err != nil {
		return false, err
	}
	defer admin.Close()
	dbName := "gatehouse_soak_" + id
	if _, err := admin.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %q`, dbName)); err != nil {
		return false, fmt.Errorf("create database: %w", err)
	}
	u, _ := url.Parse(o.adminURL)
	u.Path = "/" + dbName
	dbURL := u.String()
	prefix := "soak:" + id + ":"
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.DialURL(o.redisURL) }, MaxIdle: 4}
	defer pool.Close()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return false, err
	}
	defer func() {
		db.Close()
		if o.keep {
			fmt.Fprintf(out, "kept database %s and Redis prefix %s\n", dbName, prefix)
			return
		}
		admin.Exec(fmt.Sprintf(`DROP DATABASE %q WITH (FORCE)`, dbName))
		deleteKeys(pool, prefix)
	}()

	// Two instances, started together: they migrate under the lock.
	env := []string{
		"DATABASE_URL=" + dbURL, "REDIS_URL=" + o.redisURL, "REDIS_PREFIX=" + prefix,
		"MIGRATE_ON_START=true", "SESSION_IDLE_TIMEOUT=" + o.idle.String(), "SWEEP_INTERVAL=" + o.sweep.String(),
		"SHUTDOWN_TIMEOUT=10s",
		// Every simulated browser comes from 127.0.0.1: the per-address
		// caps, meant for one client, are off.
		"SIGNUP_RATE_PER_IP=0", "PASSWORD_CONCURRENCY_PER_IP=0",
	}
	insts := make([]*instance, 2)
	for i := range insts {
		inst, err := startInstance(o.web, filepath.Join(o.logDir, fmt.Sprintf("web%d.log", i+1)), env)
		if err != nil {
			return false, err
		}
		insts[i] = inst
		defer inst.kill()
	}
	for _, inst := range insts {
		if err := inst.waitReady(30 * time.Second); err != nil {
			return false, err
		}
	}
	fmt.Fprintf(out, "instances on %s and %s (pids %d, %d); logs in %s\n",
		insts[0].addr, insts[1].addr, insts[0].cmd.Process.Pid, insts[1].cmd.Process.Pid, o.logDir)

	s := newSoak(o, insts)
	// Warm-up, unmeasured: the first accounts.
	for range o.warmupUsers {
		s.signUp(false)
	}
	s.resetCounters()
	startMem := []procStatus{readStatus(insts[0].pid()), readStatus(insts[1].pid())}
	fmt.Fprintf(out, "driving traffic for %v with %d workers ...\n", o.duration, o.workers)
	began := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	var wg sync.WaitGroup
	for range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(runCtx)
		}()
	}
	progress := time.NewTicker(time.Minute)
	go func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-progress.C:
				fmt.Fprintf(out, "  %v: %d requests, %d errors\n", time.Since(began).Round(time.Second), s.requests.Load(), s.errorCount())
			}
		}
	}()
	wg.Wait()
	cancel()
	progress.Stop()
	elapsed := time.Since(began)
	measured := s.requests.Load()
	endMem := []procStatus{readStatus(insts[0].pid()), readStatus(insts[1].pid())}

	// Checks after the run, on a quiet system.
	ctx = context.WithoutCancel(ctx)
	deadWorking := s.recheckDead()
	liveBroken, liveUnlisted := s.recheckLive()
	records, byReason, err := countRecords(ctx, db)
	if err != nil {
		return false, err
	}
	conn := pool.Get()
	pending, _ := redis.Int(conn.Do("SCARD", prefix+"ending")) // users with ends not yet recorded
	conn.Close()

	// Graceful stop of both instances.
	exits := make([]string, len(insts))
	for i, inst := range insts {
		exits[i] = inst.stop(15 * time.Second)
	}
	logCounts := make([]map[string]int, len(insts))
	for i, inst := range insts {
		logCounts[i] = countLogLevels(inst.logPath)
	}

	ok := s.report(out, reportData{
		elapsed: elapsed, measured: measured, startMem: startMem, endMem: endMem, deadWorking: deadWorking, liveBroken: liveBroken, liveUnlisted: liveUnlisted,
		records: records, byReason: byReason, pendingEnds: pending, exits: exits, logCounts: logCounts, insts: insts,
	})
	return ok, nil
}

// ---- instances ----

type instance struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	logFile *os.File
	done    chan error
}

func startInstance(bin, logPath string, env []string) (*instance, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "ADDR=" + addr, "BASE_URL=http://" + addr}, env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	inst := &instance{cmd: cmd, addr: addr, logPath: logPath, logFile: f, done: make(chan error, 1)}
	go func() { inst.done <- cmd.Wait() }()
	return inst, nil
}

func (i *instance) pid() int     { return i.cmd.Process.Pid }
func (i *instance) base() string { return "http://" + i.addr }

func (i *instance) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if res, err := http.Get(i.base() + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-i.done:
			i.done <- err
			return fmt.Errorf("instance on %s exited at start-up (%v); see %s", i.addr, err, i.logPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("instance on %s not ready after %v; see %s", i.addr, d, i.logPath)
}

// stop sends SIGTERM and says how the process ended.
func (i *instance) stop(d time.Duration) string {
	i.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-i.done:
		i.done <- err
		if err == nil {
			return "exit 0"
		}
		return err.Error()
	case <-time.After(d):
		return fmt.Sprintf("still running %v after SIGTERM", d)
	}
}

func (i *instance) kill() {
	select {
	case err := <-i.done:
		i.done <- err
	default:
		i.cmd.Process.Kill()
		<-i.done
	}
	i.logFile.Close()
}

type procStatus struct{ rssKB, hwmKB, threads int }

// readStatus reads VmRSS, VmHWM (peak RSS) and Threads from /proc.
func readStatus(pid int) procStatus {
	var s procStatus
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		var n int
		fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &n)
		switch k {
		case "VmRSS":
			s.rssKB = n
		case "VmHWM":
			s.hwmKB = n
		case "Threads":
			s.threads = n
		}
	}
	return s
}

func countLogLevels(path string) map[string]int {
	counts := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return counts
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, lvl := range []string{"WARN", "ERROR"} {
			if strings.Contains(line, "level="+lvl) {
				msg := line
				if i := strings.Index(line, "msg="); i >= 0 {
					msg = line[i+4:]
					if j := strings.Index(msg, " "); j > 0 && !strings.HasPrefix(msg, `"`) {
						msg = msg[:j]
					} else if strings.HasPrefix(msg, `"`) {
						if j := strings.Index(msg[1:], `"`); j >= 0 {
							msg = msg[:j+2]
						}
					}
				}
				counts[lvl+" "+msg]++
			}
		}
	}
	return counts
}

// ---- traffic ----

type user struct {
	email, password string
	live            int // live sessions the soak holds
}

type browser struct {
	http *http.Client
	user *user
	id   string // public session id, once read from the Devices page
	// alive is when a request last proved the session live (its idle
	// timeout runs from there). The soak never uses a browser within
	// staleMargin of its idle timeout: it retires it as expired instead,
	// so any session that stops working early is an error.
	alive time.Time
}

type actionStats struct {
	n, failed int
	lat       []time.Duration
}

type soak struct {
	o     options
	insts []*instance

	mu        sync.Mutex
	users     []*user
	pool      []*browser // live, not in use
	dead      []string   // tokens of revoked or signed-out sessions
	abandoned []*browser
	actions   map[string]*actionStats
	errors    map[string]int

	requests                                          atomic.Int64
	created, revoked, signedOut, expired, warmCreated atomic.Int64
	revokedWorked                                     atomic.Int64 // checked at once, on the other instance
	userSeq                                           atomic.Int64
}

func newSoak(o options, insts []*instance) *soak {
	return &soak{o: o, insts: insts, actions: map[string]*actionStats{}, errors: map[string]int{}}
}

func (s *soak) resetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions = map[string]*actionStats{}
	s.errors = map[string]int{}
	s.requests.Store(0)
	s.warmCreated.Store(s.created.Load())
}

func (s *soak) errorCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.errors {
		n += c
	}
	return n
}

func (s *soak) fail(kind string) {
	s.mu.Lock()
	s.errors[kind]++
	s.mu.Unlock()
}

func (s *soak) inst() *instance { return s.insts[mrand.IntN(len(s.insts))] }

func (s *soak) other(i *instance) *instance {
	if i == s.insts[0] {
		return s.insts[1]
	}
	return s.insts[0]
}

func newBrowser(u *user) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{user: u, http: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// cookie returns the browser's cookie name (cookies ignore ports, so one
// jar serves both instances).
func (b *browser) cookie(name string) string {
	for _, ck := range b.http.Jar.Cookies(&url.URL{Scheme: "http", Host: "127.0.0.1"}) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

type response struct {
	status   int
	location string
	body     string
}

// toSignIn reports whether the response sends the browser to sign in: its
// session (if it had one) no longer works.
func (r *response) toSignIn() bool {
	return r.status == http.StatusSeeOther && strings.HasPrefix(r.location, "/signin")
}

// staleMargin keeps the soak clear of sessions about to time out.
const staleMargin = 15 * time.Second

// do sends one request and records it under action; a transport error is
// an error of kind "<action>: transport".
func (s *soak) do(action string, b *browser, inst *instance, method, path string, form url.Values) (*response, error) {
	var body io.Reader
	if form != nil {
		if form.Get("_csrf") == "" {
			form.Set("_csrf", b.cookie("gatehouse_csrf"))
		}
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, inst.base()+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 soak")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	start := time.Now()
	res, err := b.http.Do(req)
	lat := time.Since(start)
	s.requests.Add(1)
	s.mu.Lock()
	st := s.actions[action]
	if st == nil {
		st = &actionStats{}
		s.actions[action] = st
	}
	st.n++
	st.lat = append(st.lat, lat)
	if err != nil {
		st.failed++
		s.errors[action+": transport error"]++
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := &response{status: res.StatusCode, location: res.Header.Get("Location"), body: string(raw)}
	if !r.toSignIn() {
		b.alive = start
	}
	return r, nil
}

// expect records an unexpected status as an error of its kind.
func (s *soak) expect(action string, r *response, want int) bool {
	if r == nil {
		return false
	}
	if r.status == want {
		return true
	}
	s.mu.Lock()
	s.actions[action].failed++
	kind := fmt.Sprintf("%s: status %d", action, r.status)
	if r.status == http.StatusSeeOther {
		kind += " to " + strings.SplitN(r.location, "?", 2)[0]
	}
	s.errors[kind]++
	s.mu.Unlock()
	return false
}

func (s *soak) work(ctx context.Context) {
	for ctx.Err() == nil {
		switch r := mrand.Float64(); {
		case r < 0.04:
			s.signUp(true)
		case r < 0.14:
			s.signIn()
		case r < 0.22:
			s.revoke()
		case r < 0.27:
			s.signOut()
		default:
			s.view()
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.o.think):
		}
	}
}

// keep puts a new signed-in browser in the pool, or abandons it.
func (s *soak) keep(b *browser, mayAbandon bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mayAbandon && mrand.Float64() < s.o.abandon {
		s.abandoned = append(s.abandoned, b)
		return
	}
	b.user.live++
	s.pool = append(s.pool, b)
}

func (s *soak) signUp(mayAbandon bool) {
	n := s.userSeq.Add(1)
	u := &user{email: fmt.Sprintf("soak%d@example.com", n), password: "soak password " + randomHex(4)}
	b := newBrowser(u)
	inst := s.inst()
	if r, err := s.do("GET /signup", b, inst, http.MethodGet, "/signup", nil); err != nil || !s.expect("GET /signup", r, 200) {
		return
	}
	r, err := s.do("POST /signup", b, s.inst(), http.MethodPost, "/signup",
		url.Values{"name": {"Soak " + fmt.Sprint(n)}, "email": {u.email}, "password": {u.password}})
	if err != nil || !s.expect("POST /signup", r, http.StatusSeeOther) {
		return
	}
	s.created.Add(1)
	s.mu.Lock()
	s.users = append(s.users, u)
	s.mu.Unlock()
	s.keep(b, mayAbandon)
}

func (s *soak) signIn() {
	s.mu.Lock()
	var candidates []*user
	for _, u := range s.users {
		if u.live < s.o.maxPerUser {
			candidates = append(candidates, u)
		}
	}
	s.mu.Unlock()
	if len(candidates) == 0 {
		s.view()
		return
	}
	u := candidates[mrand.IntN(len(candidates))]
	b := newBrowser(u)
	if r, err := s.do("GET /signin", b, s.inst(), http.MethodGet, "/signin", nil); err != nil || !s.expect("GET /signin", r, 200) {
		return
	}
	r, err := s.do("POST /signin", b, s.inst(), http.MethodPost, "/signin", url.Values{"email": {u.email}, "password": {u.password}})
	if err != nil || !s.expect("POST /signin", r, http.StatusSeeOther) {
		return
	}
	s.created.Add(1)
	s.keep(b, true)
}

// checkout takes a random live browser out of the pool (nil if none);
// checkin puts it back. Browsers idle for nearly the idle timeout are
// retired on the way, as expired: the soak does not race the timeout.
func (s *soak) checkout() *browser {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.pool) > 0 {
		i := mrand.IntN(len(s.pool))
		b := s.pool[i]
		s.pool[i] = s.pool[len(s.pool)-1]
		s.pool = s.pool[:len(s.pool)-1]
		if !s.stale(b) {
			return b
		}
		s.expired.Add(1)
		b.user.live--
	}
	return nil
}

// stale reports whether b's session is within staleMargin of its idle
// timeout (or past it).
func (s *soak) stale(b *browser) bool { return time.Since(b.alive) > s.o.idle-staleMargin }

// checkoutSibling takes a browser of the same user as b, if the pool has
// one that is not stale.
func (s *soak) checkoutSibling(b *browser) *browser {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.pool {
		if o.user == b.user && !s.stale(o) {
			s.pool = slices.Delete(s.pool, i, i+1)
			return o
		}
	}
	return nil
}

func (s *soak) checkin(bs ...*browser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pool = append(s.pool, bs...)
}

// retire removes a browser whose session ended from the user's count, and
// keeps its token to check later that it stays dead.
func (s *soak) retire(b *browser, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b.user.live--
	if token != "" {
		s.dead = append(s.dead, token)
	}
}

// lost handles a session that sent its browser to sign in. The soak only
// uses sessions well within their idle timeout, so this is an error.
func (s *soak) lost(action string, b *browser) {
	s.fail(action + ": session lost (303 to sign in)")
	s.retire(b, "")
}

func (s *soak) view() {
	b := s.checkout()
	if b == nil {
		s.signUp(true)
		return
	}
	path := []string{"/account", "/account", "/account/sessions", "/account/activity"}[mrand.IntN(4)]
	action := "GET " + path
	r, err := s.do(action, b, s.inst(), http.MethodGet, path, nil)
	if err != nil {
		s.checkin(b)
		return
	}
	if r.toSignIn() {
		s.lost(action, b)
		return
	}
	if s.expect(action, r, 200) && path == "/account/sessions" {
		s.readID(b, r)
	}
	s.checkin(b)
}

func (s *soak) readID(b *browser, r *response) {
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(r.body))
	if err != nil {
		return
	}
	if id, ok := doc.Find(`tr[data-session-id][data-current="true"]`).Attr("data-session-id"); ok {
		b.id = id
	}
}

// sessionID makes sure b knows its public session id. It returns false if
// it cannot, and lost is set when b's session no longer works (b is then
// retired).
func (s *soak) sessionID(b *browser) (ok, lost bool) {
	if b.id != "" {
		return true, false
	}
	r, err := s.do("GET /account/sessions", b, s.inst(), http.MethodGet, "/account/sessions", nil)
	if err != nil {
		return false, false
	}
	if r.toSignIn() {
		s.lost("GET /account/sessions", b)
		return false, true
	}
	if !s.expect("GET /account/sessions", r, 200) {
		return false, false
	}
	s.readID(b, r)
	return b.id != "", false
}

// works replays token, as a stolen or stale cookie would be, and reports
// whether it is signed in.
func (s *soak) works(inst *instance, token string) (bool, error) {
	req, _ := http.NewRequest(http.MethodGet, inst.base()+"/account", nil)
	req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: token})
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		return false, err
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK, nil
}

func (s *soak) revoke() {
	b := s.checkout()
	if b == nil {
		s.signUp(true)
		return
	}
	victim := s.checkoutSibling(b)
	if victim == nil {
		s.checkin(b)
		s.view()
		return
	}
	if ok, lost := s.sessionID(victim); !ok {
		if !lost {
			s.checkin(victim)
		}
		s.checkin(b)
		return
	}
	token := victim.cookie("gatehouse_session")
	inst := s.inst()
	path := "/account/sessions/" + victim.id + "/revoke"
	r, err := s.do("POST revoke", b, inst, http.MethodPost, path, url.Values{})
	if err == nil && r.status == http.StatusSeeOther && strings.HasPrefix(r.location, "/account/confirm") {
		// Re-authentication ("sudo mode"): confirm the password, then again.
		cr, cerr := s.do("POST /account/confirm", b, inst, http.MethodPost, "/account/confirm", url.Values{"password": {b.user.password}})
		if cerr == nil && s.expect("POST /account/confirm", cr, http.StatusSeeOther) {
			r, err = s.do("POST revoke", b, inst, http.MethodPost, path, url.Values{})
		}
	}
	if err == nil && r.toSignIn() {
		// The revoker's own session no longer works: nothing was revoked.
		s.lost("POST revoke", b)
		s.checkin(victim)
		return
	}
	if err != nil || !s.expect("POST revoke", r, http.StatusSeeOther) || r.location != "/account/sessions" {
		if err == nil && r.status == http.StatusSeeOther {
			s.fail("POST revoke: 303 to " + r.location)
		}
		s.checkin(b, victim)
		return
	}
	s.revoked.Add(1)
	s.retire(victim, token)
	// Final on the other instance at once.
	if ok, err := s.works(s.other(inst), token); err == nil && ok {
		s.revokedWorked.Add(1)
		s.fail("revoked session still works on the other instance")
	}
	s.checkin(b)
}

func (s *soak) signOut() {
	b := s.checkout()
	if b == nil {
		s.signUp(true)
		return
	}
	token := b.cookie("gatehouse_session")
	inst := s.inst()
	r, err := s.do("POST /signout", b, inst, http.MethodPost, "/signout", url.Values{})
	if err != nil || !s.expect("POST /signout", r, http.StatusSeeOther) {
		s.checkin(b)
		return
	}
	s.signedOut.Add(1)
	s.retire(b, token)
	if ok, err := s.works(s.other(inst), token); err == nil && ok {
		s.revokedWorked.Add(1)
		s.fail("signed-out session still works on the other instance")
	}
}

// recheckDead replays every revoked or signed-out cookie on both
// instances and counts those that work.
func (s *soak) recheckDead() int {
	n := 0
	for _, token := range s.dead {
		for _, inst := range s.insts {
			if ok, err := s.works(inst, token); err == nil && ok {
				n++
			}
		}
	}
	return n
}

// recheckLive counts the live browsers (not abandoned, not idle past the
// timeout) that are no longer signed in, or whose own session is not
// listed as active on their Devices page (its record ended while it works).
func (s *soak) recheckLive() (broken, unlisted int) {
	for _, b := range s.pool {
		if s.stale(b) {
			continue
		}
		r, err := s.do("GET /account/sessions", b, s.inst(), http.MethodGet, "/account/sessions", nil)
		if err != nil || r.status != http.StatusOK {
			broken++
			continue
		}
		b.id = ""
		if s.readID(b, r); b.id == "" {
			unlisted++
		}
	}
	return broken, unlisted
}

func countRecords(ctx context.Context, db *sql.DB) (int, map[string]int, error) {
	rows, err := db.QueryContext(ctx, `SELECT coalesce(end_reason, 'active'), count(*) FROM sessions GROUP BY 1`)
	if err != nil {
		return 0, nil, fmt.Errorf("count records: %w", err)
	}
	defer rows.Close()
	by := map[string]int{}
	total := 0
	for rows.Next() {
		var reason string
		var n int
		if err := rows.Scan(&reason, &n); err != nil {
			return 0, nil, err
		}
		by[reason] = n
		total += n
	}
	return total, by, rows.Err()
}

// ---- report ----

type reportData struct {
	elapsed          time.Duration
	measured         int64 // requests during the run, not counting the final checks
	liveUnlisted     int
	startMem, endMem []procStatus
	deadWorking      int
	liveBroken       int
	records          int
	byReason         map[string]int
	pendingEnds      int
	exits            []string
	logCounts        []map[string]int
	insts            []*instance
}

func (s *soak) report(out io.Writer, d reportData) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := true
	check := func(good bool) string {
		if good {
			return "ok"
		}
		ok = false
		return "FAIL"
	}
	total := d.measured
	fmt.Fprintf(out, "\n## Soak: %v, %d workers, 2 instances\n\n", d.elapsed.Round(time.Second), s.o.workers)
	fmt.Fprintf(out, "%d requests (%.1f/s) after a warm-up of %d sign-ups; the table also counts the %d requests of the final checks.\n\n",
		total, float64(total)/d.elapsed.Seconds(), s.o.warmupUsers, s.requests.Load()-total)
	fmt.Fprintf(out, "| action | requests | unexpected | p50 | p95 | p99 | max |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	names := make([]string, 0, len(s.actions))
	for name := range s.actions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		a := s.actions[name]
		slices.Sort(a.lat)
		fmt.Fprintf(out, "| %s | %d | %d | %s | %s | %s | %s |\n", name, a.n, a.failed,
			pct(a.lat, 50), pct(a.lat, 95), pct(a.lat, 99), pct(a.lat, 100))
	}
	fmt.Fprintf(out, "\nErrors by kind:")
	if len(s.errors) == 0 {
		fmt.Fprintf(out, " none.\n")
	} else {
		fmt.Fprintln(out)
		kinds := make([]string, 0, len(s.errors))
		for k := range s.errors {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			fmt.Fprintf(out, "- %s: %d\n", k, s.errors[k])
		}
	}
	created := s.created.Load()
	fmt.Fprintf(out, "\n| invariant | figures | |\n| --- | --- | --- |\n")
	fmt.Fprintf(out, "| every session created has a record | %d sessions created (%d in the warm-up), %d records | %s |\n",
		created, s.warmCreated.Load(), d.records, check(int64(d.records) == created))
	fmt.Fprintf(out, "| every revoke is recorded | %d revokes, %d records ended revoked_by_user | %s |\n",
		s.revoked.Load(), d.byReason["revoked_by_user"], check(int64(d.byReason["revoked_by_user"]) == s.revoked.Load()))
	fmt.Fprintf(out, "| every sign-out is recorded | %d sign-outs, %d records ended signed_out | %s |\n",
		s.signedOut.Load(), d.byReason["signed_out"], check(int64(d.byReason["signed_out"]) == s.signedOut.Load()))
	fmt.Fprintf(out, "| revoked or signed-out sessions that still work | %d at once on the other instance; %d of %d cookies × 2 instances at the end | %s |\n",
		s.revokedWorked.Load(), d.deadWorking, len(s.dead), check(s.revokedWorked.Load() == 0 && d.deadWorking == 0))
	fmt.Fprintf(out, "| live sessions that stopped working | %d of %d | %s |\n", d.liveBroken, len(s.pool), check(d.liveBroken == 0))
	fmt.Fprintf(out, "| live sessions not listed as active on their Devices page | %d | %s |\n", d.liveUnlisted, check(d.liveUnlisted == 0))
	fmt.Fprintf(out, "| users with ends waiting for their record | %d | %s |\n", d.pendingEnds, check(d.pendingEnds == 0))
	fmt.Fprintf(out, "| no 5xx, no transport errors | %d | %s |\n", s.serverErrors(), check(s.serverErrors() == 0))
	fmt.Fprintf(out, "\nRecords by end: %s. Abandoned sessions: %d; sessions left idle until their timeout (retired by the soak, not used again): %d.\n",
		formatCounts(d.byReason), len(s.abandoned), s.expired.Load())

	fmt.Fprintf(out, "\n| process | RSS at start | RSS at end | peak RSS | threads start → end | exit on SIGTERM |\n| --- | ---: | ---: | ---: | --- | --- |\n")
	for i := range d.insts {
		fmt.Fprintf(out, "| web%d | %s | %s | %s | %d → %d | %s |\n", i+1, mb(d.startMem[i].rssKB), mb(d.endMem[i].rssKB),
			mb(d.endMem[i].hwmKB), d.startMem[i].threads, d.endMem[i].threads, d.exits[i])
		if d.exits[i] != "exit 0" {
			ok = false
		}
	}
	fmt.Fprintf(out, "\nGoroutines are not reported: the app has no debug endpoint; RSS and OS threads come from /proc/<pid>/status.\n")
	for i, counts := range d.logCounts {
		fmt.Fprintf(out, "\nweb%d log warnings and errors: %s\n", i+1, formatCounts(counts))
	}
	if ok {
		fmt.Fprintln(out, "\nRESULT: every invariant held.")
	} else {
		fmt.Fprintln(out, "\nRESULT: FAILED (see FAIL above).")
	}
	return ok
}

// serverErrors counts 5xx answers and transport errors. Callers hold mu.
func (s *soak) serverErrors() int {
	n := 0
	for k, c := range s.errors {
		if strings.Contains(k, "status 5") || strings.Contains(k, "transport") {
			n += c
		}
	}
	return n
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func pct(sorted []time.Duration, p float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	d := sorted[i]
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func mb(kb int) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

func deleteKeys(pool *redis.Pool, prefix string) {
	conn := pool.Get()
	defer conn.Close()
	cursor := 0
	for {
		vals, err := redis.Values(conn.Do("SCAN", cursor, "MATCH", prefix+"*", "COUNT", 1000))
		if err != nil {
			return
		}
		cursor, _ = redis.Int(vals[0], nil)
		keys, _ := redis.Strings(vals[1], nil)
		for _, k := range keys {
			conn.Do("DEL", k)
		}
		if cursor == 0 {
			return
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("no randomness"))
	}
	return hex.EncodeToString(b)
}
