package handlers

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/static"
)

// immutable is the Cache-Control of a static file: its URL changes with its
// content, so a copy never goes stale.
const immutable = "public, max-age=31536000, immutable"

// staticFile serves /static/<name>.<hash>.<ext>: the file whose content has
// that hash, compressed with brotli or gzip when the client accepts it. Any
// other name, an old hash included, is not found. No session is read: this
// route has no session middleware.
func (h *Handlers) staticFile(c echo.Context) error {
	f, ok := static.Lookup(c.Param("name"))
	if !ok {
		return echo.ErrNotFound
	}
	w, r := c.Response(), c.Request()
	hdr := w.Header()
	hdr.Set(echo.HeaderContentType, f.ContentType)
	hdr.Set(echo.HeaderCacheControl, immutable)
	hdr.Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
	body, encoding := f.Body, ""
	for _, enc := range acceptedEncodings(r.Header.Get(echo.HeaderAcceptEncoding)) {
		if b, ok := f.Encoded(enc); ok {
			body, encoding = b, enc
			break
		}
	}
	etag := f.Hash
	if encoding != "" {
		hdr.Set(echo.HeaderContentEncoding, encoding)
		etag += "-" + encoding
	}
	hdr.Set("ETag", strconv.Quote(etag))
	// ServeContent answers HEAD, If-None-Match and ranges.
	http.ServeContent(w, r, f.Name, time.Time{}, bytes.NewReader(body))
	return nil
}

// acceptedEncodings lists the compressed encodings we have that the
// Accept-Encoding header allows, best first: brotli, then gzip.
func acceptedEncodings(header string) []string {
	q := map[string]bool{}
	wildcard := false
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		ok := true
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				ok = err == nil && f > 0
			}
		}
		if name == "*" {
			wildcard = ok
			continue
		}
		q[name] = ok
	}
	var out []string
	for _, enc := range []string{"br", "gzip"} {
		if allowed, named := q[enc]; allowed || (!named && wildcard) {
			out = append(out, enc)
		}
	}
	return out
}
