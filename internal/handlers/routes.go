package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gatehouse/gatehouse/static"
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
	e.StaticFS("/static", static.FS)

	app := e.Group("", h.sessions.Middleware, h.csrf())
	app.GET("/", h.home)
	app.GET("/signup", h.signUpForm)
	app.POST("/signup", h.signUp)
	app.GET("/signin", h.signInForm)
	app.POST("/signin", h.signIn)
	app.POST("/signout", h.signOut)

	account := app.Group("/account", h.requireAuth)
	account.GET("", h.account)
	account.POST("", h.saveProfile)
	account.POST("/password", h.changePassword)
	account.GET("/sessions", h.devices)
	account.POST("/sessions/revoke-others", h.revokeOtherSessions)
	account.POST("/sessions/:id/revoke", h.revokeSession)
	return e
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
		ErrorHandler: func(err error, c echo.Context) error {
			return &publicError{
				status: http.StatusForbidden, title: "Form expired",
				message: "This form has expired or was sent from another site. Go back, reload the page and try again.",
				cause:   err,
			}
		},
	})
}
