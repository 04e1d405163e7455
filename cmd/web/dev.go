package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/localserver"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
)

// devAdminEmail is the administrator `web dev` creates on first start.
const devAdminEmail = "admin@example.com"

// devCommand runs `web dev`: Gatehouse with everything a laptop needs.
// It uses DATABASE_URL and REDIS_URL (or their defaults) when a server
// answers there; otherwise it runs a private Postgres and redis-server
// (internal/localserver, as the tests do) that keep their data under
// -dir, and stops them on exit. It applies migrations and, on a database
// without an administrator, creates one and prints its password once.
func devCommand(ctx context.Context, cfg config.Config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("web dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", filepath.Join(".gatehouse", "dev"), "where private servers keep their data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	cfg.MigrateOnStart = true

	// Private servers are stopped on the way out, whatever happens.
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	if postgresAnswers(cfg.DatabaseURL) {
		log.Info("dev: using the Postgres at DATABASE_URL")
	} else {
		pg, err := startDevPostgres(filepath.Join(abs, "postgres"), log)
		if err != nil {
			return err
		}
		stops = append(stops, func() {
			if err := pg.Shutdown(); err != nil {
				log.Error("dev: stopping the private Postgres", "err", err)
			} else {
				log.Info("dev: private Postgres stopped")
			}
		})
		cfg.DatabaseURL = pg.URL("gatehouse")
	}
	if cfg.Redis.Mode() != "single" {
		log.Info("dev: using the Redis " + cfg.Redis.Mode() + " configured")
	} else if localserver.Answers(cfg.Redis.URL) {
		log.Info("dev: using the Redis at REDIS_URL")
	} else {
		rd, err := startDevRedis(filepath.Join(abs, "redis"), log)
		if err != nil {
			return err
		}
		stops = append(stops, func() { rd.Shutdown(); log.Info("dev: private redis-server stopped") })
		cfg.Redis.URL = rd.URL()
	}
	if err := ensureAdmin(ctx, cfg, log, stdout); err != nil {
		return err
	}
	return serve(ctx, cfg, log)
}

// postgresAnswers reports whether a server listens at url's host and
// port. One that listens but refuses the URL is not replaced by a private
// one: start-up then says what is wrong with the URL.
func postgresAnswers(url string) bool {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return false
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func startDevPostgres(dir string, log *slog.Logger) (*localserver.Postgres, error) {
	port, err := localserver.FreePort()
	if err != nil {
		return nil, err
	}
	pg, err := localserver.NewPostgres(dir, port)
	if err != nil {
		return nil, fmt.Errorf("dev: nothing answers at DATABASE_URL, and a private Postgres cannot run: %w", err)
	}
	if !pg.Initialized() {
		log.Info("dev: creating a private Postgres cluster (first start only)", "dir", dir)
		if err := pg.Init(); err != nil {
			return nil, err
		}
	}
	if pg.Running() {
		// Left by a run that was killed: stop it, so the port is ours.
		pg.Stop()
	}
	if err := pg.Start(true); err != nil {
		return nil, err
	}
	log.Info("dev: private Postgres started", "url", pg.URL("gatehouse"), "dir", dir)
	return pg, nil
}

func startDevRedis(dir string, log *slog.Logger) (*localserver.Redis, error) {
	if err := localserver.FindRedis(); err != nil {
		return nil, fmt.Errorf("dev: nothing answers at REDIS_URL, and a private Redis cannot run: %w", err)
	}
	port, err := localserver.FreePort()
	if err != nil {
		return nil, err
	}
	if err := mkdirAll(dir); err != nil {
		return nil, err
	}
	// The append-only file keeps sessions across restarts.
	rd := &localserver.Redis{Port: port, Args: []string{"--dir", dir, "--appendonly", "yes"}}
	if err := rd.Start(); err != nil {
		return nil, err
	}
	log.Info("dev: private redis-server started", "url", rd.URL(), "dir", dir)
	return rd, nil
}

// ensureAdmin applies migrations and, when no administrator exists,
// creates one with a generated password and prints both, once: the
// password is stored only as its hash.
func ensureAdmin(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	db, sqlDB, err := database.OpenOrCreate(ctx, cfg.DatabaseURL, database.Limits{}, log)
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	if err := database.Migrate(ctx, sqlDB, log); err != nil {
		return err
	}
	var admins int64
	if err := db.WithContext(ctx).Model(&models.User{}).Where("role = ?", models.RoleAdmin).Count(&admins).Error; err != nil {
		return fmt.Errorf("dev: count administrators: %w", err)
	}
	if admins > 0 {
		return nil
	}
	pw := rand.Text() // 128 random bits
	hash, err := password.NewHasher().Hash(ctx, pw)
	if err != nil {
		return err
	}
	u := &models.User{Email: devAdminEmail, Name: "Administrator", PasswordHash: hash, Role: models.RoleAdmin}
	if err := models.NewUserStore(db).Create(ctx, u); errors.Is(err, models.ErrConflict) {
		return fmt.Errorf("dev: no administrator, and %s is taken by a user: make one with `web user create -admin`", devAdminEmail)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nCreated the administrator (shown this once; change it on /account):\n  e-mail:   %s\n  password: %s\n\n", devAdminEmail, pw)
	return nil
}

func mkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }
