// Command floor is the performance floor Gatehouse is measured against
// (docs/performance.md): the least a server can do for an authenticated
// page with the same session stack.
//
// F1 is a bare net/http server with scs and its Redis store, configured as
// Gatehouse configures them (idle timeout, so the store re-saves the
// session on every request; absolute lifetime), scs's own LoadAndSave
// middleware, and a page that renders the signed-in user's email with
// html/template: GET /account. F2's HTTP half is GET /hello, a hello-world
// handler without sessions. F0 is F1 with -idle 0: no idle timeout, so
// an unchanged session is never re-saved and a request costs one Redis GET
// (issue 14's floor). F0 with -header-bytes and -body-bytes set to the size
// of Gatehouse's own answer is "F0 at Gatehouse's size": what the same
// floor costs when it sends as many bytes, so that the benchmark can tell
// the cost of the page's size from the cost of the app.
//
//	floor [-addr A] [-redis URL] [-prefix P] [-seed N -tokens FILE]
//	      [-header-bytes H -body-bytes B]
//
// With -seed it first creates N signed-in sessions and writes their tokens
// (the value of the "session" cookie) to FILE, one a line, then serves.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
)

var page = template.Must(template.New("account").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Account</title></head>
<body><h1>Account</h1><p>Signed in as {{.}}.</p></body></html>
`))

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL")
	prefix := flag.String("prefix", "floor:", "prefix of every Redis key")
	idle := flag.Duration("idle", 30*time.Minute, "session idle timeout (Gatehouse's default)")
	lifetime := flag.Duration("lifetime", 12*time.Hour, "session lifetime (Gatehouse's default)")
	seed := flag.Int("seed", 0, "create this many signed-in sessions before serving")
	tokens := flag.String("tokens", "", "write the seeded sessions' tokens here, one a line")
	headerBytes := flag.Int("header-bytes", 0, "pad GET /account's header block (status line to the blank line) to this many bytes")
	bodyBytes := flag.Int("body-bytes", 0, "pad GET /account's body to this many bytes")
	flag.Parse()

	// The same pool settings as Gatehouse's (internal/app.NewRedisPool).
	pool := &redis.Pool{
		MaxActive:   64,
		Wait:        true,
		MaxIdle:     64,
		IdleTimeout: 4 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialURLContext(ctx, *redisURL,
				redis.DialConnectTimeout(2*time.Second),
				redis.DialReadTimeout(2*time.Second),
				redis.DialWriteTimeout(2*time.Second))
		},
	}
	sm := scs.New()
	sm.Store = redisstore.NewWithPrefix(pool, *prefix+"s:")
	sm.IdleTimeout = *idle
	sm.Lifetime = *lifetime
	// Gatehouse's cookie: HttpOnly, SameSite=Lax, Path=/, no Max-Age.
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Path = "/"
	sm.Cookie.Persist = false

	if *seed > 0 {
		if err := seedSessions(sm, *seed, *tokens); err != nil {
			log.Fatal(err)
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("Hello, world!\n"))
	})
	mux.Handle("GET /account", sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		email := sm.GetString(r.Context(), "email")
		if email == "" {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if *headerBytes == 0 && *bodyBytes == 0 {
			if err := page.Execute(w, email); err != nil {
				log.Print(err)
			}
			return
		}
		// Padded: rendered, padded and sent in one Write with its length,
		// as Gatehouse sends its pages.
		var body bytes.Buffer
		if err := page.Execute(&body, email); err != nil {
			log.Print(err)
			return
		}
		padBody(&body, *bodyBytes)
		w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
		padHeader(w.Header(), *headerBytes, body.Len())
		w.Write(body.Bytes())
	})))
	srv := &http.Server{
		Addr: *addr, Handler: mux,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
	}
	log.Printf("floor listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}

// padBody makes body n bytes long (when shorter) with an HTML comment
// before its last line break.
func padBody(body *bytes.Buffer, n int) {
	const open, end = "<!--", "-->\n"
	short := n - body.Len() - len(open) - len(end)
	if short < 0 {
		return
	}
	body.Truncate(body.Len() - 1) // the template's final "\n"
	body.WriteString(open)
	body.WriteString(strings.Repeat("x", short+1))
	body.WriteString(end)
}

// padHeader adds an X-Pad header so that the header block net/http writes
// (status line, h, Date, the blank line) is n bytes long, when it would be
// shorter.
func padHeader(h http.Header, n, contentLength int) {
	var block bytes.Buffer
	block.WriteString("HTTP/1.1 200 OK\r\n")
	h.Write(&block)
	block.WriteString("Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n\r\n")
	const name = "X-Pad: \r\n"
	if short := n - block.Len() - len(name); short > 0 {
		h.Set("X-Pad", strings.Repeat("x", short))
	}
}

// seedSessions signs n users in through scs itself, one commit each.
func seedSessions(sm *scs.SessionManager, n int, file string) error {
	var w *bufio.Writer
	if file != "" {
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		defer f.Close()
		w = bufio.NewWriter(f)
		defer w.Flush()
	}
	start := time.Now()
	for i := 1; i <= n; i++ {
		ctx, err := sm.Load(context.Background(), "")
		if err != nil {
			return err
		}
		sm.Put(ctx, "uid", int64(i))
		sm.Put(ctx, "email", "floor"+strconv.Itoa(i)+"@example.test")
		token, _, err := sm.Commit(ctx)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if w != nil {
			fmt.Fprintln(w, token)
		}
	}
	log.Printf("seeded %d sessions in %v", n, time.Since(start).Round(time.Millisecond))
	return nil
}
