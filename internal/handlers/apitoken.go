package handlers

import (
	"errors"
	"net/http"
	"strings"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/views"
)

// POST /api/v1/token (RFC 6749 section 5): the password grant signs an app
// in, the refresh_token grant rotates its refresh token. Errors use RFC
// 6749's codes where it has one.

// tokenAnswer is a successful token answer.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	SessionID    string `json:"session_id"`
}

func answerTokens(c echo.Context, t session.AppTokens) error {
	return apiJSON(c, http.StatusOK, tokenAnswer{AccessToken: t.AccessToken, TokenType: "Bearer",
		ExpiresIn: int64(t.ExpiresIn.Seconds()), RefreshToken: t.RefreshToken, SessionID: t.SessionID})
}

var errInvalidGrant = apiErr(http.StatusBadRequest, "invalid_grant",
	"The refresh token is invalid, expired or already used. Sign in again.")

func (h *Handlers) apiToken(c echo.Context) error {
	switch grant := c.FormValue("grant_type"); grant {
	case "password":
		// Only this grant hashes a password: it alone is capped per
		// client (capPasswordWork).
		return h.capPasswordWork(h.passwordGrant)(c)
	case "refresh_token":
		return h.refreshGrant(c)
	case deviceGrantType: // the device flow's polls (device.go)
		return h.deviceGrant(c)
	case "":
		return apiErr(http.StatusBadRequest, "invalid_request", "grant_type is required.")
	default:
		return apiErr(http.StatusBadRequest, "unsupported_grant_type",
			"grant_type must be password, refresh_token or "+deviceGrantType+".")
	}
}

// passwordGrant signs an app in with the account's email and password, and
// its second-factor code when it has one. It counts on the same throttle
// as the sign-in form (checkPassword, checkSecondFactor).
func (h *Handlers) passwordGrant(c echo.Context) error {
	ctx := c.Request().Context()
	email, pw := strings.TrimSpace(c.FormValue("email")), c.FormValue("password")
	if email == "" || pw == "" {
		h.metrics.SignIn(metrics.SignInInvalid)
		return apiErr(http.StatusBadRequest, "invalid_request", "email and password are required.")
	}
	client, err := clientName(c.FormValue("client_name"))
	if err != nil {
		return err
	}
	if canonical, err := models.NormalizeEmail(email); err == nil {
		email = canonical
	}
	u, method, err := h.provePassword(c, passwordCheck{email: email, password: pw}, c.FormValue("code"), "invalid_grant")
	if err != nil {
		return err
	}
	disabled := func() error {
		h.metrics.SignIn(metrics.SignInDisabled)
		h.record(c, models.AuditEvent{Kind: models.AuditSignInFailed, UserID: &u.ID, Detail: "account disabled"})
		return apiErr(http.StatusBadRequest, "invalid_grant", msgDisabled)
	}
	if u.Disabled() {
		return disabled()
	}
	tokens, err := h.sessions.StartApp(ctx, u, session.AppClient{Name: client,
		UserAgent: session.UserAgent(c.Request()), IP: c.RealIP()}, session.SignedInWith(method))
	if errors.Is(err, session.ErrAccountDisabled) {
		return disabled()
	} else if err != nil {
		return err
	}
	if err := h.appSignedInFrom(c, u, tokens.SessionID, client); err != nil {
		return err
	}
	h.metrics.SignIn(metrics.SignInSuccess)
	h.record(c, models.AuditEvent{Kind: models.AuditSignIn, UserID: &u.ID, ActorID: &u.ID, SessionID: tokens.SessionID,
		Detail: "app " + client + ", " + views.AuthMethodLabel(method)})
	return answerTokens(c, tokens)
}

// maxClientName bounds client_name, in characters.
const maxClientName = 100

// clientName checks an app's client_name: required, at most
// maxClientName characters, no control or invisible formatting characters.
func clientName(s string) (string, error) {
	s = strings.TrimSpace(s)
	bad := strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0
	switch {
	case s == "":
		return "", apiErr(http.StatusBadRequest, "invalid_request", "client_name is required: the name of your app, shown on the Devices page.")
	case bad || len([]rune(s)) > maxClientName:
		return "", apiErr(http.StatusBadRequest, "invalid_request", "client_name must be at most 100 printable characters.")
	}
	return s, nil
}

// provePassword checks the user's password, then their second factor: the
// code of their authenticator app or a recovery code. An account whose
// only second factor is a passkey cannot prove itself this way. wrong is
// the error code of a wrong password or code.
func (h *Handlers) provePassword(c echo.Context, chk passwordCheck, code, wrong string) (*models.User, models.AuthMethod, error) {
	ctx := c.Request().Context()
	u, err := h.checkPassword(c, chk)
	if r, ok := asRefusal(err); ok {
		if chk.userID == 0 {
			h.metrics.SignIn(signInResult(r.status))
		}
		code := "too_many_attempts"
		if r.status == http.StatusServiceUnavailable {
			code = "temporarily_unavailable"
		}
		return nil, "", apiErr(r.status, code, r.message)
	} else if errors.Is(err, errWrongPassword) {
		if chk.userID == 0 {
			h.metrics.SignIn(metrics.SignInFailed)
			return nil, "", apiErr(http.StatusBadRequest, wrong, msgBadCredentials)
		}
		return nil, "", apiErr(http.StatusBadRequest, wrong, "That is not your password.")
	} else if err != nil {
		return nil, "", err
	}
	f, err := h.factors.Factors(ctx, u.ID)
	if err != nil {
		return nil, "", err
	}
	switch {
	case !f.TOTP && f.Passkeys > 0:
		return nil, "", apiErr(http.StatusBadRequest, "passkey_required",
			"This account proves itself with a passkey, which an app cannot use here. Sign in from a browser instead.")
	case !f.TOTP:
		return u, models.AuthPassword, nil
	case code == "":
		return nil, "", apiErr(http.StatusBadRequest, "code_required",
			"This account has a second factor: send the code from the authenticator app (or a recovery code) in code.")
	}
	method, err := h.checkSecondFactor(c, u, code, "from an app")
	if status, msg, ok := codeProblem(err); ok {
		switch status {
		case http.StatusTooManyRequests:
			return nil, "", apiErr(status, "too_many_attempts", msg)
		case http.StatusServiceUnavailable:
			return nil, "", apiErr(status, "temporarily_unavailable", msg)
		}
		return nil, "", apiErr(http.StatusBadRequest, wrong, msg)
	} else if err != nil {
		return nil, "", err
	}
	return u, method, nil
}

// refreshGrant rotates a refresh token (session.Refresh). A rotated token
// presented again ends its session: audited, and answered invalid_grant.
//
// A refresh token is 256 random bits, so guessing one is hopeless; still,
// each guess costs an indexed lookup, so a refused token counts as a
// failed attempt of the client's address on the sign-in throttle, and a
// good one gives its attempt back: apps that refresh all day are never
// slowed, a flood of bad tokens is.
func (h *Handlers) refreshGrant(c echo.Context) error {
	ctx := c.Request().Context()
	token := c.FormValue("refresh_token")
	switch {
	case token == "":
		return apiErr(http.StatusBadRequest, "invalid_request", "refresh_token is required.")
	case session.IsAccessToken(token):
		return apiErr(http.StatusBadRequest, "invalid_grant", "That is an access token: send the refresh token.")
	}
	attempt, wait, err := h.throttle.Begin(ctx, throttle.IPKey(c.RealIP()))
	if err != nil {
		return err
	}
	if wait > 0 {
		h.metrics.Throttled(metrics.ThrottleAttempts)
		r := tooManyAttempts(c, wait)
		return apiErr(r.status, "too_many_attempts", r.message)
	}
	tokens, err := h.sessions.Refresh(ctx, token, session.AppClient{UserAgent: session.UserAgent(c.Request()), IP: c.RealIP()})
	switch {
	case errors.Is(err, session.ErrRefreshReused):
		h.settle(ctx, attempt.Fail)
		h.record(c, models.AuditEvent{Kind: models.AuditRefreshReused, UserID: &tokens.UserID, SessionID: tokens.SessionID,
			Detail: "a refresh token already used was presented again; the app session was ended"})
		return errInvalidGrant
	case errors.Is(err, session.ErrInvalidGrant):
		h.settle(ctx, attempt.Fail)
		return errInvalidGrant
	case err != nil:
		h.settle(ctx, attempt.Cancel)
		return err
	}
	h.settle(ctx, attempt.Succeed)
	return answerTokens(c, tokens)
}

// apiRevoke ends the session of an access or refresh token (RFC 7009). The
// token is the credential; an unknown one is answered 200 too, as the RFC
// says, so the answer tells nothing about it.
func (h *Handlers) apiRevoke(c echo.Context) error {
	token := c.FormValue("token")
	if token == "" {
		return apiErr(http.StatusBadRequest, "invalid_request", "token is required.")
	}
	userID, sid, err := h.sessions.RevokeToken(c.Request().Context(), token)
	if err != nil {
		return err
	}
	if sid != "" {
		h.record(c, models.AuditEvent{Kind: models.AuditSignOut, UserID: &userID, ActorID: &userID, SessionID: sid,
			Detail: "app token revoked"})
	}
	return apiJSON(c, http.StatusOK, struct{}{})
}
