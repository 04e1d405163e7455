package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session/redisstore"
)

// App sessions: an app or a CLI signed in with tokens instead of a cookie
// (docs/api.md, docs/sessions.md). It is a session like a browser's: a
// record in Postgres (kind 'app'), a field in the user hash, ended by
// every path that ends sessions.
//
//   - The access token is "gh_at_<tag>.<token>": a fresh random token whose
//     data key and owner key live ACCESS_TOKEN_TTL in the user's slot, and
//     whose field in the user hash, s:<public id>, holds "app:<token>"
//     (redisstore's appScript). A
//     bearer request resolves through findScript like a cookie (one
//     command, no SQL), without idle sliding: the token lives its TTL.
//     The "app:" in the field means a cookie carrying <tag>.<token> never
//     matches it, so an access token cannot pose as a browser session.
//   - The refresh token is "gh_rt_<43 characters of base64url>", 256
//     random bits, stored only as SHA-256 in Postgres. A refresh locks the
//     record, rotates the token and issues a new access token, whose field
//     replaces the old one's, so exactly one access token per session works.
//
// The access token's data is "app|<auth at>|<seen at>" (Unix seconds):
// when the user last proved their password in this session, and when
// last_seen_at was last written, as a browser session's data holds them.

// Prefixes of the two kinds of token: a token of one kind presented as
// the other is recognised and refused.
const (
	AccessTokenPrefix  = "gh_at_"
	RefreshTokenPrefix = "gh_rt_"
)

// Errors of the token endpoints.
var (
	// ErrInvalidGrant means a refresh token is unknown, rotated away from,
	// expired, or its session has ended (RFC 6749 invalid_grant).
	ErrInvalidGrant = errors.New("invalid grant")
	// ErrRefreshReused means a refresh token already rotated away from was
	// presented: the session has been ended. It wraps ErrInvalidGrant.
	ErrRefreshReused = fmt.Errorf("%w: refresh token reused", ErrInvalidGrant)
)

// AppClient describes the app signing in.
type AppClient struct {
	Name      string // the client_name it gave
	UserAgent string // as UserAgent(r) cleans it
	IP        string
}

// AppTokens is what an app receives at sign-in and at each refresh.
type AppTokens struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    time.Duration // of the access token
	SessionID    string        // public id
	UserID       int64
}

// ApprovedBy records which browser session approved a device-flow
// sign-in.
func ApprovedBy(publicID string) StartOption {
	return func(r *models.SessionRecord) { r.ApprovedBy = &publicID }
}

// appTimes are the app session settings (Options).
type appTimes struct {
	accessTTL time.Duration
	grace     time.Duration
	idle      time.Duration
	lifetime  time.Duration
}

// Defaults of the app session settings.
const (
	DefaultAccessTokenTTL = time.Hour
	DefaultRefreshGrace   = 30 * time.Second
	MaxRefreshGrace       = 30 * time.Second
	DefaultAppIdleTimeout = 7 * 24 * time.Hour
	DefaultAppLifetime    = 30 * 24 * time.Hour
)

func newAppTimes(o Options) appTimes {
	t := appTimes{accessTTL: o.AccessTokenTTL, grace: min(max(o.RefreshGrace, 0), MaxRefreshGrace),
		idle: o.AppIdleTimeout, lifetime: o.AppLifetime}
	if t.accessTTL <= 0 {
		t.accessTTL = DefaultAccessTokenTTL
	}
	if t.idle <= 0 {
		t.idle = DefaultAppIdleTimeout
	}
	if t.lifetime <= 0 {
		t.lifetime = DefaultAppLifetime
	}
	return t
}

// StartApp signs user in as an app: a record in Postgres, then an access
// token in Redis. Nothing is left behind when a step fails. The session
// counts against MAX_SESSIONS like a browser's.
func (m *Manager) StartApp(ctx context.Context, user *models.User, client AppClient, opts ...StartOption) (AppTokens, error) {
	publicID, err := newPublicID()
	if err != nil {
		return AppTokens{}, err
	}
	refresh, hash, err := newRefreshToken()
	if err != nil {
		return AppTokens{}, err
	}
	now := m.now()
	dev := Describe(client.UserAgent)
	name := models.Truncate(strings.TrimSpace(client.Name), maxClientName)
	browser := dev.Browser
	if name != "" {
		// The pages say "<browser> on <OS>": "Gatehouse CLI on Linux".
		browser = name
	}
	rec := &models.SessionRecord{
		PublicID: publicID, UserID: user.ID, UserAgent: client.UserAgent,
		Browser: browser, OS: dev.OS, DeviceType: dev.Type, IP: client.IP,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(m.app.lifetime),
		AuthMethod: models.AuthPassword, Kind: models.SessionApp, ClientName: name,
		RefreshHash: hash, RefreshedAt: &now,
	}
	for _, o := range opts {
		o(rec)
	}
	if err := m.records.Create(ctx, rec); err != nil {
		return AppTokens{}, err
	}
	access, n, err := m.issueAccess(ctx, user, rec, "", appData(now.Unix(), now.Unix()))
	if err != nil {
		if derr := m.records.Delete(context.WithoutCancel(ctx), publicID); derr != nil {
			m.log.ErrorContext(ctx, "removing the record of a failed app sign-in", "err", derr)
		}
		return AppTokens{}, err
	}
	if excess := n - m.maxSessions; m.maxSessions > 0 && excess > 0 {
		m.endIdlest(ctx, user.ID, publicID, excess)
	}
	return AppTokens{AccessToken: access, RefreshToken: refresh, ExpiresIn: m.accessTTL(rec, now),
		SessionID: publicID, UserID: user.ID}, nil
}

// maxClientName bounds a client_name, in bytes.
const maxClientName = 100

// accessTTL is how long a new access token of rec lives: ACCESS_TOKEN_TTL,
// never past the session's absolute lifetime.
func (m *Manager) accessTTL(rec *models.SessionRecord, now time.Time) time.Duration {
	return max(min(m.app.accessTTL, rec.ExpiresAt.Sub(now)), time.Second)
}

// issueAccess creates an access token for the app session rec and points
// its field at it; oldToken, if any, is the token it replaces. It returns
// the access token and the user's number of sessions.
func (m *Manager) issueAccess(ctx context.Context, user *models.User, rec *models.SessionRecord, oldToken, data string) (string, int, error) {
	token, err := newToken()
	if err != nil {
		return "", 0, err
	}
	n, err := m.store.IssueAccess(ctx, redisstore.Access{UserID: user.ID, Name: user.Name, Email: user.Email, Role: user.Role,
		PublicID: rec.PublicID, Token: token, OldToken: oldToken, Data: data,
		TTL: m.accessTTL(rec, m.now()), MaxTTL: m.app.accessTTL})
	if errors.Is(err, redisstore.ErrSessionEnded) {
		return "", 0, fmt.Errorf("%w: session ended", ErrInvalidGrant)
	} else if err != nil {
		return "", 0, err
	}
	return AccessTokenPrefix + m.keys.Tag(user.ID) + "." + token, n, nil
}

// Refresh rotates an app session's refresh token and issues a new access
// token (grant_type=refresh_token). In one Postgres transaction it locks
// the session's record, checks that the session and its user are active
// and that the app idle timeout and lifetime have not passed, rotates the
// token, and enters the new access token in Redis; the record's lock
// orders it against every end (EndApps, the end recorder), and the end
// mark refuses a session ended in Redis but not yet in Postgres.
//
// The previous refresh token is honored once within REFRESH_GRACE (a
// client that lost the answer); any other rotated token ends the session
// (ErrRefreshReused).
func (m *Manager) Refresh(ctx context.Context, refreshToken string, client AppClient) (AppTokens, error) {
	hash, ok := refreshHash(refreshToken)
	if !ok {
		return AppTokens{}, ErrInvalidGrant
	}
	var out AppTokens
	// reused is the session ended for reuse, expired one found past its
	// lifetimes: both commit the transaction that records it, then refuse.
	var reused, expired *models.SessionRecord
	err := m.records.Transaction(ctx, func(tx *models.SessionStore) error {
		now := m.now()
		rec, err := tx.LockByRefresh(ctx, hash)
		if errors.Is(err, models.ErrNotFound) {
			rec, err = tx.LockByRetiredRefresh(ctx, hash)
			if errors.Is(err, models.ErrNotFound) || err == nil && !rec.Active() {
				return ErrInvalidGrant
			} else if err != nil {
				return err
			}
			reused = rec
			return tx.EndLocked(ctx, rec.ID, models.EndRefreshReused, nil, now)
		}
		if err != nil {
			return err
		}
		if !rec.Active() {
			return ErrInvalidGrant
		}
		grace := !equalHash(rec.RefreshHash, hash)
		if grace && (rec.PrevRefreshUsed || m.app.grace <= 0 || now.Sub(rec.AppIdleSince()) > m.app.grace) {
			reused = rec
			return tx.EndLocked(ctx, rec.ID, models.EndRefreshReused, nil, now)
		}
		if now.Sub(rec.AppIdleSince()) >= m.app.idle || !now.Before(rec.ExpiresAt) {
			expired = rec
			_, err := tx.ExpireApps(ctx, rec.UserID, m.app.idle, now)
			return err
		}
		user, err := tx.User(ctx, rec.UserID)
		if err != nil {
			return err
		}
		if user.Disabled() {
			return fmt.Errorf("%w: %w", ErrInvalidGrant, ErrAccountDisabled)
		}
		next, nextHash, err := newRefreshToken()
		if err != nil {
			return err
		}
		if grace {
			err = tx.UseRefreshGrace(ctx, rec.ID, nextHash, client.IP, now)
		} else {
			err = tx.RotateRefresh(ctx, rec.ID, nextHash, client.IP, now)
		}
		if err != nil {
			return err
		}
		old := m.store.AccessToken(ctx, user.ID, rec.PublicID)
		access, _, err := m.issueAccess(ctx, user, rec, old, appData(0, now.Unix()))
		if err != nil {
			return err
		}
		out = AppTokens{AccessToken: access, RefreshToken: next, ExpiresIn: m.accessTTL(rec, now),
			SessionID: rec.PublicID, UserID: user.ID}
		return nil
	})
	switch {
	case err != nil:
		return AppTokens{}, err
	case reused != nil:
		// The record's end is committed: now the Redis step, so that the
		// access token dies on its next use. Should it fail, the record
		// already refuses every refresh, and the access token dies with
		// its TTL.
		if _, rerr := m.store.Revoke(context.WithoutCancel(ctx), reused.UserID, "only", []string{reused.PublicID},
			redisstore.EndMark{At: m.now(), Reason: models.EndRefreshReused}); rerr != nil {
			m.log.ErrorContext(ctx, "ending a reused refresh token's session in redis", "err", rerr)
		}
		m.metrics.Revoked(string(models.EndRefreshReused), 1)
		m.recordLater([]string{reused.PublicID})
		return AppTokens{SessionID: reused.PublicID, UserID: reused.UserID}, ErrRefreshReused
	case expired != nil:
		return AppTokens{}, fmt.Errorf("%w: session expired", ErrInvalidGrant)
	}
	return out, nil
}

// RevokeToken ends the session of an access or refresh token (RFC 7009):
// the token is the credential. An unknown token is no error. It returns the
// ended session's user and public id, 0 and "" when it ended none.
func (m *Manager) RevokeToken(ctx context.Context, token string) (int64, string, error) {
	if strings.HasPrefix(token, RefreshTokenPrefix) {
		hash, ok := refreshHash(token)
		if !ok {
			return 0, "", nil
		}
		rec, err := m.records.LockByRefresh(ctx, hash) // outside a transaction: a plain read
		if errors.Is(err, models.ErrNotFound) {
			return 0, "", nil
		} else if err != nil {
			return 0, "", err
		}
		if !rec.Active() {
			return 0, "", nil
		}
		ended, err := m.end(ctx, rec.UserID, "only", []string{rec.PublicID}, models.EndSignedOut, &rec.UserID)
		if err != nil || len(ended) == 0 {
			return 0, "", err
		}
		return rec.UserID, rec.PublicID, nil
	}
	b, err := m.lookupBearer(ctx, token)
	if errors.Is(err, errNotAccessToken) {
		return 0, "", nil
	}
	if err != nil || b == nil {
		return 0, "", err
	}
	ended, err := m.end(ctx, b.userID, "only", []string{b.publicID}, models.EndSignedOut, &b.userID)
	if err != nil || len(ended) == 0 {
		return 0, "", err
	}
	return b.userID, b.publicID, nil
}

// bearer is what the lookup of an access token found.
type bearer struct {
	tag, token        string
	userID            int64
	publicID          string
	name, email, role string
	authAt, seenAt    int64
}

// errNotAccessToken means a bearer credential that is not an access
// token: malformed, or a refresh token.
var errNotAccessToken = errors.New("not an access token")

// splitAccessToken returns the tag and token of an access token.
func splitAccessToken(s string) (tag, token string, ok bool) {
	rest, ok := strings.CutPrefix(s, AccessTokenPrefix)
	if !ok {
		return "", "", false
	}
	tag, token, ok = redisstore.SplitCookie(rest)
	return tag, token, ok && tag != ""
}

// lookupBearer resolves an access token through the cookies' lookup
// script, without idle sliding (redisstore's FindAccess): one command, no
// SQL. It returns nil for a token that authenticates nothing (expired,
// revoked, replaced, forged).
func (m *Manager) lookupBearer(ctx context.Context, access string) (*bearer, error) {
	tag, token, ok := splitAccessToken(access)
	if !ok {
		return nil, errNotAccessToken
	}
	f, err := m.store.FindAccess(ctx, tag, token)
	if err != nil || f == nil {
		return nil, err
	}
	authAt, seenAt, ok := parseAppData(f.Data)
	if !ok {
		return nil, nil
	}
	return &bearer{tag: tag, token: token, userID: f.UserID, publicID: f.PublicID, name: f.Name, email: f.Email, role: f.Role,
		authAt: authAt, seenAt: seenAt}, nil
}

// setAppData rewrites an access token's data, keeping its TTL; nothing
// when the token has expired.
func (m *Manager) setAppData(ctx context.Context, b *bearer) error {
	return m.store.SetAccessData(ctx, b.tag, b.token, appData(b.authAt, b.seenAt))
}

func appData(authAt, seenAt int64) string {
	return "app|" + strconv.FormatInt(authAt, 10) + "|" + strconv.FormatInt(seenAt, 10)
}

func parseAppData(s string) (authAt, seenAt int64, ok bool) {
	parts := strings.Split(s, "|")
	if len(parts) != 3 || parts[0] != "app" {
		return 0, 0, false
	}
	a, err1 := strconv.ParseInt(parts[1], 10, 64)
	b, err2 := strconv.ParseInt(parts[2], 10, 64)
	return a, b, err1 == nil && err2 == nil
}

// refreshTokenLen is the length of a refresh token.
const refreshTokenLen = len(RefreshTokenPrefix) + redisstore.TokenLen

// newRefreshToken returns a refresh token and its SHA-256.
func newRefreshToken() (string, []byte, error) {
	t, err := newToken()
	if err != nil {
		return "", nil, err
	}
	t = RefreshTokenPrefix + t
	h := sha256.Sum256([]byte(t))
	return t, h[:], nil
}

// refreshHash returns the SHA-256 of a refresh token, ok false when s has
// not its shape.
func refreshHash(s string) ([]byte, bool) {
	rest, ok := strings.CutPrefix(s, RefreshTokenPrefix)
	if !ok || len(s) != refreshTokenLen || !redisstore.Base64URL(rest) {
		return nil, false
	}
	h := sha256.Sum256([]byte(s))
	return h[:], true
}

// IsRefreshToken and IsAccessToken report whether s has the shape of a
// refresh or an access token, for error messages that say which kind was
// sent where.
func IsRefreshToken(s string) bool { _, ok := refreshHash(s); return ok }

func IsAccessToken(s string) bool { _, _, ok := splitAccessToken(s); return ok }

// newToken returns 256 random bits in base64url, as scs's tokens are.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func equalHash(a, b []byte) bool { return len(a) > 0 && string(a) == string(b) }

// BearerCredential returns the credential of an "Authorization: Bearer"
// header (RFC 6750), ok false when the request has none.
func BearerCredential(r *http.Request) (string, bool) {
	scheme, cred, ok := strings.Cut(r.Header.Get(echo.HeaderAuthorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(cred), true
}

// serveBearer is Middleware for a request with a bearer token: one lookup
// (findScript, no sliding, no SQL). The request never gets or clears a
// cookie: its scs session is an empty one that is never committed, there
// only so that handlers may read it as on any request.
func (m *Manager) serveBearer(c echo.Context, next echo.HandlerFunc, cred string) error {
	req := c.Request()
	st := &requestState{bearerSent: true}
	b, err := m.lookupBearer(req.Context(), cred)
	if err != nil && !errors.Is(err, errNotAccessToken) {
		return err
	}
	ctx, err := m.scs.Load(req.Context(), "")
	if err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	if b != nil {
		st.bearer = b
		st.principal = &Principal{UserID: b.userID, SessionID: b.publicID, Name: b.name, Email: b.email, Role: b.role,
			AuthAt: time.Unix(b.authAt, 0), App: true}
		m.touchBearer(ctx, b, c.RealIP())
	}
	c.SetRequest(req.WithContext(context.WithValue(ctx, stateKey{}, st)))
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	c.Response().Header().Add(echo.HeaderVary, echo.HeaderAuthorization)
	return next(c)
}

// touchBearer writes last_seen_at at most once per touchInterval, as touch
// does for cookies: the time of the last write is kept in the access
// token's data.
func (m *Manager) touchBearer(ctx context.Context, b *bearer, ip string) {
	now := m.now()
	if now.Sub(time.Unix(b.seenAt, 0)) < touchInterval {
		return
	}
	if m.workers.Offer(b.publicID, ip, now) {
		b.seenAt = now.Unix()
		if err := m.setAppData(ctx, b); err != nil {
			m.log.WarnContext(ctx, "noting an access token's last use", "err", err)
		}
	}
}

// BearerSent reports whether the request sent a bearer token, valid or
// not: such a request is not ambient (no CSRF check) and, when Current is
// nil, is answered 401 invalid_token.
func BearerSent(ctx context.Context) bool { return state(ctx).bearerSent }

// endApps writes at once, after the Redis step of an end, the end of the
// app sessions it ended (mode and ids as revoke takes them), and returns
// ended with those Redis no longer knew (their access token, field and
// all, lost with a Redis restart). Their refresh state is in Postgres: an
// app session Redis had lost would otherwise never be recorded ended, and
// a refresh would bring it back. The UPDATE waits for a refresh holding
// the record's lock; a refresh that comes after it finds the session
// ended.
//
// The Redis step has ended every session Redis knew, and its end marks
// stop their refresh until the recorder writes them, so a Postgres that is
// down or hung must not fail or stall the revoke (docs/reliability.md):
// the UPDATE gets appEndTimeout, and a failure is logged. What
// it leaves open is an app session whose Redis state was already lost when
// it was revoked during a Postgres outage (docs/api.md).
func (m *Manager) endApps(ctx context.Context, userID int64, mode string, ids []string, mark redisstore.EndMark, ended []string) []string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appEndTimeout)
	defer cancel()
	apps, err := m.records.EndApps(ctx, userID, mode, ids, mark.Reason, mark.Actor, mark.At)
	if err != nil {
		m.log.WarnContext(ctx, "app session ends not written to Postgres at once; the recorder writes those Redis knew",
			"user", userID, "err", err)
		return ended
	}
	for _, id := range apps {
		if !slices.Contains(ended, id) {
			ended = append(ended, id)
		}
	}
	return ended
}

// appEndTimeout bounds endApps's UPDATE: a revoke waits at most this long
// for a Postgres that does not answer.
const appEndTimeout = time.Second

// renewApp records, for an app session, that the user just proved their
// password (POST /api/v1/reauth): in the access token's data, which a
// refresh carries over to the next one.
func (m *Manager) renewApp(ctx context.Context, p *Principal, b *bearer) error {
	now := m.now()
	b.authAt = now.Unix()
	if err := m.setAppData(ctx, b); err != nil {
		return fmt.Errorf("renew app session: %w", err)
	}
	p.AuthAt = now
	return nil
}

// expireApps closes, as timed out, the app sessions of userID (of every
// user when 0) whose app idle timeout or lifetime has passed, and removes
// their fields from the user hashes, so that a dead app session does not
// count against MAX_SESSIONS. Their access tokens have expired by then
// (an access token never outlives the session's lifetime, and
// ACCESS_TOKEN_TTL is shorter than APP_IDLE_TIMEOUT).
func (m *Manager) expireApps(ctx context.Context, userID int64) error {
	closed, err := m.records.ExpireApps(ctx, userID, m.app.idle, m.now())
	if err != nil || len(closed) == 0 {
		return err
	}
	if err := m.store.DropFields(ctx, closed); err != nil {
		m.log.WarnContext(ctx, "removing the fields of expired app sessions", "err", err)
	}
	return nil
}
