package main

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// TestSeed: `web seed` creates users and sessions that work exactly like
// signed-in ones: each token authenticates, the Devices page lists the
// user's sessions as live, revoking one ends it, and the seeded password
// signs in.
func TestSeed(t *testing.T) {
	dbURL := apptest.NewDatabase(t)
	prefix := apptest.RedisPrefix(t)
	vars := map[string]string{"DATABASE_URL": dbURL, "REDIS_PREFIX": prefix, "MIGRATE_ON_START": "false"}
	maps.Copy(vars, apptest.RedisVars())
	tokens := filepath.Join(t.TempDir(), "tokens")
	var out bytes.Buffer
	err := run(context.Background(), []string{"seed", "-users", "3", "-sessions", "7", "-tokens", tokens},
		func(k string) string { return vars[k] }, strings.NewReader(""), &out, io.Discard)
	if err != nil {
		t.Fatalf("seed: %v\n%s", err, out.String())
	}
	b, err := os.ReadFile(tokens)
	if err != nil {
		t.Fatal(err)
	}
	list := strings.Fields(string(b))
	if len(list) != 7 {
		t.Fatalf("%d tokens written, want 7", len(list))
	}

	env := apptest.New(t, apptest.With("DATABASE_URL", dbURL), apptest.With("REDIS_PREFIX", prefix))
	var users, records int64
	env.App.DB.Raw(`SELECT count(*) FROM users WHERE email LIKE 'seed%@example.test'`).Scan(&users)
	env.App.DB.Raw(`SELECT count(*) FROM sessions WHERE ended_at IS NULL`).Scan(&records)
	if users != 3 || records != 7 {
		t.Fatalf("%d users and %d session records, want 3 and 7", users, records)
	}
	// Sessions 0, 3 and 6 belong to the first user.
	c := env.Client(t)
	c.SetCookie("gatehouse_session", list[0])
	res := c.Get("/account")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, "seed1@example.test") {
		t.Fatalf("GET /account with a seeded token: %d", res.StatusCode)
	}
	doc := c.Get("/account/sessions").Doc(t)
	if n := doc.Find("form[action$='/revoke']").Length(); n != 2 {
		t.Errorf("the first user's Devices page has %d revoke buttons, want 2 (3 sessions, one of them this one)", n)
	}
	other := env.Client(t)
	other.SetCookie("gatehouse_session", list[3])
	if res := other.Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("second session of the first user: %d", res.StatusCode)
	}
	if res := c.Post("/account/sessions/revoke-others", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke others: %d", res.StatusCode)
	}
	if res := other.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("a revoked seeded session still works: %d", res.StatusCode)
	}
	env.Client(t).SignIn("seed2@example.test", "seed password")

	// Seeding the same emails again says what to do.
	err = run(context.Background(), []string{"seed", "-users", "1", "-sessions", "0"},
		func(k string) string { return vars[k] }, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-email-prefix") {
		t.Errorf("seeding taken emails: %v", err)
	}
}
