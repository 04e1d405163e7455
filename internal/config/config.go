// Package config reads Gatehouse's settings from the environment.
//
// Every setting has a default that works on a development machine with
// PostgreSQL and Redis on localhost. A value that does not parse stops
// start-up with an error naming the variable.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Config is the whole of Gatehouse's configuration.
type Config struct {
	Addr string // ADDR: listen address
	// MetricsAddr is where Prometheus metrics are served, at /metrics, on
	// a listener of their own: never the public one. Empty (the default)
	// serves none.
	MetricsAddr string   // METRICS_ADDR
	BaseURL     *url.URL // BASE_URL: public URL; https turns on Secure cookies
	DatabaseURL string   // DATABASE_URL: postgres:// URL
	// Redis is where Gatehouse finds Redis: one server, a Sentinel group
	// or a Cluster (Redis).
	Redis Redis
	// RedisPrefix namespaces every Redis key, so several deployments (or
	// tests) can share one Redis.
	RedisPrefix string // REDIS_PREFIX
	// RedisMaxConnections bounds the Redis connections an instance opens;
	// a request waits for a free one (as long as its context allows)
	// rather than opening more, so a stalled Redis cannot pile them up.
	RedisMaxConnections int // REDIS_MAX_CONNECTIONS

	// IdleTimeout ends a session after this long without a request;
	// Lifetime ends it this long after sign-in, however active it is.
	IdleTimeout time.Duration // SESSION_IDLE_TIMEOUT
	Lifetime    time.Duration // SESSION_LIFETIME

	// ReauthWindow is how recently the user must have proved their password
	// for sensitive actions (email change, signing out other devices,
	// admin revocations); older proof gets the confirm-password page.
	ReauthWindow time.Duration // REAUTH_WINDOW
	// MaxSessions caps a user's concurrent sessions, browsers' and apps';
	// signing in beyond it ends the session idle the longest (ASVS 5.0
	// 7.1.2).
	MaxSessions int // MAX_SESSIONS_PER_USER

	// App sessions (docs/api.md): an access token lives AccessTokenTTL; a
	// refresh token rotated away from is honored once more within
	// RefreshGrace (at most 30 s, 0 for never); an app session ends after
	// AppIdleTimeout without a refresh, or AppLifetime after sign-in.
	AccessTokenTTL time.Duration // ACCESS_TOKEN_TTL
	RefreshGrace   time.Duration // REFRESH_GRACE
	AppIdleTimeout time.Duration // APP_IDLE_TIMEOUT
	AppLifetime    time.Duration // APP_LIFETIME
	// CORSOrigins are the origins whose scripts may call /api/v1 with
	// credentials; none by default (CORS off).
	CORSOrigins []string // CORS_ORIGINS

	// DBTimeout bounds every database statement and transaction: a hung
	// Postgres makes the request answer 503 instead of hanging.
	DBTimeout time.Duration // DATABASE_TIMEOUT
	// DBMaxConns caps one instance's connections to Postgres.
	DBMaxConns int // DATABASE_MAX_CONNECTIONS

	MigrateOnStart bool // MIGRATE_ON_START
	// TrustedProxies are the addresses of the reverse proxies in front of
	// Gatehouse. With any, the client IP is the right-most X-Forwarded-For
	// hop that is not one of them; every hop further left was written by the
	// client and is ignored. None: X-Forwarded-For is ignored.
	TrustedProxies []*net.IPNet // TRUST_PROXY
	// ShutdownTimeout bounds how long requests in flight may take to finish.
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT
	// LogLevel is the least severe level logged; requests are logged at info.
	LogLevel slog.Level // LOG_LEVEL
	// StartupTimeout is how long start-up keeps retrying Postgres and Redis
	// before it gives up.
	StartupTimeout time.Duration // STARTUP_TIMEOUT
	// SweepInterval is how often `web serve` closes the records of sessions
	// whose Redis data has expired.
	SweepInterval time.Duration // SWEEP_INTERVAL
	// SignUpRatePerIP caps the sign-ups one client address may make per
	// hour; 0 turns the cap off.
	SignUpRatePerIP int // SIGNUP_RATE_PER_IP
	// PasswordConcurrencyPerIP caps the requests that hash a password
	// (sign-in, sign-up, confirm, password change) one client address may
	// have in flight at once on an instance; 0 turns the cap off.
	PasswordConcurrencyPerIP int // PASSWORD_CONCURRENCY_PER_IP

	// SMTPURL is the mail server (smtp:// or smtps://, with user:pass@ for
	// AUTH); empty: mail goes to the development mailbox at /dev/mail when
	// BASE_URL is a loopback address, and otherwise waits in the outbox.
	SMTPURL string // SMTP_URL
	// MailFrom is the From of every mail: "Name <address>" or an address.
	MailFrom *mail.Address // MAIL_FROM
	// MailGiveUpAfter is how long a mail is retried before it is given up.
	MailGiveUpAfter time.Duration // MAIL_GIVE_UP_AFTER
	// SecretKey is the key material that encrypts second-factor secrets at
	// rest and keys the hashes of recovery codes: at least 32 bytes.
	// Required unless BASE_URL is a loopback address (Development); there,
	// when unset, it stays nil and the web command keeps a generated one in
	// a local file (DevSecretKey).
	SecretKey []byte // SECRET_KEY
	// Require2FAForAdmins makes an administrator without a second factor
	// set one up before any admin page opens.
	Require2FAForAdmins bool // REQUIRE_2FA_FOR_ADMINS
}

// Defaults follow OWASP ASVS level 2 (4.0.3 V3.3.2): re-authentication after
// 30 minutes idle or 12 hours in all.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultLifetime    = 12 * time.Hour
)

// DefaultDatabaseURL is Gatehouse's own database on a local Postgres, not
// the postgres maintenance database; it is created at start when missing.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/gatehouse?sslmode=disable"

// DefaultRedisMaxConnections is enough for the requests two cores serve at
// once (most hold a connection for well under a millisecond) and far below
// Redis's default limit of 10,000 clients, even for dozens of instances.
const DefaultRedisMaxConnections = 64

// Load reads the configuration through getenv (os.Getenv in production, a
// map in tests).
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	cfg := Config{
		Addr:            p.str("ADDR", "localhost:8080"),
		MetricsAddr:     p.str("METRICS_ADDR", ""),
		BaseURL:         p.baseURL("BASE_URL", "http://localhost:8080"),
		DatabaseURL:     p.dbURL("DATABASE_URL", DefaultDatabaseURL),
		Redis:           p.redis(),
		RedisPrefix:     p.str("REDIS_PREFIX", "gh:"),
		IdleTimeout:     p.duration("SESSION_IDLE_TIMEOUT", DefaultIdleTimeout),
		Lifetime:        p.duration("SESSION_LIFETIME", DefaultLifetime),
		ReauthWindow:    p.duration("REAUTH_WINDOW", 10*time.Minute),
		MaxSessions:     p.positiveInt("MAX_SESSIONS_PER_USER", 20),
		AccessTokenTTL:  p.duration("ACCESS_TOKEN_TTL", time.Hour),
		RefreshGrace:    p.nonNegativeDuration("REFRESH_GRACE", 30*time.Second),
		AppIdleTimeout:  p.duration("APP_IDLE_TIMEOUT", 7*24*time.Hour),
		AppLifetime:     p.duration("APP_LIFETIME", 30*24*time.Hour),
		CORSOrigins:     p.origins("CORS_ORIGINS"),
		MigrateOnStart:  p.boolean("MIGRATE_ON_START", true),
		TrustedProxies:  p.proxies("TRUST_PROXY"),
		ShutdownTimeout: p.duration("SHUTDOWN_TIMEOUT", 15*time.Second),
		DBTimeout:       p.duration("DATABASE_TIMEOUT", 5*time.Second),
		DBMaxConns:      p.positiveInt("DATABASE_MAX_CONNECTIONS", 20),
		LogLevel:        p.logLevel("LOG_LEVEL", slog.LevelInfo),
		StartupTimeout:  p.duration("STARTUP_TIMEOUT", 30*time.Second),
		SweepInterval:   p.duration("SWEEP_INTERVAL", 5*time.Minute),

		RedisMaxConnections:      p.positiveInt("REDIS_MAX_CONNECTIONS", DefaultRedisMaxConnections),
		SignUpRatePerIP:          p.count("SIGNUP_RATE_PER_IP", 30),
		PasswordConcurrencyPerIP: p.count("PASSWORD_CONCURRENCY_PER_IP", 4),

		SMTPURL:         p.smtpURL("SMTP_URL"),
		MailGiveUpAfter: p.duration("MAIL_GIVE_UP_AFTER", 24*time.Hour),

		Require2FAForAdmins: p.boolean("REQUIRE_2FA_FOR_ADMINS", false),
	}
	if strings.ContainsAny(cfg.RedisPrefix, "{}") {
		// Braces would make the prefix Redis Cluster's hash tag: every key
		// in one slot, and the users' tags ignored.
		p.fail("REDIS_PREFIX", cfg.RedisPrefix, "must not contain { or }")
	}
	// By default, mail comes from no-reply@ BASE_URL's host name (from
	// localhost when that is an IP address).
	fromHost := cfg.BaseURL.Hostname()
	if fromHost == "" || net.ParseIP(fromHost) != nil {
		fromHost = "localhost"
	}
	cfg.MailFrom = p.mailFrom("MAIL_FROM", "Gatehouse <no-reply@"+fromHost+">")
	cfg.SecretKey = p.secretKey("SECRET_KEY", cfg.Development())
	if cfg.MetricsAddr != "" && cfg.MetricsAddr == cfg.Addr {
		p.fail("METRICS_ADDR", cfg.MetricsAddr, "must differ from ADDR: metrics are never served on the public port")
	}
	if p.err == nil && cfg.IdleTimeout > cfg.Lifetime {
		p.fail("SESSION_IDLE_TIMEOUT", getenv("SESSION_IDLE_TIMEOUT"), "must not be longer than SESSION_LIFETIME")
	}
	switch {
	case p.err != nil:
	case cfg.RefreshGrace > MaxRefreshGrace:
		p.fail("REFRESH_GRACE", getenv("REFRESH_GRACE"), "must be at most 30s: a longer grace lets a stolen refresh token be replayed unnoticed")
	case cfg.AppIdleTimeout > cfg.AppLifetime:
		p.fail("APP_IDLE_TIMEOUT", getenv("APP_IDLE_TIMEOUT"), "must not be longer than APP_LIFETIME")
	case cfg.AccessTokenTTL >= cfg.AppIdleTimeout:
		p.fail("ACCESS_TOKEN_TTL", getenv("ACCESS_TOKEN_TTL"), "must be shorter than APP_IDLE_TIMEOUT")
	}
	return cfg, p.err
}

// MaxRefreshGrace bounds REFRESH_GRACE.
const MaxRefreshGrace = 30 * time.Second

// SecureCookies reports whether cookies must be Secure (and may use the
// __Host- prefix): only when the public URL is https.
func (c Config) SecureCookies() bool { return c.BaseURL.Scheme == "https" }

// DevMailbox reports whether mail goes to the development mailbox
// (/dev/mail): no SMTP_URL, and a BASE_URL on this machine.
func (c Config) DevMailbox() bool { return c.SMTPURL == "" && c.Development() }

// Development reports whether Gatehouse runs for a developer on this
// machine: its public URL names a loopback host (localhost, 127.0.0.0/8,
// ::1). Anything else is production.
func (c Config) Development() bool {
	if c.BaseURL == nil {
		return false
	}
	host := c.BaseURL.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// MinSecretKeyLen is the least SECRET_KEY may hold: 256 bits, were it
// random bytes.
const MinSecretKeyLen = 32

func (p *parser) secretKey(name string, development bool) []byte {
	v := p.getenv(name)
	switch {
	case v == "" && development:
		return nil
	case v == "":
		p.fail(name, "", "required when BASE_URL is not a loopback address: at least 32 random bytes, e.g. the output of `openssl rand -base64 48`")
	case len(v) < MinSecretKeyLen:
		p.fail(name, "(hidden)", "too short: want at least 32 bytes, e.g. the output of `openssl rand -base64 48`")
	}
	return []byte(v)
}

// parser collects the errors of every variable, so one run of the program
// names all bad values at once.
type parser struct {
	getenv func(string) string
	err    error
}

func (p *parser) fail(name, value, why string) {
	p.err = errors.Join(p.err, fmt.Errorf("%s=%q: %s", name, value, why))
}

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail(name, v, "want a positive duration such as 30m or 12h")
		return def
	}
	return d
}

// nonNegativeDuration reads a duration of 0 or more ("0s" turns it off).
func (p *parser) nonNegativeDuration(name string, def time.Duration) time.Duration {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p.fail(name, v, "want a duration of 0 or more, such as 0s or 30s")
		return def
	}
	return d
}

// origins reads a comma-separated list of origins, each scheme://host
// with an optional port and nothing else (a browser's Origin header).
func (p *parser) origins(name string) []string {
	v := p.str(name, "")
	if v == "" {
		return nil
	}
	var out []string
	for o := range strings.SplitSeq(v, ",") {
		o = strings.TrimSpace(o)
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || o != u.Scheme+"://"+u.Host {
			p.fail(name, v, "want origins such as https://app.example.com, separated by commas (no path, no *)")
			return nil
		}
		out = append(out, strings.ToLower(o))
	}
	return out
}

func (p *parser) positiveInt(name string, def int) int {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		p.fail(name, v, "want a whole number of at least 1")
		return def
	}
	return n
}

// count reads a whole number of at least 0 (0 often meaning "off").
func (p *parser) count(name string, def int) int {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		p.fail(name, v, "want a whole number of at least 0")
		return def
	}
	return n
}

func (p *parser) boolean(name string, def bool) bool {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, v, "want true or false")
		return def
	}
	return b
}

// loopback is what TRUST_PROXY=true trusts: a proxy on the same machine.
var loopback = []string{"127.0.0.0/8", "::1/128"}

// proxies reads TRUST_PROXY: false (or empty) for none, true for a proxy on
// the same machine (loopback), or a comma-separated list of IP addresses
// and CIDR ranges.
func (p *parser) proxies(name string) []*net.IPNet {
	v := p.str(name, "")
	items := strings.Split(v, ",")
	switch on, err := strconv.ParseBool(v); {
	case v == "" || err == nil && !on:
		return nil
	case err == nil:
		items = loopback
	}
	var out []*net.IPNet
	for _, item := range items {
		item = strings.TrimSpace(item)
		if !strings.Contains(item, "/") {
			if ip := net.ParseIP(item); ip.To4() != nil {
				item += "/32"
			} else if ip != nil {
				item += "/128"
			}
		}
		_, ipNet, err := net.ParseCIDR(item)
		if err != nil {
			p.fail(name, v, "want false, true (a proxy on this machine) or a comma-separated list of proxy addresses "+
				"and ranges such as 10.0.0.5,192.168.1.0/24")
			return nil
		}
		out = append(out, ipNet)
	}
	return out
}

func (p *parser) url(name, def string, schemes ...string) *url.URL {
	v := p.str(name, def)
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		p.fail(name, v, "want an absolute URL such as "+def)
		return &url.URL{}
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return u
		}
	}
	p.fail(name, v, "scheme must be one of "+strings.Join(schemes, ", "))
	return &url.URL{}
}

func (p *parser) baseURL(name, def string) *url.URL {
	u := p.url(name, def, "http", "https")
	if u.Path != "" && u.Path != "/" {
		p.fail(name, u.String(), "must not have a path: Gatehouse is served from the root")
	}
	u.Path = ""
	return u
}

func (p *parser) dbURL(name, def string) string {
	return p.url(name, def, "postgres", "postgresql").String()
}

// DefaultRedisURL is the Redis used when none of REDIS_URL,
// REDIS_SENTINEL_ADDRS and REDIS_CLUSTER_ADDRS is set.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// Redis says how to reach Redis. Exactly one of URL, SentinelAddrs and
// ClusterAddrs is set.
type Redis struct {
	// URL is a single server: redis:// or rediss:// (TLS), with any
	// user name, password and database number in the URL.
	URL string // REDIS_URL
	// SentinelAddrs are the Sentinels (host:port) that know the primary
	// named SentinelMaster.
	SentinelAddrs  []string // REDIS_SENTINEL_ADDRS, comma-separated
	SentinelMaster string   // REDIS_SENTINEL_MASTER
	// SentinelPassword is the Sentinels' own password, when they have one.
	SentinelPassword string // REDIS_SENTINEL_PASSWORD
	// ClusterAddrs are seed nodes of a Redis Cluster (host:port).
	ClusterAddrs []string // REDIS_CLUSTER_ADDRS, comma-separated
	// RevokeReplicas is how many replicas must acknowledge a revoke
	// (WAIT) before it counts as safe from a failover; -1 (unset): 1 when
	// every primary has a replica, else 0.
	RevokeReplicas int // REDIS_REVOKE_REPLICAS
	// Username and Password authenticate to the Sentinel group's or the
	// Cluster's data nodes (with REDIS_URL they are in the URL).
	Username string // REDIS_USERNAME
	Password string // REDIS_PASSWORD
	// TLS connects to the Sentinel group's or the Cluster's nodes over TLS
	// (with REDIS_URL: the rediss:// scheme), trusting the system's roots
	// plus TLSCAFile when set.
	TLS       bool   // REDIS_TLS
	TLSCAFile string // REDIS_TLS_CA_FILE
}

// Mode names the kind of Redis: "single", "sentinel" or "cluster".
func (r Redis) Mode() string {
	switch {
	case len(r.SentinelAddrs) > 0:
		return "sentinel"
	case len(r.ClusterAddrs) > 0:
		return "cluster"
	}
	return "single"
}

// Addr describes the Redis for messages: the URL without its password, or
// the addresses.
func (r Redis) Addr() string {
	switch r.Mode() {
	case "sentinel":
		return "sentinel master " + r.SentinelMaster + " via " + strings.Join(r.SentinelAddrs, ",")
	case "cluster":
		return "cluster via " + strings.Join(r.ClusterAddrs, ",")
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// redis reads the Redis settings: exactly one of REDIS_URL,
// REDIS_SENTINEL_ADDRS (with REDIS_SENTINEL_MASTER) and
// REDIS_CLUSTER_ADDRS; none means DefaultRedisURL.
func (p *parser) redis() Redis {
	r := Redis{
		SentinelAddrs:    p.addrs("REDIS_SENTINEL_ADDRS"),
		SentinelMaster:   p.str("REDIS_SENTINEL_MASTER", ""),
		SentinelPassword: p.getenv("REDIS_SENTINEL_PASSWORD"),
		ClusterAddrs:     p.addrs("REDIS_CLUSTER_ADDRS"),
		Username:         p.str("REDIS_USERNAME", ""),
		Password:         p.getenv("REDIS_PASSWORD"),
		TLS:              p.boolean("REDIS_TLS", false),
		TLSCAFile:        p.str("REDIS_TLS_CA_FILE", ""),
		RevokeReplicas:   p.count("REDIS_REVOKE_REPLICAS", -1),
	}
	var set []string
	for _, name := range []string{"REDIS_URL", "REDIS_SENTINEL_ADDRS", "REDIS_CLUSTER_ADDRS"} {
		if p.str(name, "") != "" {
			set = append(set, name)
		}
	}
	if len(set) > 1 {
		p.err = errors.Join(p.err, fmt.Errorf("%s are all set: set exactly one of REDIS_URL, REDIS_SENTINEL_ADDRS "+
			"and REDIS_CLUSTER_ADDRS", strings.Join(set, " and ")))
	}
	if len(r.SentinelAddrs) > 0 && r.SentinelMaster == "" {
		p.fail("REDIS_SENTINEL_MASTER", "", "must name the primary when REDIS_SENTINEL_ADDRS is set")
	}
	if len(r.SentinelAddrs) == 0 && len(r.ClusterAddrs) == 0 {
		r.URL = p.url("REDIS_URL", DefaultRedisURL, "redis", "rediss").String()
	}
	return r
}

// addrs reads a comma-separated list of host:port addresses.
func (p *parser) addrs(name string) []string {
	v := p.str(name, "")
	if v == "" {
		return nil
	}
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if _, port, err := net.SplitHostPort(item); err != nil || port == "" {
			p.fail(name, v, "want a comma-separated list of host:port addresses such as 10.0.0.1:26379,10.0.0.2:26379")
			return nil
		}
		out = append(out, item)
	}
	return out
}

// smtpURL reads SMTP_URL: empty, or smtp:// or smtps:// with a host.
func (p *parser) smtpURL(name string) string {
	v := p.str(name, "")
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Hostname() == "" || (u.Scheme != "smtp" && u.Scheme != "smtps") ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		shown := v
		if err == nil {
			shown = u.Redacted()
		} else {
			shown = "(unparseable URL)"
		}
		p.fail(name, shown, "want smtp://[user:pass@]host[:port] (STARTTLS when offered) or smtps://... (TLS)")
		return ""
	}
	return v
}

// mailFrom reads an address for the From header: "Name <address>" or a
// bare address, with nothing that could start another header.
func (p *parser) mailFrom(name, def string) *mail.Address {
	v := p.str(name, def)
	a, err := mail.ParseAddress(v)
	if err != nil || strings.ContainsFunc(v, unicode.IsControl) {
		p.fail(name, v, "want an address such as Gatehouse <no-reply@example.com>")
		return &mail.Address{Name: "Gatehouse", Address: "no-reply@localhost"}
	}
	return a
}
