package session_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
)

// bearerStatus is the status of GET /account with the access token.
func bearerStatus(t *testing.T, env *apptest.Env, access string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.BaseURL+"/account", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+access)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if len(res.Cookies()) > 0 {
		t.Errorf("a bearer request got cookies: %v", res.Header.Values("Set-Cookie"))
	}
	return res.StatusCode
}

func startApp(t *testing.T, env *apptest.Env) (*models.User, session.AppTokens) {
	t.Helper()
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	u, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := env.App.Sessions.StartApp(context.Background(), u,
		session.AppClient{Name: "Gatehouse CLI", UserAgent: "gatehouse-cli/1.0 (Linux x86_64)", IP: "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	return u, tok
}

// TestStartAppAndRefresh: StartApp issues an access token that signs
// requests in (one lookup, no cookie) and a refresh token that rotates;
// the replaced access token stops working, and the rotated refresh token
// presented again (no grace) ends the session.
func TestStartAppAndRefresh(t *testing.T) {
	env := apptest.New(t, apptest.With("REFRESH_GRACE", "0s"))
	ctx := context.Background()
	u, tok := startApp(t, env)
	rec, err := env.App.Sessions.Records().ByPublicID(ctx, tok.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.IsApp() || rec.ClientName != "Gatehouse CLI" || rec.Browser != "Gatehouse CLI" || rec.UserID != u.ID ||
		len(rec.RefreshHash) != 32 {
		t.Fatalf("record: %+v", rec)
	}
	if got := bearerStatus(t, env, tok.AccessToken); got != http.StatusOK {
		t.Fatalf("access token: %d, want 200", got)
	}
	if got := bearerStatus(t, env, tok.RefreshToken); got == http.StatusOK {
		t.Fatalf("refresh token used as an access token: %d", got)
	}
	next, err := env.App.Sessions.Refresh(ctx, tok.RefreshToken, session.AppClient{IP: "192.0.2.8"})
	if err != nil {
		t.Fatal(err)
	}
	if next.SessionID != tok.SessionID || next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken {
		t.Fatalf("refresh: %+v", next)
	}
	if got := bearerStatus(t, env, tok.AccessToken); got == http.StatusOK {
		t.Fatal("the replaced access token still works")
	}
	if got := bearerStatus(t, env, next.AccessToken); got != http.StatusOK {
		t.Fatalf("new access token: %d", got)
	}
	if _, err := env.App.Sessions.Refresh(ctx, tok.RefreshToken, session.AppClient{}); !errors.Is(err, session.ErrRefreshReused) {
		t.Fatalf("reuse: %v, want ErrRefreshReused", err)
	}
	if got := bearerStatus(t, env, next.AccessToken); got == http.StatusOK {
		t.Fatal("the access token outlived the reuse of its session's refresh token")
	}
	if _, err := env.App.Sessions.Refresh(ctx, next.RefreshToken, session.AppClient{}); !errors.Is(err, session.ErrInvalidGrant) {
		t.Fatalf("refresh after reuse: %v, want ErrInvalidGrant", err)
	}
	rec, err = env.App.Sessions.Records().ByPublicID(ctx, tok.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Active() || rec.EndReason != models.EndRefreshReused {
		t.Fatalf("after reuse: ended %v, reason %q", rec.EndedAt, rec.EndReason)
	}
}

// TestBearerHotPathCost: a request with an access token costs what a
// cookie's does (TestHotPathCost): one Redis command, the same lookup
// script, and no SQL.
func TestBearerHotPathCost(t *testing.T) {
	env := apptest.New(t)
	_, tok := startApp(t, env)
	var queries int
	cmds := monitor(t, env, func() {
		queries = countQueries(t, env, func() {
			for range 3 {
				if got := bearerStatus(t, env, tok.AccessToken); got != http.StatusOK {
					t.Fatalf("GET /account with the access token: %d", got)
				}
			}
		})
	})
	if want := []string{"EVALSHA", "EVALSHA", "EVALSHA"}; !slices.Equal(cmds, want) {
		t.Errorf("Redis commands: %v, want %v", cmds, want)
	}
	if queries != 0 {
		t.Errorf("%d SQL statements on the bearer hot path, want 0", queries)
	}
}
