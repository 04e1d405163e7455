// Command web runs Gatehouse.
//
//	web [-no-migrate]                                serve HTTP (the default)
//	web dev [-dir D]                                 serve for development, with
//	                                                 private Postgres and Redis
//	                                                 when none answer
//	web migrate                                      apply pending migrations and exit
//	web user create -email E -name N [-admin] < pw   create an account; the
//	                                                 password is read from
//	                                                 standard input
//	web seed -users N -sessions M [-tokens FILE]     create users and signed-in
//	                                                 sessions for load tests
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/redisconn"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "web:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noMigrate := fs.Bool("no-migrate", false, "do not apply migrations at start (same as MIGRATE_ON_START=false)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.Arg(0) == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if *noMigrate {
		cfg.MigrateOnStart = false
	}
	if cfg.SecretKey == nil { // development only (config.Load requires it elsewhere)
		if cfg.SecretKey, err = config.DevSecretKey(config.DevSecretKeyFile); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	switch cmd := fs.Arg(0); cmd {
	case "", "serve":
		return serve(ctx, cfg, log)
	case "migrate":
		_, sqlDB, err := database.OpenOrCreate(ctx, cfg.DatabaseURL, database.Limits{}, log)
		if err != nil {
			return err
		}
		defer sqlDB.Close()
		return database.Migrate(ctx, sqlDB, log)
	case "user":
		return userCommand(ctx, cfg, log, fs.Args()[1:], stdin, stdout, stderr)
	case "seed":
		return seedCommand(ctx, cfg, log, fs.Args()[1:], stdout, stderr)
	case "dev":
		return devCommand(ctx, cfg, log, fs.Args()[1:], stdout, stderr)
	default:
		return fmt.Errorf("unknown command %q (want %s; `web help` lists them)", cmd, commandNames)
	}
}

// usage is what `web help` prints: every subcommand, one line each.
const usage = `Usage: web [-no-migrate] [command]

Commands:
  serve                  serve Gatehouse on ADDR (the default command)
  dev [-dir D]           serve for development: private Postgres and Redis under ./.gatehouse/dev when none answer, first administrator printed once
  migrate                apply pending migrations to DATABASE_URL and exit
  user create -email E -name N [-admin]   create an account; the password is read from standard input
  seed -users N -sessions M [-tokens F]   fill a database with users and signed-in sessions for load tests
  help                   print this list

Settings come from environment variables (README.md, Configuration).
`

// commandNames lists the commands for an error message.
const commandNames = "serve, dev, migrate, user, seed or help"

func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	redisconn.LogTo(log)
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()

	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           a.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on ADDR=%s: %w", cfg.Addr, err)
	}
	log.Info("gatehouse listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL.String())
	stopMetrics, err := serveMetrics(cfg.MetricsAddr, a, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMetrics()
	stopPprof, err := servePprof(cfg.PprofAddr, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopPprof()

	// The background work (session workers and sweeper, audit writer, mail
	// sender) runs beside the server. It stops after the server, with its
	// final flush, and before the app closes (defers run last first).
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		if err := a.Run(runCtx); err != nil {
			log.Error("background work", "err", err)
		}
	}()
	defer func() { stopRun(); <-runDone }()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still running after SHUTDOWN_TIMEOUT are cut off.
		srv.Close()
		return fmt.Errorf("shutdown: requests still in flight after SHUTDOWN_TIMEOUT=%s were cut off: %w", cfg.ShutdownTimeout, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("shut down: every request finished")
	return nil
}

// serveMetrics serves the app's Prometheus metrics at /metrics on addr, a
// listener apart from the public one (nothing else is served there), until
// the returned function is called. An empty addr serves nothing.
func serveMetrics(addr string, a *app.App, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.Metrics.Handler())
	return serveAside("METRICS_ADDR", addr, mux, 30*time.Second, log)
}

// servePprof serves Go's profiles (net/http/pprof: /debug/pprof/profile
// for CPU, heap, goroutine...) on addr, a loopback listener of their own
// (config checks), until the returned function is called; for the load
// benchmark's profile of the app under load (bench/bench.sh). An empty
// addr serves nothing. Importing net/http/pprof also registers these
// handlers on http.DefaultServeMux, which Gatehouse never serves.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	// A CPU profile takes as long as asked (?seconds=N): no write timeout.
	return serveAside("PPROF_ADDR", addr, mux, 0, log)
}

// serveAside serves h on addr (the variable name), a listener apart from
// the public one, until the returned function is called; an empty addr
// serves nothing.
func serveAside(name, addr string, h *http.ServeMux, writeTimeout time.Duration, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s=%s: %w", name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: writeTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go srv.Serve(ln)
	log.Info("listening beside the app", "for", name, "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
