package handlers_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// Malformed bytes: no request a client sends answers 500 (newEnv fails the
// test on any 5xx), and what is stored is valid UTF-8.

const msgNotText = "The request contains bytes that are not text. Reload the page and try again."

// checkNotText asserts res is the 400 page refusing bytes that are not text.
func checkNotText(t *testing.T, what string, res *apptest.Response) {
	t.Helper()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("%s: status %d, want 400\n%s", what, res.StatusCode, res.Body)
	}
	if got := errorMessage(t, res); got != msgNotText {
		t.Errorf("%s: message %q", what, got)
	}
}

// postMultipart submits fields to path as multipart/form-data.
func postMultipart(t *testing.T, c *apptest.Client, path string, fields map[string]string) *apptest.Response {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for name, value := range fields {
		if err := w.WriteField(name, value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.Base+path, &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	return c.Do(req)
}

// TestFormsRefuseBytesThatAreNotText sends NUL and invalid UTF-8 bytes in
// the forms that reach Postgres: each is refused with 400 before any
// handler runs, and nothing is created, signed in or changed.
func TestFormsRefuseBytesThatAreNotText(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.Client(t).SignUp("Sam", "sam@example.com", "sams password")
	for _, bad := range []string{"%00", "%FF", "%C3", "%ED%A0%80" /* a UTF-16 surrogate */} {
		t.Run(bad, func(t *testing.T) {
			c := env.Client(t)
			csrf := "&_csrf=" + url.QueryEscape(c.CSRFToken())
			before := userCount(t, env)

			res := c.PostRaw("/signin", "email=sam"+bad+"%40example.com&password=sams+password"+csrf)
			checkNotText(t, "sign-in email", res)
			res = c.PostRaw("/signin", "email=sam%40example.com&password=sams+password"+bad+csrf)
			checkNotText(t, "sign-in password", res)
			res = c.PostRaw("/signup", "name=Eve"+bad+"&email=eve%40example.com&password=eves+password"+csrf)
			checkNotText(t, "sign-up name", res)
			res = c.PostRaw("/signup", "name=Eve&email=eve"+bad+"%40example.com&password=eves+password"+csrf)
			checkNotText(t, "sign-up email", res)
			res = c.PostRaw("/signup?next=x"+bad, "name=Eve&email=eve%40example.com&password=eves+password"+csrf)
			checkNotText(t, "sign-up query", res)
			// Forms are URL-encoded; a multipart body, which would escape
			// the check, is refused whole.
			raw, _ := url.QueryUnescape(bad)
			res = postMultipart(t, c, "/signup", map[string]string{
				"name": "Eve", "email": "eve" + raw + "@example.com", "password": "eves password", "_csrf": c.CSRFToken(),
			})
			if res.StatusCode != http.StatusUnsupportedMediaType {
				t.Errorf("multipart sign-up: status %d, want 415", res.StatusCode)
			}
			if c.SessionToken() != "" || userCount(t, env) != before {
				t.Fatal("a refused request signed in or created an account")
			}

			c.SignIn("sam@example.com", "sams password")
			res = c.PostRaw("/account", "name=Sam"+bad+"&email=sam%40example.com"+csrf)
			checkNotText(t, "profile name", res)
			res = c.PostRaw("/account/password", "current_password=sams+password&new_password=new+sams+password"+bad+csrf)
			checkNotText(t, "new password", res)
			if u := mustUser(t, env, "sam@example.com"); u.Name != "Sam" {
				t.Errorf("the name changed to %q", u.Name)
			}
			env.Client(t).SignIn("sam@example.com", "sams password") // the password did not change
		})
	}
}

// TestAdminFiltersRefuseBytesThatAreNotText: query parameters get the same
// check as forms.
func TestAdminFiltersRefuseBytesThatAreNotText(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	admin, _ := signedInAdmin(t, env)
	for _, path := range []string{
		"/admin/users?q=%FF", "/admin/users?q=a%00b", "/admin/users?q=%C3",
		"/admin/sessions?email=%FF", "/admin/sessions?ip=%00",
		"/admin/audit?kind=%FF", "/admin/audit?user=1&kind=sign_in%C3",
		"/signin?next=%FF",
	} {
		checkNotText(t, path, admin.Get(path))
	}
}

// TestAdminFiltersCutWithinACharacterStillWork: a filter longer than its
// limit is cut there, never inside a character (which made it invalid
// UTF-8, and Postgres answered with an error, and the page with 500).
func TestAdminFiltersCutWithinACharacterStillWork(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	admin, _ := signedInAdmin(t, env)
	long := strings.Repeat("a", models.MaxEmailLength-1) + "é" // é's two bytes straddle the limit
	for _, tt := range []struct{ path, field string }{
		{"/admin/users?q=" + url.QueryEscape(long), "q"},
		{"/admin/sessions?email=" + url.QueryEscape(long), "email"},
	} {
		res := admin.Get(tt.path)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, want 200", tt.path[:20], res.StatusCode)
		}
		got := inputValue(res.Doc(t), tt.field)
		if got != strings.Repeat("a", models.MaxEmailLength-1) {
			t.Errorf("%s: filter shown as %d bytes %q…, want it cut before the é", tt.path[:20], len(got), got[:10])
		}
	}
}

// TestUserAgentThatIsNotUTF8 signs up and in from a browser whose
// User-Agent carries a Latin-1 byte: both work, and the session record and
// audit events keep the header as valid UTF-8 (the bad byte as U+FFFD).
func TestUserAgentThatIsNotUTF8(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	const ua, stored = "Mozilla/5.0 (X11; Linux x86_64; caf\xe9) Firefox/128.0", "Mozilla/5.0 (X11; Linux x86_64; caf\uFFFD) Firefox/128.0"
	c := env.Client(t)
	c.UserAgent = ua
	c.SignUp("Sam", "sam@example.com", "sams password")
	if res := c.Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("after sign-up: /account %d", res.StatusCode)
	}
	other := env.Client(t)
	other.UserAgent = ua
	other.SignIn("sam@example.com", "sams password")

	u := mustUser(t, env, "sam@example.com")
	var agents []string
	if err := env.App.DB.Model(&models.SessionRecord{}).Where("user_id = ?", u.ID).Pluck("user_agent", &agents).Error; err != nil {
		t.Fatal(err)
	}
	if len(agents) != 2 || agents[0] != stored || agents[1] != stored {
		t.Errorf("session records keep %q, want 2 of %q", agents, stored)
	}
	events, err := env.App.Audit.List(context.Background(), models.AuditFilter{UserID: u.ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.UserAgent != stored {
			t.Errorf("%s event keeps user agent %q", e.Kind, e.UserAgent)
		}
	}
	if res := c.Get("/account/sessions"); res.StatusCode != http.StatusOK {
		t.Errorf("the Devices page: status %d", res.StatusCode)
	}

	// A long one is cut at 512 bytes, between characters.
	long := env.Client(t)
	long.UserAgent = strings.Repeat("é", 300) // 600 bytes
	long.SignIn("sam@example.com", "sams password")
	var longest string
	if err := env.App.DB.Model(&models.SessionRecord{}).Where("user_id = ?", u.ID).
		Order("length(user_agent) DESC").Limit(1).Pluck("user_agent", &longest).Error; err != nil {
		t.Fatal(err)
	}
	if longest != strings.Repeat("é", 256) || !utf8.ValidString(longest) {
		t.Errorf("a 600-byte user agent is kept as %d bytes", len(longest))
	}
}
