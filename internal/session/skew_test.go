package session_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// pttl returns the remaining TTL of key.
func pttl(t *testing.T, env *apptest.Env, key string) time.Duration {
	t.Helper()
	d, err := env.App.Redis.PTTL(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestIdleExpiryIgnoresTheInstanceClock commits a session as scs does on
// an instance whose clock is behind or ahead: scs computes an absolute
// expiry from that clock, which used to become the key's PXAT. A 2-minute
// idle timeout is scaled to 2 s here, and the skews with it: 3 s behind
// signed the session out at once, 10 s ahead stretched its idle timeout
// to 12 s. The expiry Redis keeps is the idle timeout, from Redis's clock.
func TestIdleExpiryIgnoresTheInstanceClock(t *testing.T) {
	const idle = 2 * time.Second
	env := apptest.New(t, apptest.With("SESSION_IDLE_TIMEOUT", "2s"), apptest.With("SESSION_LIFETIME", "1h"))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	token := c.SessionToken()
	key := env.App.Sessions.DataKey(token)
	data, err := env.App.Redis.Get(context.Background(), key).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, skew := range []time.Duration{-3 * time.Second, 10 * time.Second} {
		expiry := time.Now().Add(skew).Add(idle) // what scs hands the store there
		if err := env.App.Sessions.CommitWithExpiry(context.Background(), token, data, expiry); err != nil {
			t.Fatal(err)
		}
		if left := pttl(t, env, key); left <= idle-500*time.Millisecond || left > idle {
			t.Errorf("clock %v off: the session's idle expiry in Redis is %v, want %v", skew, left, idle)
		}
		if res := c.Get("/account"); res.StatusCode != http.StatusOK {
			t.Fatalf("clock %v off: the session ended: %d", skew, res.StatusCode)
		}
	}
}

// TestInstancesWithSkewedClocks runs three instances on one database and
// Redis prefix, one with its clock 3 minutes behind and one 10 minutes
// ahead, and a 4 s idle timeout. Requests served by either keep the idle
// timeout exact; the Devices page never shows a time in the future.
func TestInstancesWithSkewedClocks(t *testing.T) {
	// Short, to wait it out at the end; long enough that no request of a
	// loaded machine outlasts it.
	const idle = 4 * time.Second
	env := apptest.New(t, apptest.With("SESSION_IDLE_TIMEOUT", "4s"), apptest.With("SESSION_LIFETIME", "1h"))
	behind := apptest.Start(t, env.Config)
	behind.Clock.Advance(-3 * time.Minute)
	ahead := apptest.Start(t, env.Config)
	ahead.Clock.Advance(10 * time.Minute)

	laptop := env.Client(t)
	laptop.SignUp("Ada", "ada@example.com", "analytical engine")
	phone := env.Client(t)
	phone.SignIn("ada@example.com", "analytical engine")
	for _, inst := range []*apptest.Env{behind, ahead} {
		if res := phone.ForServer(inst).Get("/account"); res.StatusCode != http.StatusOK {
			t.Fatalf("the phone on a skewed instance: %d", res.StatusCode)
		}
		if left := pttl(t, env, env.App.Sessions.DataKey(phone.SessionToken())); left <= idle-2*time.Second || left > idle { // minutes off if a clock counted
			t.Errorf("after a request to an instance %v off, the idle expiry is %v, want %v", time.Until(inst.Clock.Now()).Round(time.Minute), left, idle)
		}
	}
	// The instance ahead wrote the phone's last-seen time (its first
	// request a minute after sign-in, by its clock).
	if err := ahead.App.Sessions.WaitLastSeen(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, inst := range []*apptest.Env{env, behind, ahead} {
		page := laptop.ForServer(inst).Get("/account/sessions")
		if page.StatusCode != http.StatusOK {
			t.Fatalf("Devices page: %d", page.StatusCode)
		}
		doc := page.Doc(t)
		if strings.Contains(doc.Find("#sessions").Text(), "from now") {
			t.Errorf("the Devices page of the instance %v off shows a time in the future:\n%s", time.Until(inst.Clock.Now()).Round(time.Minute), doc.Find("#sessions").Text())
		}
	}
	// Left idle after a request to the instance ahead, the phone's session
	// ends after the idle timeout.
	phone.ForServer(ahead).Get("/account")
	time.Sleep(idle + 300*time.Millisecond)
	if res := phone.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the phone's session outlived its idle timeout: %d", res.StatusCode)
	}
}
