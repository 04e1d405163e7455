package browsertest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// cli is a command-line tool signing in with the device flow: plain Go
// HTTP, as a real one would be.
type cli struct {
	t    *testing.T
	env  *apptest.Env
	http *http.Client
}

// post sends form to path and decodes the JSON answer.
func (c *cli) post(path string, form url.Values) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.env.Server.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "gatehouse-cli/1.0 (Linux)")
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		c.t.Fatalf("POST %s: %d, not JSON: %v", path, res.StatusCode, err)
	}
	return res.StatusCode, got
}

// poll is one poll for the tokens.
func (c *cli) poll(deviceCode string) (int, map[string]any) {
	c.t.Helper()
	return c.post("/api/v1/token", url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode},
	})
}

// TestBrowserDeviceFlow: a CLI asks for codes; the signed-in browser opens
// the link it shows, sees the CLI, approves after confirming the password,
// and the CLI's next poll gets tokens; the Devices page lists it at once,
// as an app approved from this browser. Then a second sign-in is denied,
// and the CLI hears access_denied.
func TestBrowserDeviceFlow(t *testing.T) {
	s := start(t)
	b := s.newBrowser("laptop")
	const email, password = "katherine@example.com", "orbital mechanics by hand"
	if path := b.signUp("Katherine Johnson", email, password); path != "/account" {
		t.Fatalf("sign-up ended on %s", path)
	}
	s.env.Clock.Advance(11 * time.Minute) // past REAUTH_WINDOW: approving asks for the password
	app := &cli{t: t, env: s.env, http: &http.Client{Timeout: 30 * time.Second}}

	status, codes := app.post("/api/v1/device/code", url.Values{"client_name": {"Gatehouse CLI"}})
	if status != http.StatusOK {
		t.Fatalf("device code: %d %v", status, codes)
	}
	deviceCode, userCode := codes["device_code"].(string), codes["user_code"].(string)
	if status, got := app.poll(deviceCode); status != http.StatusBadRequest || got["error"] != "authorization_pending" {
		t.Fatalf("poll before approval: %d %v", status, got)
	}

	link, err := url.Parse(codes["verification_uri_complete"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if path := b.open(link.RequestURI()); path != link.RequestURI() {
		t.Fatalf("the device's link ended on %s", path)
	}
	if got := run(b, "read the code field", chromedp.Evaluate[string](`document.querySelector("#user_code").value`)); got != userCode {
		t.Errorf("code field %q, want %q", got, userCode)
	}
	if path := b.submit(`form[data-testid="activate-form"] button[type="submit"]`); path != "/activate" {
		t.Fatalf("Continue ended on %s", path)
	}
	if got := b.text(`[data-testid="activate-client"]`); got != "Gatehouse CLI" {
		t.Errorf("client %q", got)
	}
	b.screenshot("client")
	if path := b.submit(`form[data-testid="activate-approve"] button`); !strings.HasPrefix(path, "/account/confirm?next=") {
		t.Fatalf("Approve ended on %s, want the confirm page", path)
	}
	if got := b.text(`[data-testid="confirm-heading"]`); got != "Confirm your password to sign in Gatehouse CLI (127.0.0.1)" {
		t.Errorf("confirm heading %q", got)
	}
	b.fill("#password", password)
	if path := b.submit(`form[action="/account/confirm"] button[type="submit"]`); !strings.HasPrefix(path, "/activate/approve?user_code=") {
		t.Fatalf("confirming ended on %s", path)
	}
	// Not approved until pressed: the CLI still waits.
	s.env.Clock.Advance(6 * time.Second)
	if status, got := app.poll(deviceCode); got["error"] != "authorization_pending" {
		t.Fatalf("poll before the press: %d %v", status, got)
	}
	if path := b.submit(`form[data-testid="pending-action"] button`); path != "/activate/approve" {
		t.Fatalf("approving ended on %s", path)
	}
	if got := b.text(`[data-testid="activate-done"]`); got != "Gatehouse CLI is signed in" {
		t.Errorf("done %q", got)
	}

	s.env.Clock.Advance(6 * time.Second)
	status, tokens := app.poll(deviceCode)
	if status != http.StatusOK || tokens["access_token"] == nil || tokens["refresh_token"] == nil {
		t.Fatalf("poll after approval: %d %v", status, tokens)
	}
	sessionID := tokens["session_id"].(string)
	if status, got := app.poll(deviceCode); status != http.StatusBadRequest || got["error"] != "invalid_grant" {
		t.Errorf("second poll: %d %v, want invalid_grant", status, got)
	}

	if path := b.open("/account/sessions"); path != "/account/sessions" {
		t.Fatalf("Devices ended on %s", path)
	}
	row := `tr[data-session-id="` + sessionID + `"]`
	if got := b.text(chromedp.CSS(row + ` [data-testid="app-badge"]`)); got != "App" {
		t.Errorf("badge %q", got)
	}
	if got := b.text(chromedp.CSS(row + ` [data-testid="approved-from"]`)); got != "Approved from this browser" {
		t.Errorf("approved from %q", got)
	}
	if got := b.text(chromedp.CSS(row + ` .device`)); !strings.HasPrefix(got, "Gatehouse CLI") {
		t.Errorf("device %q", got)
	}
	b.screenshot("devices")

	// Denied: the CLI hears so, and the code is dead.
	status, codes = app.post("/api/v1/device/code", url.Values{"client_name": {"Unknown TV"}})
	if status != http.StatusOK {
		t.Fatalf("device code: %d %v", status, codes)
	}
	link, _ = url.Parse(codes["verification_uri_complete"].(string))
	b.open(link.RequestURI())
	if path := b.submit(`form[data-testid="activate-form"] button[type="submit"]`); path != "/activate" {
		t.Fatalf("Continue ended on %s", path)
	}
	if path := b.submit(`form[data-testid="activate-deny"] button`); path != "/activate/deny" {
		t.Fatalf("Deny ended on %s", path)
	}
	if got := b.text(`[data-testid="activate-done"]`); got != "Sign-in denied" {
		t.Errorf("denied page %q", got)
	}
	if status, got := app.poll(codes["device_code"].(string)); status != http.StatusBadRequest || got["error"] != "access_denied" {
		t.Errorf("poll after deny: %d %v, want access_denied", status, got)
	}
}
