package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// Benchmarks for the admin targets (docs/admin.md records the figures):
//
//	go test -run '^$' -bench 'Admin' -benchtime 200x ./internal/handlers/
//
// They seed their own data straight into Postgres and Redis, so they are
// not part of the normal test run's cost unless asked for.

// seedUsers inserts n users, each with a session record, in one statement.
func seedUsers(b *testing.B, env *apptest.Env, n int) {
	b.Helper()
	err := env.App.DB.Exec(`
		WITH u AS (
			INSERT INTO users (email, name, password_hash, created_at)
			SELECT 'person' || i || '@example' || (i % 97) || '.com', 'Person Number ' || i, 'x', now() - i * interval '1 minute'
			FROM generate_series(1, ?) i
			RETURNING id
		)
		INSERT INTO sessions (public_id, user_id, browser, os, device_type, ip, expires_at, last_seen_at)
		SELECT md5(random()::text), id, 'Firefox', 'Linux', 'desktop', '10.0.0.1', now() + interval '1 hour', now()
		FROM u`, n).Error
	if err != nil {
		b.Fatal(err)
	}
	if err := env.App.DB.Exec(`ANALYZE users; ANALYZE sessions`).Error; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAdminUserSearch(b *testing.B) {
	env := apptest.New(b)
	seedUsers(b, env, 100_000)
	admin, _ := signedInAdmin(b, env)
	for _, q := range []string{"", "person4242", "example13.com", "number 99999", "nobody-matches-this"} {
		b.Run(fmt.Sprintf("store/q=%q", q), func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				if _, _, err := env.App.Users.Search(ctx, models.UserFilter{Query: q, Limit: 50}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("http/q=%q", q), func(b *testing.B) {
			path := "/admin/users?q=" + url.QueryEscape(q)
			for b.Loop() {
				if res := admin.Get(path); res.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", path, res.StatusCode)
				}
			}
		})
	}
	// A deep page: keyset paging costs the same at any depth.
	b.Run("store/page-after-99000", func(b *testing.B) {
		var oldest int64
		env.App.DB.Raw(`SELECT id FROM users ORDER BY id LIMIT 1 OFFSET 1000`).Scan(&oldest)
		for b.Loop() {
			if _, _, err := env.App.Users.Search(context.Background(), models.UserFilter{Before: oldest, Limit: 50}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAdminRevokeAll ends all 1,000 sessions of one user per
// iteration: one Lua script in Redis and one UPDATE in Postgres.
func BenchmarkAdminRevokeAll(b *testing.B) {
	env := apptest.New(b)
	ctx := context.Background()
	_, user := signedInUserTB(b, env, "many@example.com")
	if _, err := env.App.Sessions.RevokeAll(ctx, user.ID, nil, models.EndSignedOut, nil); err != nil {
		b.Fatal(err)
	}
	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench%021d", i)
	}
	seed := func() {
		err := env.App.DB.Exec(`
			INSERT INTO sessions (public_id, user_id, browser, os, ip, expires_at)
			SELECT unnest(?::text[]), ?, 'Firefox', 'Linux', '10.0.0.1', now() + interval '1 hour'
			ON CONFLICT (public_id) DO UPDATE SET ended_at = NULL, end_reason = NULL, ended_by = NULL`,
			pq(ids), user.ID).Error
		if err != nil {
			b.Fatal(err)
		}
		conn := env.App.Redis.Get()
		defer conn.Close()
		args := []any{env.Config.RedisPrefix + "u:{" + fmt.Sprint(user.ID) + "}"}
		for _, id := range ids {
			args = append(args, "s:"+id, "token-"+id)
		}
		if _, err := conn.Do("HSET", args...); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		b.StopTimer()
		seed()
		b.StartTimer()
		ended, err := env.App.Sessions.RevokeAll(ctx, user.ID, nil, models.EndRevokedByAdmin, nil)
		if err != nil || ended != n {
			b.Fatalf("ended %d, %v", ended, err)
		}
	}
}

// pq renders ids as a Postgres text[] literal.
func pq(ids []string) string { return "{" + strings.Join(ids, ",") + "}" }
