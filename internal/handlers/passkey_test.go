package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// registerPasskey registers a soft passkey for the signed-in (recently
// authenticated) client c.
func registerPasskey(t testing.TB, env *apptest.Env, c *apptest.Client, name string) *softKey {
	t.Helper()
	k := newSoftKey(t, env)
	o := begin(t, c, "/account/passkeys/register/begin")
	res := postJSON(c, "/account/passkeys/register/finish?name="+url.QueryEscape(name), k.create(o))
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, `"redirect":"/account/passkeys"`) {
		t.Fatalf("register: %d %s", res.StatusCode, res.Body)
	}
	return k
}

// passkeyProblem is the message of a refused ceremony.
func passkeyProblem(t testing.TB, res *apptest.Response) string {
	t.Helper()
	var out struct{ Error string }
	if err := json.Unmarshal([]byte(res.Body), &out); err != nil {
		t.Fatalf("answer is not JSON: %d %s", res.StatusCode, res.Body)
	}
	return out.Error
}

func TestPasskeyRegisterListAndPasswordlessSignIn(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := signedInUser(t, env, "pk@example.com")
	k := registerPasskey(t, env, c, "MacBook Touch ID")
	list := c.Get("/account/passkeys").Doc(t)
	if v, _ := list.Find(`[data-testid="passkey-name"]`).Attr("value"); v != "MacBook Touch ID" {
		t.Fatalf("list shows %q", v)
	}

	other := env.Client(t)
	res := postJSON(other, "/signin/passkey/finish", k.get(begin(t, other, "/signin/passkey/begin")))
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, `"redirect":"/account"`) || !setsSession(res) {
		t.Fatalf("passwordless sign-in: %d %s", res.StatusCode, res.Body)
	}
	if !signedIn(other) {
		t.Fatal("not signed in")
	}
	if m := authMethods(t, env, u.ID); m[len(m)-1] != "passkey" {
		t.Fatalf("auth methods %v", m)
	}
	// A passkey sign-in from a browser the account had not seen is one
	// the owner hears of, as a password one is.
	if n := alertsQueued(t, env, "pk@example.com"); n != 1 {
		t.Errorf("passkey sign-in from a new browser: %d new-device alerts, want 1", n)
	}
	if other.Get("/account/passkeys").Doc(t).Find(`[data-testid="passkey-last-used"]`).Length() != 1 {
		t.Error("last use not shown")
	}
}

func TestPasskeyRegistrationNeedsRecentAuthAndAName(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, _ := signedInUser(t, env, "name@example.com")
	k := newSoftKey(t, env)
	for _, name := range []string{"", "   ", strings.Repeat("x", 61), "bad\u202ename"} {
		o := begin(t, c, "/account/passkeys/register/begin")
		res := postJSON(c, "/account/passkeys/register/finish?name="+url.QueryEscape(name), k.create(o))
		if res.StatusCode != http.StatusUnprocessableEntity || passkeyProblem(t, res) == "" {
			t.Errorf("name %q: %d", name, res.StatusCode)
		}
	}
	env.Clock.Advance(11 * time.Minute)
	if res := c.Get("/account/passkeys/new"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Location(), "/account/confirm") {
		t.Errorf("add page without recent auth: %d %q", res.StatusCode, res.Location())
	}
	if res := postJSON(c, "/account/passkeys/register/begin", nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("begin without recent auth: %d", res.StatusCode)
	}
	var n int64
	env.App.DB.Model(&models.Passkey{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d passkeys stored", n)
	}
}

// Each way a passkey sign-in can be forged is refused with a message,
// audited, and counted by the throttle.
func TestPasskeyForgeriesAreRefused(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := signedInUser(t, env, "victim@example.com")
	k := registerPasskey(t, env, c, "Phone")
	attempt := func(mutate func(k *softKey, body map[string]any)) *apptest.Response {
		b := env.Client(t)
		body := k.get(begin(t, b, "/signin/passkey/begin"))
		if mutate != nil {
			mutate(k, body)
		}
		return postJSON(b, "/signin/passkey/finish", body)
	}
	resp := func(body map[string]any) map[string]any { return body["response"].(map[string]any) }
	cases := []struct {
		name   string
		mutate func(k *softKey, body map[string]any)
		want   string
	}{
		{"wrong origin", func(k *softKey, body map[string]any) {
			cd := strings.Replace(string(mustB64(t, resp(body)["clientDataJSON"])), k.origin, "http://evil.example", 1)
			resp(body)["clientDataJSON"] = b64.EncodeToString([]byte(cd))
		}, "could not be verified"},
		{"bad signature", func(k *softKey, body map[string]any) {
			sig := mustB64(t, resp(body)["signature"])
			sig[len(sig)-1] ^= 1
			resp(body)["signature"] = b64.EncodeToString(sig)
		}, "could not be verified"},
		{"another user's handle", func(k *softKey, body map[string]any) {
			resp(body)["userHandle"] = b64.EncodeToString([]byte("someone else"))
		}, "could not be verified"},
		{"unknown credential", func(k *softKey, body map[string]any) {
			body["id"], body["rawId"] = b64.EncodeToString([]byte("nobody")), b64.EncodeToString([]byte("nobody"))
		}, "not registered"},
	}
	for _, tc := range cases {
		res := attempt(tc.mutate)
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(passkeyProblem(t, res), tc.want) || setsSession(res) {
			t.Errorf("%s: %d %q", tc.name, res.StatusCode, res.Body)
		}
	}
	// A cloned authenticator: the counter goes backwards.
	if res := attempt(nil); res.StatusCode != http.StatusOK {
		t.Fatalf("honest sign-in: %d %s", res.StatusCode, res.Body)
	}
	k.count -= 2
	if res := attempt(nil); res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(passkeyProblem(t, res), "counter went backwards") {
		t.Errorf("counter backwards: %d %s", res.StatusCode, res.Body)
	}
	// A finished ceremony cannot be answered again.
	b := env.Client(t)
	k.count += 10
	body := k.get(begin(t, b, "/signin/passkey/begin"))
	if res := postJSON(b, "/signin/passkey/finish", body); res.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %d", res.StatusCode)
	}
	b.SetCookie("gatehouse_webauthn", "x")
	if res := postJSON(b, "/signin/passkey/finish", body); res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(passkeyProblem(t, res), "expired") {
		t.Errorf("replayed answer: %d %s", res.StatusCode, res.Body)
	}
	waitWritten(t, env)
	var refused int64
	env.App.DB.Model(&models.AuditEvent{}).Where("kind = ?", models.AuditPasskeyRefused).Count(&refused)
	if refused != int64(len(cases))+2 {
		t.Errorf("%d passkey_refused events, want %d", refused, len(cases)+2)
	}
	_ = u
}

func mustB64(t testing.TB, v any) []byte {
	t.Helper()
	b, err := b64.DecodeString(v.(string))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Refusals count on the client address's throttle.
func TestPasskeyFailuresAreThrottled(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, _ := signedInUser(t, env, "throttle@example.com")
	k := registerPasskey(t, env, c, "Key")
	b := env.Client(t)
	var last *apptest.Response
	for i := 0; i <= throttle.IPFreeFailures; i++ {
		body := k.get(begin(t, b, "/signin/passkey/begin"))
		resp := body["response"].(map[string]any)
		resp["signature"] = b64.EncodeToString([]byte("not a signature"))
		last = postJSON(b, "/signin/passkey/finish", body)
	}
	if last.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after %d bad signatures: %d", throttle.IPFreeFailures+1, last.StatusCode)
	}
}

// A passkey as the second step after the password, and another user's
// passkey refused there.
func TestPasskeyAsSecondFactor(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := signedInUser(t, env, "both@example.com")
	enableTOTP(t, env, c)
	k := registerPasskey(t, env, c, "Laptop")
	mc, _ := signedInUser(t, env, "mallory@example.com")
	mk := registerPasskey(t, env, mc, "Mallory's")

	p := pendingSignIn(t, env, u.Email)
	if p.Get("/signin/2fa").Doc(t).Find("[data-passkey-signin]").Length() != 1 {
		t.Fatal("the code step offers no passkey")
	}
	// Mallory's passkey for Ada's pending sign-in.
	mk.handle = k.handle
	res := postJSON(p, "/signin/2fa/passkey/finish", mk.get(begin(t, p, "/signin/2fa/passkey/begin")))
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(passkeyProblem(t, res), "another account") || signedIn(p) {
		t.Fatalf("another user's passkey: %d %s", res.StatusCode, res.Body)
	}
	res = postJSON(p, "/signin/2fa/passkey/finish", k.get(begin(t, p, "/signin/2fa/passkey/begin")))
	if res.StatusCode != http.StatusOK || !signedIn(p) {
		t.Fatalf("own passkey: %d %s", res.StatusCode, res.Body)
	}
	if m := authMethods(t, env, u.ID); m[len(m)-1] != "password+passkey" {
		t.Fatalf("auth methods %v", m)
	}
	// Without a pending sign-in there is nothing to begin.
	if res := postJSON(env.Client(t), "/signin/2fa/passkey/begin", nil); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("begin without a pending sign-in: %d", res.StatusCode)
	}
}

func TestPasskeyRemoveNeedsRecentAuth(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := signedInUser(t, env, "remove@example.com")
	k := registerPasskey(t, env, c, "Old phone")
	var key models.Passkey
	env.App.DB.Where("user_id = ?", u.ID).Take(&key)
	path := "/account/passkeys/" + itoa(key.ID) + "/remove"
	env.Clock.Advance(11 * time.Minute)
	if res := c.Post(path, nil); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Location(), "/account/confirm") {
		t.Fatalf("remove without recent auth: %d %q", res.StatusCode, res.Location())
	}
	// A passkey is this user's second factor: the password alone does not
	// confirm, the passkey does.
	if res := c.Post("/account/confirm", url.Values{"password": {twoFAPassword}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("password-only confirm of a passkey user: %d", res.StatusCode)
	}
	if c.Get("/account/confirm?next="+url.QueryEscape(path)).Doc(t).Find(`input[name="password"]`).Length() != 0 {
		t.Error("the confirm page asks a passkey-only user for a password")
	}
	res := postJSON(c, "/account/confirm/passkey/finish?next="+url.QueryEscape(path), k.get(begin(t, c, "/account/confirm/passkey/begin")))
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, `"redirect":"`+path+`"`) {
		t.Fatalf("passkey confirm: %d %s", res.StatusCode, res.Body)
	}
	if res := c.Get(path); res.StatusCode != http.StatusOK || !strings.Contains(res.Body, "Old phone") {
		t.Fatalf("confirmation page: %d", res.StatusCode)
	}
	// Another user cannot remove it.
	mc, _ := signedInUser(t, env, "other@example.com")
	if res := mc.Post(path, nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("another user's remove: %d", res.StatusCode)
	}
	if res := c.Post(path, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d", res.StatusCode)
	}
	env.Mail.WaitForSubject(t, u.Email, "A passkey was removed from your account", 1)
	b := env.Client(t)
	res = postJSON(b, "/signin/passkey/finish", k.get(begin(t, b, "/signin/passkey/begin")))
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("a removed passkey signed in: %d", res.StatusCode)
	}
}

// A passkey is a second factor: with one, the password alone goes to the
// second step, which offers the passkey and no code.
func TestPasskeyMakesThePasswordNotEnough(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c, u := signedInUser(t, env, "only-pk@example.com")
	k := registerPasskey(t, env, c, "Phone")
	p := pendingSignIn(t, env, u.Email)
	page := p.Get("/signin/2fa").Doc(t)
	if page.Find(`input[name="code"]`).Length() != 0 || page.Find("[data-passkey-signin]").Length() != 1 {
		t.Fatal("the second step of a passkey-only user should offer the passkey, and no code")
	}
	if res := sendCode(p, "123456"); res.StatusCode != http.StatusUnprocessableEntity || signedIn(p) {
		t.Fatalf("a code for a user without an app: %d", res.StatusCode)
	}
	res := postJSON(p, "/signin/2fa/passkey/finish", k.get(begin(t, p, "/signin/2fa/passkey/begin")))
	if res.StatusCode != http.StatusOK || !signedIn(p) {
		t.Fatalf("passkey: %d %s", res.StatusCode, res.Body)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Anonymous clients cannot pile up ceremonies: at most 60 a minute from
// one address.
func TestPasskeyCeremoniesPerAddressAreCapped(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.Client(t)
	for i := 0; i < 60; i++ {
		begin(t, c, "/signin/passkey/begin")
	}
	res := postJSON(c, "/signin/passkey/begin", nil)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || passkeyProblem(t, res) == "" {
		t.Fatalf("61st ceremony in a minute: %d %s", res.StatusCode, res.Body)
	}
	env.Clock.Advance(time.Minute)
	begin(t, c, "/signin/passkey/begin")
}
