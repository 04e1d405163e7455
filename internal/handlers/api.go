package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gatehouse/gatehouse/internal/session"
)

// The JSON API under /api/v1 (docs/api.md): tokens for apps, and the
// session endpoints that browsers' scripts and apps share. Its answers are
// JSON, errors included ({"error": code, "message": words}): handleError
// answers every error under apiPrefix with apiErrorBody, never a page.

// apiPrefix is where the API lives.
const apiPrefix = "/api/"

// apiMaxBody bounds an API request's body, in bytes: its fields are a few
// tokens and a password.
const apiMaxBody = 16 << 10

// apiError is an API error: its code and message are safe to show; cause
// is only logged.
type apiError struct {
	status        int
	code, message string
	cause         error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.code + ": " + e.cause.Error()
	}
	return e.code + ": " + e.message
}

func (e *apiError) Unwrap() error { return e.cause }

func apiErr(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

// isAPI reports whether the request is one for the API.
func isAPI(c echo.Context) bool { return strings.HasPrefix(c.Request().URL.Path, apiPrefix) }

// apiCodes name the statuses errors reach the API with, when nobody gave
// them a code.
var apiCodes = map[int]string{
	http.StatusBadRequest:            "invalid_request",
	http.StatusUnauthorized:          "invalid_token",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: "request_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusTooManyRequests:       "too_many_requests",
	http.StatusServiceUnavailable:    "temporarily_unavailable",
	http.StatusInternalServerError:   "server_error",
}

// writeAPIError answers an API request's error as JSON; status, title and
// message are what handleError made of err.
func (h *Handlers) writeAPIError(c echo.Context, err error, status int, message string) {
	code := apiCodes[status]
	var ae *apiError
	if errors.As(err, &ae) {
		code, message = ae.code, ae.message
	}
	if code == "" {
		code = apiCodes[http.StatusBadRequest]
		if status >= 500 {
			code = apiCodes[http.StatusInternalServerError]
		}
	}
	if status == http.StatusUnauthorized {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer error="invalid_token"`)
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, map[string]string{"error": code, "message": message})
}

// readAPIBody reads a POST or DELETE body into the request's form, from
// application/x-www-form-urlencoded (as RFC 6749 and 7009 say) or from a
// JSON object of strings, so handlers read fields the same way for both.
// Any other type of body is 415; a body over apiMaxBody 413; malformed
// JSON, a value that is not a string, or text that is not valid UTF-8 (or
// holds a NUL) 400.
func readAPIBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method != http.MethodPost && r.Method != http.MethodDelete {
			if !validText(r.URL.Query()) {
				return apiErr(http.StatusBadRequest, "invalid_request", "The request holds bytes that are not text.")
			}
			return next(c)
		}
		body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, apiMaxBody))
		var tooLarge *http.MaxBytesError
		var he *echo.HTTPError
		switch {
		case errors.As(err, &tooLarge), errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge:
			return apiErr(http.StatusRequestEntityTooLarge, "request_too_large", "The request body is too large.")
		case err != nil:
			return apiErr(http.StatusBadRequest, "invalid_request", "The request body could not be read.")
		}
		form := url.Values{}
		mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
		switch {
		case len(bytes.TrimSpace(body)) == 0 && (mt == "" || mt == echo.MIMEApplicationForm || mt == echo.MIMEApplicationJSON):
		case mt == echo.MIMEApplicationForm:
			if form, err = url.ParseQuery(string(body)); err != nil {
				return apiErr(http.StatusBadRequest, "invalid_request", "The form could not be read.")
			}
		case mt == echo.MIMEApplicationJSON:
			if form, err = jsonFields(body); err != nil {
				return apiErr(http.StatusBadRequest, "invalid_request", "The body must be a JSON object whose values are strings.")
			}
		default:
			return apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type",
				"Send application/x-www-form-urlencoded or application/json.")
		}
		for k, vs := range r.URL.Query() {
			form[k] = append(form[k], vs...)
		}
		if !validText(form) {
			return apiErr(http.StatusBadRequest, "invalid_request", "The request holds bytes that are not text.")
		}
		r.Form, r.PostForm = form, form
		r.Body = io.NopCloser(bytes.NewReader(nil))
		return next(c)
	}
}

// jsonFields reads a JSON object of strings.
func jsonFields(body []byte) (url.Values, error) {
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return nil, err
	}
	if dec.More() || fields == nil {
		return nil, errors.New("not one JSON object")
	}
	form := url.Values{}
	for k, v := range fields {
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("a value is not a string")
		}
		form.Set(k, s)
	}
	return form, nil
}

// requireAPIAuth answers 401 to a request without a signed-in user (no
// credential, or a token or cookie that names no live session).
func (h *Handlers) requireAPIAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if session.Current(c.Request().Context()) != nil {
			return next(c)
		}
		msg := "Sign in first: send an access token (Authorization: Bearer) or a session cookie."
		if session.BearerSent(c.Request().Context()) {
			msg = "The access token is invalid, expired or revoked. Refresh it, or sign in again."
		}
		return apiErr(http.StatusUnauthorized, "invalid_token", msg)
	}
}

// apiJSON answers v with no-store: the API's answers are personal, and
// token answers must never be cached (RFC 6749 5.1).
func apiJSON(c echo.Context, status int, v any) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	return c.JSON(status, v)
}

// cors lets the configured origins' scripts call the API with a bearer
// token; nil when CORS_ORIGINS is empty. No credentials (cookies) cross
// origins: only tokens, which are not ambient.
func (h *Handlers) cors() echo.MiddlewareFunc {
	if len(h.corsOrigins) == 0 {
		return nil
	}
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins:  h.corsOrigins,
		AllowMethods:  []string{http.MethodGet, http.MethodPost, http.MethodDelete},
		AllowHeaders:  []string{echo.HeaderAuthorization, echo.HeaderContentType},
		ExposeHeaders: []string{echo.HeaderWWWAuthenticate, "Retry-After"},
		MaxAge:        600,
	})
}
