package session_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// A load drives an app the way many browsers do while a test breaks or
// reshapes its Redis: signed-in GETs of /account from several goroutines
// over every session (revoked ones too), sign-ins, and revokes of one
// session from another of the same user. Every request is sent with the
// cookie as it was, not through a cookie jar, so a revoked cookie keeps
// being replayed. It records every answer and the rules each broke:
//
//   - no answer is a 500 (or anything but 200, 303 and 503);
//   - no request started after a revoke was answered is authenticated,
//     unless the revoke was answered before a failover without the
//     replicas' acknowledgement (docs/reliability.md: only then may a
//     failover undo it; such resurrections are counted, not failed);
//   - a sign-in or revoke either succeeds or answers 503.
type load struct {
	t    *testing.T
	env  *apptest.Env
	http *http.Client
	pass string

	mu       sync.Mutex
	sessions []*loadSession
	results  []loadResult
	broken   []string // rules broken, with what broke them
	// resurrected counts authenticated requests for revokes that were
	// not acknowledged by the replicas before a failover.
	resurrected int
	signIns     map[int]int // answers to sign-ins, by status
	revokes     map[int]int // answers to revokes, by status
	// revokerAnonymous are the revokers whose revoke was answered with
	// the sign-in page.
	revokerAnonymous []*loadSession
	// notFound are the victims whose revoke answered 404.
	notFound []*loadSession

	// revokeMu makes revokes one at a time, so that the manager's count
	// of unacknowledged revokes says which revoke missed.
	revokeMu sync.Mutex
	// killedAt is when the test broke Redis in a way that may lose
	// unacknowledged writes (zero: not yet).
	killedAt atomic.Pointer[time.Time]
	// keep is how many live sessions of a user the load's revokes leave
	// (set before start).
	keep     int
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

type loadSession struct {
	cookie string
	user   string // email
	id     string // public id, "" until known
	// signing is when its sign-in was sent, signedAt when it was
	// answered.
	signing, signedAt time.Time
	// revoked is when a revoke of it was answered; acked whether the
	// replicas acknowledged that revoke; uncertain that a revoke of it
	// failed (503), so it may or may not have ended.
	revoked   time.Time
	acked     bool
	uncertain bool
}

type loadResult struct {
	s          *loadSession
	start, end time.Time
	status     int
}

const loadPassword = "analytical engine"

// newLoad signs up users (one session each) and signs perUser-1 more
// browsers in to each.
func newLoad(t *testing.T, env *apptest.Env, users, perUser int) *load {
	t.Helper()
	l := &load{t: t, env: env, pass: loadPassword, keep: 5, signIns: map[int]int{}, revokes: map[int]int{}, stop: make(chan struct{}),
		http: &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	for u := range users {
		email := fmt.Sprintf("user%d@example.com", u)
		c := env.Client(t)
		c.SignUp(fmt.Sprintf("User %d", u), email, l.pass)
		l.add(&loadSession{cookie: c.SessionToken(), user: email, signedAt: time.Now()})
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, 2) // PASSWORD_CONCURRENCY_PER_IP is 4
	for u := range users {
		for range perUser - 1 {
			wg.Go(func() {
				slots <- struct{}{}
				defer func() { <-slots }()
				if s, status := l.signIn(fmt.Sprintf("user%d@example.com", u)); s == nil {
					t.Errorf("sign-in before the load: %d", status)
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return l
}

func (l *load) add(s *loadSession) {
	if id, err := l.publicID(s); err == nil {
		s.id = id
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sessions = append(l.sessions, s)
}

// publicID reads the session's public id from its owner key.
func (l *load) publicID(s *loadSession) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	owner, err := l.env.App.Redis.Get(ctx, l.env.App.Sessions.OwnerKey(s.cookie)).Result()
	if err != nil {
		return "", err
	}
	_, id, _ := strings.Cut(owner, ":")
	return id, nil
}

func (l *load) breaks(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.broken) < 50 {
		l.broken = append(l.broken, fmt.Sprintf(format, args...))
	}
}

// do sends one request with the session cookie (if any) and a CSRF
// cookie, and returns the status and the Location header.
func (l *load) do(method, path, cookie string, form url.Values) (int, string, error) {
	var body io.Reader
	if form != nil {
		form.Set("_csrf", "loadtestcsrftokenloadtestcsrftok")
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, l.env.Server.URL+path, body)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("User-Agent", apptest.DefaultUserAgent)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.AddCookie(&http.Cookie{Name: "gatehouse_csrf", Value: "loadtestcsrftokenloadtestcsrftok"})
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: cookie})
	}
	res, err := l.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	for _, c := range res.Cookies() {
		if c.Name == "gatehouse_session" && c.Value != "" && method == http.MethodPost && path == "/signin" {
			return res.StatusCode, c.Value, nil
		}
	}
	return res.StatusCode, res.Header.Get("Location"), nil
}

// get fetches /account as s and checks the answer against the rules.
func (l *load) get(s *loadSession) int {
	start := time.Now()
	status, _, err := l.do(http.MethodGet, "/account", s.cookie, nil)
	end := time.Now()
	if err != nil {
		l.breaks("GET /account: %v", err)
		return 0
	}
	l.mu.Lock()
	l.results = append(l.results, loadResult{s: s, start: start, end: end, status: status})
	revoked, acked := s.revoked, s.acked
	l.mu.Unlock()
	switch {
	case status != http.StatusOK && status != http.StatusSeeOther && status != http.StatusServiceUnavailable:
		l.breaks("GET /account answered %d", status)
	case status == http.StatusOK && !revoked.IsZero() && start.After(revoked):
		if killed := l.killedAt.Load(); !acked && killed != nil && revoked.Before(*killed) {
			l.mu.Lock()
			l.resurrected++
			l.mu.Unlock()
			return status
		}
		l.breaks("a request started %v after its session's revoke was answered (acknowledged: %v) was authenticated",
			start.Sub(revoked), acked)
	}
	return status
}

// signIn signs a new browser in to user's account; it returns the new
// session, or nil and the status when the sign-in failed.
func (l *load) signIn(user string) (*loadSession, int) {
	start := time.Now()
	status, cookie, err := l.do(http.MethodPost, "/signin", "", url.Values{"email": {user}, "password": {l.pass}})
	if err != nil {
		l.breaks("POST /signin: %v", err)
		return nil, 0
	}
	l.mu.Lock()
	l.signIns[status]++
	l.mu.Unlock()
	switch {
	case status == http.StatusSeeOther && strings.Contains(cookie, "."):
		s := &loadSession{cookie: cookie, user: user, signing: start, signedAt: time.Now()}
		l.add(s)
		return s, status
	case status == http.StatusServiceUnavailable && cookie == "":
		// Failed cleanly: no cookie. (publicID of the half-done
		// sign-in cannot be checked here; see the final checks.)
		return nil, status
	default:
		l.breaks("POST /signin answered %d with session cookie %q", status, cookie)
		return nil, status
	}
}

// revoke ends victim from another session of its user, as the Devices
// page does; it reports whether the revoke was answered as done.
func (l *load) revoke(by, victim *loadSession) bool {
	l.revokeMu.Lock()
	defer l.revokeMu.Unlock()
	return l.revokeLocked(by, victim)
}

// revokeLocked is revoke for a caller holding revokeMu.
func (l *load) revokeLocked(by, victim *loadSession) bool {
	if !l.live(by) || !l.live(victim) {
		return false // revoked while this revoke waited for its turn
	}
	if victim.id == "" {
		id, err := l.publicID(victim)
		if err != nil {
			return false
		}
		l.mu.Lock()
		victim.id = id
		l.mu.Unlock()
	}
	misses := l.env.App.Sessions.RevokeReplicationMisses()
	status, loc, err := l.do(http.MethodPost, "/account/sessions/"+victim.id+"/revoke", by.cookie, url.Values{})
	end := time.Now()
	if err != nil {
		l.breaks("POST revoke: %v", err)
		return false
	}
	l.mu.Lock()
	l.revokes[status]++
	switch {
	case status == http.StatusSeeOther && loc == "/account/sessions":
		victim.revoked = end
		victim.acked = l.env.App.Sessions.RevokeReplicationMisses() == misses
		l.mu.Unlock()
		return true
	case status == http.StatusServiceUnavailable:
		victim.uncertain = true
	case status == http.StatusSeeOther && strings.HasPrefix(loc, "/signin"):
		// The revoker's own session was not authenticated: only a
		// session lost to a failover may be (the tests count these).
		l.revokerAnonymous = append(l.revokerAnonymous, by)
	case status == http.StatusNotFound:
		// The victim is not a live session of the user: only one lost
		// to a failover may be, and the tests' final checks say whether
		// it might have been.
		l.notFound = append(l.notFound, victim)
	default:
		l.mu.Unlock()
		l.breaks("POST revoke answered %d (Location %q)", status, loc)
		return false
	}
	l.mu.Unlock()
	return false
}

// snapshot returns the sessions as they are now.
func (l *load) snapshot() []*loadSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sessions)
}

// live reports whether s has not been revoked (or tried to be).
func (l *load) live(s *loadSession) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return s.revoked.IsZero() && !s.uncertain
}

// start runs getters goroutines of GETs, one of sign-ins (users picked
// by pick) and one of revokes, until Stop.
func (l *load) start(getters int, signInEvery, revokeEvery time.Duration) {
	l.t.Cleanup(l.Stop)
	loop := func(every time.Duration, f func()) {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(every):
				}
				f()
			}
		})
	}
	for range getters {
		loop(0, func() {
			all := l.snapshot()
			l.get(all[rand.IntN(len(all))])
		})
	}
	loop(signInEvery, func() {
		all := l.snapshot()
		l.signIn(all[rand.IntN(len(all))].user)
	})
	loop(revokeEvery, func() {
		all := l.snapshot()
		victim := all[rand.IntN(len(all))]
		if !l.live(victim) {
			return
		}
		// Leave each user keep live sessions for the tests' own revokes.
		left := 0
		for _, s := range all {
			if s.user == victim.user && l.live(s) {
				left++
			}
		}
		if left <= l.keep {
			return
		}
		for _, by := range all {
			if by != victim && by.user == victim.user && l.live(by) {
				l.revoke(by, victim)
				return
			}
		}
	})
}

// Stop ends the load and waits for its requests. Stopping twice is
// harmless (start registers it as a clean-up, for a test that fails
// with the load running).
func (l *load) Stop() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// await replays s's cookie until the answer is want, for up to d or
// until the load revokes s, and returns when that first happened (zero:
// never, and the last status).
func (l *load) await(s *loadSession, want int, d time.Duration) (time.Time, int) {
	deadline := time.Now().Add(d)
	var status int
	for time.Now().Before(deadline) && l.live(s) {
		if status = l.get(s); status == want {
			return time.Now(), status
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Time{}, status
}

// check fails the test for every rule broken so far.
func (l *load) check() {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.broken {
		l.t.Error(b)
	}
}

// counts summarises the answers to GETs started in [from, to).
func (l *load) counts(from, to time.Time) map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int]int{}
	for _, r := range l.results {
		if !r.start.Before(from) && r.start.Before(to) {
			out[r.status]++
		}
	}
	return out
}

// errorKinds lists the distinct causes of the errors the app logged
// (digits and addresses blurred): what the 503s of a test were. The log
// writes the first of a burst of equal lines only, so these are kinds,
// not counts.
func errorKinds(env *apptest.Env) []string {
	blur := regexp.MustCompile(`[0-9]+`)
	seen := map[string]bool{}
	var out []string
	for line := range strings.SplitSeq(env.Logs.String(), "\n") {
		if !strings.Contains(line, "level=ERROR") {
			continue
		}
		_, cause, ok := strings.Cut(line, " err=")
		if !ok {
			continue
		}
		cause = blur.ReplaceAllString(cause, "N")
		if !seen[cause] {
			seen[cause] = true
			out = append(out, cause)
		}
	}
	return out
}
