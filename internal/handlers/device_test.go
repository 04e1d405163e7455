package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// apiPost sends body to path as contentType, as an app would: no cookies,
// no CSRF token.
func apiPost(t *testing.T, env *apptest.Env, path, contentType, body string) (*apptest.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.Server.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	res := env.Client(t).Do(req)
	var got map[string]any
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("POST %s: %d with Content-Type %q, want JSON:\n%.300s", path, res.StatusCode, ct, res.Body)
	}
	if err := json.Unmarshal([]byte(res.Body), &got); err != nil {
		t.Fatalf("POST %s: %d, body not JSON: %v\n%.300s", path, res.StatusCode, err, res.Body)
	}
	return res, got
}

// deviceCodes is what POST /api/v1/device/code answered.
type deviceCodes struct {
	DeviceCode, UserCode string
}

// requestCodes asks for codes as the app clientName does.
func requestCodes(t *testing.T, env *apptest.Env, clientName string) deviceCodes {
	t.Helper()
	res, got := apiPost(t, env, "/api/v1/device/code", "application/x-www-form-urlencoded",
		url.Values{"client_name": {clientName}}.Encode())
	if res.StatusCode != http.StatusOK {
		t.Fatalf("device code: %d %v", res.StatusCode, got)
	}
	return deviceCodes{DeviceCode: got["device_code"].(string), UserCode: got["user_code"].(string)}
}

func deviceRows(t *testing.T, env *apptest.Env) []models.DeviceAuthorization {
	t.Helper()
	var rows []models.DeviceAuthorization
	if err := env.App.DB.Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestDeviceCodeEndpoint(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	for _, tc := range []struct{ contentType, body string }{
		{"application/x-www-form-urlencoded", "client_name=Gatehouse+CLI"},
		{"application/json", `{"client_name": "Gatehouse CLI"}`},
		{"application/json; charset=utf-8", `{"client_name": "  Gatehouse CLI  ", "scope": "ignored"}`},
	} {
		res, got := apiPost(t, env, "/api/v1/device/code", tc.contentType, tc.body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", tc.contentType, res.StatusCode, got)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		userCode, _ := got["user_code"].(string)
		norm, err := models.NormalizeUserCode(userCode)
		if err != nil || len(userCode) != 9 || userCode[4] != '-' {
			t.Errorf("user_code %q (%v), want XXXX-XXXX", userCode, err)
		}
		if dc, _ := got["device_code"].(string); !models.WellFormedToken(dc) {
			t.Errorf("device_code %q", dc)
		}
		if got["verification_uri"] != env.Config.BaseURL.String()+"/activate" {
			t.Errorf("verification_uri %v, want %s/activate", got["verification_uri"], env.Config.BaseURL)
		}
		if got["verification_uri_complete"] != env.Config.BaseURL.String()+"/activate?user_code="+userCode {
			t.Errorf("verification_uri_complete %v", got["verification_uri_complete"])
		}
		if got["expires_in"] != float64(600) || got["interval"] != float64(5) {
			t.Errorf("expires_in %v, interval %v; want 600 and 5", got["expires_in"], got["interval"])
		}
		rows := deviceRows(t, env)
		last := rows[len(rows)-1]
		if last.UserCode != norm || last.ClientName != "Gatehouse CLI" || last.IP != "127.0.0.1" ||
			last.UserAgent != apptest.DefaultUserAgent || last.Status != models.DevicePending {
			t.Errorf("row %+v", last)
		}
		// The database holds no device code that works.
		if strings.Contains(string(last.DeviceCodeHash), got["device_code"].(string)) || len(last.DeviceCodeHash) != 32 {
			t.Errorf("device code stored as %q", last.DeviceCodeHash)
		}
	}
}

func TestDeviceCodeBadInput(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	long := strings.Repeat("x", 101) // client_name is at most 100 characters
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
	}{
		{"no client_name", "application/x-www-form-urlencoded", "", 400},
		{"blank client_name", "application/x-www-form-urlencoded", "client_name=+++", 400},
		{"too long", "application/x-www-form-urlencoded", "client_name=" + long, 400},
		{"control character", "application/x-www-form-urlencoded", "client_name=a%0Ab", 400},
		{"bidi override", "application/json", `{"client_name": "evil\u202egnp.exe"}`, 400},
		{"invalid UTF-8", "application/x-www-form-urlencoded", "client_name=%FF%FE", 400},
		{"NUL", "application/x-www-form-urlencoded", "client_name=a%00b", 400},
		{"malformed form", "application/x-www-form-urlencoded", "client_name=%zz", 400},
		{"malformed JSON", "application/json", `{"client_name": "CLI"`, 400},
		{"JSON array", "application/json", `["CLI"]`, 400},
		{"JSON number", "application/json", `{"client_name": 42}`, 400},
		{"two JSON values", "application/json", `{"client_name": "a"} {"client_name": "b"}`, 400},
		{"NUL in JSON", "application/json", `{"client_name": "a\u0000b"}`, 400},
		{"no content type", "", "client_name=CLI", 415},
		{"text/plain", "text/plain", "client_name=CLI", 415},
		{"oversized", "application/json", `{"client_name": "` + strings.Repeat("a", 70<<10) + `"}`, 413},
		{"multipart", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"client_name\"\r\n\r\nCLI\r\n--x--\r\n", 415},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, got := apiPost(t, env, "/api/v1/device/code", tc.contentType, tc.body)
			if res.StatusCode != tc.status {
				t.Errorf("%d %v, want %d", res.StatusCode, got, tc.status)
			}
			if code, _ := got["error"].(string); code == "" {
				t.Errorf("no error code: %v", got)
			}
			if msg, _ := got["message"].(string); msg == "" || strings.Contains(msg, "pq:") || strings.Contains(msg, "SQL") {
				t.Errorf("message %q", msg)
			}
		})
	}
	if rows := deviceRows(t, env); len(rows) != 0 {
		t.Errorf("%d device authorizations stored from bad input", len(rows))
	}
	// GET is not the way.
	if res := env.Client(t).Get("/api/v1/device/code"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", res.StatusCode)
	}
}

// TestDeviceCodeThrottle: a burst of requests from one address gets at
// most the per-address allowance of codes, however parallel.
func TestDeviceCodeThrottle(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	const burst = 45
	statuses := make([]int, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			res, got := apiPost(t, env, "/api/v1/device/code", "application/json", `{"client_name": "CLI"}`)
			statuses[i] = res.StatusCode
			if res.StatusCode == http.StatusTooManyRequests && (got["error"] != "too_many_requests" || res.Header.Get("Retry-After") == "") {
				t.Errorf("429 answer %v, Retry-After %q", got, res.Header.Get("Retry-After"))
			}
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] != 30 || count[http.StatusTooManyRequests] != burst-30 {
		t.Fatalf("statuses %v, want 30 codes and the rest 429", count)
	}
	if rows := deviceRows(t, env); len(rows) != 30 {
		t.Fatalf("%d rows, want 30", len(rows))
	}
}

// activateUser is a signed-in browser of a new account.
func activateUser(t *testing.T, env *apptest.Env) (*apptest.Client, *models.User) {
	t.Helper()
	return signedInUser(t, env, "ada@example.com")
}

func TestActivateApproveAndDeny(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := activateUser(t, env)
	codes := requestCodes(t, env, "Gatehouse CLI <script>alert(1)</script>")

	// The link the device shows fills the code in.
	page := c.Get("/activate?user_code=" + url.QueryEscape(codes.UserCode))
	if page.StatusCode != http.StatusOK {
		t.Fatalf("GET /activate: %d", page.StatusCode)
	}
	if got := inputValue(page.Doc(t), "user_code"); got != codes.UserCode {
		t.Errorf("user_code filled in as %q, want %q", got, codes.UserCode)
	}
	// Typed in lower case without the dash, it is found all the same; the
	// page names the app (escaped) and where it asked from.
	res := c.Post("/activate", url.Values{"user_code": {strings.ToLower(strings.ReplaceAll(codes.UserCode, "-", ""))}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /activate: %d\n%s", res.StatusCode, errorMessage(t, res))
	}
	if strings.Contains(res.Body, "<script>alert(1)") {
		t.Fatal("client name rendered unescaped")
	}
	doc := res.Doc(t)
	if got := doc.Find(`[data-testid="activate-client"]`).Text(); got != "Gatehouse CLI <script>alert(1)</script>" {
		t.Errorf("client %q", got)
	}
	if got := doc.Find(`[data-testid="activate-ip"]`).Text(); got != "127.0.0.1" {
		t.Errorf("IP %q", got)
	}
	if got := doc.Find(`[data-testid="activate-code"]`).Text(); got != codes.UserCode {
		t.Errorf("code %q", got)
	}
	// Approve, as the page's form sends it (fresh from sign-up: no re-auth).
	done := submitForm(t, c, doc.Find(`form[data-testid="activate-approve"]`))
	if done.StatusCode != http.StatusOK || !strings.Contains(done.Doc(t).Find(`[data-testid="activate-done"]`).Text(), "is signed in") {
		t.Fatalf("approve: %d\n%s", done.StatusCode, errorMessage(t, done))
	}
	rows := deviceRows(t, env)
	if rows[0].Status != models.DeviceApproved || rows[0].UserID == nil || *rows[0].UserID != u.ID ||
		rows[0].ApprovedBy != sessionID(t, c) || rows[0].DecidedAt == nil {
		t.Errorf("approved row %+v", rows[0])
	}
	// The code is answered: it no longer shows, and cannot be answered again.
	again := c.Post("/activate", url.Values{"user_code": {codes.UserCode}})
	if again.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("used code: %d, want 422", again.StatusCode)
	}
	if res := c.Post("/activate/deny", url.Values{"user_code": {codes.UserCode}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("deny after approve: %d, want 422", res.StatusCode)
	}
	if rows := deviceRows(t, env); rows[0].Status != models.DeviceApproved {
		t.Errorf("deny after approve changed the row: %s", rows[0].Status)
	}

	// Deny another.
	denied := requestCodes(t, env, "Living room TV")
	res = c.Post("/activate/deny", url.Values{"user_code": {denied.UserCode}})
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, "Sign-in denied") {
		t.Fatalf("deny: %d\n%s", res.StatusCode, errorMessage(t, res))
	}
	if rows := deviceRows(t, env); rows[1].Status != models.DeviceDenied || *rows[1].UserID != u.ID {
		t.Errorf("denied row %+v", rows[1])
	}
	kinds := auditKinds(t, env, u.ID)
	if !hasKind(kinds, models.AuditDeviceApproved) || !hasKind(kinds, models.AuditDeviceDenied) {
		t.Errorf("audit kinds %v, want device_approved and device_denied", kinds)
	}
	// The user's activity page names both.
	activity := c.Get("/account/activity").Body
	for _, want := range []string{"Device sign-in approved", "Device sign-in denied"} {
		if !strings.Contains(activity, want) {
			t.Errorf("activity page lacks %q", want)
		}
	}
}

// TestActivateApproveNeedsRecentAuth: approving signs a new device in, so
// a stale password proof goes through the confirm page and back to the
// approval, its code carried.
func TestActivateApproveNeedsRecentAuth(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, _ := activateUser(t, env)
	env.Clock.Advance(stale)
	codes := requestCodes(t, env, "Gatehouse CLI")
	norm, _ := models.NormalizeUserCode(codes.UserCode)

	res := c.Post("/activate/approve", url.Values{"user_code": {codes.UserCode}})
	page := confirmPending(t, c, res, "user password", "sign in Gatehouse CLI (127.0.0.1)", "/activate")
	if rows := deviceRows(t, env); rows[0].Status != models.DevicePending {
		t.Fatalf("approved before re-auth: %s", rows[0].Status)
	}
	if got := page.Find(`[data-testid="pending-action"] input[name="user_code"]`).AttrOr("value", ""); got != norm {
		t.Errorf("confirmation page carries user_code %q, want %q", got, norm)
	}
	done := submitForm(t, c, page.Find(`form[data-testid="pending-action"]`))
	if done.StatusCode != http.StatusOK {
		t.Fatalf("approve after re-auth: %d\n%s", done.StatusCode, errorMessage(t, done))
	}
	if rows := deviceRows(t, env); rows[0].Status != models.DeviceApproved {
		t.Fatalf("row %s after approval", rows[0].Status)
	}
	// A crafted confirmation page with a code that does not exist names
	// nothing.
	if res := c.Get("/activate/approve?user_code=BBBB-BBBB"); res.StatusCode < 400 || res.StatusCode >= 500 {
		t.Errorf("confirmation page of an unknown code: %d", res.StatusCode)
	}
}

// TestActivateSignedOut: the link a device shows, opened signed out, leads
// through sign-in back to the code.
func TestActivateSignedOut(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	signedInUser(t, env, "ada@example.com")
	codes := requestCodes(t, env, "Gatehouse CLI")
	c := env.Client(t)
	target := "/activate?user_code=" + url.QueryEscape(codes.UserCode)
	res := c.Get(target)
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/signin?next="+url.QueryEscape(target) {
		t.Fatalf("signed out: %d to %q", res.StatusCode, res.Location())
	}
	in := c.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"user password"}, "next": {target}})
	if in.StatusCode != http.StatusSeeOther || in.Location() != target {
		t.Fatalf("sign in: %d to %q, want %q", in.StatusCode, in.Location(), target)
	}
	if got := inputValue(c.Get(target).Doc(t), "user_code"); got != codes.UserCode {
		t.Errorf("code after sign-in %q", got)
	}
	// Answering signed out does nothing.
	anon := env.Client(t)
	for _, path := range []string{"/activate", "/activate/approve", "/activate/deny"} {
		res := anon.Post(path, url.Values{"user_code": {codes.UserCode}})
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Location(), "/signin") {
			t.Errorf("POST %s signed out: %d to %q", path, res.StatusCode, res.Location())
		}
	}
	if rows := deviceRows(t, env); rows[0].Status != models.DevicePending {
		t.Errorf("row %s", rows[0].Status)
	}
}

// TestActivateWrongCodes: a wrong code says so next to the field; wrong
// codes count on the client's throttle, so a burst of guesses gets no
// more evaluated than the free failures, and after them even the right
// code waits.
func TestActivateWrongCodes(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, _ := activateUser(t, env)
	codes := requestCodes(t, env, "Gatehouse CLI")
	for _, tc := range []struct{ typed, want string }{
		{"", "Enter the code"},
		{"WDJB", "is 8 letters"},
		{"\u0412DJB-MJHT", "is 8 letters"}, // a Cyrillic look-alike
		{"AEIO-UAEI", "is 8 letters"},
		{"BBBB-BBBB", "does not work"},
	} {
		res := c.Post("/activate", url.Values{"user_code": {tc.typed}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%q: %d, want 422", tc.typed, res.StatusCode)
			continue
		}
		doc := res.Doc(t)
		checkOnlyFieldError(t, doc, "user_code")
		if msg := fieldErrors(doc)["user_code"]; !strings.Contains(msg, tc.want) {
			t.Errorf("%q: message %q, want %q", tc.typed, msg, tc.want)
		}
		if got := inputValue(doc, "user_code"); got != tc.typed {
			t.Errorf("%q kept as %q", tc.typed, got)
		}
	}
	// Four failures so far (the empty field is no guess); a parallel burst
	// gets the rest of the free failures evaluated, the others refused.
	const burst = 40
	statuses := make([]int, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			statuses[i] = c.Post("/activate", url.Values{"user_code": {"CCCC-CCCC"}}).StatusCode
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if evaluated := count[http.StatusUnprocessableEntity]; evaluated != throttle.IPFreeFailures-4 || count[http.StatusTooManyRequests] != burst-evaluated {
		t.Fatalf("burst of wrong codes: %v, want %d evaluated and the rest 429", count, throttle.IPFreeFailures-4)
	}
	if res := c.Post("/activate", url.Values{"user_code": {codes.UserCode}}); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right code after the guesses: %d, want 429", res.StatusCode)
	}
	if rows := deviceRows(t, env); rows[0].Status != models.DevicePending {
		t.Errorf("row %s", rows[0].Status)
	}
}

// chromeOnWindows is a second browser's user agent.
const chromeOnWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// bearerGet fetches path with an app's access token and no cookie.
func bearerGet(t *testing.T, env *apptest.Env, path, access string) *apptest.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.Server.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+access)
	return env.Client(t).Do(req)
}

// TestDevicesPageShowsAppSessions: app sessions are rows of the Devices
// page like browsers, with the App badge and which browser approved them;
// revoking one there ends its access token on its next request.
func TestDevicesPageShowsAppSessions(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	c, u := activateUser(t, env)
	other := env.Client(t)
	other.UserAgent = chromeOnWindows
	other.SignIn("ada@example.com", "user password")
	start := func(name, approvedBy string) session.AppTokens {
		var opts []session.StartOption
		if approvedBy != "" {
			opts = append(opts, session.ApprovedBy(approvedBy))
		}
		tok, err := env.App.Sessions.StartApp(ctx, u, session.AppClient{Name: name, UserAgent: "gatehouse-cli/1.0", IP: "192.0.2.7"}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	here := start("Gatehouse CLI", sessionID(t, c))
	there := start("Living room TV", sessionID(t, other))
	plain := start("Backup script", "")
	gone := start("Old laptop CLI", "AAAAAAAAAAAAAAAAAAAAAA")

	doc := c.Get("/account/sessions").Doc(t)
	row := func(id string) *goquery.Selection {
		r := doc.Find(`[data-testid="active-sessions"] tr[data-session-id="` + id + `"]`)
		if r.Length() != 1 {
			t.Fatalf("%d rows for session %s", r.Length(), id)
		}
		return r
	}
	for _, tc := range []struct {
		tok        session.AppTokens
		name, from string
	}{
		{here, "Gatehouse CLI", "Approved from this browser"},
		{there, "Living room TV", "Approved from Chrome on Windows"},
		{plain, "Backup script", ""},
		{gone, "Old laptop CLI", "Approved from a browser that has since signed out"},
	} {
		r := row(tc.tok.SessionID)
		if got := r.Find(".device").Text(); !strings.HasPrefix(got, tc.name) {
			t.Errorf("%s: device %q", tc.name, got)
		}
		if got := r.Find(`[data-testid="app-badge"]`).Text(); got != "App" {
			t.Errorf("%s: badge %q, want App", tc.name, got)
		}
		if got := r.Find(`[data-testid="approved-from"]`).Text(); got != tc.from {
			t.Errorf("%s: approved from %q, want %q", tc.name, got, tc.from)
		}
		if approved := tc.from != ""; approved == (r.Find(`[data-testid="auth-method"]`).Length() != 0) {
			t.Errorf("%s: approved %v, sign-in method shown %q", tc.name, approved, r.Find(`[data-testid="auth-method"]`).Text())
		}
		if r.Find(`form[action="/account/sessions/`+tc.tok.SessionID+`/revoke"]`).Length() != 1 {
			t.Errorf("%s: no Revoke", tc.name)
		}
	}
	for _, id := range []string{sessionID(t, c), sessionID(t, other)} {
		if row(id).Find(`[data-testid="app-badge"]`).Length() != 0 {
			t.Errorf("browser session %s has the App badge", id)
		}
	}

	// Revoking the app from the Devices page is final for its token.
	if res := bearerGet(t, env, "/account", here.AccessToken); res.StatusCode != http.StatusOK {
		t.Fatalf("bearer before revoke: %d", res.StatusCode)
	}
	if res := c.Post("/account/sessions/"+here.SessionID+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	if res := bearerGet(t, env, "/account", here.AccessToken); res.StatusCode == http.StatusOK {
		t.Fatalf("bearer after revoke: %d, want refused", res.StatusCode)
	}
	if row := c.Get("/account/sessions").Doc(t).Find(`tr[data-session-id="` + here.SessionID + `"]`); row.Length() != 0 {
		t.Errorf("revoked app still listed")
	}
	if res := bearerGet(t, env, "/account", there.AccessToken); res.StatusCode != http.StatusOK {
		t.Errorf("another app's token after the revoke: %d", res.StatusCode)
	}

	// An administrator sees the app sessions, badged, on the user's page
	// and the all-sessions page.
	admin, _ := signedInAdmin(t, env)
	for _, path := range []string{userPath(u), "/admin/sessions"} {
		page := admin.Get(path).Doc(t)
		r := page.Find(`tr[data-session-id="` + there.SessionID + `"]`)
		if r.Length() != 1 || r.Find(`[data-testid="app-badge"]`).Text() != "App" {
			t.Errorf("%s: app session row %d, badge %q", path, r.Length(), r.Find(`[data-testid="app-badge"]`).Text())
		}
		if got := r.Find(`[data-testid="approved-from"]`).Text(); !strings.HasPrefix(got, "Approved from ") || r.Find(`[data-testid="auth-method"]`).Length() != 0 {
			t.Errorf("%s: approved from %q, and a sign-in method", path, got)
		}
	}

	// An app's token cannot answer a device sign-in: that is a browser's.
	codes := requestCodes(t, env, "Sneaky")
	req, _ := http.NewRequest(http.MethodPost, env.Server.URL+"/activate/deny",
		strings.NewReader(url.Values{"user_code": {codes.UserCode}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+there.AccessToken)
	if res := env.Client(t).Do(req); res.StatusCode != http.StatusForbidden {
		t.Errorf("deny with a bearer: %d, want 403", res.StatusCode)
	}
	if rows := deviceRows(t, env); rows[len(rows)-1].Status != models.DevicePending {
		t.Errorf("bearer answered the code: %s", rows[len(rows)-1].Status)
	}
}

// TestAppRowsShowTheirOwnIdleTimeout: an app session's "signs out if
// unused" is APP_IDLE_TIMEOUT after its last refresh (and never after its
// lifetime), not the browsers' idle timeout after its last request.
func TestAppRowsShowTheirOwnIdleTimeout(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("SESSION_IDLE_TIMEOUT", "30m"), apptest.With("APP_IDLE_TIMEOUT", "48h"))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "user password")
	u := mustUser(t, env, "ada@example.com")
	app, err := env.App.Sessions.StartApp(context.Background(), u, session.AppClient{Name: "CLI", UserAgent: "gatehouse-cli/1.0", IP: "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := env.App.Sessions.Records().ByPublicID(context.Background(), app.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	doc := c.Get("/account/sessions").Doc(t)
	idleEnd := func(id string) time.Time {
		v, _ := doc.Find(`tr[data-session-id="` + id + `"] [data-testid="idle-end"] time`).Attr("datetime")
		at, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatalf("idle end of %s: %q: %v", id, v, err)
		}
		return at
	}
	if got, want := idleEnd(app.SessionID), rec.AppIdleSince().Add(48*time.Hour); got.Sub(want).Abs() > time.Second {
		t.Errorf("the app row signs out if unused at %v, want %v (APP_IDLE_TIMEOUT after its last refresh)", got, want)
	}
	if got, want := idleEnd(sessionID(t, c)), env.Clock.Now().Add(30*time.Minute); got.Sub(want).Abs() > time.Minute {
		t.Errorf("the browser row signs out if unused at %v, want %v", got, want)
	}
}
