package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// pollDevice is one poll of the app holding deviceCode, form-encoded.
func pollDevice(t *testing.T, env *apptest.Env, deviceCode string) (int, map[string]any) {
	t.Helper()
	res, got := apiPost(t, env, "/api/v1/token", "application/x-www-form-urlencoded",
		url.Values{"grant_type": {deviceGrant}, "device_code": {deviceCode}}.Encode())
	return res.StatusCode, got
}

// approveCode approves the user code from c (whose password is fresh).
func approveCode(t *testing.T, c *apptest.Client, userCode string) {
	t.Helper()
	if res := c.Post("/activate/approve", url.Values{"user_code": {userCode}}); res.StatusCode != http.StatusOK {
		t.Fatalf("approve: %d\n%s", res.StatusCode, errorMessage(t, res))
	}
}

func wantPollError(t *testing.T, what string, status int, got map[string]any, code string) {
	t.Helper()
	if status != http.StatusBadRequest || got["error"] != code {
		t.Errorf("%s: %d %v, want 400 %s", what, status, got, code)
	}
	if msg, _ := got["message"].(string); msg == "" {
		t.Errorf("%s: no message", what)
	}
	if got["access_token"] != nil {
		t.Errorf("%s: tokens given", what)
	}
}

// TestDeviceGrantOverHTTP: the whole flow from the app's side: pending,
// slow_down when polled too fast (the interval grows by 5 s), tokens once
// after the approval, in a session approved by the approving browser,
// listed on its Devices page and usable as a bearer; a reused device code
// is invalid_grant.
func TestDeviceGrantOverHTTP(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := activateUser(t, env)
	codes := requestCodes(t, env, "Gatehouse CLI")

	status, got := pollDevice(t, env, codes.DeviceCode)
	wantPollError(t, "first poll", status, got, "authorization_pending")
	status, got = pollDevice(t, env, codes.DeviceCode)
	wantPollError(t, "poll at once", status, got, "slow_down")
	if got["interval"] != float64(10) {
		t.Errorf("slow_down interval %v, want 10", got["interval"])
	}
	env.Clock.Advance(6 * time.Second) // sooner than the new interval
	status, got = pollDevice(t, env, codes.DeviceCode)
	wantPollError(t, "poll after 6 s", status, got, "slow_down")
	if got["interval"] != float64(15) {
		t.Errorf("interval %v, want 15", got["interval"])
	}
	env.Clock.Advance(16 * time.Second)
	status, got = pollDevice(t, env, codes.DeviceCode)
	wantPollError(t, "poll after the interval", status, got, "authorization_pending")

	approveCode(t, c, codes.UserCode)
	env.Clock.Advance(16 * time.Second)
	res, tokens := apiPost(t, env, "/api/v1/token", "application/json",
		`{"grant_type": "`+deviceGrant+`", "device_code": "`+codes.DeviceCode+`"}`)
	if res.StatusCode != http.StatusOK || tokens["token_type"] != "Bearer" {
		t.Fatalf("poll after approval: %d %v", res.StatusCode, tokens)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	sid, _ := tokens["session_id"].(string)
	var rec models.SessionRecord
	if err := env.App.DB.Where("public_id = ?", sid).Take(&rec).Error; err != nil {
		t.Fatal(err)
	}
	if !rec.IsApp() || rec.UserID != u.ID || rec.ClientName != "Gatehouse CLI" || rec.ApprovedBy == nil || *rec.ApprovedBy != sessionID(t, c) ||
		rec.AuthMethod != models.AuthDeviceCode {
		t.Errorf("session record %+v", rec)
	}
	if res := bearerGet(t, env, "/account", tokens["access_token"].(string)); res.StatusCode != http.StatusOK {
		t.Errorf("access token: %d", res.StatusCode)
	}
	row := c.Get("/account/sessions").Doc(t).Find(`tr[data-session-id="` + sid + `"]`)
	if row.Find(`[data-testid="approved-from"]`).Text() != "Approved from this browser" {
		t.Errorf("Devices row for the new app: %q", row.Text())
	}
	// The sign-in is in the security log, naming the new session.
	waitWritten(t, env)
	var signIns int64
	env.App.DB.Model(&models.AuditEvent{}).Where("kind = ? AND user_id = ? AND session_id = ?", models.AuditSignIn, u.ID, sid).Count(&signIns)
	if signIns != 1 {
		t.Errorf("%d sign_in events for the app session, want 1", signIns)
	}
	env.Clock.Advance(16 * time.Second)
	status, got = pollDevice(t, env, codes.DeviceCode)
	wantPollError(t, "poll after the tokens", status, got, "invalid_grant")
}

// TestDeviceGrantRacingPollers: pollers racing with one approved device
// code: exactly one gets tokens, one session is made.
func TestDeviceGrantRacingPollers(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := activateUser(t, env)
	codes := requestCodes(t, env, "Gatehouse CLI")
	approveCode(t, c, codes.UserCode)
	const pollers = 10
	statuses := make([]int, pollers)
	answers := make([]map[string]any, pollers)
	var wg sync.WaitGroup
	for i := range pollers {
		wg.Go(func() { statuses[i], answers[i] = pollDevice(t, env, codes.DeviceCode) })
	}
	wg.Wait()
	ok := 0
	for i, s := range statuses {
		switch {
		case s == http.StatusOK && answers[i]["access_token"] != nil:
			ok++
		case s == http.StatusBadRequest && answers[i]["error"] == "invalid_grant":
		default:
			t.Errorf("poller %d: %d %v", i, s, answers[i])
		}
	}
	var apps int64
	env.App.DB.Model(&models.SessionRecord{}).Where("user_id = ? AND kind = ?", u.ID, models.SessionApp).Count(&apps)
	if ok != 1 || apps != 1 {
		t.Fatalf("%d pollers got tokens, %d app sessions; want 1 and 1", ok, apps)
	}
}

// TestDeviceGrantBadInput: denied, expired, unknown and malformed device
// codes, and malformed requests, each get their error and change nothing.
func TestDeviceGrantBadInput(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := activateUser(t, env)

	denied := requestCodes(t, env, "TV")
	if res := c.Post("/activate/deny", url.Values{"user_code": {denied.UserCode}}); res.StatusCode != http.StatusOK {
		t.Fatalf("deny: %d", res.StatusCode)
	}
	status, got := pollDevice(t, env, denied.DeviceCode)
	wantPollError(t, "denied", status, got, "access_denied")

	// Approved, but the approving browser signed out before the app
	// polled: the approval no longer holds.
	orphan := requestCodes(t, env, "CLI")
	other, _ := activateUserAs(t, env, "ada@example.com", "user password")
	approveCode(t, other, orphan.UserCode)
	if res := other.Post("/signout", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", res.StatusCode)
	}
	status, got = pollDevice(t, env, orphan.DeviceCode)
	wantPollError(t, "approver signed out", status, got, "access_denied")

	late := requestCodes(t, env, "CLI")
	env.Clock.Advance(models.DeviceCodeLifetime + time.Second)
	status, got = pollDevice(t, env, late.DeviceCode)
	wantPollError(t, "expired", status, got, "expired_token")
	if res := c.Post("/activate", url.Values{"user_code": {late.UserCode}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("expired code at /activate: %d", res.StatusCode)
	}

	fresh := requestCodes(t, env, "CLI")
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"unknown code", "application/x-www-form-urlencoded", "grant_type=" + url.QueryEscape(deviceGrant) + "&device_code=" + strings.Repeat("A", 43), 400, "invalid_grant"},
		{"truncated code", "application/x-www-form-urlencoded", "grant_type=" + url.QueryEscape(deviceGrant) + "&device_code=" + fresh.DeviceCode[:40], 400, "invalid_grant"},
		{"no code", "application/x-www-form-urlencoded", "grant_type=" + url.QueryEscape(deviceGrant), 400, "invalid_grant"},
		{"code in JSON as a number", "application/json", `{"grant_type": "` + deviceGrant + `", "device_code": 7}`, 400, "invalid_request"},
		{"malformed JSON", "application/json", `{"grant_type": "` + deviceGrant + `", "device_code": "`, 400, "invalid_request"},
		{"malformed form", "application/x-www-form-urlencoded", "grant_type=%zz&device_code=" + fresh.DeviceCode, 400, "invalid_request"},
		{"NUL", "application/x-www-form-urlencoded", "grant_type=" + url.QueryEscape(deviceGrant) + "&device_code=%00", 400, "invalid_request"},
		{"wrong grant", "application/x-www-form-urlencoded", "grant_type=urn:ietf:params:oauth:grant-type:device_cod&device_code=" + fresh.DeviceCode, 400, "unsupported_grant_type"},
		{"user code as device code", "application/x-www-form-urlencoded", "grant_type=" + url.QueryEscape(deviceGrant) + "&device_code=" + fresh.UserCode, 400, "invalid_grant"},
		{"text/plain", "text/plain", "grant_type=" + url.QueryEscape(deviceGrant) + "&device_code=" + fresh.DeviceCode, 415, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, got := apiPost(t, env, "/api/v1/token", tc.contentType, tc.body)
			if res.StatusCode != tc.status || (tc.code != "" && got["error"] != tc.code) {
				t.Errorf("%d %v, want %d %s", res.StatusCode, got, tc.status, tc.code)
			}
		})
	}
	// None of it touched the fresh code: it is still pending (and answers
	// so, its first poll).
	status, got = pollDevice(t, env, fresh.DeviceCode)
	wantPollError(t, "fresh code after the bad input", status, got, "authorization_pending")
	var apps int64
	env.App.DB.Model(&models.SessionRecord{}).Where("user_id = ? AND kind = ?", u.ID, models.SessionApp).Count(&apps)
	if apps != 0 {
		t.Errorf("%d app sessions made", apps)
	}
}

// activateUserAs signs in another browser of an existing account.
func activateUserAs(t *testing.T, env *apptest.Env, email, password string) (*apptest.Client, string) {
	t.Helper()
	c := env.Client(t)
	c.SignIn(email, password)
	return c, sessionID(t, c)
}
