package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// TestAPIBadInput: malformed, expired, revoked and foreign tokens, a token
// of one kind where the other belongs, bodies of the wrong type or size,
// unknown grants and routes: each gets its status and error code, as
// JSON, and changes nothing.
func TestAPIBadInput(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	env.Client(t).SignUp("Bob", "bob@example.com", "difference engine")
	ada := passwordGrant(t, env, "ada@example.com", "analytical engine")
	bob := passwordGrant(t, env, "bob@example.com", "difference engine")
	revoked := passwordGrant(t, env, "ada@example.com", "analytical engine")
	if res := apiForm(t, env, "/api/v1/revoke", url.Values{"token": {revoked.refresh}}, ""); res.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", res.Status, res.Raw)
	}
	forged := "gh_at_" + strings.Repeat("A", 16) + "." + strings.Repeat("B", 43)
	form := "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name                      string
		method, path, ctype, body string
		auth                      string
		status                    int
		code                      string
	}{
		{"no grant_type", "POST", "/api/v1/token", form, "", "", 400, "invalid_request"},
		{"unknown grant", "POST", "/api/v1/token", form, "grant_type=client_credentials", "", 400, "unsupported_grant_type"},
		{"password grant without password", "POST", "/api/v1/token", form, "grant_type=password&email=ada%40example.com&client_name=x", "", 400, "invalid_request"},
		{"password grant without client_name", "POST", "/api/v1/token", form, "grant_type=password&email=ada%40example.com&password=analytical+engine", "", 400, "invalid_request"},
		{"client_name with a control character", "POST", "/api/v1/token", form, "grant_type=password&email=ada%40example.com&password=analytical+engine&client_name=a%07b", "", 400, "invalid_request"},
		{"refresh without token", "POST", "/api/v1/token", form, "grant_type=refresh_token", "", 400, "invalid_request"},
		{"refresh with garbage", "POST", "/api/v1/token", form, "grant_type=refresh_token&refresh_token=nonsense", "", 400, "invalid_grant"},
		{"refresh with a well-formed unknown token", "POST", "/api/v1/token", form, "grant_type=refresh_token&refresh_token=gh_rt_" + strings.Repeat("x", 43), "", 400, "invalid_grant"},
		{"access token as refresh token", "POST", "/api/v1/token", form, "grant_type=refresh_token&refresh_token=" + url.QueryEscape(ada.access), "", 400, "invalid_grant"},
		{"revoked session's refresh token", "POST", "/api/v1/token", form, "grant_type=refresh_token&refresh_token=" + revoked.refresh, "", 400, "invalid_grant"},
		{"text/plain body", "POST", "/api/v1/token", "text/plain", "grant_type=password", "", 415, "unsupported_media_type"},
		{"multipart body", "POST", "/api/v1/token", "multipart/form-data; boundary=x", "--x--", "", 415, "unsupported_media_type"},
		{"oversized JSON", "POST", "/api/v1/token", "application/json", `{"grant_type":"` + strings.Repeat("a", 40<<10) + `"}`, "", 413, "request_too_large"},
		{"malformed JSON", "POST", "/api/v1/token", "application/json", `{"grant_type":`, "", 400, "invalid_request"},
		{"JSON array", "POST", "/api/v1/token", "application/json", `["password"]`, "", 400, "invalid_request"},
		{"JSON number value", "POST", "/api/v1/token", "application/json", `{"grant_type":"password","email":1}`, "", 400, "invalid_request"},
		{"two JSON objects", "POST", "/api/v1/token", "application/json", `{"grant_type":"password"}{}`, "", 400, "invalid_request"},
		{"bytes that are not UTF-8", "POST", "/api/v1/token", form, "grant_type=password&email=%ff%fe", "", 400, "invalid_request"},
		{"NUL in JSON", "POST", "/api/v1/token", "application/json", `{"grant_type":"password","email":"a\u0000b"}`, "", 400, "invalid_request"},
		{"revoke without token", "POST", "/api/v1/revoke", form, "", "", 400, "invalid_request"},
		{"no credential", "GET", "/api/v1/session", "", "", "", 401, "invalid_token"},
		{"refresh token as access token", "GET", "/api/v1/session", "", "", ada.refresh, 401, "invalid_token"},
		{"forged access token", "GET", "/api/v1/session", "", "", forged, 401, "invalid_token"},
		{"malformed bearer", "GET", "/api/v1/session", "", "", "not a token", 401, "invalid_token"},
		{"revoked access token", "GET", "/api/v1/sessions", "", "", revoked.access, 401, "invalid_token"},
		{"cookie value as bearer", "GET", "/api/v1/session", "", "", strings.TrimPrefix(ada.access, "gh_at_"), 401, "invalid_token"},
		{"another user's session", "DELETE", "/api/v1/sessions/" + ada.sessionID, "", "", bob.access, 404, "not_found"},
		{"malformed session id", "DELETE", "/api/v1/sessions/..%2f..%2fadmin", "", "", bob.access, 404, "not_found"},
		{"unknown route", "GET", "/api/v1/nope", "", "", "", 404, "not_found"},
		{"wrong method", "PUT", "/api/v1/token", form, "", "", 405, "method_not_allowed"},
		{"GET on the token endpoint", "GET", "/api/v1/token", "", "", "", 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := apiDo(t, env, tc.method, tc.path, tc.ctype, tc.body, tc.auth)
			if res.Status != tc.status || res.str("error") != tc.code || res.str("message") == "" {
				t.Errorf("%d %s, want %d %q", res.Status, res.Raw, tc.status, tc.code)
			}
			if strings.Contains(strings.ToLower(res.Raw), "<html") {
				t.Error("HTML reached an API client")
			}
			if tc.status == http.StatusUnauthorized && res.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
				t.Errorf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// Nothing changed: both live sessions still work, the revoked one is
	// still ended, and no session was added.
	if !works(t, env, ada.access) || !works(t, env, bob.access) || works(t, env, revoked.access) {
		t.Error("bad input changed a session")
	}
	var n int64
	env.App.DB.Model(&models.SessionRecord{}).Where("kind = 'app' AND ended_at IS NULL").Count(&n)
	if n != 2 {
		t.Errorf("%d active app sessions, want 2", n)
	}
	// Revoking an unknown token is 200, as RFC 7009 says.
	if res := apiForm(t, env, "/api/v1/revoke", url.Values{"token": {forged}}, ""); res.Status != http.StatusOK {
		t.Errorf("revoke an unknown token: %d %s", res.Status, res.Raw)
	}
}

// TestBearerOnBrowserForms: a bearer token sent to the browser's sign-in
// and sign-up forms is a clear 400 that sets no cookie and starts no
// session; on a page it signs in like the cookie would, without one.
func TestBearerOnBrowserForms(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	tok := passwordGrant(t, env, "ada@example.com", "analytical engine")
	for _, path := range []string{"/signin", "/signup"} {
		c := env.Client(t)
		c.Get(path) // the CSRF cookie, as a browser would have it
		c.Header.Set("Authorization", "Bearer "+tok.access)
		res := c.Post(path, url.Values{"name": {"Eve"}, "email": {"eve" + path[1:] + "@example.com"}, "password": {"analytical engine"}})
		if res.StatusCode != http.StatusBadRequest || c.SessionToken() != "" || strings.Contains(res.Body, "analytical") {
			t.Errorf("POST %s with a bearer token: %d, session cookie %q", path, res.StatusCode, c.SessionToken())
		}
	}
	c := env.Client(t)
	c.Header.Set("Authorization", "Bearer "+tok.access)
	if res := c.Get("/account"); res.StatusCode != http.StatusOK || len(res.Cookies()) > 0 {
		t.Errorf("GET /account with a bearer token: %d, cookies %v", res.StatusCode, res.Header.Values("Set-Cookie"))
	}
	var n int64
	env.App.DB.Model(&models.SessionRecord{}).Where("ended_at IS NULL").Count(&n)
	if n != 2 {
		t.Errorf("%d active sessions, want 2", n)
	}
	if _, err := env.App.Users.ByEmail(context.Background(), "evesignup@example.com"); err == nil {
		t.Error("a refused sign-up created the account")
	}
}
