package handlers_test

import (
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// signedInFrom signs a new client up behind a proxy that sends xff, and
// returns the IP address the Devices page shows for its session.
func signedInFrom(t *testing.T, env *apptest.Env, email, xff string) string {
	t.Helper()
	c := env.Client(t)
	c.Header.Set("X-Forwarded-For", xff)
	c.SignUp("Ada", email, "analytical engine")
	return c.Get("/account/sessions").Doc(t).Find(`tr[data-current="true"] td.ip`).Text()
}

// TestForgedForwardedForIsIgnored: the client IP is the right-most hop the
// trusted proxies did not write; whatever a client puts further left (a
// forged address, a private one) is never believed.
func TestForgedForwardedForIsIgnored(t *testing.T) {
	t.Parallel()
	// The test server's proxy is the test itself, on 127.0.0.1.
	for _, tc := range []struct{ trust, xff, want string }{
		// A client on a private network forges the left-most hop; the hop
		// the proxy appended is the client.
		{"true", "203.0.113.66, 10.1.2.3", "10.1.2.3"},
		{"127.0.0.1", "203.0.113.66, 192.168.7.8", "192.168.7.8"},
		// Two proxies: the inner one (10.0.0.2) is trusted, so the hop
		// before it is the client.
		{"127.0.0.1, 10.0.0.0/24", "203.0.113.66, 198.51.100.9, 10.0.0.2", "198.51.100.9"},
		// A proxy that is not on the list: the header is not believed.
		{"192.0.2.0/24", "203.0.113.66", "127.0.0.1"},
		// Off: the header is ignored.
		{"false", "203.0.113.66", "127.0.0.1"},
	} {
		t.Run(tc.trust+" "+tc.xff, func(t *testing.T) {
			t.Parallel()
			env := apptest.New(t, apptest.With("TRUST_PROXY", tc.trust))
			if got := signedInFrom(t, env, "ada@example.com", tc.xff); got != tc.want {
				t.Errorf("TRUST_PROXY=%q, X-Forwarded-For %q: client IP %q, want %q", tc.trust, tc.xff, got, tc.want)
			}
		})
	}
}
