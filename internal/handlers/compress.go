package handlers

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/andybalholm/brotli"
	"github.com/labstack/echo/v4"
)

// Pages are compressed as they are rendered (render), with gzip, or brotli
// for a client that accepts brotli and not gzip (acceptedEncodings, the
// same negotiation as static files). Static files, compressed once, prefer
// brotli; a page is compressed on every request, and on Gatehouse's pages
// fast brotli is no smaller than fast gzip and measured slower in the app
// (docs/results/go-benchmarks.md).
//
// BREACH: a compressed page that holds a secret and text an attacker
// chose lets the attacker guess the secret from the response's size. The
// one secret on Gatehouse's pages is the CSRF token, on every form. It is
// masked afresh for every response (maskCSRF: a random mask, and the
// token XOR the mask), so no two pages carry the same bytes for it and
// the sizes reveal nothing; unmaskCSRF turns a submitted masked token back
// into the token before Echo's CSRF check. A page that carries another
// secret (a one-time code, a key to copy) must set noCompression.

// minCompressSize is the smallest page worth compressing: below it the
// headers and the format's own overhead eat most of the gain.
const minCompressSize = 1024

// Levels chosen for pages made per request, where every microsecond is
// on the hot path (docs/results/go-benchmarks.md): on a 3.4 KB page,
// brotli 2 took ~20 µs for a smaller result than gzip's default (~60 µs),
// brotli 4 ~170 µs for 20% less; gzip's fastest level ~45 µs.
const (
	brotliLevel = 2
	gzipLevel   = gzip.BestSpeed
)

// brotliWindow is brotli's window, 2^18 = 256 KB: larger than any page
// (the Devices page with 100 sessions is 165 KB), so no smaller output,
// while the default window (4 MB) grew a pooled writer to 9 MB on that
// page against 1.3 MB with this one (docs/performance.md#page-compression).
const brotliWindow = 18

// compressSlots bounds the compressors at work at once. A gzip writer is
// 1.2 MB whatever the page, a brotli one up to 1.2 MB (with brotliWindow),
// and sync.Pool keeps as many as were ever out at once until two GCs pass.
// Unbounded, a burst of 1,024 large pages made 105 writers; bounded at 16,
// 18 (docs/performance.md#page-compression). Compressing is CPU work, so
// more compressors than a few per processor add no throughput; a page
// that finds every slot taken goes out uncompressed, without waiting,
// which costs bytes and no CPU.
var compressSlots = make(chan struct{}, max(16, 4*runtime.GOMAXPROCS(0)))

var (
	gzipWriters = sync.Pool{New: func() any {
		compressorsMade.Add(1)
		w, _ := gzip.NewWriterLevel(io.Discard, gzipLevel)
		return w
	}}
	brotliWriters = sync.Pool{New: func() any {
		compressorsMade.Add(1)
		return brotli.NewWriterOptions(io.Discard, brotli.WriterOptions{Quality: brotliLevel, LGWin: brotliWindow})
	}}
	// compressorsMade counts writers created, for the tests of the bound.
	compressorsMade atomic.Int64
)

// noCompression, set in a request's context (c.Set(noCompression, true)),
// keeps its page uncompressed: for a page that shows a secret other than
// the CSRF token next to anything the client sent (see BREACH above).
const noCompression = "handlers.noCompression"

// compressPage returns page compressed for c's client, the encoding ("" and
// page itself when it is not compressed), and a function that releases
// the compressed body's buffer once it is written. It always sets Vary, so
// a cache never hands one client's encoding to another.
//
// Answers of 400 and above are not compressed: under a flood (429s by the
// thousand, or 503s while a service is down) compressing them would spend
// CPU, and a compressor's memory each, on exactly the answers that must
// stay cheap.
func compressPage(c echo.Context, status int, page []byte) (body []byte, encoding string, release func()) {
	c.Response().Header().Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
	accept := c.Request().Header.Get(echo.HeaderAcceptEncoding)
	if status >= http.StatusBadRequest || len(page) < minCompressSize || accept == "" || c.Get(noCompression) != nil {
		return page, "", func() {}
	}
	encs := acceptedEncodings(accept)
	if len(encs) == 0 {
		return page, "", func() {}
	}
	if slices.Contains(encs, "gzip") {
		encs[0] = "gzip"
	}
	select {
	case compressSlots <- struct{}{}:
		defer func() { <-compressSlots }()
	default:
		return page, "", func() {} // every compressor busy: see compressSlots
	}
	out := renderBuffers.Get().(*bytes.Buffer)
	out.Reset()
	release = func() { putBuffer(out) }
	var err error
	switch encs[0] {
	case "br":
		w := brotliWriters.Get().(*brotli.Writer)
		w.Reset(out)
		_, err = w.Write(page)
		err = firstErr(err, w.Close())
		brotliWriters.Put(w)
	default:
		w := gzipWriters.Get().(*gzip.Writer)
		w.Reset(out)
		_, err = w.Write(page)
		err = firstErr(err, w.Close())
		gzipWriters.Put(w)
	}
	if err != nil || out.Len() >= len(page) {
		return page, "", release // writing to memory does not fail; never send a larger body
	}
	return out.Bytes(), encs[0], release
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// maskedPrefix starts a masked CSRF token; Echo's and rotateCSRF's raw
// tokens never contain a dot.
const maskedPrefix = "m."

// maskCSRF returns token masked with fresh random bytes: "m." and the
// base64url of mask followed by token XOR mask. It runs for every page, so
// it works in stack buffers: one allocation, the string.
func maskCSRF(token string) string {
	if token == "" {
		return ""
	}
	n := len(token)
	var raw [2 * 64]byte // Echo's and rotateCSRF's tokens are 26 characters
	b := raw[:]
	if 2*n > len(raw) {
		b = make([]byte, 2*n)
	}
	b = b[:2*n]
	rand.Read(b[:n]) // never fails (crypto/rand)
	for i := range n {
		b[n+i] = token[i] ^ b[i]
	}
	var enc [len(maskedPrefix) + 171]byte // 171: the base64 of len(raw) bytes
	out := append(enc[:0], maskedPrefix...)
	return string(base64.RawURLEncoding.AppendEncode(out, b))
}

// unmaskCSRF returns the token a masked value carries; any other value is
// returned as it is (Echo's check then accepts or refuses it).
func unmaskCSRF(v string) string {
	rest, ok := strings.CutPrefix(v, maskedPrefix)
	if !ok {
		return v
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) == 0 || len(b)%2 != 0 {
		return v
	}
	n := len(b) / 2
	token := make([]byte, n)
	subtle.XORBytes(token, b[n:], b[:n])
	return string(token)
}

// unmaskCSRFMiddleware turns the masked CSRF token of a form field or the
// X-CSRF-Token header back into the token, for Echo's CSRF check, which
// compares it with the cookie. It runs after readForm parsed the form.
func unmaskCSRFMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method == http.MethodPost {
			if vs := r.Form["_csrf"]; len(vs) > 0 {
				for i, v := range vs {
					vs[i] = unmaskCSRF(v)
				}
				if r.PostForm != nil && len(r.PostForm["_csrf"]) > 0 {
					r.PostForm["_csrf"] = vs
				}
			}
			if v := r.Header.Get("X-CSRF-Token"); v != "" {
				r.Header.Set("X-CSRF-Token", unmaskCSRF(v))
			}
		}
		return next(c)
	}
}
