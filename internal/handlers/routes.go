package handlers

import (
	"crypto/rand"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gatehouse/gatehouse/internal/session"
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
	if len(d.TrustedProxies) > 0 {
		// Only the configured proxies: Echo would otherwise also trust
		// every private, loopback and link-local hop, which lets a client
		// on such a network (or a forged hop) pose as any address.
		trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, r := range d.TrustedProxies {
			trust = append(trust, echo.TrustIPRange(r))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(trust...)
	}

	// First, so it counts every request, panics included, with the
	// status the client got.
	e.Use(d.Metrics.Middleware())
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
	web := []echo.MiddlewareFunc{readForm, unmaskCSRFMiddleware, h.sessions.Middleware, refuseBearerSignIn, h.csrf()}
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
	// The second step of signing in to an account with a second factor.
	e.GET("/signin/2fa", h.secondStepForm, web...)
	e.POST("/signin/2fa", h.secondStep, web...)
	// Passkeys (passkeys.go): JSON ceremonies driven by static/passkey.js.
	e.POST("/signin/2fa/passkey/begin", h.secondStepPasskeyBegin, web...)
	e.POST("/signin/2fa/passkey/finish", h.secondStepPasskeyFinish, web...)
	e.POST("/signin/passkey/begin", h.passkeySignInBegin, web...)
	e.POST("/signin/passkey/finish", h.passkeySignInFinish, web...)

	// Links sent by mail work without a session (mailflows.go).
	e.GET("/password/forgot", h.forgotForm, web...)
	e.POST("/password/forgot", h.forgot, web...)
	e.GET("/password/reset", h.resetForm, web...)
	e.POST("/password/reset", h.reset, hashing...)
	e.GET("/verify", h.verifyForm, web...)
	e.POST("/verify", h.verify, web...)
	e.POST("/account/verify/resend", h.resendVerification, signedIn...)
	e.GET("/email/confirm", h.confirmEmailForm, web...)
	e.POST("/email/confirm", h.confirmEmail, web...)
	e.GET("/email/undo", h.undoEmailForm, web...)
	e.POST("/email/undo", h.undoEmail, append([]echo.MiddlewareFunc{h.capPasswordWork}, web...)...)
	// The "This wasn't me" link of a new-device alert (newdevice.go).
	e.GET("/signin/not-me", h.notMeForm, web...)
	e.POST("/signin/not-me", h.notMe, append([]echo.MiddlewareFunc{h.capPasswordWork}, web...)...)
	if d.DevMailbox {
		// Only when mail goes nowhere else and BASE_URL is this machine.
		e.GET("/dev/mail", h.devMailbox)
		e.GET("/dev/mail/:id", h.devMailboxMessage)
	}

	e.GET("/account", h.account, signedIn...)
	e.POST("/account", h.saveProfile, signedIn...)
	e.POST("/account/password", h.changePassword, signedInHashing...)
	e.POST("/account/alerts", h.saveAlerts, signedIn...)
	// A failed password change is shown at /account/password; reloading it
	// (or coming back to it) returns to the profile, where the form is.
	e.GET("/account/password", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/account") }, signedIn...)
	e.GET("/account/sessions", h.devices, signedIn...)
	e.POST("/account/sessions/revoke-others", h.revokeOtherSessions, append(slices.Clip(signedIn), h.requireRecentAuth)...)
	e.POST("/account/sessions/:id/revoke", h.revokeSession, signedIn...)
	// Confirmation pages of sensitive actions, where re-authentication
	// leads (pending.go); the email change's is /account itself.
	e.GET("/account/sessions/revoke-others", h.pendingActionPage, signedIn...)
	e.GET("/account/sessions/:id/revoke", h.pendingActionPage, signedIn...)
	e.GET("/account/activity", h.activity, signedIn...)
	// Second factors (twofactor.go).
	sudo := append(slices.Clip(signedIn), h.requireRecentAuth)
	e.GET("/account/2fa", h.twoFactor, signedIn...)
	e.GET("/account/2fa/totp", h.totpSetupForm, sudo...)
	e.POST("/account/2fa/totp", h.totpConfirm, signedIn...)
	e.POST("/account/2fa/totp/disable", h.totpDisable, sudo...)
	e.GET("/account/2fa/totp/disable", h.pendingActionPage, signedIn...)
	e.POST("/account/2fa/recovery-codes", h.newRecoveryCodes, sudo...)
	e.GET("/account/2fa/recovery-codes", h.pendingActionPage, signedIn...)
	e.GET("/account/passkeys", h.passkeyList, signedIn...)
	e.GET("/account/passkeys/new", h.passkeyNew, sudo...)
	e.POST("/account/passkeys/register/begin", h.passkeyRegisterBegin, signedIn...)
	e.POST("/account/passkeys/register/finish", h.passkeyRegisterFinish, signedIn...)
	e.POST("/account/passkeys/:id/rename", h.passkeyRename, signedIn...)
	e.POST("/account/passkeys/:id/remove", h.passkeyRemove, sudo...)
	e.GET("/account/passkeys/:id/remove", h.pendingActionPage, signedIn...)
	e.POST("/account/confirm/passkey/begin", h.confirmPasskeyBegin, signedIn...)
	e.POST("/account/confirm/passkey/finish", h.confirmPasskeyFinish, signedIn...)
	e.GET("/account/confirm", h.confirmForm, signedIn...)
	e.POST("/account/confirm", h.confirm, signedInHashing...)

	// Everything under /admin sits behind one group that checks the role in
	// Postgres on every request; its catch-all routes mean non-admins get
	// 403 for any /admin path, known or not.
	// The device flow (device.go): an app asks for codes at
	// /api/v1/device/code; a person signed in here answers at /activate.
	activating := append(slices.Clip(signedIn), browserOnly)
	e.GET("/activate", h.activateForm, activating...)
	e.POST("/activate", h.activate, activating...)
	e.POST("/activate/approve", h.approveDevice, append(slices.Clip(activating), h.requireRecentAuth)...)
	e.GET("/activate/approve", h.pendingActionPage, activating...)
	e.POST("/activate/deny", h.denyDevice, activating...)

	admin := e.Group("/admin", append(slices.Clip(signedIn), h.requireAdmin, h.requireAdminFactor)...)
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
	admin.POST("/users/:id/send-reset", h.adminSendReset, h.requireRecentAuth)
	admin.POST("/users/:id/2fa/reset", h.adminResetTwoFactor, h.requireRecentAuth)
	for _, action := range []string{"/sessions/:sid/revoke", "/sessions/revoke-all", "/disable", "/enable", "/promote", "/demote", "/send-reset", "/2fa/reset"} {
		admin.GET("/users/:id"+action, h.pendingActionPage)
	}
	admin.GET("/sessions", h.adminSessions)
	admin.GET("/audit", h.adminAudit)

	// The JSON API for apps and scripts (api*.go, docs/api.md). The token
	// endpoints take their credential in the body: no session, no CSRF.
	// The others take a bearer token or the session cookie (then with
	// CSRF, as any form).
	api := []echo.MiddlewareFunc{readAPIBody}
	cors := h.cors()
	if cors != nil {
		api = append([]echo.MiddlewareFunc{cors}, api...)
	}
	apiSignedIn := append(slices.Clip(api), h.sessions.Middleware, h.csrf(), h.requireAPIAuth)
	e.POST("/api/v1/token", h.apiToken, api...)
	e.POST("/api/v1/revoke", h.apiRevoke, api...)
	e.POST("/api/v1/device/code", h.deviceCode, api...) // the device flow (device.go)
	e.GET("/api/v1/session", h.apiSession, apiSignedIn...)
	e.GET("/api/v1/sessions", h.apiSessions, apiSignedIn...)
	e.DELETE("/api/v1/sessions/:id", h.apiEndSession, apiSignedIn...)
	e.POST("/api/v1/reauth", h.apiReauth, append(slices.Clip(apiSignedIn), h.capPasswordWork)...)
	if cors != nil {
		// Preflights: Echo answers OPTIONS itself without the routes'
		// middleware, so each path gets one that runs CORS.
		for _, path := range []string{"/api/v1/token", "/api/v1/revoke", "/api/v1/device/code", "/api/v1/session", "/api/v1/sessions", "/api/v1/sessions/:id", "/api/v1/reauth"} {
			e.OPTIONS(path, func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, cors)
		}
	}
	return e
}

// refuseBearerSignIn answers 400 to a browser sign-in or sign-up sent with
// a bearer token, before anything happens: such a request is an app's,
// which never gets a cookie, and signing in would first sign its session
// out (endCurrent).
func refuseBearerSignIn(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method == http.MethodPost && session.BearerSent(r.Context()) &&
			(strings.HasPrefix(r.URL.Path, "/signin") || r.URL.Path == "/signup") {
			return session.ErrBearerSignIn
		}
		return next(c)
	}
}

var errCrossSite = &publicError{
	status: http.StatusForbidden, title: "Cross-site request refused",
	message: "This form was sent from another site, so it was refused. Use the form on this site instead.",
}

var errUnreadableText = &publicError{status: http.StatusBadRequest, title: "Bad request",
	message: "The request contains bytes that are not text. Reload the page and try again."}

// readForm parses a POST's form before anything reads single fields, so a
// body over the limit is answered 413 (not mistaken by the CSRF check for a
// missing token), a malformed one 400 and a multipart one 415. It answers
// 400 to any request whose form fields or query parameters are not valid
// UTF-8 or hold a NUL: no browser sends those, and no handler or database
// should see them.
func readForm(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		var values url.Values // none without a query: URL.Query would allocate an empty map
		if r.URL.RawQuery != "" {
			values = r.URL.Query()
		}
		if r.Method == http.MethodPost {
			// Gatehouse's forms are URL-encoded. A multipart body would be
			// parsed later by Echo's FormValue, past the checks below.
			if mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); mt == echo.MIMEMultipartForm {
				return echo.ErrUnsupportedMediaType
			}
			if err := r.ParseForm(); err != nil {
				var he *echo.HTTPError
				if errors.As(err, &he) {
					return he
				}
				return &publicError{status: http.StatusBadRequest, title: "Bad request",
					message: "The form could not be read. Reload the page and try again.", cause: err}
			}
			values = r.Form // the body's fields and the query's
		}
		if !validText(values) {
			return errUnreadableText
		}
		return next(c)
	}
}

// validText reports whether every name and value in values is valid UTF-8
// without NUL bytes.
func validText(values url.Values) bool {
	valid := func(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }
	for name, vs := range values {
		if !valid(name) {
			return false
		}
		for _, v := range vs {
			if !valid(v) {
				return false
			}
		}
	}
	return true
}

// csrf protects every state-changing request: browsers that send
// Sec-Fetch-Site are checked on it; other clients must echo the token from
// the CSRF cookie in the _csrf form field (or X-CSRF-Token header).
func (h *Handlers) csrf() echo.MiddlewareFunc {
	check := h.echoCSRF()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return check(func(c echo.Context) error {
			h.unsendKnownCSRFCookie(c)
			return next(c)
		})
	}
}

// unsendKnownCSRFCookie takes back the CSRF cookie that Echo's middleware
// sets on every answer, when the request carried that very token: the
// browser holds it already, for as long as a session can last, and it is
// replaced at every sign-in and sign-out (rotateCSRF). Re-sent, it cost
// every page about 110 header bytes and the time to format them.
func (h *Handlers) unsendKnownCSRFCookie(c echo.Context) {
	name := h.csrfCookieName()
	sent, err := c.Cookie(name)
	token, _ := c.Get(middleware.DefaultCSRFConfig.ContextKey).(string)
	if err != nil || token == "" || sent.Value != token {
		return
	}
	unsetCookie(c.Response().Header(), name)
}

// unsetCookie removes the Set-Cookie lines for the cookie name from hdr.
func unsetCookie(hdr http.Header, name string) {
	lines := hdr[echo.HeaderSetCookie]
	kept := lines[:0]
	for _, line := range lines {
		if !strings.HasPrefix(line, name+"=") {
			kept = append(kept, line)
		}
	}
	if len(kept) == 0 {
		hdr.Del(echo.HeaderSetCookie)
		return
	}
	hdr[echo.HeaderSetCookie] = kept
}

// echoCSRF is Echo's CSRF middleware, configured.
func (h *Handlers) echoCSRF() echo.MiddlewareFunc {
	return middleware.CSRFWithConfig(middleware.CSRFConfig{
		// A request that carries a bearer token is authenticated by that
		// token, never by a cookie: nothing ambient for another site to
		// ride on, so no check and no CSRF cookie.
		Skipper:     func(c echo.Context) bool { return session.BearerSent(c.Request().Context()) },
		TokenLookup: "form:_csrf,header:X-CSRF-Token",
		// As long as rotateCSRF's (rand.Text, 128 bits): 26 characters of
		// Echo's 62 are 154 bits. Each page carries it, masked, in every form.
		TokenLength:    26,
		CookieName:     h.csrfCookieName(),
		CookiePath:     "/",
		CookieMaxAge:   int(h.csrfLifetime() / time.Second),
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

// csrfCookieName is the cookie the CSRF token lives in.
func (h *Handlers) csrfCookieName() string {
	if h.secure {
		return "__Host-gatehouse_csrf"
	}
	return "gatehouse_csrf"
}

// csrfLifetime is how long a CSRF cookie lasts: no shorter than a browser
// session (a token set at sign-in outlives the session it protects, as
// the cookie is not re-sent), and at least Echo's default of a day.
func (h *Handlers) csrfLifetime() time.Duration {
	return max(24*time.Hour, h.sessions.Lifetime())
}

// rotateCSRF replaces the CSRF token when who is signed in changes
// (sign-in, sign-up, sign-out), so a token captured before is worthless
// after. The CSRF middleware may have sent the old token in this answer:
// that line is replaced by one with a new token, written as the
// middleware writes its cookie.
func (h *Handlers) rotateCSRF(c echo.Context) {
	token := rand.Text() // 128 random bits
	name := h.csrfCookieName()
	unsetCookie(c.Response().Header(), name)
	c.SetCookie(&http.Cookie{
		Name: name, Value: token, Path: "/", Expires: time.Now().Add(h.csrfLifetime()),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
	c.Set(middleware.DefaultCSRFConfig.ContextKey, token) // for a page rendered in this answer
}
