package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// redisInfo reads one field of INFO from the server conn is connected to.
func redisInfo(t *testing.T, conn *redis.Client, field string) string {
	t.Helper()
	info, err := conn.Info(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO has no %s", field)
	return ""
}

// TestRedisConnectionsAreBounded stalls a private Redis's writes while 40
// signed-in requests arrive at once: the instance never opens more than
// REDIS_MAX_CONNECTIONS connections, and the requests that waited for one
// are served when Redis resumes.
func TestRedisConnectionsAreBounded(t *testing.T) {
	t.Parallel()
	const bound, requests = 4, 40
	rd := apptest.StartRedis(t)
	env := apptest.New(t, apptest.With("REDIS_URL", rd.URL()), apptest.With("REDIS_MAX_CONNECTIONS", "4"))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")

	admin := rd.Client()
	// Every connection Redis ever accepted, less this one, and less those
	// of the app's pool still open (with MaxIdleConns at the bound, the pool
	// closes none of them): what the burst opens shows up here. The audit
	// writer is let finish first, so that it opens nothing in between.
	if err := env.App.Auditing.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	open := int(env.App.Redis.PoolStats().TotalConns)
	admin.Ping(context.Background()) // the admin connection is open before it is counted
	before := redisInfo(t, admin, "total_connections_received")

	// Writes (and so the session lookup script) wait for half a second:
	// every request holds or wants a connection at the same time.
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", 500, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	statuses := make(chan int, requests)
	var wg sync.WaitGroup
	for range requests {
		wg.Go(func() { statuses <- c.Get("/account").StatusCode })
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("a request waiting for a connection answered %d", s)
		}
	}
	b, errB := strconv.Atoi(before)
	a, errA := strconv.Atoi(redisInfo(t, admin, "total_connections_received"))
	if errB != nil || errA != nil {
		t.Fatal(errB, errA)
	}
	if opened := open + a - b; opened > bound {
		t.Errorf("the app had %d connections to Redis at some point (%d open before, %d opened during the burst), want at most %d", opened, open, a-b, bound)
	}
	if n := env.App.Redis.PoolStats().TotalConns; n > bound {
		t.Errorf("the pool holds %d connections, want at most %d", n, bound)
	}
}

// fillRedis writes to the Redis at url until it refuses for want of
// memory, in smaller and smaller values so that not even a small write
// fits afterwards. A connection's buffers count as used memory and are
// freed when it closes (a 64 KiB value's freed room for the app's writes),
// so it fills again over fresh connections until the first write of one is
// refused, and keeps that one open until the test ends.
func fillRedis(t *testing.T, url string) {
	t.Helper()
	n := 0
	sizes := []int{64 << 10, 1 << 10, 16}
	for {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		opt.PoolSize, opt.Protocol, opt.DisableIdentity = 1, 2, true
		conn := redis.NewClient(opt)
		wrote := 0
		for _, size := range sizes {
			value := strings.Repeat("x", size)
			for ; ; wrote++ {
				n++
				if err := conn.Set(context.Background(), "filler:"+strconv.Itoa(n), value, 0).Err(); err != nil {
					if !strings.HasPrefix(err.Error(), "OOM ") {
						t.Fatalf("filling Redis: %v", err)
					}
					break
				}
			}
		}
		if wrote == 0 {
			t.Cleanup(func() { conn.Close() })
			return
		}
		conn.Close()
		sizes = sizes[len(sizes)-1:]
	}
}

// TestRedisFullUnderNoeviction fills a private Redis that has
// maxmemory-policy noeviction: writes that need memory are refused with
// OOM. Sign-in and password checks answer 503 (they used to answer 500,
// and the failed attempt went uncounted), and live sessions keep working
// and keep extending their idle expiry (the commit used to be a SET, which
// noeviction refuses, so sessions silently timed out).
func TestRedisFullUnderNoeviction(t *testing.T) {
	t.Parallel()
	const idle = 20 * time.Second
	rd := apptest.StartRedis(t, "--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
	env := apptest.New(t, apptest.With("REDIS_URL", rd.URL()), apptest.With("SESSION_IDLE_TIMEOUT", "20s"))
	signedIn := env.Client(t)
	signedIn.SignUp("Ada", "ada@example.com", "analytical engine")
	anon := env.Client(t)
	anon.CSRFToken()
	// The audit writer takes the sign-up's event out of Redis in the
	// background: let it, then fill Redis, so that what it frees cannot
	// make room afterwards.
	if err := env.App.Auditing.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	fillRedis(t, rd.URL())

	admin := rd.Client()
	dataKey := env.App.Sessions.DataKey(signedIn.SessionToken())
	expiresIn := func() time.Duration {
		t.Helper()
		d, err := admin.PTTL(context.Background(), dataKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// A request renews the idle expiry: shorten it, as if the session had
	// been idle a while, and see the next request give it back. The
	// second time the session's data changes too (a last-seen write is
	// due): Redis refuses the new data, and the expiry is renewed anyway.
	for _, later := range []time.Duration{0, 2 * time.Minute} {
		env.Clock.Advance(later)
		if err := admin.PExpire(context.Background(), dataKey, 500*time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
		if res := signedIn.Get("/account"); res.StatusCode != http.StatusOK {
			t.Fatalf("a live session with Redis full: %d", res.StatusCode)
		}
		if left := expiresIn(); left < idle-5*time.Second {
			t.Errorf("with Redis full, a request left the session %v before it times out, want about %v", left, idle)
		}
	}

	res := anon.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}})
	check503(t, "POST /signin with the right password", res, signInUnavailable)
	if setsSession(res) {
		t.Error("a sign-in with Redis full set a session cookie")
	}
	res = anon.Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"wrong guess"}})
	check503(t, "POST /signin with a wrong password", res, signInUnavailable)
	res = signedIn.Post("/account/confirm", url.Values{"password": {"wrong guess"}, "next": {"/account"}})
	check503(t, "POST /account/confirm with a wrong password", res, signInUnavailable)
	if res := signedIn.Get("/account"); res.StatusCode != http.StatusOK {
		t.Errorf("the live session after the refused attempts: %d", res.StatusCode)
	}
}

// TestEvictingRedisIsWarnedAbout: under any maxmemory-policy but
// noeviction a full Redis evicts sessions and throttle counters. The app
// still starts and is ready, and says so at start-up and on /readyz.
func TestEvictingRedisIsWarnedAbout(t *testing.T) {
	t.Parallel()
	rd := apptest.StartRedis(t, "--maxmemory-policy", "allkeys-lru")
	env := apptest.New(t, apptest.With("REDIS_URL", rd.URL()))
	const warning = "maxmemory-policy is allkeys-lru, not noeviction"
	if !strings.Contains(env.Logs.String(), "level=WARN msg=\"start-up: redis "+warning) {
		t.Errorf("no start-up warning; the log says:\n%s", env.Logs.String())
	}
	res := env.Client(t).Get("/readyz")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Body, "redis: warning: "+warning) {
		t.Errorf("/readyz: %d\n%s", res.StatusCode, res.Body)
	}

	ok := apptest.New(t) // the shared test Redis runs noeviction
	if res := ok.Client(t).Get("/readyz"); res.StatusCode != http.StatusOK || strings.Contains(res.Body, "warning") {
		t.Errorf("/readyz on a noeviction Redis: %d\n%s", res.StatusCode, res.Body)
	}
}
