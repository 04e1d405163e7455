package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
)

// sessionCookie returns the Set-Cookie for the session in res, or nil.
func sessionCookie(res *apptest.Response) *http.Cookie {
	for _, ck := range res.Cookies() {
		if ck.Name == "gatehouse_session" {
			return ck
		}
	}
	return nil
}

func TestSessionCookieAttributes(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")

	for _, remember := range []bool{false, true} {
		c := env.Client(t)
		form := url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}}
		if remember {
			form.Set("remember", "1")
		}
		ck := sessionCookie(c.Post("/signin", form))
		if ck == nil {
			t.Fatalf("remember=%v: sign-in set no session cookie", remember)
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure {
			t.Errorf("remember=%v: cookie %q, want HttpOnly, SameSite=Lax, Path=/, not Secure on http", remember, ck.String())
		}
		// The user's slot tag (an HMAC, not the id), a dot, the scs token.
		if tag, token, ok := strings.Cut(ck.Value, "."); !ok || len(tag) != 16 || len(token) != 43 ||
			strings.ContainsAny(ck.Value, ":|") {
			t.Errorf("cookie value %q is not a tag and a bare scs token", ck.Value)
		}
		// Without "remember me" the cookie dies with the browser session;
		// with it, it persists up to the session's absolute lifetime (12 h
		// by default; the server ends it sooner when idle: TestIdleTimeout).
		if persistent := ck.MaxAge > 0; persistent != remember {
			t.Errorf("remember=%v: Max-Age=%d", remember, ck.MaxAge)
		}
		if remember && (ck.MaxAge < 12*3600-60 || ck.MaxAge > 12*3600) {
			t.Errorf("remember=%v: Max-Age=%d, want the 12-hour lifetime", remember, ck.MaxAge)
		}
		// A request that changes nothing sets no cookie: the lookup slid
		// the idle expiry in Redis, and the cookie already holds the token.
		c.Get("/account") // the first page after sign-in shows and drops the flash
		for i := range 3 {
			res := c.Get("/account")
			if res.StatusCode != http.StatusOK {
				t.Fatalf("remember=%v: GET /account: %d", remember, res.StatusCode)
			}
			vary := res.Header.Values("Vary")
			if i := slices.Index(vary, "Cookie"); i < 0 || slices.Contains(vary[i+1:], "Cookie") {
				t.Errorf("remember=%v: Vary %q, want Cookie once", remember, vary)
			}
			if ck := sessionCookie(res); ck != nil {
				t.Errorf("remember=%v: request %d that changed nothing set the session cookie %q", remember, i, ck.String())
			}
		}
	}
}

func TestSecureCookiesOnHTTPS(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("BASE_URL", "https://gatehouse.example"))
	c := env.Client(t)
	res := c.Get("/signin")
	var csrf *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == "__Host-gatehouse_csrf" {
			csrf = ck
		}
	}
	if csrf == nil || !csrf.Secure || csrf.Path != "/" || csrf.Domain != "" {
		t.Fatalf("CSRF cookie on https: %v, want __Host- prefixed, Secure, Path=/", res.Header.Values("Set-Cookie"))
	}
	if env.App.Sessions.CookieName() != "__Host-gatehouse_session" {
		t.Errorf("session cookie name on https = %q", env.App.Sessions.CookieName())
	}
}

func TestSignInRenewsToken(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	c := env.Client(t)
	// An attacker plants a session token before the victim signs in.
	planted := strings.Repeat("P", 43)
	c.SetCookie("gatehouse_session", planted)
	c.SignIn("ada@example.com", "analytical engine")
	first := c.SessionToken()
	if first == "" || first == planted {
		t.Fatalf("token after sign-in = %q: not renewed", first)
	}
	// Signing in again on the same browser gives yet another token, and the
	// old one stops working.
	c.SignIn("ada@example.com", "analytical engine")
	if second := c.SessionToken(); second == first {
		t.Fatal("second sign-in kept the token")
	}
	old := env.Client(t)
	old.SetCookie("gatehouse_session", first)
	if res := old.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the token from before the second sign-in still works: %d", res.StatusCode)
	}
}

func TestTokenNeverLeaves(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	token := c.SessionToken()
	pages := []string{c.Get("/account").Body, c.Get("/account/sessions").Body}
	c.Post("/account", url.Values{"name": {"Ada L"}, "email": {"ada@example.com"}})
	for _, body := range pages {
		if strings.Contains(body, token) {
			t.Fatal("a page contains the session token")
		}
	}
	var dump []string
	if err := env.App.DB.Raw(`SELECT t::text FROM sessions t UNION ALL SELECT u::text FROM users u`).Scan(&dump).Error; err != nil {
		t.Fatal(err)
	}
	if len(dump) < 2 {
		t.Fatalf("expected a user and a session row, got %d rows", len(dump))
	}
	for _, row := range dump {
		if strings.Contains(row, token) {
			t.Fatalf("Postgres holds the session token: %s", row)
		}
	}
	if strings.Contains(env.Logs.String(), token) {
		t.Fatal("the log contains the session token")
	}
}

// sessionIDs returns the data-session-id of each active row on the Devices
// page, and which one is marked current.
func sessionIDs(t *testing.T, c *apptest.Client) (ids []string, current string) {
	t.Helper()
	res := c.Get("/account/sessions")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /account/sessions: %d", res.StatusCode)
	}
	res.Doc(t).Find("tr[data-session-id]").Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("data-session-id")
		ids = append(ids, id)
		if v, _ := s.Attr("data-current"); v == "true" {
			current = id
		}
	})
	return ids, current
}

func TestDevicesPageListsEverySession(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	laptop := env.Client(t)
	laptop.SignUp("Ada", "ada@example.com", "analytical engine")
	phone := env.Client(t)
	phone.UserAgent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	phone.SignIn("ada@example.com", "analytical engine")

	res := laptop.Get("/account/sessions")
	doc := res.Doc(t)
	rows := doc.Find("tr[data-session-id]")
	if rows.Length() != 2 {
		t.Fatalf("%d active rows, want 2", rows.Length())
	}
	first := rows.First()
	if v, _ := first.Attr("data-current"); v != "true" {
		t.Error("the current device is not listed first and marked data-current")
	}
	if !strings.Contains(first.Text(), "Firefox on Linux") || !strings.Contains(first.Text(), "This device") {
		t.Errorf("current row reads %q", first.Text())
	}
	if first.Find("button").Length() != 0 {
		t.Error("the current device has a Revoke button")
	}
	other := rows.Eq(1)
	for _, want := range []string{"Safari on iOS", "phone", "127.0.0.1", "now"} {
		if !strings.Contains(other.Text(), want) {
			t.Errorf("phone row %q lacks %q", other.Text(), want)
		}
	}
	if other.Find(`form[action$="/revoke"] button`).Length() != 1 {
		t.Error("the other device has no Revoke button")
	}
	if doc.Find(`form[action="/account/sessions/revoke-others"]`).Length() != 1 {
		t.Error("no sign-out-everywhere-else form")
	}
	// Every POST form carries the token; the GET forms of destructive
	// actions (which open a confirmation page) must not put it in a URL.
	if n := doc.Find(`form[method="post"] input[name="_csrf"]`).Length(); n != doc.Find(`form[method="post"]`).Length() {
		t.Errorf("%d POST forms but %d CSRF fields", doc.Find(`form[method="post"]`).Length(), n)
	}
	if n := doc.Find(`form[method="get"] input[name="_csrf"]`).Length(); n != 0 {
		t.Errorf("%d GET forms carry the CSRF token", n)
	}
}

func TestRevokeFromDevicesPage(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	a := env.Client(t)
	a.SignUp("Ada", "ada@example.com", "analytical engine")
	b := env.Client(t)
	b.SignIn("ada@example.com", "analytical engine")
	_, bID := sessionIDs(t, b)

	res := a.Post("/account/sessions/"+bID+"/revoke", nil)
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/account/sessions" {
		t.Fatalf("revoke: %d to %q", res.StatusCode, res.Location())
	}
	ids, _ := sessionIDs(t, a)
	if len(ids) != 1 {
		t.Fatalf("after revoke, %d active sessions listed", len(ids))
	}
	ended := a.Get("/account/sessions").Doc(t).Find(`[data-testid="end-reason"]`).First().Text()
	if ended != "Revoked from another device" {
		t.Errorf("ended session reads %q", ended)
	}

	// B is signed out on its very next request, and told why.
	next := b.Get("/account/sessions")
	if next.StatusCode != http.StatusSeeOther || next.Location() != "/signin?next=%2Faccount%2Fsessions" {
		t.Fatalf("revoked device: %d to %q", next.StatusCode, next.Location())
	}
	signin := b.Get(next.Location())
	// It names the device that did it, and is not a green success box.
	d := session.Describe(apptest.DefaultUserAgent)
	flash := signin.Doc(t).Find(`[data-testid="flash"]`)
	if got, want := flash.Text(), "This device was signed out from "+d.Browser+" on "+d.OS+". Please sign in again."; got != want {
		t.Errorf("sign-in page explains %q, want %q", got, want)
	}
	if tone := flash.AttrOr("data-tone", ""); tone != "warning" {
		t.Errorf("the message's tone is %q, want warning", tone)
	}
	// A flash cookie naming no real session falls back to the plain words.
	for _, forged := range []string{"ended_by_user.not-an-id", "ended_by_user." + strings.Repeat("a", 26), "ended_by_user.%s"} {
		c := env.Client(t)
		c.SetCookie("gatehouse_flash", forged)
		if got := c.Get("/signin").Doc(t).Find(`[data-testid="flash"]`).Text(); got != "This device was signed out from another device. Please sign in again." {
			t.Errorf("flash cookie %q shows %q", forged, got)
		}
	}
	if err := env.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, err := env.App.Sessions.Records().ByPublicID(context.Background(), bID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.EndReason != models.EndRevokedByUser || rec.EndedBy == nil || rec.EndedAt == nil {
		t.Errorf("record: reason %q, by %v, at %v", rec.EndReason, rec.EndedBy, rec.EndedAt)
	}
}

func TestSignOutAllOtherDevices(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	others := make([]*apptest.Client, 3)
	for i := range others {
		others[i] = env.Client(t)
		others[i].SignIn("ada@example.com", "analytical engine")
	}
	res := me.Post("/account/sessions/revoke-others", nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke-others: %d", res.StatusCode)
	}
	for i, o := range others {
		if got := o.Get("/account").StatusCode; got != http.StatusSeeOther {
			t.Errorf("other device %d still signed in (%d)", i, got)
		}
	}
	if got := me.Get("/account").StatusCode; got != http.StatusOK {
		t.Errorf("this device was signed out too (%d)", got)
	}
	if ids, _ := sessionIDs(t, me); len(ids) != 1 {
		t.Errorf("%d sessions listed, want 1", len(ids))
	}
}

func TestPasswordChange(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	other := env.Client(t)
	other.SignIn("ada@example.com", "analytical engine")

	// Unticked: the other device stays signed in.
	before := me.SessionToken()
	res := me.Post("/account/password", url.Values{"current_password": {"analytical engine"}, "new_password": {"difference engine"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("change password: %d\n%s", res.StatusCode, res.Body)
	}
	if me.SessionToken() == before || me.SessionToken() == "" {
		t.Error("password change did not renew this device's token")
	}
	if other.Get("/account").StatusCode != http.StatusOK {
		t.Error("unticked 'sign out other devices' signed the other device out")
	}
	stale := env.Client(t)
	stale.SetCookie("gatehouse_session", before)
	if stale.Get("/account").StatusCode != http.StatusSeeOther {
		t.Error("the token from before the password change still works")
	}

	// Ticked: it is signed out, and told why.
	res = me.Post("/account/password", url.Values{
		"current_password": {"difference engine"}, "new_password": {"jacquard loom"}, "revoke_others": {"1"},
	})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("change password again: %d", res.StatusCode)
	}
	if me.Get("/account").StatusCode != http.StatusOK {
		t.Fatal("this device was signed out by its own password change")
	}
	next := other.Get("/account")
	if next.StatusCode != http.StatusSeeOther {
		t.Fatalf("other device after password change: %d", next.StatusCode)
	}
	if got := other.Get(next.Location()).Doc(t).Find(`[data-testid="flash"]`).Text(); !strings.Contains(got, "password was changed") {
		t.Errorf("flash %q", got)
	}
	// And only the new password works.
	fresh := env.Client(t)
	if res := fresh.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"difference engine"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("old password still signs in: %d", res.StatusCode)
	}
	fresh.SignIn("ada@example.com", "jacquard loom")
}

// TestRevocationIsFinal hammers a session with concurrent requests while
// another device revokes it. scs re-saves a session at the end of each
// request, so an in-flight request writes the data back after the revoke;
// no request that starts after the revoke returned may be authenticated.
func TestRevocationIsFinal(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	a := env.Client(t)
	a.SignUp("Ada", "ada@example.com", "analytical engine")
	b := env.Client(t)
	b.SignIn("ada@example.com", "analytical engine")
	token := b.SessionToken()
	_, bID := sessionIDs(t, b)

	before, after, wrong := hammerDuringRevoke(t, env.Server.URL, token, 8, func() {
		if res := a.Post("/account/sessions/"+bID+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("revoke: %d", res.StatusCode)
		}
	})
	if before == 0 || after == 0 {
		t.Fatalf("the hammer did not overlap the revoke: %d requests before, %d after", before, after)
	}
	if wrong > 0 {
		t.Fatalf("%d requests started after the revoke were authenticated", wrong)
	}
	// Once the dust settles the cookie is still dead.
	late := env.Client(t)
	late.SetCookie("gatehouse_session", token)
	if late.Get("/account").StatusCode != http.StatusSeeOther {
		t.Fatal("the revoked cookie works again")
	}
	t.Logf("%d requests before the revoke, %d after, none authenticated after", before, after)
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("SESSION_IDLE_TIMEOUT", "1s"), apptest.With("SESSION_LIFETIME", "1h"))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	// Activity keeps it alive past the idle timeout...
	for range 4 {
		time.Sleep(400 * time.Millisecond)
		if c.Get("/account").StatusCode != http.StatusOK {
			t.Fatal("an active session timed out")
		}
	}
	// ...and idleness ends it, on the server: the cookie is replayed as is.
	token := c.SessionToken()
	time.Sleep(1500 * time.Millisecond)
	replay := env.Client(t)
	replay.SetCookie("gatehouse_session", token)
	res := replay.Get("/account")
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("idle session still works: %d", res.StatusCode)
	}
	if got := replay.Get(res.Location()).Doc(t).Find(`[data-testid="flash"]`).Text(); !strings.Contains(got, "expired") {
		t.Errorf("flash %q", got)
	}
}

func TestAbsoluteLifetime(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("SESSION_IDLE_TIMEOUT", "2s"), apptest.With("SESSION_LIFETIME", "2s"))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	token := c.SessionToken()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline.Add(-300 * time.Millisecond)) {
		if c.Get("/account").StatusCode != http.StatusOK {
			t.Fatal("session ended before its lifetime")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Until(deadline) + 500*time.Millisecond)
	replay := env.Client(t)
	replay.SetCookie("gatehouse_session", token)
	res := replay.Get("/account")
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("session outlived its absolute lifetime, despite activity: %d", res.StatusCode)
	}
	// Nothing of the session is left in Redis to name its device by.
	if got := replay.Get(res.Location()).Doc(t).Find(`[data-testid="flash"]`).Text(); got != "Your session has expired. Please sign in again." {
		t.Errorf("flash %q", got)
	}
}

func TestLastSeenWrittenAtMostOncePerMinute(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	_, id := sessionIDs(t, c)
	lastSeen := func() time.Time {
		// Last seen is written in the background: let the writer catch up.
		if err := env.App.Sessions.WaitLastSeen(context.Background()); err != nil {
			t.Fatal(err)
		}
		rec, err := env.App.Sessions.Records().ByPublicID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return rec.LastSeenAt
	}
	signedIn := lastSeen()
	env.Clock.Advance(30 * time.Second)
	c.Get("/account")
	if got := lastSeen(); !got.Equal(signedIn) {
		t.Fatalf("last seen written after 30s: %v -> %v", signedIn, got)
	}
	env.Clock.Advance(31 * time.Second)
	c.Get("/account")
	if got := lastSeen(); !got.After(signedIn.Add(60 * time.Second)) {
		t.Fatalf("last seen not written after a minute: %v -> %v", signedIn, got)
	}
}

func TestExpiredSessionsShowAsEnded(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	me := env.Client(t)
	me.SignUp("Ada", "ada@example.com", "analytical engine")
	gone := env.Client(t)
	gone.SignIn("ada@example.com", "analytical engine")
	// The session data expires in Redis (as a TTL would remove it).
	if err := env.App.Redis.Del(context.Background(), env.App.Sessions.DataKey(gone.SessionToken())).Err(); err != nil {
		t.Fatal(err)
	}

	ids, _ := sessionIDs(t, me)
	if len(ids) != 1 {
		t.Fatalf("%d active sessions, want 1: the expired one is still listed", len(ids))
	}
	got := me.Get("/account/sessions").Doc(t).Find(`[data-testid="end-reason"]`).First().Text()
	if got != "Expired after inactivity" {
		t.Errorf("expired session reads %q", got)
	}
}

// hammerDuringRevoke sends GET /account to serverURL with a fixed session
// cookie from several goroutines while revoke runs, and counts requests
// that started before the revoke returned, after it, and those after it
// that were still authenticated (which must be none). A raw client with a
// fixed cookie is used: a browser's jar would drop the cookie once told to,
// and hide any resurrection.
func hammerDuringRevoke(t *testing.T, serverURL, token string, workers int, revoke func()) (before, after, wrong int64) {
	t.Helper()
	return hammer(t, serverURL+"/account", func(req *http.Request) {
		req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: token})
	}, workers, revoke)
}

// hammer is hammerDuringRevoke for any credential: auth adds it to each
// GET of url.
func hammer(t *testing.T, url string, auth func(*http.Request), workers int, revoke func()) (before, after, wrong int64) {
	t.Helper()
	var revoked atomic.Bool
	var nBefore, nAfter, nWrong atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for {
				select {
				case <-stop:
					return
				default:
				}
				startedAfter := revoked.Load()
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				auth(req)
				res, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				switch {
				case startedAfter && res.StatusCode == http.StatusOK:
					nWrong.Add(1)
				case startedAfter:
					nAfter.Add(1)
				default:
					nBefore.Add(1)
				}
			}
		}()
	}
	time.Sleep(150 * time.Millisecond)
	revoke()
	revoked.Store(true)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	return nBefore.Load(), nAfter.Load(), nWrong.Load()
}

// Every end-of-session message names a device when one is known: a revoke
// from another device names that device (TestRevokeFromDevicesPage); every
// other end names this browser's own session, from its record.
func TestEndedMessagesNameTheDevice(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	const iPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	d := session.Describe(iPhone)
	device := d.Browser + " on " + d.OS
	if device == session.Describe(apptest.DefaultUserAgent).Browser+" on "+session.Describe(apptest.DefaultUserAgent).OS {
		t.Fatal("the test needs a device unlike the default client's")
	}
	_, user := signedInUser(t, env, "user@example.com")
	admin, root := signedInAdmin(t, env)
	phoneSignIn := func() (*apptest.Client, string) {
		c := env.Client(t)
		c.UserAgent = iPhone
		c.SignIn(user.Email, "user password")
		_, id := sessionIDs(t, c)
		return c, id
	}
	// told follows the redirect the next request gets and returns the flash
	// and its tone.
	told := func(c *apptest.Client) (string, string) {
		t.Helper()
		res := c.Get("/account")
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("ended session: %d", res.StatusCode)
		}
		flash := c.Get(res.Location()).Doc(t).Find(`[data-testid="flash"]`)
		return flash.Text(), flash.AttrOr("data-tone", "")
	}
	ctx := context.Background()

	// Gone idle (the data's TTL ran out; the owner key, the absolute
	// lifetime, lives on).
	idle, _ := phoneSignIn()
	if err := env.App.Redis.Del(ctx, env.App.Sessions.DataKey(idle.SessionToken())).Err(); err != nil {
		t.Fatal(err)
	}
	if got, tone := told(idle); got != "Your session on this device ("+device+") has expired. Please sign in again." || tone != "info" {
		t.Errorf("idle: %q (%s)", got, tone)
	}

	// Ended by an administrator: this device, not the administrator's.
	byAdmin, id := phoneSignIn()
	if err := env.App.Sessions.Revoke(ctx, user.ID, id, models.EndRevokedByAdmin, &root.ID); err != nil {
		t.Fatal(err)
	}
	if got, tone := told(byAdmin); got != "An administrator ended your session on this device ("+device+"). Please sign in again." || tone != "warning" {
		t.Errorf("by an administrator: %q (%s)", got, tone)
	}

	// Revoked, and then its data went idle before the browser came back:
	// still the revoke's reason, not "expired".
	late, id := phoneSignIn()
	if err := env.App.Sessions.Revoke(ctx, user.ID, id, models.EndRevokedByAdmin, &root.ID); err != nil {
		t.Fatal(err)
	}
	if err := env.App.Redis.Del(ctx, env.App.Sessions.DataKey(late.SessionToken())).Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := told(late); got != "An administrator ended your session on this device ("+device+"). Please sign in again." {
		t.Errorf("revoked, then idle: %q", got)
	}

	// Disabled by the administrator, over HTTP.
	disabled, _ := phoneSignIn()
	if res := admin.Post(userPath(user)+"/disable", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", res.StatusCode)
	}
	if got, tone := told(disabled); got != "Your account has been disabled, so this device ("+device+") was signed out. Contact an administrator." || tone != "error" {
		t.Errorf("disabled: %q (%s)", got, tone)
	}

	// A flash cookie is only a key and a public id: one naming no session,
	// a look-alike id, or words of its own shows the plain message.
	for _, forged := range []string{
		"session_expired.not-an-id", "session_expired." + strings.Repeat("a", 26), "session_expired.%s",
		"ended_by_admin." + strings.Repeat("0", 26), "ended_by_admin.<b>hi</b>",
	} {
		key, _, _ := strings.Cut(forged, ".")
		want := map[string]string{
			"session_expired": "Your session has expired. Please sign in again.",
			"ended_by_admin":  "An administrator ended your session. Please sign in again.",
		}[key]
		c := env.Client(t)
		c.SetCookie("gatehouse_flash", forged)
		if got := c.Get("/signin").Doc(t).Find(`[data-testid="flash"]`).Text(); got != want {
			t.Errorf("flash cookie %q shows %q, want %q", forged, got, want)
		}
	}
}
