package apptest

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/internal/models"
)

// DefaultUserAgent is the browser a Client claims to be.
const DefaultUserAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

// Client is one browser: its own cookie jar, and redirects not followed so
// tests can check them.
type Client struct {
	t         testing.TB
	HTTP      *http.Client
	Base      string
	UserAgent string
	Header    http.Header // extra headers sent with every request
}

// Client returns a new browser for env's server.
func (e *Env) Client(t testing.TB) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{
		t:    t,
		Base: e.Server.URL,
		HTTP: &http.Client{
			Jar:           jar,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		UserAgent: DefaultUserAgent,
		Header:    http.Header{},
	}
}

// WithT returns a client sharing c's cookies that reports to t (inside a
// fuzz target, say, where the fuzz's own F must not be used).
func (c *Client) WithT(t testing.TB) *Client {
	cc := *c
	cc.t = t
	return &cc
}

// ForServer returns a client that shares c's cookies but talks to another
// instance of the app.
func (c *Client) ForServer(e *Env) *Client {
	cc := *c
	// Cookies are per host; both test servers are on 127.0.0.1, so the jar
	// already sends the same cookies.
	cc.Base = e.Server.URL
	return &cc
}

// Response is a finished response with its body read.
type Response struct {
	*http.Response
	Body string
}

// Doc parses the body as HTML.
func (r *Response) Doc(t testing.TB) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(r.Body))
	if err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	return doc
}

// Location is the redirect target.
func (r *Response) Location() string { return r.Header.Get("Location") }

// Do sends req with the client's cookies and headers.
func (c *Client) Do(req *http.Request) *Response {
	c.t.Helper()
	req.Header.Set("User-Agent", c.UserAgent)
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return &Response{Response: res, Body: string(b)}
}

// Get fetches path.
func (c *Client) Get(path string) *Response {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.Base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.Do(req)
}

// Post submits form to path as a browser form would, with the CSRF token
// the app gave this client. Without one yet, it first loads the sign-in
// page to get one.
func (c *Client) Post(path string, form url.Values) *Response {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("_csrf") == "" {
		form.Set("_csrf", c.CSRFToken())
	}
	return c.PostRaw(path, form.Encode())
}

// PostRaw submits body as a urlencoded form, untouched.
func (c *Client) PostRaw(path, body string) *Response {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.Base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(req)
}

// CSRFToken returns the token a form would carry, from the CSRF cookie.
func (c *Client) CSRFToken() string {
	c.t.Helper()
	if v := c.Cookie("gatehouse_csrf"); v != "" {
		return v
	}
	c.Get("/signin")
	v := c.Cookie("gatehouse_csrf")
	if v == "" {
		c.t.Fatal("the app set no CSRF cookie")
	}
	return v
}

// Cookie returns the value of the named cookie the client holds, or "".
func (c *Client) Cookie(name string) string {
	u, _ := url.Parse(c.Base)
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// SessionToken is the client's session cookie value.
func (c *Client) SessionToken() string { return c.Cookie("gatehouse_session") }

// SetCookie puts a cookie in the client's jar, as an attacker (or a stale
// browser) might.
func (c *Client) SetCookie(name, value string) {
	u, _ := url.Parse(c.Base)
	c.HTTP.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// SignUp creates an account through the form and leaves the client signed
// in to it.
func (c *Client) SignUp(name, email, password string) *Response {
	c.t.Helper()
	res := c.Post("/signup", url.Values{"name": {name}, "email": {email}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("sign up %s: status %d\n%s", email, res.StatusCode, res.Body)
	}
	return res
}

// SignIn signs the client in through the form.
func (c *Client) SignIn(email, password string) *Response {
	c.t.Helper()
	res := c.Post("/signin", url.Values{"email": {email}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("sign in %s: status %d\n%s", email, res.StatusCode, res.Body)
	}
	return res
}

// User signs name up through the form, from a client of its own, and
// returns the account: for tests that go on through the app's stores.
func (e *Env) User(t testing.TB, name, email, password string) *models.User {
	t.Helper()
	e.Client(t).SignUp(name, email, password)
	u, err := e.App.Users.ByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
