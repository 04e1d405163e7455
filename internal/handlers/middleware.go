package handlers

import (
	"log/slog"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
)

// contentSecurityPolicy allows nothing inline and nothing from elsewhere:
// pages load only their own stylesheet and scripts, and htmx talks only to
// this site (connect-src).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// hsts asks browsers to use only https for two years.
const hsts = "max-age=63072000; includeSubDomains"

// securityHeaders sets the headers every answer carries. HSTS goes out
// whenever the public URL is https, however the request reached us: behind
// a TLS-terminating proxy it arrives as plain http, and Echo's Secure
// middleware (which looks at the request) would leave HSTS out.
//
// The values are built once and the same one-element slices are put in
// every response's header map: Header.Set canonicalised each name and
// allocated a slice per header, about a dozen allocations a request. Each
// slice has its capacity at its length, so an Add to one of these headers
// copies rather than writing into the shared array.
func securityHeaders(https bool) echo.MiddlewareFunc {
	type header struct {
		name  string
		value []string
	}
	var headers []header
	set := func(name, value string) {
		headers = append(headers, header{http.CanonicalHeaderKey(name), []string{value}[:1:1]})
	}
	set(echo.HeaderXXSSProtection, "0") // the legacy auditor caused more harm than good; CSP replaces it
	set(echo.HeaderXContentTypeOptions, "nosniff")
	set(echo.HeaderXFrameOptions, "DENY")
	set(echo.HeaderContentSecurityPolicy, contentSecurityPolicy)
	set(echo.HeaderReferrerPolicy, "same-origin")
	set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	set("Cross-Origin-Opener-Policy", "same-origin")
	if https {
		set(echo.HeaderStrictTransportSecurity, hsts)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			for _, hd := range headers {
				h[hd.name] = hd.value
			}
			return next(c)
		}
	}
}

// logRequests logs one line per request. It never logs cookies or query
// strings, which could carry secrets. HandleError renders an error page
// before the line is written, so the line has the status the client got.
func (h *Handlers) logRequests() echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		HandleError: true,
		LogStatus:   true, LogMethod: true, LogURIPath: true, LogLatency: true, LogRemoteIP: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			h.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("method", v.Method), slog.String("path", v.URIPath),
				slog.Int("status", v.Status), slog.Duration("latency", v.Latency),
				slog.String("ip", v.RemoteIP))
			return nil
		},
	})
}

// requireAuth sends anonymous requests to sign in, explaining why when the
// request's session has just ended.
func (h *Handlers) requireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if session.Current(c.Request().Context()) != nil {
			return next(c)
		}
		if rec, stale := h.sessions.Ended(c.Request().Context()); stale {
			// The message names a device where one is known (popFlash).
			publicID := ""
			if rec != nil {
				publicID = rec.PublicID
			}
			h.setFlashAbout(c, endedFlash(rec), publicID)
		}
		target := "/signin"
		if r := c.Request(); r.Method == http.MethodGet {
			target += "?next=" + url.QueryEscape(r.URL.RequestURI())
		}
		return c.Redirect(http.StatusSeeOther, target)
	}
}

// endedFlash explains to a browser why its session no longer works.
func endedFlash(rec *models.SessionRecord) flashKey {
	if rec == nil {
		return flashSessionExpired
	}
	switch rec.EndReason {
	case models.EndRevokedByUser:
		return flashEndedByUser
	case models.EndRevokedByAdmin:
		return flashEndedByAdmin
	case models.EndPasswordChanged:
		return flashEndedByPassword
	case models.EndAccountDisabled:
		return flashEndedDisabled
	case models.EndSessionLimit:
		return flashEndedLimit
	case models.EndRoleChanged:
		return flashEndedByRole
	case models.EndPasswordReset:
		return flashEndedByReset
	case models.EndEmailUndone:
		return flashEndedByUndo
	case models.EndNotMe:
		return flashEndedByNotMe
	case models.EndSignedOut:
		return flashSignedOut
	}
	return flashSessionExpired
}
