package handlers_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// FuzzPostForms sends arbitrary form bodies to every POST route of a real
// app, signed in (and with a valid CSRF token, so the handlers themselves
// are reached), and requires a 2xx/3xx/4xx answer: never a 5xx, never a
// panic. The seed corpus runs with the normal tests;
// `go test -fuzz FuzzPostForms -run '^$' ./internal/handlers/` explores.
func FuzzPostForms(f *testing.F) {
	for _, seed := range []string{
		"", "=", "&&&", "name=&email=", "name=%00&email=%ff%fe",
		"email=a%40b.co&password=12345678&name=x", "current_password=&new_password=&revoke_others=on",
		"next=%2F%2Fevil.example&email=x&password=y", "return_to=javascript:alert(1)",
		"name=" + url.QueryEscape("<script>alert(1)</script>") + "&email=x%40example.com",
		"%zz=%zz", "a=1&a=2&a=3", "password=" + string(make([]byte, 300)),
	} {
		f.Add(seed)
	}
	env := apptest.New(f)
	admin, _ := signedInAdmin(f, env)
	_, user := signedInUserTB(f, env, "victim@example.com")
	target := userPath(user)
	routes := []string{
		"/signup", "/signin", "/account", "/account/password", "/account/confirm",
		"/account/sessions/revoke-others", "/account/sessions/aaaaaaaaaaaaaaaaaaaaaaaaaa/revoke",
		target + "/sessions/aaaaaaaaaaaaaaaaaaaaaaaaaa/revoke", target + "/enable", target + "/demote",
	}
	f.Fuzz(func(t *testing.T, body string) {
		admin := admin.WithT(t)
		for _, route := range routes {
			res := admin.PostRaw(route, body+"&_csrf="+url.QueryEscape(admin.CSRFToken()))
			if res.StatusCode >= http.StatusInternalServerError {
				t.Fatalf("POST %s with %q: %d", route, body, res.StatusCode)
			}
		}
		// Whatever happened, the admin's session must be intact or cleanly
		// ended (a sign-up or sign-in body may legitimately switch users).
		if res := admin.Get("/account"); res.StatusCode >= http.StatusInternalServerError {
			t.Fatalf("GET /account after the fuzzed posts: %d", res.StatusCode)
		}
	})
}
