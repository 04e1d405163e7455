package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/redisconn"
	"github.com/gatehouse/gatehouse/internal/session"
)

// seedChunk is how many sessions `web seed` generates, copies into Postgres
// and writes to Redis at a time, so memory stays flat however many it makes.
const seedChunk = 50_000

// seedAgents are the browsers seeded sessions claim to be.
var seedAgents = []string{
	"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
}

// seedCommand runs `web seed`: it creates users and signed-in sessions for
// load tests, fast. Users go in with one COPY and share one argon2id hash;
// session records go in by COPY, and their Redis side is written by
// session.Manager.Seed, pipelined, exactly as sign-in leaves it. Session j
// belongs to user j mod N, so every user gets M/N sessions.
func seedCommand(ctx context.Context, cfg config.Config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("web seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	users := fs.Int("users", 1000, "number of users to create")
	sessions := fs.Int("sessions", 10_000, "number of sessions to create, spread evenly over the users")
	tokensFile := fs.String("tokens", "", "write each session's token (the cookie value) to this file, one a line")
	emailPrefix := fs.String("email-prefix", "seed", "users are <prefix><i>@example.test, i from 1")
	pw := fs.String("password", "seed password", "every seeded user's password")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *users < 1 || *sessions < 0 {
		return errors.New("seed: -users must be at least 1 and -sessions at least 0")
	}
	if msg := password.CheckLength(*pw); msg != "" {
		return fmt.Errorf("-password: %s", msg)
	}
	// Users are copied in bulk, past UserStore.Create: their addresses must
	// already be in the canonical form sign-in looks up.
	if err := mustBeCanonical(seedEmail(*emailPrefix, 1)); err != nil {
		return fmt.Errorf("-email-prefix: %w", err)
	}

	db, sqlDB, err := database.Open(ctx, cfg.DatabaseURL, database.Limits{})
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	if cfg.MigrateOnStart {
		if err := database.Migrate(ctx, sqlDB, log); err != nil {
			return err
		}
	}
	rdb, err := redisconn.New(cfg.Redis, cfg.RedisMaxConnections, nil)
	if err != nil {
		return err
	}
	defer rdb.Close()
	tagKey, err := models.Secret(ctx, db, session.TagSecret, 32)
	if err != nil {
		return err
	}
	mgr := session.New(session.Options{
		Redis: rdb, TagKey: tagKey, Cluster: cfg.Redis.Mode() == "cluster", Records: models.NewSessionStore(db), Prefix: cfg.RedisPrefix,
		IdleTimeout: cfg.IdleTimeout, Lifetime: cfg.Lifetime, Logger: log,
	})

	var tokens *bufio.Writer
	if *tokensFile != "" {
		f, err := os.Create(*tokensFile)
		if err != nil {
			return err
		}
		defer f.Close()
		tokens = bufio.NewWriterSize(f, 1<<20)
	}

	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pg := dc.(*stdlib.Conn).Conn()
		start := time.Now()
		hash, err := password.NewHasher().Hash(ctx, *pw)
		if err != nil {
			return err
		}
		ids, err := seedUsers(ctx, pg, *users, *emailPrefix, hash)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "seeded %d users in %v\n", len(ids), time.Since(start).Round(time.Millisecond))

		start = time.Now()
		for from := 0; from < *sessions; from += seedChunk {
			n := min(seedChunk, *sessions-from)
			batch := make([]session.SeedSession, n)
			recs := make([][]any, n)
			now := time.Now()
			for i := range batch {
				j := from + i
				u := j % len(ids)
				token, err := session.NewToken()
				if err != nil {
					return err
				}
				pid, err := session.NewPublicID()
				if err != nil {
					return err
				}
				batch[i] = session.SeedSession{
					Token: token, PublicID: pid, UserID: ids[u], Role: models.RoleUser, CreatedAt: now,
					Name: seedName(*emailPrefix, u+1), Email: seedEmail(*emailPrefix, u+1),
				}
				ua := seedAgents[j%len(seedAgents)]
				dev := session.Describe(ua)
				ip := fmt.Sprintf("10.%d.%d.%d", j>>16&255, j>>8&255, j&255)
				recs[i] = []any{pid, ids[u], ua, dev.Browser, dev.OS, dev.Type, ip, false,
					now, now, now.Add(cfg.Lifetime)}
			}
			// Records first, as sign-in does.
			_, err := pg.CopyFrom(ctx, pgx.Identifier{"sessions"},
				[]string{"public_id", "user_id", "user_agent", "browser", "os", "device_type", "ip", "remember",
					"created_at", "last_seen_at", "expires_at"},
				pgx.CopyFromRows(recs))
			if err != nil {
				return fmt.Errorf("copy session records: %w", err)
			}
			if err := mgr.Seed(ctx, batch); err != nil {
				return err
			}
			if tokens != nil {
				for _, s := range batch {
					tokens.WriteString(mgr.CookieValue(s.UserID, s.Token))
					tokens.WriteByte('\n')
				}
			}
		}
		if tokens != nil {
			if err := tokens.Flush(); err != nil {
				return err
			}
		}
		if _, err := pg.Exec(ctx, "ANALYZE users; ANALYZE sessions"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "seeded %d sessions in %v\n", *sessions, time.Since(start).Round(time.Millisecond))
		return nil
	})
}

// seedUsers creates n users in one COPY, their ids drawn from the table's
// sequence first, and returns the ids in order.
func seedUsers(ctx context.Context, pg *pgx.Conn, n int, prefix, hash string) ([]int64, error) {
	rows, err := pg.Query(ctx, `SELECT nextval('users_id_seq') FROM generate_series(1, $1)`, n)
	if err != nil {
		return nil, fmt.Errorf("user ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("user ids: %w", err)
	}
	now := time.Now()
	_, err = pg.CopyFrom(ctx, pgx.Identifier{"users"},
		[]string{"id", "email", "name", "password_hash", "role", "created_at", "updated_at"},
		pgx.CopyFromFunc(func() func() ([]any, error) {
			i := 0
			return func() ([]any, error) {
				if i == n {
					return nil, nil
				}
				i++
				return []any{ids[i-1], seedEmail(prefix, i), seedName(prefix, i), hash, models.RoleUser, now, now}, nil
			}
		}()))
	if err != nil {
		return nil, fmt.Errorf("copy users (emails %s taken already? use another -email-prefix): %w", seedEmail(prefix, 1), err)
	}
	return ids, nil
}

// mustBeCanonical fails unless email is its own canonical form.
func mustBeCanonical(email string) error {
	canonical, err := models.NormalizeEmail(email)
	switch {
	case err != nil:
		return fmt.Errorf("%q: %w", email, err)
	case canonical != email:
		return fmt.Errorf("%q is not canonical: use %q", email, canonical)
	}
	return nil
}

func seedEmail(prefix string, i int) string { return prefix + strconv.Itoa(i) + "@example.test" }
func seedName(prefix string, i int) string  { return "Seed user " + prefix + " " + strconv.Itoa(i) }
