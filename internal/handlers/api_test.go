package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// cliAgent is the User-Agent of the test app.
const cliAgent = "Mozilla/5.0 (X11; Linux x86_64) gatehouse-cli/1.0"

// apiResult is an API answer: status, headers, and the JSON body.
type apiResult struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (r apiResult) str(key string) string { s, _ := r.Body[key].(string); return s }

// apiDo sends an API request; auth, when not "", is sent as a bearer
// token. Every answer must be JSON, whatever the status.
func apiDo(t testing.TB, env *apptest.Env, method, path, contentType, body, auth string) apiResult {
	t.Helper()
	req, err := http.NewRequest(method, env.BaseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	req.Header.Set("User-Agent", cliAgent)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := apiResult{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	if method != http.MethodHead && res.StatusCode != http.StatusNoContent {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s: %d with Content-Type %q, want JSON:\n%.300s", method, path, res.StatusCode, ct, raw)
		}
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			t.Errorf("%s %s: %d, body is not a JSON object: %v\n%.300s", method, path, res.StatusCode, err, raw)
		}
	}
	if len(res.Cookies()) > 0 && auth != "" {
		t.Errorf("%s %s with a bearer token set cookies: %v", method, path, res.Header.Values("Set-Cookie"))
	}
	return out
}

func apiForm(t testing.TB, env *apptest.Env, path string, form url.Values, auth string) apiResult {
	t.Helper()
	return apiDo(t, env, http.MethodPost, path, "application/x-www-form-urlencoded", form.Encode(), auth)
}

func apiGet(t testing.TB, env *apptest.Env, path, auth string) apiResult {
	t.Helper()
	return apiDo(t, env, http.MethodGet, path, "", "", auth)
}

// appTokens is a token answer.
type appTokens struct{ access, refresh, sessionID string }

// passwordGrant signs the CLI in and checks the answer's shape.
func passwordGrant(t testing.TB, env *apptest.Env, email, password string) appTokens {
	t.Helper()
	res := apiForm(t, env, "/api/v1/token", url.Values{"grant_type": {"password"}, "email": {email},
		"password": {password}, "client_name": {"Gatehouse CLI"}}, "")
	return tokensOf(t, res)
}

func tokensOf(t testing.TB, res apiResult) appTokens {
	t.Helper()
	if res.Status != http.StatusOK {
		t.Fatalf("token: %d %s", res.Status, res.Raw)
	}
	tok := appTokens{res.str("access_token"), res.str("refresh_token"), res.str("session_id")}
	if tok.access == "" || tok.refresh == "" || tok.sessionID == "" || res.str("token_type") != "Bearer" ||
		res.Body["expires_in"].(float64) < 1 || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token answer: %s (Cache-Control %q)", res.Raw, res.Header.Get("Cache-Control"))
	}
	return tok
}

func refreshGrant(t testing.TB, env *apptest.Env, refresh string) apiResult {
	t.Helper()
	return apiForm(t, env, "/api/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, "")
}

// works reports whether access signs GET /api/v1/session in; a refusal
// must be a 401 that says so in WWW-Authenticate.
func works(t testing.TB, env *apptest.Env, access string) bool {
	t.Helper()
	res := apiGet(t, env, "/api/v1/session", access)
	switch res.Status {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized:
		if got := res.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` || res.str("error") != "invalid_token" {
			t.Errorf("401 with WWW-Authenticate %q, body %s", got, res.Raw)
		}
		return false
	}
	t.Fatalf("GET /api/v1/session: %d %s", res.Status, res.Raw)
	return false
}

func record(t testing.TB, env *apptest.Env, publicID string) *models.SessionRecord {
	t.Helper()
	if err := env.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := env.App.Sessions.Records().ByPublicID(context.Background(), publicID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func countAudit(t testing.TB, env *apptest.Env, kind models.AuditKind, sessionID string) int64 {
	t.Helper()
	if err := env.App.Auditing.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int64
	env.App.DB.Model(&models.AuditEvent{}).Where("kind = ? AND session_id = ?", kind, sessionID).Count(&n)
	return n
}

// TestAPIPasswordGrant: the password grant signs an app in with a session
// like a browser's, named by client_name and the User-Agent, audited like
// a sign-in; the access token is "who am I" with no cookie; form and JSON
// bodies both work.
func TestAPIPasswordGrant(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	res := apiForm(t, env, "/api/v1/token", url.Values{"grant_type": {"password"}, "email": {"ADA@example.com"},
		"password": {"analytical engine"}, "client_name": {"Gatehouse CLI"}}, "")
	if res.Body["expires_in"] != float64(3600) {
		t.Errorf("expires_in %v, want ACCESS_TOKEN_TTL's default 3600", res.Body["expires_in"])
	}
	tok := tokensOf(t, res)
	res = apiGet(t, env, "/api/v1/session", tok.access)
	if res.Status != http.StatusOK {
		t.Fatalf("who am I: %d %s", res.Status, res.Raw)
	}
	user, _ := res.Body["user"].(map[string]any)
	sess, _ := res.Body["session"].(map[string]any)
	if user["email"] != "ada@example.com" || sess["id"] != tok.sessionID || sess["kind"] != "app" ||
		sess["client_name"] != "Gatehouse CLI" || sess["current"] != true || strings.Contains(res.Raw, "gh_") {
		t.Errorf("who am I: %s", res.Raw)
	}
	rec := record(t, env, tok.sessionID)
	if !rec.IsApp() || rec.Browser != "Gatehouse CLI" || rec.OS != "Linux" || rec.AuthMethod != models.AuthPassword {
		t.Errorf("record: kind %q, %q on %q, %q", rec.Kind, rec.Browser, rec.OS, rec.AuthMethod)
	}
	if countAudit(t, env, models.AuditSignIn, tok.sessionID) != 1 {
		t.Error("no sign-in event for the app session")
	}

	// JSON works too.
	res = apiDo(t, env, http.MethodPost, "/api/v1/token", "application/json",
		`{"grant_type":"password","email":"ada@example.com","password":"analytical engine","client_name":"Phone"}`, "")
	second := tokensOf(t, res)
	if second.sessionID == tok.sessionID || !works(t, env, second.access) || !works(t, env, tok.access) {
		t.Error("a second app sign-in did not make a second working session")
	}

	// A wrong password: invalid_grant, no session.
	res = apiForm(t, env, "/api/v1/token", url.Values{"grant_type": {"password"}, "email": {"ada@example.com"},
		"password": {"babbage"}, "client_name": {"CLI"}}, "")
	if res.Status != http.StatusBadRequest || res.str("error") != "invalid_grant" {
		t.Errorf("wrong password: %d %s", res.Status, res.Raw)
	}
	var n int64
	env.App.DB.Model(&models.SessionRecord{}).Where("kind = 'app'").Count(&n)
	if n != 2 {
		t.Errorf("%d app sessions, want 2", n)
	}
}

// TestAPIPasswordGrantSecondFactor: an account with an authenticator app
// needs its code (code_required without, invalid_grant when wrong, and a
// code is accepted once).
func TestAPIPasswordGrantSecondFactor(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	_, secret, _ := userWithTOTP(t, env, "ada@example.com")
	form := url.Values{"grant_type": {"password"}, "email": {"ada@example.com"}, "password": {twoFAPassword},
		"client_name": {"CLI"}}
	if res := apiForm(t, env, "/api/v1/token", form, ""); res.Status != http.StatusBadRequest || res.str("error") != "code_required" {
		t.Fatalf("no code: %d %s", res.Status, res.Raw)
	}
	form.Set("code", "000000")
	if totpCode(t, env, secret, 0) == "000000" {
		form.Set("code", "111111")
	}
	if res := apiForm(t, env, "/api/v1/token", form, ""); res.Status != http.StatusBadRequest || res.str("error") != "invalid_grant" {
		t.Fatalf("wrong code: %d %s", res.Status, res.Raw)
	}
	nextStep(env) // set-up used this step's code
	form.Set("code", totpCode(t, env, secret, 0))
	tok := tokensOf(t, apiForm(t, env, "/api/v1/token", form, ""))
	if rec := record(t, env, tok.sessionID); rec.AuthMethod != models.AuthPasswordTOTP {
		t.Errorf("auth method %q", rec.AuthMethod)
	}
	if res := apiForm(t, env, "/api/v1/token", form, ""); res.Status != http.StatusBadRequest {
		t.Errorf("the same code again: %d %s", res.Status, res.Raw)
	}
}

// TestAPIRefreshRotation: each refresh gives a new refresh token and a new
// access token, the old access token dies at once, and a rotated refresh
// token presented again (no grace) ends the session: audited, invalid_grant,
// the live access token dead too.
func TestAPIRefreshRotation(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("REFRESH_GRACE", "0s"))
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	tok := passwordGrant(t, env, "ada@example.com", "analytical engine")
	next := tokensOf(t, refreshGrant(t, env, tok.refresh))
	if next.sessionID != tok.sessionID || next.refresh == tok.refresh || next.access == tok.access {
		t.Fatalf("refresh: %+v", next)
	}
	if works(t, env, tok.access) || !works(t, env, next.access) {
		t.Fatal("after a refresh, the old access token must be dead and the new one live")
	}
	third := tokensOf(t, refreshGrant(t, env, next.refresh))
	if !works(t, env, third.access) {
		t.Fatal("third access token")
	}
	// Reuse of the first token, two rotations back.
	res := refreshGrant(t, env, tok.refresh)
	if res.Status != http.StatusBadRequest || res.str("error") != "invalid_grant" {
		t.Fatalf("reuse: %d %s", res.Status, res.Raw)
	}
	if works(t, env, third.access) {
		t.Fatal("the session's access token outlived the reuse of a refresh token")
	}
	if res := refreshGrant(t, env, third.refresh); res.str("error") != "invalid_grant" {
		t.Fatalf("the current refresh token after reuse: %d %s", res.Status, res.Raw)
	}
	if rec := record(t, env, tok.sessionID); rec.Active() || rec.EndReason != models.EndRefreshReused {
		t.Fatalf("after reuse: ended %v, reason %q", rec.EndedAt, rec.EndReason)
	}
	if countAudit(t, env, models.AuditRefreshReused, tok.sessionID) != 1 {
		t.Error("reuse was not audited")
	}
}

// raceRefresh presents one refresh token from n clients at once and
// returns the answers that succeeded.
func raceRefresh(t *testing.T, env *apptest.Env, refresh string, n int) []appTokens {
	t.Helper()
	var mu sync.Mutex
	var wins []appTokens
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res := refreshGrant(t, env, refresh)
			switch {
			case res.Status == http.StatusOK:
				mu.Lock()
				wins = append(wins, appTokens{res.str("access_token"), res.str("refresh_token"), res.str("session_id")})
				mu.Unlock()
			case res.Status != http.StatusBadRequest || res.str("error") != "invalid_grant":
				t.Errorf("racing refresh: %d %s", res.Status, res.Raw)
			}
		}()
	}
	close(start)
	wg.Wait()
	return wins
}

// TestAPIRefreshRace: clients racing with one refresh token never get more
// live access tokens than the rules allow. Without grace, one wins and the
// others are reuse: the session ends. With grace, the previous token is
// honored once more: two win, only the later access token works, and a
// third racer is reuse.
func TestAPIRefreshRace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		grace    string
		racers   int
		wins     int
		survives bool
	}{
		{"0s", 2, 1, false},
		{"0s", 6, 1, false},
		{"30s", 2, 2, true},
		{"30s", 6, 2, false},
	} {
		t.Run(tc.grace+"/"+string(rune('0'+tc.racers)), func(t *testing.T) {
			env := apptest.New(t, apptest.With("REFRESH_GRACE", tc.grace))
			env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
			tok := passwordGrant(t, env, "ada@example.com", "analytical engine")
			wins := raceRefresh(t, env, tok.refresh, tc.racers)
			if len(wins) != tc.wins {
				t.Fatalf("%d racers with grace %s: %d won, want %d", tc.racers, tc.grace, len(wins), tc.wins)
			}
			live := 0
			for _, w := range wins {
				if works(t, env, w.access) {
					live++
				}
			}
			if works(t, env, tok.access) {
				live++
			}
			rec := record(t, env, tok.sessionID)
			if tc.survives {
				if live != 1 || !rec.Active() {
					t.Fatalf("%d live access tokens (want exactly 1), session active %v", live, rec.Active())
				}
				// The grace is spent: the first token once more is reuse.
				if res := refreshGrant(t, env, tok.refresh); res.str("error") != "invalid_grant" {
					t.Fatalf("third use of the first token: %d %s", res.Status, res.Raw)
				}
				rec = record(t, env, tok.sessionID)
			} else if live != 0 {
				t.Fatalf("%d access tokens live after reuse, want 0", live)
			}
			if rec.Active() || rec.EndReason != models.EndRefreshReused {
				t.Fatalf("session: ended %v, reason %q; want ended for reuse", rec.EndedAt, rec.EndReason)
			}
			for _, w := range wins {
				if works(t, env, w.access) || refreshGrant(t, env, w.refresh).Status == http.StatusOK {
					t.Fatal("a token of the ended session still works")
				}
			}
		})
	}
}

// TestAPIAccessRevocationIsFinal hammers an app's access token while a
// browser revokes the app session from the Devices page: no request that
// starts after the revoke returned is authenticated.
func TestAPIAccessRevocationIsFinal(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	browser := env.Client(t)
	browser.SignUp("Ada", "ada@example.com", "analytical engine")
	tok := passwordGrant(t, env, "ada@example.com", "analytical engine")
	before, after, wrong := hammer(t, env.BaseURL+"/api/v1/session", func(req *http.Request) {
		req.Header.Set("Authorization", "Bearer "+tok.access)
	}, 8, func() {
		if res := browser.Post("/account/sessions/"+tok.sessionID+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("revoke: %d", res.StatusCode)
		}
	})
	if before == 0 || after == 0 {
		t.Fatalf("the hammer did not overlap the revoke: %d before, %d after", before, after)
	}
	if wrong > 0 {
		t.Fatalf("%d bearer requests started after the revoke were authenticated", wrong)
	}
	if works(t, env, tok.access) || refreshGrant(t, env, tok.refresh).Status == http.StatusOK {
		t.Fatal("the revoked app session works again")
	}
	if rec := record(t, env, tok.sessionID); rec.EndReason != models.EndRevokedByUser {
		t.Errorf("reason %q", rec.EndReason)
	}
	t.Logf("%d requests before the revoke, %d after, none authenticated after", before, after)
}

// privateEnv is an app on a Redis of the test's own, which the test may
// flush, and a client of that Redis.
func privateEnv(t *testing.T, opts ...apptest.Option) (*apptest.Env, redis.UniversalClient) {
	t.Helper()
	rd := apptest.StartRedis(t)
	env := apptest.New(t, append(opts, apptest.With("REDIS_URL", rd.URL()))...)
	opt, err := redis.ParseURL(rd.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return env, rdb
}

// TestAPIRefreshSurvivesRedisLoss: the refresh state is in Postgres. After
// FLUSHALL the access token is dead, the refresh token still works and
// brings the session's hot state back.
func TestAPIRefreshSurvivesRedisLoss(t *testing.T) {
	t.Parallel()
	env, rdb := privateEnv(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	tok := passwordGrant(t, env, "ada@example.com", "analytical engine")
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if works(t, env, tok.access) {
		t.Fatal("the access token survived FLUSHALL")
	}
	next := tokensOf(t, refreshGrant(t, env, tok.refresh))
	if next.sessionID != tok.sessionID || !works(t, env, next.access) {
		t.Fatal("refresh after FLUSHALL did not bring the session back")
	}
}

// TestAPIEndsAreDurable: every way of ending sessions ends app sessions in
// Postgres at once, so that a refresh after a Redis loss cannot bring them
// back; including an end made after Redis lost the app session's field.
func TestAPIEndsAreDurable(t *testing.T) {
	t.Parallel()
	env, rdb := privateEnv(t)
	ctx := context.Background()
	browser := env.Client(t)
	browser.SignUp("Ada", "ada@example.com", "analytical engine")

	// Sign out other devices, then Redis is lost before the recorder runs.
	tok := passwordGrant(t, env, "ada@example.com", "analytical engine")
	if res := browser.Post("/account/sessions/revoke-others", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke-others: %d", res.StatusCode)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if res := refreshGrant(t, env, tok.refresh); res.str("error") != "invalid_grant" {
		t.Fatalf("refresh after revoke-all and FLUSHALL: %d %s", res.Status, res.Raw)
	}
	if rec := record(t, env, tok.sessionID); rec.Active() || rec.EndReason != models.EndRevokedByUser {
		t.Errorf("record: ended %v, %q", rec.EndedAt, rec.EndReason)
	}

	// Redis is lost first, then the password is changed with "sign out
	// other devices": Redis knows no app session, Postgres does.
	browser = env.Client(t)
	browser.SignIn("ada@example.com", "analytical engine")
	tok = passwordGrant(t, env, "ada@example.com", "analytical engine")
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	browser = env.Client(t)
	browser.SignIn("ada@example.com", "analytical engine")
	res := browser.Post("/account/password", url.Values{"current_password": {"analytical engine"},
		"new_password": {"difference engine"}, "revoke_others": {"1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("password change: %d", res.StatusCode)
	}
	if res := refreshGrant(t, env, tok.refresh); res.str("error") != "invalid_grant" {
		t.Fatalf("refresh after FLUSHALL and a password change: %d %s", res.Status, res.Raw)
	}
	if rec := record(t, env, tok.sessionID); rec.Active() || rec.EndReason != models.EndPasswordChanged {
		t.Errorf("record: ended %v, %q", rec.EndedAt, rec.EndReason)
	}

	// Disable.
	tok = passwordGrant(t, env, "ada@example.com", "difference engine")
	u, err := env.App.Users.ByEmail(ctx, "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.App.Users.SetDisabled(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := env.App.Sessions.Disable(ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := env.App.Users.SetDisabled(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if res := refreshGrant(t, env, tok.refresh); res.str("error") != "invalid_grant" {
		t.Fatalf("refresh after disable and FLUSHALL: %d %s", res.Status, res.Raw)
	}
}

// TestAPIRevoke: RFC 7009. Revoking the access token ends its session
// (the refresh token dies with it), audited as a sign-out; so does
// revoking the refresh token of another session. Revoking again is 200
// and changes nothing.
func TestAPIRevoke(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	one := passwordGrant(t, env, "ada@example.com", "analytical engine")
	two := passwordGrant(t, env, "ada@example.com", "analytical engine")
	for _, tok := range []string{one.access, two.refresh} {
		res := apiDo(t, env, http.MethodPost, "/api/v1/revoke", "application/json", `{"token":"`+tok+`"}`, "")
		if res.Status != http.StatusOK {
			t.Fatalf("revoke: %d %s", res.Status, res.Raw)
		}
	}
	for _, tok := range []appTokens{one, two} {
		if works(t, env, tok.access) || refreshGrant(t, env, tok.refresh).Status == http.StatusOK {
			t.Errorf("session %s works after its token was revoked", tok.sessionID)
		}
		if rec := record(t, env, tok.sessionID); rec.EndReason != models.EndSignedOut {
			t.Errorf("reason %q", rec.EndReason)
		}
		if countAudit(t, env, models.AuditSignOut, tok.sessionID) != 1 {
			t.Errorf("revoke of %s not audited once", tok.sessionID)
		}
	}
	if res := apiForm(t, env, "/api/v1/revoke", url.Values{"token": {one.access}}, ""); res.Status != http.StatusOK {
		t.Errorf("revoke again: %d %s", res.Status, res.Raw)
	}
	if countAudit(t, env, models.AuditSignOut, one.sessionID) != 1 {
		t.Error("a second revoke was audited again")
	}
}

// TestAPIPasswordGrantRefusesPasskeyOnlyAccounts: an account whose second
// factor is a passkey alone cannot sign an app in with its password: a
// clear passkey_required, and no session.
func TestAPIPasswordGrantRefusesPasskeyOnlyAccounts(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := signedInUser(t, env, "only-pk@example.com")
	registerPasskey(t, env, c, "Phone")
	res := apiForm(t, env, "/api/v1/token", url.Values{"grant_type": {"password"}, "email": {u.Email},
		"password": {twoFAPassword}, "client_name": {"CLI"}, "code": {"123456"}}, "")
	if res.Status != http.StatusBadRequest || res.str("error") != "passkey_required" {
		t.Fatalf("password grant of a passkey-only account: %d %s", res.Status, res.Raw)
	}
	var n int64
	env.App.DB.Model(&models.SessionRecord{}).Where("kind = 'app'").Count(&n)
	if n != 0 {
		t.Errorf("%d app sessions, want 0", n)
	}
}

// TestAPIRefreshGuessesAreThrottled: refused refresh tokens count as
// failed attempts of the client's address, so a flood of guesses is
// slowed like password guesses (429, Retry-After); good refreshes give
// their attempt back, so an app refreshing all day never is; another
// address is not affected.
func TestAPIRefreshGuessesAreThrottled(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("TRUST_PROXY", "true"))
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	refresh := func(ip, token string) apiResult {
		t.Helper()
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}
		req, err := http.NewRequest(http.MethodPost, env.BaseURL+"/api/v1/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", ip)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out := apiResult{Status: res.StatusCode, Header: res.Header}
		if err := json.NewDecoder(res.Body).Decode(&out.Body); err != nil {
			t.Fatalf("refresh: %d, body not JSON: %v", res.StatusCode, err)
		}
		return out
	}
	const app, guesser = "198.51.100.1", "203.0.113.9"
	tok := passwordGrant(t, env, "ada@example.com", "analytical engine")
	// An app refreshing many times from one address is never slowed.
	for i := range 30 {
		res := refresh(app, tok.refresh)
		if res.Status != http.StatusOK {
			t.Fatalf("refresh %d from the app's address: %d %v", i, res.Status, res.Body)
		}
		tok.refresh = res.str("refresh_token")
	}
	// Guesses: well-formed refresh tokens nobody was given.
	refused := 0
	for i := range throttle.IPFreeFailures + 5 {
		guess := session.RefreshTokenPrefix + strings.Repeat(string(rune('A'+i%26)), 43)
		res := refresh(guesser, guess)
		if res.Status == http.StatusTooManyRequests {
			if res.str("error") != "too_many_attempts" || res.Header.Get("Retry-After") == "" {
				t.Fatalf("throttled guess: %v, Retry-After %q", res.Body, res.Header.Get("Retry-After"))
			}
			refused++
			continue
		}
		if res.Status != http.StatusBadRequest || res.str("error") != "invalid_grant" {
			t.Fatalf("guess %d: %d %v", i, res.Status, res.Body)
		}
		if i >= throttle.IPFreeFailures+1 {
			t.Fatalf("guess %d was looked up; the address had %d failures", i, throttle.IPFreeFailures)
		}
	}
	if refused == 0 {
		t.Fatalf("%d guesses from one address, none throttled", throttle.IPFreeFailures+5)
	}
	// The guessing address is slowed even with a good token; the app is not.
	if res := refresh(guesser, tok.refresh); res.Status != http.StatusTooManyRequests {
		t.Errorf("a good token from the throttled address: %d, want 429", res.Status)
	}
	if res := refresh(app, tok.refresh); res.Status != http.StatusOK {
		t.Errorf("the app's address after another was throttled: %d %v", res.Status, res.Body)
	}
}
