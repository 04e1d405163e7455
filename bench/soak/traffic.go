package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/PuerkitoBio/goquery"
)

// Traffic: simulated users and browsers, the actions they take, and the checks of what must hold afterwards.

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
