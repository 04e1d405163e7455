package handlers_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// Friendly words of the error pages (errors.go, routes.go).
const (
	msgFormExpired = "This form has expired or was sent from another site. Go back, reload the page and try again."
	msgCrossSite   = "This form was sent from another site, so it was refused. Use the form on this site instead."
	msgTooLarge    = "What you sent is too large."
	msgNotFound    = "There is nothing here. It may have been removed, or the link may be wrong."
	msgNotAllowed  = "That page cannot be used this way."
)

var serverErrorLine = regexp.MustCompile(`status=5\d\d`)

// newEnv starts an app for t and, once its server has shut down (so every
// request has been logged), fails t if any request got a 5xx answer.
func newEnv(t *testing.T) *apptest.Env {
	t.Helper()
	var env *apptest.Env
	// Registered before apptest.New, so it runs after the server has closed.
	t.Cleanup(func() {
		if env == nil {
			return
		}
		if m := serverErrorLine.FindAllString(env.Logs.String(), -1); len(m) > 0 {
			t.Errorf("the app answered with a server error: %v", m)
		}
	})
	env = apptest.New(t)
	return env
}

func inputValue(doc *goquery.Document, name string) string {
	v, _ := doc.Find(`input[name="` + name + `"]`).First().Attr("value")
	return v
}

// fieldErrors returns the field errors the page shows, by field name.
func fieldErrors(doc *goquery.Document) map[string]string {
	errs := map[string]string{}
	doc.Find(`[data-testid$="-error"]`).Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("data-testid")
		if id == "signin-error" {
			return
		}
		errs[strings.TrimSuffix(id, "-error")] = s.Text()
	})
	return errs
}

// checkOnlyFieldError fails t unless the page shows an error for field, and
// only for field, right after that field's input.
func checkOnlyFieldError(t *testing.T, doc *goquery.Document, field string) {
	t.Helper()
	errs := fieldErrors(doc)
	if errs[field] == "" {
		t.Errorf("no %s-error shown; errors: %v", field, errs)
	}
	for f, msg := range errs {
		if f != field {
			t.Errorf("unexpected %s-error %q", f, msg)
		}
	}
	el := doc.Find(`[data-testid="` + field + `-error"]`)
	if name, _ := el.PrevAllFiltered("input").First().Attr("name"); el.Length() == 1 && name != field {
		t.Errorf("%s-error follows the %q input, not its own", field, name)
	}
}

func userCount(t *testing.T, env *apptest.Env) int64 {
	t.Helper()
	var n int64
	if err := env.App.DB.Model(&models.User{}).Count(&n).Error; err != nil {
		t.Fatalf("counting users: %v", err)
	}
	return n
}

func mustUser(t *testing.T, env *apptest.Env, email string) *models.User {
	t.Helper()
	u, err := env.App.Users.ByEmail(context.Background(), email)
	if err != nil {
		t.Fatalf("user %s: %v", email, err)
	}
	return u
}

// setsSession reports whether res hands the browser a session cookie.
func setsSession(res *apptest.Response) bool {
	for _, ck := range res.Cookies() {
		if ck.Name == "gatehouse_session" && ck.Value != "" && ck.MaxAge >= 0 {
			return true
		}
	}
	return false
}

// clearsSession reports whether res tells the browser to delete its session
// cookie.
func clearsSession(res *apptest.Response) bool {
	for _, ck := range res.Cookies() {
		if ck.Name != "gatehouse_session" {
			continue
		}
		// net/http reads Max-Age=0 (and negative) as MaxAge -1.
		if ck.MaxAge < 0 || (!ck.Expires.IsZero() && ck.Expires.Before(time.Now())) {
			return true
		}
	}
	return false
}

func errorMessage(t *testing.T, res *apptest.Response) string {
	t.Helper()
	return res.Doc(t).Find(`[data-testid="error-message"]`).Text()
}

func TestSignUpRejectsBadInput(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")

	longEmail := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com" // 255 bytes
	tests := []struct {
		name, field string
		form        url.Values
	}{
		{name: "email without at sign", field: "email",
			form: url.Values{"name": {"Grace"}, "email": {"no-at-sign"}, "password": {"cobol forever"}}},
		{name: "email without dot in domain", field: "email",
			form: url.Values{"name": {"Grace"}, "email": {"a@b"}, "password": {"cobol forever"}}},
		{name: "email with markup", field: "email",
			form: url.Values{"name": {"Grace"}, "email": {"<script>@x.com"}, "password": {"cobol forever"}}},
		{name: "email with header injection", field: "email",
			form: url.Values{"name": {"Grace"}, "email": {"a@example.com\r\nBcc: x@y.z"}, "password": {"cobol forever"}}},
		{name: "email over 254 characters", field: "email",
			form: url.Values{"name": {"Grace"}, "email": {longEmail}, "password": {"cobol forever"}}},
		{name: "password under 8 characters", field: "password",
			form: url.Values{"name": {"Grace"}, "email": {"grace@example.com"}, "password": {"1234567"}}},
		{name: "password over 256 characters", field: "password",
			form: url.Values{"name": {"Grace"}, "email": {"grace@example.com"}, "password": {strings.Repeat("p", 257)}}},
		{name: "empty name", field: "name",
			form: url.Values{"name": {""}, "email": {"grace@example.com"}, "password": {"cobol forever"}}},
		{name: "blank name", field: "name",
			form: url.Values{"name": {"   "}, "email": {"grace@example.com"}, "password": {"cobol forever"}}},
		{name: "name over 100 characters", field: "name",
			form: url.Values{"name": {strings.Repeat("n", 101)}, "email": {"grace@example.com"}, "password": {"cobol forever"}}},
		{name: "email taken in another case", field: "email",
			form: url.Values{"name": {"Imposter"}, "email": {"ADA@example.com"}, "password": {"cobol forever"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := userCount(t, env)
			c := env.Client(t)
			res := c.Post("/signup", tt.form)
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422\n%s", res.StatusCode, res.Body)
			}
			doc := res.Doc(t)
			checkOnlyFieldError(t, doc, tt.field)
			// What the user typed stays in the form (HTML reads CR LF in an
			// attribute as LF); the password is never echoed.
			wantName := strings.TrimSpace(tt.form.Get("name"))
			wantEmail := strings.ReplaceAll(tt.form.Get("email"), "\r\n", "\n")
			if got := inputValue(doc, "name"); got != wantName {
				t.Errorf("name field = %q, want %q", got, wantName)
			}
			if got := inputValue(doc, "email"); got != wantEmail {
				t.Errorf("email field = %q, want %q", got, wantEmail)
			}
			if got := inputValue(doc, "password"); got != "" {
				t.Errorf("the form echoes the password: %q", got)
			}
			if after := userCount(t, env); after != before {
				t.Errorf("users: %d before, %d after", before, after)
			}
			if setsSession(res) || c.SessionToken() != "" {
				t.Error("a rejected sign-up set a session cookie")
			}
		})
	}

	var n int64
	if err := env.App.DB.Model(&models.User{}).Where("lower(email) = ?", "ada@example.com").Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d users with ada@example.com in any case, want 1", n)
	}
	if u := mustUser(t, env, "ada@example.com"); u.Name != "Ada" || u.Email != "ada@example.com" {
		t.Errorf("the existing account changed: %q <%s>", u.Name, u.Email)
	}
}

func TestMarkupInNamesAndUserAgentsIsEscaped(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	const name = `<script>alert(1)</script><b>x</b>`
	const ua = `<img src=x onerror=alert(1)>`
	c := env.Client(t)
	c.UserAgent = ua
	c.SignUp(name, "mallory@example.com", "correct horse battery")

	if u := mustUser(t, env, "mallory@example.com"); u.Name != name {
		t.Errorf("stored name %q, want it verbatim", u.Name)
	}
	checkRaw := func(t *testing.T, res *apptest.Response) {
		t.Helper()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		for _, raw := range []string{"<script>alert(1)", "<b>x</b>", "<img src=x"} {
			if strings.Contains(res.Body, raw) {
				t.Errorf("page contains raw markup %q", raw)
			}
		}
		if got := res.Doc(t).Find(`[data-testid="signed-in-as"]`).Text(); got != name {
			t.Errorf("navigation shows %q, want the name as text", got)
		}
	}

	t.Run("profile", func(t *testing.T) {
		res := c.Get("/account")
		checkRaw(t, res)
		if !strings.Contains(res.Body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Error("the name is not shown escaped")
		}
		if got := inputValue(res.Doc(t), "name"); got != name {
			t.Errorf("name field = %q, want %q", got, name)
		}
	})
	t.Run("devices", func(t *testing.T) {
		res := c.Get("/account/sessions")
		checkRaw(t, res)
		if !strings.Contains(res.Body, "&lt;img src=x") {
			t.Error("the user agent's markup is not shown escaped")
		}
		// The page names the browser parsed from the user agent, which here
		// is the markup up to its first parenthesis.
		device := res.Doc(t).Find(`tr[data-current="true"] .device`).Text()
		if !strings.HasPrefix(device, "<img src=x onerror=alert") {
			t.Errorf("device shows %q, want the user agent's text", device)
		}
	})
}

func TestSQLLookingInputIsJustText(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")

	t.Run("sign-in email", func(t *testing.T) {
		c := env.Client(t)
		res := c.Post("/signin", url.Values{"email": {"' OR '1'='1"}, "password": {"' OR '1'='1"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("status %d, want 422", res.StatusCode)
		}
		if got := res.Doc(t).Find(`[data-testid="signin-error"]`).Text(); got != "Incorrect email or password." {
			t.Errorf("error %q", got)
		}
		if setsSession(res) || c.SessionToken() != "" {
			t.Error("the injection signed someone in")
		}
	})
	t.Run("sign-up name", func(t *testing.T) {
		const name = "x'); DROP TABLE users;--"
		c := env.Client(t)
		c.SignUp(name, "bobby@example.com", "little bobby tables")
		if u := mustUser(t, env, "bobby@example.com"); u.Name != name {
			t.Errorf("stored name %q, want %q", u.Name, name)
		}
		if got := c.Get("/account").Doc(t).Find(`[data-testid="signed-in-as"]`).Text(); got != name {
			t.Errorf("navigation shows %q", got)
		}
	})

	var table *string
	if err := env.App.DB.Raw(`SELECT to_regclass('public.users')::text`).Scan(&table).Error; err != nil {
		t.Fatal(err)
	}
	if table == nil || *table != "users" {
		t.Fatalf("the users table is gone: %v", table)
	}
	if n := userCount(t, env); n != 2 {
		t.Errorf("%d users, want 2", n)
	}
}

func TestCSRFProtectsForms(t *testing.T) {
	t.Parallel()
	type target struct {
		path string
		// setup prepares a client and returns the form it posts.
		setup func(t *testing.T, env *apptest.Env, c *apptest.Client) url.Values
		// changed reports whether the post took effect.
		changed func(t *testing.T, env *apptest.Env) bool
	}
	targets := map[string]target{
		"sign-up": {
			path: "/signup",
			setup: func(t *testing.T, env *apptest.Env, c *apptest.Client) url.Values {
				c.CSRFToken() // the browser has loaded a page, and has a token
				return url.Values{"name": {"Eve"}, "email": {"eve@example.com"}, "password": {"eavesdropping"}}
			},
			changed: func(t *testing.T, env *apptest.Env) bool {
				_, err := env.App.Users.ByEmail(context.Background(), "eve@example.com")
				if err != nil && !errors.Is(err, models.ErrNotFound) {
					t.Fatal(err)
				}
				return err == nil
			},
		},
		"profile": {
			path: "/account",
			setup: func(t *testing.T, env *apptest.Env, c *apptest.Client) url.Values {
				c.SignUp("Ada", "ada@example.com", "analytical engine")
				return url.Values{"name": {"Hijacked"}, "email": {"eve@example.com"}}
			},
			changed: func(t *testing.T, env *apptest.Env) bool {
				u, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
				if errors.Is(err, models.ErrNotFound) {
					return true
				} else if err != nil {
					t.Fatal(err)
				}
				return u.Name != "Ada"
			},
		},
	}
	type attempt struct {
		name      string
		send      func(c *apptest.Client, path string, form url.Values) *apptest.Response
		wantOK    bool
		wantWords []string // the error pages it may show
	}
	attempts := []attempt{
		{name: "no token", wantWords: []string{msgFormExpired},
			send: func(c *apptest.Client, path string, form url.Values) *apptest.Response {
				return c.PostRaw(path, form.Encode())
			}},
		{name: "forged token", wantWords: []string{msgFormExpired},
			send: func(c *apptest.Client, path string, form url.Values) *apptest.Response {
				form.Set("_csrf", "forged-token-forged-token-forged!")
				return c.PostRaw(path, form.Encode())
			}},
		{name: "cross-site with the right token", wantWords: []string{msgCrossSite},
			send: func(c *apptest.Client, path string, form url.Values) *apptest.Response {
				form.Set("_csrf", c.CSRFToken())
				c.Header.Set("Sec-Fetch-Site", "cross-site")
				return c.PostRaw(path, form.Encode())
			}},
		{name: "same-origin without token", wantOK: true,
			send: func(c *apptest.Client, path string, form url.Values) *apptest.Response {
				c.Header.Set("Sec-Fetch-Site", "same-origin")
				return c.PostRaw(path, form.Encode())
			}},
	}
	for tname, tg := range targets {
		for _, a := range attempts {
			t.Run(tname+"/"+a.name, func(t *testing.T) {
				env := newEnv(t)
				c := env.Client(t)
				form := tg.setup(t, env, c)
				res := a.send(c, tg.path, form)
				if a.wantOK {
					if res.StatusCode != http.StatusSeeOther || res.Location() != "/account" {
						t.Fatalf("status %d to %q, want 303 to /account\n%s", res.StatusCode, res.Location(), res.Body)
					}
					if !tg.changed(t, env) {
						t.Error("the accepted post changed nothing")
					}
					return
				}
				if res.StatusCode != http.StatusForbidden {
					t.Fatalf("status %d, want 403\n%s", res.StatusCode, res.Body)
				}
				if tg.changed(t, env) {
					t.Error("the refused post changed the database")
				}
				if setsSession(res) && tg.path == "/signup" {
					t.Error("the refused sign-up set a session cookie")
				}
				msg := errorMessage(t, res)
				if !containsString(a.wantWords, msg) {
					t.Errorf("error message %q, want one of %q", msg, a.wantWords)
				}
				lower := strings.ToLower(res.Body)
				for _, internal := range []string{"csrf token", "invalid csrf", "missing csrf", "blocked by csrf", "form parameter"} {
					if strings.Contains(lower, internal) {
						t.Errorf("the 403 page shows internal text %q", internal)
					}
				}
			})
		}
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// unsizedReader hides its length, so the request goes out chunked with no
// Content-Length.
type unsizedReader struct{ r io.Reader }

func (u unsizedReader) Read(p []byte) (int, error) { return u.r.Read(p) }

func TestOversizedBodyIsRefused(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")

	tests := map[string]func(c *apptest.Client, body string) *apptest.Response{
		"with content length": func(c *apptest.Client, body string) *apptest.Response {
			return c.PostRaw("/signin", body)
		},
		"chunked": func(c *apptest.Client, body string) *apptest.Response {
			req, err := http.NewRequest(http.MethodPost, c.Base+"/signin", unsizedReader{strings.NewReader(body)})
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return c.Do(req)
		},
	}
	for name, send := range tests {
		t.Run(name, func(t *testing.T) {
			c := env.Client(t)
			form := url.Values{"_csrf": {c.CSRFToken()}, "email": {"ada@example.com"}, "password": {"analytical engine"}}
			body := form.Encode() + "&pad=" + strings.Repeat("a", 65*1024)
			res := send(c, body)
			if res.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413", res.StatusCode)
			}
			if msg := errorMessage(t, res); msg != msgTooLarge {
				t.Errorf("error message %q, want %q", msg, msgTooLarge)
			}
			if setsSession(res) || c.SessionToken() != "" {
				t.Error("an oversized sign-in signed in")
			}
			// The app is fine afterwards.
			if res := c.Get("/signin"); res.StatusCode != http.StatusOK {
				t.Errorf("GET /signin afterwards: %d", res.StatusCode)
			}
			c.SignIn("ada@example.com", "analytical engine")
			if res := c.Get("/account"); res.StatusCode != http.StatusOK {
				t.Errorf("GET /account afterwards: %d", res.StatusCode)
			}
		})
	}
}

func TestTamperedSessionCookieSendsToSignIn(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	values := map[string]string{
		"short":              "abc",
		"long":               strings.Repeat("A", 500),
		"path":               "../../etc/passwd",
		"encoded nul":        "abc%00def",
		"unknown, 43 chars":  strings.Repeat("A", 43),
		"unknown, base64url": "Zm9vYmFyLWJhei1xdXV4LWZvb2Jhci1iYXotcXV1eC0",
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			c := env.Client(t)
			c.SetCookie("gatehouse_session", v)
			res := c.Get("/account")
			if res.StatusCode != http.StatusSeeOther || res.Location() != "/signin?next=%2Faccount" {
				t.Fatalf("status %d to %q, want 303 to /signin?next=%%2Faccount", res.StatusCode, res.Location())
			}
			if !clearsSession(res) {
				t.Errorf("the response does not clear the cookie; Set-Cookie: %q", res.Header.Values("Set-Cookie"))
			}
			if c.SessionToken() != "" {
				t.Errorf("the browser still holds session cookie %q", c.SessionToken())
			}
			// The sign-in page that follows works.
			if res := c.Get(res.Location()); res.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %d", res.Request.URL.RequestURI(), res.StatusCode)
			}
		})
	}
}

// sessionID reads the id of the session c is using from its Devices page.
func sessionID(t *testing.T, c *apptest.Client) string {
	t.Helper()
	res := c.Get("/account/sessions")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /account/sessions: %d", res.StatusCode)
	}
	id, ok := res.Doc(t).Find(`tr[data-session-id][data-current="true"]`).Attr("data-session-id")
	if !ok || id == "" {
		t.Fatal("the Devices page shows no current session")
	}
	return id
}

func TestRevokeRejectsBadAndForeignSessionIDs(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ada := env.Client(t)
	ada.SignUp("Ada", "ada@example.com", "analytical engine")
	bob := env.Client(t)
	bob.SignUp("Bob", "bob@example.com", "bobs password")
	bobID := sessionID(t, bob)

	ids := map[string]string{
		"not an id":           "not-an-id",
		"quote":               "abcdefghijklmnopqrstuvwx'z",
		"encoded slash":       "abcdefghijklm%2Fopqrstuvwxy",
		"unknown":             strings.Repeat("a", 26),
		"unknown, random":     "q7m2kz5xw3hb4nd6ftyr2ve7ja",
		"upper-case of Bob's": strings.ToUpper(bobID),
		"Bob's session":       bobID,
	}
	for name, id := range ids {
		t.Run(name, func(t *testing.T) {
			res := ada.Post("/account/sessions/"+id+"/revoke", nil)
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("status %d, want 404", res.StatusCode)
			}
			if msg := errorMessage(t, res); msg != msgNotFound {
				t.Errorf("error message %q", msg)
			}
			if res := bob.Get("/account"); res.StatusCode != http.StatusOK {
				t.Fatalf("Bob's session stopped working: GET /account %d", res.StatusCode)
			}
			if res := ada.Get("/account"); res.StatusCode != http.StatusOK {
				t.Fatalf("Ada's session stopped working: GET /account %d", res.StatusCode)
			}
		})
	}
	if err := env.App.Sessions.WaitEnds(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ended int64
	if err := env.App.DB.Table("sessions").Where("public_id = ? AND ended_at IS NOT NULL", bobID).Count(&ended).Error; err != nil {
		t.Fatal(err)
	}
	if ended != 0 {
		t.Error("Bob's session is recorded as ended")
	}
	if got := sessionID(t, bob); got != bobID {
		t.Errorf("Bob's Devices page shows session %q, want %q", got, bobID)
	}
}

func TestProfileEditRejectsBadInput(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.Client(t).SignUp("Bob", "bob@example.com", "bobs password")
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")

	tests := []struct {
		name, field string
		form        url.Values
	}{
		{"invalid email", "email", url.Values{"name": {"Ada Byron"}, "email": {"not an email"}}},
		{"email without dot in domain", "email", url.Values{"name": {"Ada Byron"}, "email": {"ada@localhost"}}},
		{"empty name", "name", url.Values{"name": {""}, "email": {"ada.byron@example.com"}}},
		{"name over 100 characters", "name", url.Values{"name": {strings.Repeat("n", 101)}, "email": {"ada.byron@example.com"}}},
		{"another user's email", "email", url.Values{"name": {"Ada Byron"}, "email": {"bob@example.com"}}},
		{"another user's email in another case", "email", url.Values{"name": {"Ada Byron"}, "email": {"BOB@Example.COM"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.Post("/account", tt.form)
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", res.StatusCode)
			}
			doc := res.Doc(t)
			checkOnlyFieldError(t, doc, tt.field)
			if got := inputValue(doc, "name"); got != tt.form.Get("name") {
				t.Errorf("name field = %q, want %q", got, tt.form.Get("name"))
			}
			if got := inputValue(doc, "email"); got != tt.form.Get("email") {
				t.Errorf("email field = %q, want %q", got, tt.form.Get("email"))
			}
			if u := mustUser(t, env, "ada@example.com"); u.Name != "Ada" || u.Email != "ada@example.com" {
				t.Errorf("Ada is now %q <%s>", u.Name, u.Email)
			}
			if u := mustUser(t, env, "bob@example.com"); u.Name != "Bob" || u.Email != "bob@example.com" {
				t.Errorf("Bob is now %q <%s>", u.Name, u.Email)
			}
			// The session's copy of the profile is unchanged too.
			page := c.Get("/account").Doc(t)
			if got := page.Find(`[data-testid="signed-in-as"]`).Text(); got != "Ada" {
				t.Errorf("navigation shows %q, want Ada", got)
			}
			if got := inputValue(page, "email"); got != "ada@example.com" {
				t.Errorf("profile email now %q", got)
			}
		})
	}
}

func TestPasswordChangeRejectsBadInput(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	other := env.Client(t)
	other.SignIn("ada@example.com", "analytical engine")

	tests := []struct {
		name, field string
		form        url.Values
	}{
		{"wrong current password", "current_password",
			url.Values{"current_password": {"difference engine"}, "new_password": {"a brand new passphrase"}, "revoke_others": {"1"}}},
		{"new password too short", "new_password",
			url.Values{"current_password": {"analytical engine"}, "new_password": {"short"}, "revoke_others": {"1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.Post("/account/password", tt.form)
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", res.StatusCode)
			}
			doc := res.Doc(t)
			checkOnlyFieldError(t, doc, tt.field)
			for _, f := range []string{"current_password", "new_password"} {
				if got := inputValue(doc, f); got != "" {
					t.Errorf("the form echoes %s: %q", f, got)
				}
			}
			// The old password still works, the new one does not.
			c2 := env.Client(t)
			c2.SignIn("ada@example.com", "analytical engine")
			if res := env.Client(t).Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {tt.form.Get("new_password")}}); res.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("signing in with the refused new password: %d, want 422", res.StatusCode)
			}
			// Nobody was signed out.
			for who, cl := range map[string]*apptest.Client{"this device": c, "the other device": other} {
				if res := cl.Get("/account"); res.StatusCode != http.StatusOK {
					t.Errorf("%s was signed out: GET /account %d", who, res.StatusCode)
				}
			}
		})
	}
}

func TestSignInFollowsOnlySameSiteNext(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")

	nexts := map[string]string{
		"//evil.example":        "/account",
		`/\evil.example`:        "/account",
		"https://evil.example/": "/account",
		"/%2F%2Fevil.example":   "/account",
		"javascript:alert(1)":   "/account",
		"%2F%2Fevil.example":    "/account",
		"/%5Cevil.example":      "/account",
		"/account/sessions":     "/account/sessions",
	}
	for next, want := range nexts {
		t.Run(next, func(t *testing.T) {
			c := env.Client(t)
			// The sign-in page does not carry an unsafe next into its form.
			form := c.Get("/signin?next=" + url.QueryEscape(next))
			if form.StatusCode != http.StatusOK {
				t.Fatalf("GET /signin: %d", form.StatusCode)
			}
			hidden, has := form.Doc(t).Find(`input[name="next"]`).Attr("value")
			if want == "/account" && has {
				t.Errorf("the form carries next=%q", hidden)
			}
			if want != "/account" && hidden != want {
				t.Errorf("the form carries next=%q, want %q", hidden, want)
			}

			res := c.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}, "next": {next}})
			if res.StatusCode != http.StatusSeeOther || res.Location() != want {
				t.Errorf("sign in: %d to %q, want 303 to %q", res.StatusCode, res.Location(), want)
			}
		})
	}
}

func TestGetOnPostOnlyRouteIs405(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	anon := env.Client(t)
	signedIn := env.Client(t)
	signedIn.SignUp("Ada", "ada@example.com", "analytical engine")

	tests := []struct {
		who  string
		c    *apptest.Client
		path string
	}{
		{"anonymous", anon, "/signout"},
		{"signed in", signedIn, "/signout"},
		// (GET /account/password leads back to the profile page, where
		// the form is: TestFailedFormsOpenWithAnErrorSummary.)
	}
	for _, tt := range tests {
		t.Run(tt.who+" GET "+tt.path, func(t *testing.T) {
			res := tt.c.Get(tt.path)
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("status %d, want 405", res.StatusCode)
			}
			if allow := res.Header.Get("Allow"); !strings.Contains(allow, http.MethodPost) {
				t.Errorf("Allow: %q, want it to list POST", allow)
			}
			if msg := errorMessage(t, res); msg != msgNotAllowed {
				t.Errorf("error message %q, want %q", msg, msgNotAllowed)
			}
		})
	}
	// None of those GETs signed out or revoked anything.
	if res := signedIn.Get("/account"); res.StatusCode != http.StatusOK {
		t.Errorf("GET /account afterwards: %d", res.StatusCode)
	}
}
