package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

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
// iteration, as an administrator: one Lua script in Redis on the request's
// path, then one UPDATE in Postgres by the end recorder. "store" calls the
// session manager; "store+record" waits for the records too; "postgres" is
// the record's UPDATE alone; "http" is the whole request (POST
// /admin/users/{id}/sessions/revoke-all: the admin's session, the role
// check, the revoke, the audit event, the redirect). Each reports its
// median as p50-ms.
func BenchmarkAdminRevokeAll(b *testing.B) {
	env := apptest.New(b)
	ctx := context.Background()
	admin, adminUser := signedInAdmin(b, env)
	_, user := signedInUserTB(b, env, "many@example.com")
	if _, err := env.App.Sessions.RevokeAll(ctx, user.ID, nil, models.EndSignedOut, nil); err != nil {
		b.Fatal(err)
	}
	const n = 1000
	ids := make([]string, n)
	round := 0
	// Every round signs the user in on 1,000 new browsers, used at
	// different times, as real sessions are; ended ones stay as history.
	seed := func() {
		// The previous round's records are written first.
		if err := env.App.Sessions.WaitEnds(ctx); err != nil {
			b.Fatal(err)
		}
		round++
		for i := range ids {
			ids[i] = fmt.Sprintf("b%04d%021d", round, i)
		}
		err := env.App.DB.Exec(`
			INSERT INTO sessions (public_id, user_id, browser, os, ip, created_at, last_seen_at, expires_at)
			SELECT id, ?, 'Firefox', 'Linux', '10.0.0.1', now() - interval '2 hours', now() - i * interval '1 second', now() + interval '1 hour'
			FROM unnest(?::text[]) WITH ORDINALITY AS t(id, i)`,
			user.ID, pq(ids)).Error
		if err != nil {
			b.Fatal(err)
		}
		var args []any
		for _, id := range ids {
			args = append(args, "s:"+id, "token-"+id)
		}
		if err := env.App.Redis.HSet(context.Background(), env.App.Sessions.UserKey(user.ID), args...).Err(); err != nil {
			b.Fatal(err)
		}
		// Real sessions are hours old when revoked: autovacuum has seen
		// them (hint bits set, visibility map up to date).
		if err := env.App.DB.Exec(`VACUUM sessions`).Error; err != nil {
			b.Fatal(err)
		}
	}
	run := func(b *testing.B, revoke func()) {
		var took []time.Duration
		for b.Loop() {
			b.StopTimer()
			seed()
			b.StartTimer()
			start := time.Now()
			revoke()
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2])/float64(time.Millisecond), "p50-ms")
	}
	b.Run("store", func(b *testing.B) {
		run(b, func() {
			ended, err := env.App.Sessions.RevokeAll(ctx, user.ID, nil, models.EndRevokedByAdmin, &adminUser.ID)
			if err != nil || ended != n {
				b.Fatalf("ended %d, %v", ended, err)
			}
		})
	})
	// Until the records are written too (the end recorder's UPDATE).
	b.Run("store+record", func(b *testing.B) {
		run(b, func() {
			if _, err := env.App.Sessions.RevokeAll(ctx, user.ID, nil, models.EndRevokedByAdmin, &adminUser.ID); err != nil {
				b.Fatal(err)
			}
			if err := env.App.Sessions.WaitEnds(ctx); err != nil {
				b.Fatal(err)
			}
		})
	})
	// The record alone: one UPDATE of 1,000 rows.
	b.Run("postgres", func(b *testing.B) {
		run(b, func() {
			if err := env.App.Sessions.Records().RecordEnd(ctx, user.ID, ids, models.EndRevokedByAdmin, &adminUser.ID, time.Now()); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("http", func(b *testing.B) {
		admin := admin.WithT(b)
		run(b, func() {
			if res := admin.Post(userPath(user)+"/sessions/revoke-all", nil); res.StatusCode != http.StatusSeeOther {
				b.Fatalf("revoke-all: %d", res.StatusCode)
			}
		})
	})
}

// pq renders ids as a Postgres text[] literal.
func pq(ids []string) string { return "{" + strings.Join(ids, ",") + "}" }
