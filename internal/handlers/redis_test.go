package handlers_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// redisInfo reads one field of INFO from the server conn is connected to.
func redisInfo(t *testing.T, conn redis.Conn, field string) string {
	t.Helper()
	info, err := redis.String(conn.Do("INFO"))
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

	admin, err := redis.DialURL(rd.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	// Every connection Redis ever accepted, less this one, and less those
	// of the app's pool still open (with MaxIdle at the bound, the pool
	// closes none of them): what the burst opens shows up here.
	before := redisInfo(t, admin, "total_connections_received")
	open := env.App.Redis.ActiveCount()

	// Writes (and so the session lookup script) wait for half a second:
	// every request holds or wants a connection at the same time.
	if _, err := admin.Do("CLIENT", "PAUSE", 500, "WRITE"); err != nil {
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
	if n := env.App.Redis.ActiveCount(); n > bound {
		t.Errorf("the pool holds %d connections, want at most %d", n, bound)
	}
}
