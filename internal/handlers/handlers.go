// Package handlers is Gatehouse's HTTP surface: routes, middleware, one
// error handler, and a handler per page or action.
package handlers

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/gatehouse/gatehouse/internal/factor"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// Pinger reports whether a backing service answers (the Postgres pool).
type Pinger interface {
	PingContext(ctx context.Context) error
}

// Deps are what the handlers need.
type Deps struct {
	Users         *models.UserStore
	Audit         *models.AuditStore
	Sessions      *session.Manager
	Hasher        *password.Hasher
	Postgres      Pinger // pinged by the health check; Store does the work
	Logger        *slog.Logger
	SecureCookies bool // https: Secure cookies with the __Host- prefix
	// TrustedProxies are the reverse proxies whose X-Forwarded-For hops
	// are believed; none: the header is ignored.
	TrustedProxies []*net.IPNet
	Now            func() time.Time
	Throttle       *throttle.Limiter // brute-force throttling of every password check
	ReauthWindow   time.Duration     // how fresh a password proof sensitive actions need
	// SignUpRatePerIP caps sign-ups per client address per hour (0: no cap).
	SignUpRatePerIP int
	// PasswordConcurrencyPerIP caps the requests hashing a password at once
	// per client address (0: no cap).
	PasswordConcurrencyPerIP int

	// Store is the database for work that spans a transaction (a mail and
	// the event that causes it).
	Store *models.DB
	// BaseURL is the public URL; mailed links are on it.
	BaseURL *url.URL
	// Mailer is woken when a request has queued mail; nil: mail waits for
	// the sender's next poll.
	Mailer Waker
	// DevMailbox serves the development mailbox at /dev/mail.
	DevMailbox bool
	// Keys seal second-factor secrets and hash recovery codes (SECRET_KEY).
	Keys    *factor.Keys
	Factors *models.FactorStore // second factors and pending sign-ins
	// Passkeys stores passkeys and WebAuthn ceremonies; WebAuthn is the
	// relying party (NewRelyingParty).
	Passkeys *models.PasskeyStore
	WebAuthn *webauthn.WebAuthn
	// DeviceAuths stores device-flow sign-ins (device.go).
	DeviceAuths *models.DeviceStore
	// Require2FAForAdmins sends an administrator without a second factor
	// to set one up before any admin page.
	Require2FAForAdmins bool
	// Metrics counts requests, sign-ins and refusals; nil counts nothing.
	Metrics *metrics.Metrics
	// CORSOrigins may call /api/v1 from scripts (CORS_ORIGINS); none: CORS
	// off.
	CORSOrigins []string
}

// Handlers holds the dependencies every handler uses.
type Handlers struct {
	users    *models.UserStore
	audits   *models.AuditStore
	sessions *session.Manager
	hasher   *password.Hasher
	postgres Pinger
	log      *slog.Logger
	secure   bool
	now      func() time.Time
	throttle *throttle.Limiter
	// reauthWindow is how recently the password must have been proved for
	// sensitive actions.
	reauthWindow time.Duration
	signUpRate   int       // sign-ups per client address per hour; 0: no cap
	inFlight     *inFlight // password work in flight per client address
	store        *models.DB
	baseURL      *url.URL
	mailer       Waker
	keys         *factor.Keys
	factors      *models.FactorStore
	passkeys     *models.PasskeyStore
	webauthn     *webauthn.WebAuthn
	deviceAuths  *models.DeviceStore
	// require2FAForAdmins: REQUIRE_2FA_FOR_ADMINS.
	require2FAForAdmins bool
	metrics             *metrics.Metrics
	corsOrigins         []string
}

func newHandlers(d Deps) *Handlers {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Handlers{
		users: d.Users, audits: d.Audit, sessions: d.Sessions, hasher: d.Hasher, postgres: d.Postgres,
		log: log, secure: d.SecureCookies, now: now, throttle: d.Throttle,
		reauthWindow: d.ReauthWindow, signUpRate: d.SignUpRatePerIP,
		inFlight: &inFlight{n: map[string]int{}, max: d.PasswordConcurrencyPerIP},
		store:    d.Store, baseURL: d.BaseURL, mailer: d.Mailer,
		keys: d.Keys, factors: d.Factors, require2FAForAdmins: d.Require2FAForAdmins,
		passkeys: d.Passkeys, webauthn: d.WebAuthn, deviceAuths: d.DeviceAuths,
		metrics: d.Metrics, corsOrigins: d.CORSOrigins,
	}
}
