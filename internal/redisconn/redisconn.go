// Package redisconn connects Gatehouse to Redis, whichever shape it has
// (one server, a Sentinel group, a Cluster), and is the one place that
// knows what the Redis driver's errors mean.
//
// Every Redis user (sessions, the throttle, the audit queue, readiness)
// takes the same go-redis UniversalClient from New, so a failure to reach
// Redis looks the same to all of them: an error that errors.Is
// ErrUnavailable, which pages answer with "temporarily unavailable".
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/config"
)

// Timeouts: a hung Redis fails a request in seconds (the page says the
// service is down) instead of hanging it.
const (
	dialTimeout = 2 * time.Second
	ioTimeout   = 2 * time.Second
	// poolTimeout is how long a caller waits for a connection when all
	// REDIS_MAX_CONNECTIONS are in use, rather than opening another: a
	// stalled Redis costs a bounded number of connections.
	poolTimeout = 5 * time.Second
)

// New returns a client for cfg with at most maxConns connections (per
// node, on a Cluster). It does not connect: the first command does.
// countError, when not nil, is told of every failed command (the metrics),
// and whether it was marked ErrUnavailable.
func New(cfg config.Redis, maxConns int, countError func(unavailable bool)) (redis.UniversalClient, error) {
	var c redis.UniversalClient
	switch cfg.Mode() {
	case "sentinel":
		tlsConf, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		c = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cfg.SentinelMaster, SentinelAddrs: cfg.SentinelAddrs, SentinelPassword: cfg.SentinelPassword,
			Username: cfg.Username, Password: cfg.Password, TLSConfig: tlsConf,
			Protocol: 2, DisableIdentity: true, MaxRetries: -1, DialerRetries: 1,
			DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout,
			PoolSize: maxConns, MaxActiveConns: maxConns, MaxIdleConns: maxConns, PoolTimeout: poolTimeout,
			ConnMaxIdleTime: 4 * time.Minute,
		})
	case "cluster":
		tlsConf, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		c = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: cfg.ClusterAddrs, Username: cfg.Username, Password: cfg.Password, TLSConfig: tlsConf,
			Protocol: 2, DisableIdentity: true,
			// Redirects (MOVED, ASK while slots move) are followed.
			// MaxRetries: -1 stops go-redis's retry loop here only: its
			// cluster client still sends a command whose connection broke
			// again, to the same node and then another, within
			// MaxRedirects (v9.23.0, osscluster.go process), so on a
			// Cluster a script cut off mid-reply may run twice
			// (docs/reliability.md, "Not covered").
			MaxRedirects: 8, MaxRetries: -1, DialerRetries: 1,
			DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout,
			PoolSize: maxConns, MaxActiveConns: maxConns, MaxIdleConns: maxConns, PoolTimeout: poolTimeout,
			ConnMaxIdleTime: 4 * time.Minute,
		})
	default:
		opt, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		opt.Protocol, opt.DisableIdentity, opt.MaxRetries, opt.DialerRetries = 2, true, -1, 1
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = dialTimeout, ioTimeout, ioTimeout
		opt.PoolSize, opt.MaxActiveConns, opt.MaxIdleConns, opt.PoolTimeout = maxConns, maxConns, maxConns, poolTimeout
		opt.ConnMaxIdleTime = 4 * time.Minute
		c = redis.NewClient(opt)
	}
	c.AddHook(classify{count: countError})
	return c, nil
}

// tlsConfig is the TLS configuration of a Sentinel group or Cluster: nil
// without REDIS_TLS.
func tlsConfig(cfg config.Redis) (*tls.Config, error) {
	if !cfg.TLS {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("REDIS_TLS_CA_FILE: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("REDIS_TLS_CA_FILE=%q holds no PEM certificate", cfg.TLSCAFile)
		}
		conf.RootCAs = roots
	}
	return conf, nil
}

// ErrUnavailable marks an error that means Redis could not be reached (or
// cannot serve right now). Test with errors.Is.
var ErrUnavailable = errors.New("session store unavailable")

// unavailableError is a Redis failure marked ErrUnavailable; its text and
// its chain are the original error's, so errors.As still finds net.Error.
type unavailableError struct{ err error }

func (e unavailableError) Error() string   { return e.err.Error() }
func (e unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// busyReplies are the error replies of a Redis that is up but cannot serve
// yet (loading its data after a restart, a replica cut off, a cluster
// without a majority, and the like), or cannot store more: OOM, a full
// Redis under maxmemory-policy noeviction, which refuses writes that need
// memory until some expires. ASK and MOVED reach here only when the
// cluster client ran out of redirects (MaxRedirects): while a slot moves
// between primaries, a script whose keys are split between them gets ASK
// from the source and TRYAGAIN from the target, in turn, until the
// budget ends on an ASK (TestReshardingUnderLoad answered 500 for it).
var busyReplies = []string{"LOADING ", "BUSY ", "MASTERDOWN ", "READONLY ", "TRYAGAIN ", "CLUSTERDOWN ", "OOM ", "NOREPLICAS ",
	"ASK ", "MOVED "}

// Classify marks err ErrUnavailable unless it is a reply from a Redis that
// is serving (redis.Nil, a script's error, a wrong type...), which keeps
// its own type. The client from New applies it to every command.
func Classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	var reply redis.Error
	if errors.As(err, &reply) && !errors.Is(err, redis.ErrClosed) && !errors.Is(err, redis.ErrPoolTimeout) &&
		!errors.Is(err, redis.ErrPoolExhausted) {
		msg := reply.Error()
		for _, p := range busyReplies {
			if strings.HasPrefix(msg, p) {
				return unavailableError{err}
			}
		}
		return err
	}
	return unavailableError{err}
}

// classify is the client hook that applies Classify to every command's
// error, pipelined or not (a refused dial fails the command it was for).
type classify struct {
	count func(unavailable bool) // nil: not counted
}

// mark classifies err and tells count of it. redis.Nil (no such key) is
// an answer, not a failure.
func (h classify) mark(err error) error {
	marked := Classify(err)
	if marked != nil && h.count != nil && !errors.Is(marked, redis.Nil) {
		h.count(errors.Is(marked, ErrUnavailable))
	}
	return marked
}

func (classify) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		return c, Classify(err)
	}
}

func (h classify) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if marked := h.mark(err); marked != err {
			cmd.SetErr(marked)
			return marked
		}
		return err
	}
}

func (h classify) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if e := cmd.Err(); e != nil {
				if marked := h.mark(e); marked != e {
					cmd.SetErr(marked)
				}
			}
		}
		return Classify(err)
	}
}

// LogTo sends go-redis's own log lines (a failed dial, a sentinel naming a
// new primary) to log at WARN, tagged component=go-redis, instead of
// go-redis's default: unstructured lines on stderr, one per failed dial
// during an outage. go-redis keeps one logger per process.
func LogTo(log *slog.Logger) {
	redis.SetLogger(driverLog{log.With("component", "go-redis")})
}

type driverLog struct{ log *slog.Logger }

func (l driverLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}
