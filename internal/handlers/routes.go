package handlers

import (
	"errors"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// maxBodySize bounds every request body: Gatehouse's forms are small.
const maxBodySize = "64K"

// New returns the whole application as an http.Handler-compatible Echo.
// Every route is listed here.
func New(d Deps) *echo.Echo {
	h := newHandlers(d)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = h.handleError
	e.IPExtractor = echo.ExtractIPDirect()
	if d.TrustProxy {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	}

	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true}))
	e.Use(h.logRequests())
	e.Use(securityHeaders(d.SecureCookies))
	e.Use(middleware.BodyLimit(maxBodySize))

	// No session for these: health checks and static files never touch Redis.
	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
	// Static files are named by their content hash (static.Asset) and cached
	// for a year.
	e.GET("/static/:name", h.staticFile)
	e.HEAD("/static/:name", h.staticFile)

	// Middleware is attached per route rather than through groups: Echo v4
	// gives a group with middleware catch-all routes, which turn 405s into
	// 404s.
	web := []echo.MiddlewareFunc{readForm, h.sessions.Middleware, h.csrf()}
	signedIn := append(slices.Clip(web), h.requireAuth)

	// Routes that hash a password: at most a few in flight per client,
	// refused before any other work.
	hashing := append([]echo.MiddlewareFunc{h.capPasswordWork}, web...)
	signedInHashing := append([]echo.MiddlewareFunc{h.capPasswordWork}, signedIn...)

	e.GET("/", h.home, web...)
	e.GET("/signup", h.signUpForm, web...)
	e.POST("/signup", h.signUp, hashing...)
	e.GET("/signin", h.signInForm, web...)
	e.POST("/signin", h.signIn, hashing...)
	e.POST("/signout", h.signOut, web...)

	e.GET("/account", h.account, signedIn...)
	e.POST("/account", h.saveProfile, signedIn...)
	e.POST("/account/password", h.changePassword, signedInHashing...)
	e.GET("/account/sessions", h.devices, signedIn...)
	e.POST("/account/sessions/revoke-others", h.revokeOtherSessions, append(slices.Clip(signedIn), h.requireRecentAuth)...)
	e.POST("/account/sessions/:id/revoke", h.revokeSession, signedIn...)
	e.GET("/account/activity", h.activity, signedIn...)
	e.GET("/account/confirm", h.confirmForm, signedIn...)
	e.POST("/account/confirm", h.confirm, signedInHashing...)

	// Everything under /admin sits behind one group that checks the role in
	// Postgres on every request; its catch-all routes mean non-admins get
	// 403 for any /admin path, known or not.
	admin := e.Group("/admin", append(slices.Clip(signedIn), h.requireAdmin)...)
	admin.GET("", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/admin/users") })
	admin.GET("/users", h.adminUsers)
	admin.GET("/users/:id", h.adminUser)
	// Every admin action needs a recently proved password.
	admin.POST("/users/:id/sessions/:sid/revoke", h.adminRevokeSession, h.requireRecentAuth)
	admin.POST("/users/:id/sessions/revoke-all", h.adminRevokeAll, h.requireRecentAuth)
	admin.POST("/users/:id/disable", h.adminDisable, h.requireRecentAuth)
	admin.POST("/users/:id/enable", h.adminEnable, h.requireRecentAuth)
	admin.POST("/users/:id/promote", h.adminPromote, h.requireRecentAuth)
	admin.POST("/users/:id/demote", h.adminDemote, h.requireRecentAuth)
	admin.GET("/sessions", h.adminSessions)
	admin.GET("/audit", h.adminAudit)
	return e
}

var errCrossSite = &publicError{
	status: http.StatusForbidden, title: "Cross-site request refused",
	message: "This form was sent from another site, so it was refused. Use the form on this site instead.",
}

// readForm parses a POST's form before anything reads single fields, so a
// body over the limit is answered 413 (not mistaken by the CSRF check for a
// missing token) and a malformed one 400.
func readForm(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().Method != http.MethodPost {
			return next(c)
		}
		if err := c.Request().ParseForm(); err != nil {
			var he *echo.HTTPError
			if errors.As(err, &he) {
				return he
			}
			return &publicError{status: http.StatusBadRequest, title: "Bad request",
				message: "The form could not be read. Reload the page and try again.", cause: err}
		}
		return next(c)
	}
}

// csrf protects every state-changing request: browsers that send
// Sec-Fetch-Site are checked on it; other clients must echo the token from
// the CSRF cookie in the _csrf form field (or X-CSRF-Token header).
func (h *Handlers) csrf() echo.MiddlewareFunc {
	name := "gatehouse_csrf"
	if h.secure {
		name = "__Host-gatehouse_csrf"
	}
	return middleware.CSRFWithConfig(middleware.CSRFConfig{
		TokenLookup:    "form:_csrf,header:X-CSRF-Token",
		CookieName:     name,
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   h.secure,
		CookieSameSite: http.SameSiteLaxMode,
		// Browsers say where a request comes from (Sec-Fetch-Site): refuse
		// other sites outright, and make same-site (a sibling subdomain)
		// prove itself with the token.
		AllowSecFetchSiteFunc: func(c echo.Context) (bool, error) {
			if c.Request().Header.Get("Sec-Fetch-Site") == "same-site" {
				return false, nil
			}
			return false, errCrossSite
		},
		ErrorHandler: func(err error, c echo.Context) error {
			return &publicError{
				status: http.StatusForbidden, title: "Form expired",
				message: "This form has expired or was sent from another site. Go back, reload the page and try again.",
				cause:   err,
			}
		},
	})
}
