// Package session is the session API: the scs manager, the Echo
// middleware that loads and commits a session once per request, sign-in
// (Start, StartApp), renewal, sign-out, revocation and the listing of a
// user's sessions.
//
// A session lives in two places. Redis holds the scs data under the secret
// token (the cookie value), and the per-user index that makes revocation
// final: package redisstore, the only place that knows key names and Lua.
// Postgres holds a record named by a public id (models.SessionStore).
// Handlers only ever see public ids. What is written in the background
// (last seen, the records of ends, the sweep) is package workers', run by
// Workers().Run.
package session

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session/redisstore"
	"github.com/gatehouse/gatehouse/internal/session/workers"
)

// Keys of the values kept in the scs session data.
const (
	keyUserID   = "uid"
	keyPublicID = "sid"
	// Times are kept as Unix seconds: scs's gob codec cannot encode
	// time.Time without a global gob.Register.
	keyAuthAt = "auth_at" // when the user last proved their password
	keySeenAt = "seen_at" // when last_seen_at was last written to Postgres
)

// touchInterval is how often a session's last_seen_at is written to
// Postgres: at most once a minute per session keeps the hot path off the
// database.
const touchInterval = time.Minute

// ErrNotFound means the session does not exist, has ended, or belongs to
// another user.
var ErrNotFound = errors.New("session not found")

// ErrBearerSignIn means a browser sign-in was attempted on a request that
// carries a bearer token: such a request never gets a cookie.
var ErrBearerSignIn = errors.New("a request with a bearer token cannot sign a browser in")

// ErrAccountDisabled means sign-in was refused because the account is
// disabled.
var ErrAccountDisabled = redisstore.ErrAccountDisabled

// Options configure a Manager.
type Options struct {
	Redis redis.UniversalClient // from redisconn.New
	// TagKey keys the tags that place each user's keys in one Redis
	// Cluster slot (redisstore's keys.go); every instance must use the
	// same one (models.Secret TagSecret).
	TagKey []byte
	// Cluster says Redis is a Cluster: no session there predates tags.
	Cluster       bool
	Records       *models.SessionStore
	Prefix        string        // prefix of every Redis key
	IdleTimeout   time.Duration // end after this long without a request
	Lifetime      time.Duration // end this long after sign-in
	MaxSessions   int           // per user; 0 means no limit
	SecureCookies bool          // Secure and __Host- prefix (https only)
	Logger        *slog.Logger
	Now           func() time.Time // the clock; time.Now when nil
	// Metrics counts the sessions ended, by reason; nil counts nothing.
	Metrics *metrics.Metrics
	// SweepInterval is how often the workers sweep (SWEEP_INTERVAL); 0:
	// never by themselves.
	SweepInterval time.Duration
	// DeviceAuths are the device flow's codes, whose expired rows the
	// sweep deletes; nil: none.
	DeviceAuths *models.DeviceStore
	// App sessions (app.go): the access token's lifetime, the grace of the
	// previous refresh token, and the idle timeout (since the last
	// refresh) and absolute lifetime; zero means the default (the grace:
	// none).
	AccessTokenTTL, RefreshGrace, AppIdleTimeout, AppLifetime time.Duration
}

// Manager creates, checks, lists and ends sessions.
type Manager struct {
	scs      *scs.SessionManager
	store    *redisstore.Store
	keys     redisstore.Keys
	records  *models.SessionStore
	idle     time.Duration
	lifetime time.Duration
	// maxSessions caps each user's concurrent sessions (0: no cap).
	maxSessions int
	log         *slog.Logger
	now         func() time.Time
	// workers write last_seen_at and the records of ends in the
	// background, and sweep.
	workers *workers.Workers
	metrics *metrics.Metrics
	// app holds the app session settings (app.go).
	app appTimes
}

// New returns a Manager.
func New(o Options) *Manager {
	if len(o.TagKey) < 16 {
		panic("session.New: TagKey must hold at least 16 bytes")
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	k := redisstore.NewKeys(o.Prefix, o.TagKey, !o.Cluster)
	st := redisstore.New(redisstore.Config{Redis: o.Redis, Keys: k, Idle: o.IdleTimeout, Lifetime: o.Lifetime, Logger: log})
	sm := scs.New()
	sm.Store = st
	sm.Codec = codec{} // not gob: codec.go
	// scs is not told the idle timeout: the store enforces it, sliding the
	// expiry in the lookup itself (findScript, a relative TTL). Told, scs
	// marks every loaded session modified, so each request re-encoded the
	// data, compared it with what it had loaded, and sent the cookie again;
	// now a request that changes nothing commits nothing and sets no
	// cookie. A "remember me" cookie persists until the absolute lifetime;
	// the server still ends the session when idle.
	sm.IdleTimeout = 0
	sm.Lifetime = o.Lifetime
	sm.Cookie.Name = "gatehouse_session"
	if o.SecureCookies {
		// __Host- makes browsers refuse the cookie unless it is Secure,
		// host-only and Path=/, so a sibling subdomain cannot plant one.
		sm.Cookie.Name = "__Host-gatehouse_session"
	}
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Path = "/"
	sm.Cookie.Secure = o.SecureCookies
	// Without "remember me" the cookie lasts as long as the browser session;
	// RememberMe at sign-in makes it persist up to the session's expiry.
	sm.Cookie.Persist = false
	m := &Manager{
		scs: sm, store: st, keys: k, records: o.Records,
		idle: o.IdleTimeout, lifetime: o.Lifetime, maxSessions: o.MaxSessions, log: log, now: now,
		metrics: o.Metrics, app: newAppTimes(o),
	}
	m.workers = workers.New(workers.Options{Store: st, Records: o.Records, Logger: log, Now: now,
		Idle: o.IdleTimeout, SweepInterval: o.SweepInterval, ExpireApps: m.expireApps, DeviceAuths: o.DeviceAuths})
	return m
}

// Workers are the manager's background writers and sweeper: they run in
// their Run, which the app starts (app.App.Run).
func (m *Manager) Workers() *workers.Workers { return m.workers }

// Records is the store of session records the manager keeps.
func (m *Manager) Records() *models.SessionStore { return m.records }

// CookieName is the name of the session cookie.
func (m *Manager) CookieName() string { return m.scs.Cookie.Name }

// Principal is the signed-in user of a request and the session they use.
type Principal struct {
	UserID    int64
	SessionID string // public id
	Name      string
	Email     string
	Role      string
	AuthAt    time.Time // when the password was last proved in this session
	// App is set when the request authenticated with an app's access token
	// (Authorization: Bearer) rather than a cookie.
	App bool
}

// IsAdmin reports whether the session's user had the admin role when the
// session last saw it. Admin pages check the role in Postgres instead.
func (p *Principal) IsAdmin() bool { return p.Role == models.RoleAdmin }

// requestState is what the middleware learned about the request's session.
type requestState struct {
	principal *Principal
	// endedID names the session the request's cookie belonged to, when that
	// session has been revoked or gone idle; endMark is its end mark while
	// the record of a revoke is not yet written.
	endedID, endMark string
	// stale is set when the request carried a session cookie that names no
	// live session (expired, revoked, or forged).
	stale bool
	// bearer is the app access token the request authenticated with
	// (Authorization: Bearer); bearerSent says the request sent one,
	// valid or not.
	bearer     *bearer
	bearerSent bool
}

type stateKey struct{}

func state(ctx context.Context) *requestState {
	if s, ok := ctx.Value(stateKey{}).(*requestState); ok {
		return s
	}
	return &requestState{}
}

// Current returns the request's signed-in user, or nil.
func Current(ctx context.Context) *Principal { return state(ctx).principal }

// Ended reports why the session the request arrived with no longer works:
// the record of a revoked session, or of one that went idle (still active
// in the record until the sweep), nil with stale=true for a cookie whose
// session is wholly gone (or never existed), nil and false when there was
// none.
func (m *Manager) Ended(ctx context.Context) (rec *models.SessionRecord, stale bool) {
	st := state(ctx)
	if st.endedID != "" {
		r, err := m.records.ByPublicID(ctx, st.endedID)
		if err == nil {
			if e, err := redisstore.ParseEndMark(st.endMark); r.Active() && err == nil {
				e.Apply(r) // ended, not yet recorded
			}
			return r, true
		}
		m.log.WarnContext(ctx, "reading ended session", "err", err)
	}
	return nil, st.stale
}

// Middleware loads the request's session, authenticates it against the user
// hash, and commits it once, just before the response headers go out.
//
// It replaces scs.LoadAndSave, which under echo.WrapMiddleware commits twice
// and sends two Set-Cookie headers when a handler returns an error.
func (m *Manager) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if cred, ok := BearerCredential(req); ok {
			// The bearer decides, whatever cookie came along.
			return m.serveBearer(c, next, cred)
		}
		st := &requestState{}
		token := ""
		lk := &redisstore.Lookup{}
		if ck, err := req.Cookie(m.scs.Cookie.Name); err == nil {
			if tag, t, ok := redisstore.SplitCookie(ck.Value); ok {
				lk.Tag, token = tag, t
			}
			st.stale = true // until the session proves live
		}
		ctx, err := m.scs.Load(redisstore.WithLookup(req.Context(), lk), token)
		if err != nil {
			return fmt.Errorf("load session: %w", err)
		}
		switch uid := m.scs.GetInt64(ctx, keyUserID); {
		case lk.Revoked:
			// The store found the session's field gone (and deleted its
			// data), or its data gone idle.
			st.endedID, st.endMark = lk.PublicID, lk.EndMark
		case uid != 0 && lk.Live && lk.UserID == uid && lk.PublicID == m.scs.GetString(ctx, keyPublicID):
			st.principal = &Principal{
				UserID: uid, SessionID: lk.PublicID, Name: lk.Name, Email: lk.Email, Role: lk.Role,
				AuthAt: time.Unix(m.scs.GetInt64(ctx, keyAuthAt), 0),
			}
			st.stale = false
			m.touch(ctx, st.principal, c.RealIP())
		case uid != 0:
			// Signed-in data without a matching owner: never trust it.
			if err := m.scs.Destroy(ctx); err != nil {
				return fmt.Errorf("destroy unowned session: %w", err)
			}
		}
		ctx = context.WithValue(ctx, stateKey{}, st)
		c.SetRequest(req.WithContext(ctx))
		// Pages behind sessions are personal: no cache may keep them.
		c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
		c.Response().Before(func() {
			// Added as the headers go out, once: the CSRF check adds it too.
			if h := c.Response().Header(); !slices.Contains(h.Values(echo.HeaderVary), echo.HeaderCookie) {
				h.Add(echo.HeaderVary, echo.HeaderCookie)
			}
			m.commit(c)
		})
		return next(c)
	}
}

// touch writes last_seen_at at most once per touchInterval, in the
// background (workers.Offer): a slow or down Postgres never stalls or fails
// this request. A write refused or failed is retried on a later request.
func (m *Manager) touch(ctx context.Context, p *Principal, ip string) {
	now := m.now()
	if now.Sub(time.Unix(m.scs.GetInt64(ctx, keySeenAt), 0)) < touchInterval {
		return
	}
	if m.workers.Offer(p.SessionID, ip, now) {
		m.scs.Put(ctx, keySeenAt, now.Unix())
	}
}

// commit saves the session (which, with an idle timeout, renews its expiry)
// and sets or clears the cookie. It runs as the response's Before hook, so
// exactly once, whatever the handler returned.
func (m *Manager) commit(c echo.Context) {
	ctx := c.Request().Context()
	w := c.Response().Writer
	// scs adds `no-cache="Set-Cookie"` with every cookie it writes; no-store,
	// set by Middleware, already says more.
	defer w.Header().Set(echo.HeaderCacheControl, "no-store")
	switch m.scs.Status(ctx) {
	case scs.Modified:
		// Only signed-in sessions are stored; anonymous visitors cost no
		// Redis write.
		if m.scs.GetInt64(ctx, keyUserID) == 0 {
			return
		}
		token, expiry, err := m.scs.Commit(ctx)
		if err != nil {
			m.log.ErrorContext(ctx, "committing session", "err", err)
			return
		}
		tag := ""
		if lk := redisstore.LookupOf(ctx); lk != nil {
			tag = lk.Tag
		}
		m.scs.WriteSessionCookie(ctx, w, redisstore.CookieValue(tag, token), expiry)
	case scs.Destroyed:
		m.scs.WriteSessionCookie(ctx, w, "", time.Time{})
	default:
		if state(ctx).stale {
			m.scs.WriteSessionCookie(ctx, w, "", time.Time{})
		}
	}
}

// Device is what a session record says about the browser.
type Device struct {
	UserAgent string
	IP        string
}

// StartOption adds to the record of a session being started.
type StartOption func(*models.SessionRecord)

// SignedInWith records how the session was established (by default, a
// password alone).
func SignedInWith(method models.AuthMethod) StartOption {
	return func(r *models.SessionRecord) { r.AuthMethod = method }
}

// Start signs user in on this request: a new token (so a token planted
// before sign-in is worthless), a new public id, a Postgres record, and the
// entry in the user hash. Nothing is left behind when any step fails.
func (m *Manager) Start(c echo.Context, user *models.User, remember bool, opts ...StartOption) (publicID string, err error) {
	ctx := c.Request().Context()
	lk := redisstore.LookupOf(ctx)
	if lk == nil && state(ctx).bearerSent {
		return "", ErrBearerSignIn
	}
	if lk == nil {
		return "", errors.New("start: no session middleware")
	}
	if err := m.scs.RenewToken(ctx); err != nil {
		return "", fmt.Errorf("renew token: %w", err)
	}
	// The new token's data is stored before its owner key exists (activate),
	// under the user's tag.
	lk.Restart(m.keys.Tag(user.ID), m.scs.Token(ctx))
	now := m.now()
	publicID, err = newPublicID()
	if err != nil {
		return "", err
	}
	if err := m.scs.Clear(ctx); err != nil {
		return "", fmt.Errorf("clear session: %w", err)
	}
	m.scs.Put(ctx, keyUserID, user.ID)
	m.scs.Put(ctx, keyPublicID, publicID)
	m.scs.Put(ctx, keyAuthAt, now.Unix())
	m.scs.Put(ctx, keySeenAt, now.Unix())
	m.scs.RememberMe(ctx, remember)

	ua := UserAgent(c.Request())
	dev := Describe(ua)
	rec := &models.SessionRecord{
		PublicID: publicID, UserID: user.ID, UserAgent: ua,
		Browser: dev.Browser, OS: dev.OS, DeviceType: dev.Type, IP: c.RealIP(),
		Remember: remember, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(m.lifetime),
		AuthMethod: models.AuthPassword,
	}
	for _, o := range opts {
		o(rec)
	}
	// The record is written first: a session that works always has one, and
	// List can trust that a record it reads was registered in Redis before.
	if err := m.records.Create(ctx, rec); err != nil {
		_ = m.scs.Destroy(ctx)
		return "", err
	}
	if err := m.activate(ctx, user); err != nil {
		// Leave nothing behind: without its entry in the user hash the data
		// authenticates nothing, but delete both anyway.
		_ = m.scs.Destroy(ctx)
		if derr := m.records.Delete(context.WithoutCancel(ctx), publicID); derr != nil {
			m.log.ErrorContext(ctx, "removing the record of a failed sign-in", "err", derr)
		}
		return "", err
	}
	return publicID, nil
}

// activate stores the new session's data and enters it in the user hash.
func (m *Manager) activate(ctx context.Context, user *models.User) error {
	token, _, err := m.scs.Commit(ctx)
	if err != nil {
		return fmt.Errorf("commit session: %w", err)
	}
	publicID := m.scs.GetString(ctx, keyPublicID)
	lk := redisstore.LookupOf(ctx)
	n, err := m.store.Register(ctx, user.ID, publicID, lk.Tag, token, user.Name, user.Email, user.Role)
	if err != nil {
		return err
	}
	// The session is stored and live: the response's commit, which writes
	// the cookie, has nothing left to write unless the handler changes the
	// data. Without this it ran the commit script again, and a Redis that
	// failed just then (a failover) left a working session with no cookie
	// behind a 303 (TestSignInStoresTheSessionOnce).
	lk.Live = true
	if excess := n - m.maxSessions; m.maxSessions > 0 && excess > 0 {
		m.endIdlest(ctx, user.ID, publicID, excess)
	}
	return nil
}

// endIdlest ends the user's n sessions idle the longest, other than keep:
// the concurrent-session limit. The new session already works, so a
// failure here is logged, and the next sign-in tries again.
func (m *Manager) endIdlest(ctx context.Context, userID int64, keep string, n int) {
	ids, err := m.records.Idlest(ctx, userID, keep, n)
	if err == nil {
		_, err = m.end(ctx, userID, "only", ids, models.EndSessionLimit, nil)
	}
	if err != nil {
		m.log.ErrorContext(ctx, "enforcing the session limit", "user", userID, "err", err)
	}
}

// Renew gives the current session a new token and records that the user
// just proved their password (password change, password confirmation).
// The session stays what it was: same public id, same absolute deadline.
// It is never seen expired on the way: the store writes the new token's
// data, then points the user hash at it, then deletes the old token's
// data, in one script (redisstore's renewScript). ErrNotFound if the session was
// revoked meanwhile; the request is then signed out.
func (m *Manager) Renew(ctx context.Context) error {
	p, lk := Current(ctx), redisstore.LookupOf(ctx)
	if b := state(ctx).bearer; p != nil && b != nil {
		return m.renewApp(ctx, p, b)
	}
	if p == nil || lk == nil {
		return errors.New("renew: no session")
	}
	deadline := m.scs.Deadline(ctx)
	lk.RenewFrom = m.scs.Token(ctx)
	defer func() { lk.RenewFrom = "" }()
	if err := m.scs.RenewToken(ctx); err != nil {
		return fmt.Errorf("renew token: %w", err)
	}
	// RenewToken restarts scs's deadline (which dates the cookie of a
	// remembered session); keep the one from sign-in.
	m.scs.SetDeadline(ctx, deadline)
	now := m.now()
	m.scs.Put(ctx, keyAuthAt, now.Unix())
	if _, _, err := m.scs.Commit(ctx); errors.Is(err, redisstore.ErrRenewRefused) {
		_ = m.scs.Destroy(ctx)
		return ErrNotFound
	} else if err != nil {
		return fmt.Errorf("commit renewed session: %w", err)
	}
	p.AuthAt = now
	return nil
}

// SignOut ends the current session.
func (m *Manager) SignOut(ctx context.Context) error {
	p := Current(ctx)
	if p == nil {
		return nil
	}
	if _, err := m.end(ctx, p.UserID, "only", []string{p.SessionID}, models.EndSignedOut, &p.UserID); err != nil {
		return err
	}
	if p.App {
		return nil // no cookie, no scs data
	}
	if err := m.scs.Destroy(ctx); err != nil {
		return fmt.Errorf("destroy session: %w", err)
	}
	return nil
}

// Revoke ends userID's session publicID; ErrNotFound if userID has no such
// live session. When Revoke returns, no request with that session's cookie
// is authenticated again, on any instance.
func (m *Manager) Revoke(ctx context.Context, userID int64, publicID string, reason models.EndReason, actor *int64) error {
	ended, err := m.end(ctx, userID, "only", []string{publicID}, reason, actor)
	if err == nil && len(ended) == 0 {
		return ErrNotFound
	}
	return err
}

// RevokeAll ends every session of userID except those in keep, and returns
// how many it ended.
func (m *Manager) RevokeAll(ctx context.Context, userID int64, keep []string, reason models.EndReason, actor *int64) (int, error) {
	ended, err := m.end(ctx, userID, "except", keep, reason, actor)
	return len(ended), err
}

// Disable ends every session of userID and refuses new ones until Enable,
// closing the race with a sign-in that checked the account just before it
// was disabled. The caller disables the account in Postgres first.
func (m *Manager) Disable(ctx context.Context, userID int64, actor *int64) (int, error) {
	mark := redisstore.EndMark{At: m.now(), Reason: models.EndAccountDisabled, Actor: actor}
	ended, err := m.store.Disable(ctx, userID, mark)
	if err == nil {
		ended = m.endApps(ctx, userID, "except", nil, mark, ended)
	}
	m.metrics.Revoked(string(models.EndAccountDisabled), len(ended))
	m.recordLater(ended)
	return len(ended), err
}

// Enable lets userID sign in again.
func (m *Manager) Enable(userID int64) error { return m.store.Enable(userID) }

// end kills sessions in Redis and marks them for the end recorder, in one
// round trip however many sessions: when it returns they are dead on every
// instance, and why is noted; the record in Postgres follows in the
// background (the workers' end recorder). The user hash is per user, so another user's
// session ids match nothing.
//
// App sessions' ends are also written to Postgres before it returns,
// within a bound (endApps).
func (m *Manager) end(ctx context.Context, userID int64, mode string, ids []string, reason models.EndReason, actor *int64) ([]string, error) {
	mark := redisstore.EndMark{At: m.now(), Reason: reason, Actor: actor}
	ended, err := m.store.Revoke(ctx, userID, mode, ids, mark)
	if err == nil {
		ended = m.endApps(ctx, userID, mode, ids, mark, ended)
	}
	m.metrics.Revoked(string(reason), len(ended))
	m.recordLater(ended)
	return ended, err
}

// recordLater wakes the end recorder when sessions ended.
func (m *Manager) recordLater(ended []string) {
	if len(ended) > 0 {
		m.workers.Ended()
	}
}

// Listing is a user's sessions as the Devices page shows them.
type Listing struct {
	Active []models.SessionRecord // most recently used first
	Ended  []models.SessionRecord // latest first
}

// List returns userID's active sessions and up to endedLimit recently ended
// ones. Records whose Redis data has expired are closed first, so they show
// as ended. The cost is O(the user's sessions): one Redis script over the
// user hash and indexed Postgres reads.
func (m *Manager) List(ctx context.Context, userID int64, endedLimit int) (Listing, error) {
	// Redis first, then Postgres. A session's Redis state only moves from
	// live (its field) to ended (its end mark) to recorded (no trace),
	// and the recorder writes the record before it removes the mark. So a
	// record Postgres still calls active, of a session Redis no longer
	// names, was not ended before the Redis read: the end recorder cannot
	// slip between the reads and make a revoked session look like one
	// still signing in (Postgres first could, TestListingWhileAnEndIsRecorded).
	// A sign-in writes its record before it enters the session in Redis,
	// so a record Redis does not name at all is judged only once it is
	// older than workers.SweepSettle; one whose data Redis found gone has really
	// ended, and one Redis marked ended shows its end before the recorder
	// has written it.
	l, err := m.store.Live(ctx, userID)
	if err != nil {
		return Listing{}, err
	}
	active, err := m.records.Active(ctx, userID)
	if err != nil {
		return Listing{}, err
	}
	var expired []string
	appsExpired := false
	var justEnded []models.SessionRecord
	stillActive := active[:0:0]
	now := m.now()
	for _, r := range active {
		// Instances write these times from their own clocks; one ahead of
		// this one's must not make a session look used in the future.
		r.CreatedAt, r.LastSeenAt = notAfter(r.CreatedAt, now), notAfter(r.LastSeenAt, now)
		if e, ok := l.Ending[r.PublicID]; ok {
			e.Apply(&r)
			justEnded = append(justEnded, r)
		} else if r.IsApp() {
			// Active while Postgres says so and within the app lifetimes,
			// whatever its short-lived access token is doing.
			if now.Sub(r.AppIdleSince()) < m.app.idle && now.Before(r.ExpiresAt) {
				stillActive = append(stillActive, r)
			} else {
				appsExpired = true
			}
		} else if slices.Contains(l.Live, r.PublicID) || !slices.Contains(l.Gone, r.PublicID) && now.Sub(r.CreatedAt) < workers.SweepSettle {
			stillActive = append(stillActive, r)
		} else {
			expired = append(expired, r.PublicID)
		}
	}
	if len(expired) > 0 {
		if err := m.records.MarkExpired(ctx, userID, expired, m.idle, m.now()); err != nil {
			return Listing{}, err
		}
	}
	if appsExpired {
		if err := m.expireApps(ctx, userID); err != nil {
			return Listing{}, err
		}
	}
	ended, err := m.records.RecentlyEnded(ctx, userID, endedLimit)
	if err != nil {
		return Listing{}, err
	}
	return Listing{Active: stillActive, Ended: latestEnded(justEnded, ended, endedLimit)}, nil
}

// notAfter returns t, or now if t is later.
func notAfter(t, now time.Time) time.Time {
	if t.After(now) {
		return now
	}
	return t
}

// latestEnded merges ends not yet recorded into the recorded ones (the
// recorder may have written some of them since: each session shows once),
// latest first, at most limit.
func latestEnded(pending, recorded []models.SessionRecord, limit int) []models.SessionRecord {
	if len(pending) == 0 {
		return recorded
	}
	all := pending
	for _, r := range recorded {
		if !slices.ContainsFunc(pending, func(p models.SessionRecord) bool { return p.PublicID == r.PublicID }) {
			all = append(all, r)
		}
	}
	slices.SortStableFunc(all, func(a, b models.SessionRecord) int {
		if c := b.EndedAt.Compare(*a.EndedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return all[:min(len(all), limit)]
}

// Check pings Redis: a probe key written and deleted.
func (m *Manager) Check(ctx context.Context) error { return m.store.Check(ctx) }

// EvictionWarning returns a warning when Redis's maxmemory-policy is not
// noeviction, "" when it is (redisstore's EvictionWarning).
func (m *Manager) EvictionWarning(ctx context.Context) (string, error) {
	return m.store.EvictionWarning(ctx)
}

// newPublicID returns a random 128-bit id, 26 characters of lower-case
// base32: unguessable, so ids in URLs reveal nothing.
func newPublicID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("public id: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// ValidPublicID reports whether s has the shape of a public session id.
func ValidPublicID(s string) bool {
	if len(s) != 26 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') }) < 0
}
