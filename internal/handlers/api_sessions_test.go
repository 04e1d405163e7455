package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// TestAPISessionsAndReauth: an app lists the account's sessions (browsers
// and apps), ends another one only after re-authenticating (403
// reauth_required before), and ends its own by signing out.
func TestAPISessionsAndReauth(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	browser := env.Client(t)
	browser.SignUp("Ada", "ada@example.com", "analytical engine")
	tok := passwordGrant(t, env, "ada@example.com", "analytical engine")
	res := apiGet(t, env, "/api/v1/sessions", tok.access)
	active, _ := res.Body["active"].([]any)
	if res.Status != http.StatusOK || len(active) != 2 {
		t.Fatalf("sessions: %d %s", res.Status, res.Raw)
	}
	var browserID string
	for _, a := range active {
		s := a.(map[string]any)
		if s["kind"] == "browser" {
			browserID, _ = s["id"].(string)
		} else if s["id"] != tok.sessionID || s["current"] != true || s["idle_expires_at"] == nil {
			t.Errorf("the app's own row: %v", s)
		}
	}
	if browserID == "" {
		t.Fatalf("no browser session listed: %s", res.Raw)
	}

	// The password proof of the grant has aged.
	env.Clock.Advance(time.Hour)
	del := func() apiResult {
		return apiDo(t, env, http.MethodDelete, "/api/v1/sessions/"+browserID, "", "", tok.access)
	}
	if res := del(); res.Status != http.StatusForbidden || res.str("error") != "reauth_required" {
		t.Fatalf("end another session without re-auth: %d %s", res.Status, res.Raw)
	}
	if browser.Get("/account").StatusCode != http.StatusOK {
		t.Fatal("a refused DELETE ended the browser session")
	}
	if res := apiForm(t, env, "/api/v1/reauth", url.Values{"password": {"babbage"}}, tok.access); res.Status != http.StatusBadRequest ||
		res.str("error") != "invalid_credentials" {
		t.Fatalf("re-auth with a wrong password: %d %s", res.Status, res.Raw)
	}
	if res := del(); res.Status != http.StatusForbidden {
		t.Fatalf("a wrong password allowed the DELETE: %d", res.Status)
	}
	if res := apiForm(t, env, "/api/v1/reauth", url.Values{"password": {"analytical engine"}}, tok.access); res.Status != http.StatusOK {
		t.Fatalf("re-auth: %d %s", res.Status, res.Raw)
	}
	if res := del(); res.Status != http.StatusOK || res.str("ended") != browserID {
		t.Fatalf("end the browser session: %d %s", res.Status, res.Raw)
	}
	if browser.Get("/account").StatusCode != http.StatusSeeOther {
		t.Fatal("the browser session survived its DELETE")
	}
	if res := del(); res.Status != http.StatusNotFound {
		t.Fatalf("end it again: %d %s", res.Status, res.Raw)
	}
	// Ending its own session is signing out.
	if res := apiDo(t, env, http.MethodDelete, "/api/v1/sessions/"+tok.sessionID, "", "", tok.access); res.Status != http.StatusOK {
		t.Fatalf("end own session: %d %s", res.Status, res.Raw)
	}
	if works(t, env, tok.access) || refreshGrant(t, env, tok.refresh).Status == http.StatusOK {
		t.Fatal("the app session works after signing out")
	}
	if rec := record(t, env, tok.sessionID); rec.EndReason != models.EndSignedOut {
		t.Errorf("reason %q", rec.EndReason)
	}
}

// TestAPISessionWithCookie: browser scripts share "who am I" through the
// session cookie; a state change with the cookie needs the CSRF token, as
// every form does.
func TestAPISessionWithCookie(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	browser := env.Client(t)
	browser.SignUp("Ada", "ada@example.com", "analytical engine")
	res := browser.Get("/api/v1/session")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, `"kind":"browser"`) || !strings.Contains(res.Body, "ada@example.com") {
		t.Fatalf("who am I with the cookie: %d %s", res.StatusCode, res.Body)
	}
	tok := passwordGrant(t, env, "ada@example.com", "analytical engine")
	req, _ := http.NewRequest(http.MethodDelete, env.BaseURL+"/api/v1/sessions/"+tok.sessionID, nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if res := browser.Do(req); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site DELETE with the cookie: %d %s", res.StatusCode, res.Body)
	}
	if !works(t, env, tok.access) {
		t.Fatal("a refused cross-site DELETE ended the app session")
	}
	req, _ = http.NewRequest(http.MethodDelete, env.BaseURL+"/api/v1/sessions/"+tok.sessionID, nil)
	req.Header.Set("X-CSRF-Token", browser.CSRFToken())
	if res := browser.Do(req); res.StatusCode != http.StatusOK {
		t.Fatalf("DELETE with the cookie and CSRF token: %d %s", res.StatusCode, res.Body)
	}
	if works(t, env, tok.access) {
		t.Fatal("the app session survived")
	}
}

// TestAPICORS: CORS is off unless CORS_ORIGINS lists origins; then only
// those get the headers, preflight included, and never for credentials.
func TestAPICORS(t *testing.T) {
	t.Parallel()
	preflight := func(env *apptest.Env, origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, env.BaseURL+"/api/v1/session", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	off := apptest.New(t)
	if got := preflight(off, "https://app.example.com").Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("CORS off, yet Allow-Origin %q", got)
	}
	on := apptest.New(t, apptest.With("CORS_ORIGINS", "https://app.example.com"))
	res := preflight(on, "https://app.example.com")
	if res.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || res.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight from a listed origin: %d %v", res.StatusCode, res.Header)
	}
	if got := preflight(on, "https://evil.example.com").Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("an unlisted origin got Allow-Origin %q", got)
	}
	on.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	tok := passwordGrant(t, on, "ada@example.com", "analytical engine")
	req, _ := http.NewRequest(http.MethodGet, on.BaseURL+"/api/v1/session", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Authorization", "Bearer "+tok.access)
	got, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got.Body.Close()
	if got.StatusCode != http.StatusOK || got.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("GET from a listed origin: %d %v", got.StatusCode, got.Header)
	}
}

// TestAppSessionOutlivesItsAccessToken: an app session whose access token
// has expired is still active on the Devices page and in the API, and the
// sweep leaves it alone; it ends as expired once APP_IDLE_TIMEOUT passes
// without a refresh.
func TestAppSessionOutlivesItsAccessToken(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("ACCESS_TOKEN_TTL", "1s"), apptest.With("APP_IDLE_TIMEOUT", "48h"))
	ctx := context.Background()
	browser := env.Client(t)
	browser.SignUp("Ada", "ada@example.com", "analytical engine")
	tok := passwordGrant(t, env, "ada@example.com", "analytical engine")
	deadline := time.Now().Add(10 * time.Second)
	for works(t, env, tok.access) {
		if time.Now().After(deadline) {
			t.Fatal("the access token outlived its TTL")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Past the browser idle timeout by the app's clock: the sweep judges.
	env.Clock.Advance(2 * time.Hour)
	if _, err := env.App.Sessions.Sweep(ctx, 0); err != nil {
		t.Fatal(err)
	}
	list, err := env.App.Sessions.List(ctx, record(t, env, tok.sessionID).UserID, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range list.Active {
		found = found || r.PublicID == tok.sessionID
	}
	if !found || !record(t, env, tok.sessionID).Active() {
		t.Fatal("the app session was closed because its access token expired")
	}
	next := tokensOf(t, refreshGrant(t, env, tok.refresh))
	if !works(t, env, next.access) {
		t.Fatal("refresh after the access token expired")
	}
	env.Clock.Advance(49 * time.Hour)
	if _, err := env.App.Sessions.Sweep(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if rec := record(t, env, tok.sessionID); rec.Active() || rec.EndReason != models.EndIdleTimeout {
		t.Fatalf("after APP_IDLE_TIMEOUT: ended %v, %q", rec.EndedAt, rec.EndReason)
	}
	if res := refreshGrant(t, env, next.refresh); res.str("error") != "invalid_grant" {
		t.Fatalf("refresh of an expired app session: %d %s", res.Status, res.Raw)
	}
}

// TestSessionCapCountsApps: MAX_SESSIONS_PER_USER counts app sessions;
// signing in beyond it ends the idlest session, app or browser.
func TestSessionCapCountsApps(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("MAX_SESSIONS_PER_USER", "2"))
	browser := env.Client(t)
	browser.SignUp("Ada", "ada@example.com", "analytical engine")
	env.Clock.Advance(time.Minute)
	first := passwordGrant(t, env, "ada@example.com", "analytical engine")
	env.Clock.Advance(time.Minute)
	browser.Get("/account") // the browser is now the more recently used
	env.Clock.Advance(time.Minute)
	second := passwordGrant(t, env, "ada@example.com", "analytical engine")
	if works(t, env, first.access) {
		t.Fatal("three sessions with a cap of two")
	}
	if !works(t, env, second.access) || browser.Get("/account").StatusCode != http.StatusOK {
		t.Fatal("the cap ended the wrong session")
	}
	if rec := record(t, env, first.sessionID); rec.EndReason != models.EndSessionLimit {
		t.Errorf("reason %q", rec.EndReason)
	}
}
