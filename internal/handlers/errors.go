package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// publicError is an error whose title and message are safe to show to the
// user; cause, if any, is only logged.
type publicError struct {
	status         int
	title, message string
	cause          error
}

func (e *publicError) Error() string {
	if e.cause != nil {
		return e.message + ": " + e.cause.Error()
	}
	return e.message
}

func (e *publicError) Unwrap() error { return e.cause }

func notFound() error {
	return &publicError{status: http.StatusNotFound, title: "Not found",
		message: "There is nothing here. It may have been removed, or the link may be wrong."}
}

// messages are the words shown for statuses nobody gave words to.
var messages = map[int][2]string{
	http.StatusBadRequest:            {"Bad request", "The request could not be understood."},
	http.StatusForbidden:             {"Forbidden", "You are not allowed to do that."},
	http.StatusNotFound:              {"Not found", "There is nothing here. It may have been removed, or the link may be wrong."},
	http.StatusMethodNotAllowed:      {"Not allowed", "That page cannot be used this way."},
	http.StatusRequestEntityTooLarge: {"Too large", "What you sent is too large."},
	http.StatusUnsupportedMediaType:  {"Unsupported", "That kind of request is not supported."},
	http.StatusTooManyRequests:       {"Too many requests", "Too many requests. Wait a moment and try again."},
	http.StatusServiceUnavailable:    {"Temporarily unavailable", "Gatehouse is temporarily unavailable. Please try again in a moment."},
	http.StatusInternalServerError:   {"Something went wrong", "Something went wrong on our side. Please try again."},
}

// handleError is Echo's one error handler: it logs what went wrong and
// renders an error page that never contains internal error text.
func (h *Handlers) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, title, message := http.StatusInternalServerError, "", ""
	var pe *publicError
	var he *echo.HTTPError
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		status = ae.status
	case errors.As(err, &pe):
		status, title, message = pe.status, pe.title, pe.message
	case errors.As(err, &he):
		status = he.Code
	case errors.Is(err, session.ErrBearerSignIn):
		status, title, message = http.StatusBadRequest, "Bad request",
			"A request with an Authorization header cannot sign a browser in. Send the form without it."
	case errors.Is(err, session.ErrUnavailable):
		// Redis, where sessions live, is down: say what does not work.
		status, title, message = http.StatusServiceUnavailable, "Temporarily unavailable", msgSignInUnavailable
	case unavailable(err):
		status = http.StatusServiceUnavailable
	}
	if title == "" {
		words, ok := messages[status]
		if !ok {
			words = messages[http.StatusInternalServerError]
			if status < 500 {
				words = messages[http.StatusBadRequest]
			}
		}
		title, message = words[0], words[1]
	}
	if status >= 500 {
		h.log.ErrorContext(c.Request().Context(), "request failed", "status", status,
			"method", c.Request().Method, "path", c.Path(), "err", err)
	}
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", "5")
	}
	if isAPI(c) {
		// No page ever reaches an API client: every error is JSON.
		h.writeAPIError(c, err, status, message)
		return
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	page := func(c echo.Context) error { return h.render(c, status, views.ErrorPage(status, title, message)) }
	if h.withSessionForPage(c, status, page) {
		return
	}
	if rerr := page(c); rerr != nil {
		h.log.ErrorContext(c.Request().Context(), "rendering error page", "err", rerr)
		_ = c.String(status, message)
	}
}

// withSessionForPage renders an error page of a GET that matched no route
// (which ran no session middleware) with the visitor's session, so a
// signed-in user's 404 has the signed-in header, and its Sign out button
// works. It reports whether it answered.
func (h *Handlers) withSessionForPage(c echo.Context, status int, page echo.HandlerFunc) bool {
	r := c.Request()
	if status != http.StatusNotFound || r.Method != http.MethodGet || session.Current(r.Context()) != nil ||
		strings.HasPrefix(r.URL.Path, "/static/") {
		return false
	}
	err := h.sessions.Middleware(h.csrf()(page))(c)
	if err != nil && !c.Response().Committed {
		// Redis is down, say: the page without the session will do.
		h.log.DebugContext(r.Context(), "error page without its session", "err", err)
		return false
	}
	return true
}

// msgSignInUnavailable is what every page that needs a session says while
// Redis is down.
const msgSignInUnavailable = "Sign-in is temporarily unavailable. Please try again in a moment."

// unavailable reports whether err means Postgres or Redis could not be
// reached, which the user sees as a 503 rather than a 500. What each
// driver's errors mean is decided where that driver is used (database,
// redisconn).
func unavailable(err error) bool {
	return errors.Is(err, session.ErrUnavailable) || database.Unavailable(err)
}
