package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/views"
)

// The device flow (RFC 8628), for apps that cannot show a browser: the app
// asks POST /api/v1/device/code for a device code and a user code; the
// person types the user code at /activate in a signed-in browser, sees
// which app asks, and approves (after re-authentication: it signs a new
// device in) or denies; the app polls POST /api/v1/token with the device
// code (deviceGrant) and gets its tokens once. The states live in Postgres
// (models.DeviceStore).

// Device codes one client address may ask for per deviceCodeWindow: each
// keeps a row until it expires. A CLI asks once per sign-in.
const (
	deviceCodesPerIP = 30
	deviceCodeWindow = 10 * time.Minute
)

// deviceGrantType is the grant type a device-code poll names.
const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// deviceCode starts a device-flow sign-in: POST /api/v1/device/code with
// client_name.
func (h *Handlers) deviceCode(c echo.Context) error {
	ctx := c.Request().Context()
	name, err := clientName(c.FormValue("client_name"))
	if err != nil {
		return err
	}
	wait, err := h.throttle.Take(ctx, throttle.DeviceCodeKey(c.RealIP()), deviceCodesPerIP, deviceCodeWindow)
	if err != nil {
		return err
	}
	if wait > 0 {
		h.metrics.Throttled(metrics.ThrottleAttempts)
		setRetryAfter(c, wait)
		return apiErr(http.StatusTooManyRequests, "too_many_requests", "Too many codes asked for from your network. Try again in "+waitWords(wait)+".")
	}
	d, deviceCode, err := h.deviceAuths.Create(ctx, models.NewDeviceAuthorization{
		ClientName: name, IP: c.RealIP(), UserAgent: session.UserAgent(c.Request()),
	}, h.now())
	if err != nil {
		return err
	}
	userCode := models.FormatUserCode(d.UserCode)
	return apiJSON(c, http.StatusOK, map[string]any{
		"device_code":               deviceCode,
		"user_code":                 userCode,
		"verification_uri":          link(h.baseURL, "/activate", nil),
		"verification_uri_complete": link(h.baseURL, "/activate", url.Values{"user_code": {userCode}}),
		"expires_in":                int(models.DeviceCodeLifetime / time.Second),
		"interval":                  int(models.DevicePollInterval / time.Second),
	})
}

// Words for a user code that finds nothing.
const (
	msgUserCodeMalformed = "That is not a code from a device. A code is 8 letters, like WDJB-MJHT."
	msgUserCodeUnknown   = "That code does not work. It may be mistyped, expired (codes last 10 minutes) or already used: check your device, or ask it for a new code."
)

// errUserCodeGone answers an approval or denial whose code no longer
// works (expired, or answered from another tab).
var errUserCodeGone = &publicError{status: http.StatusConflict, title: "Code no longer works",
	message: "That code has expired or was already answered. Ask your device for a new code."}

// pendingDevice finds the pending authorization the user code typed names.
// A code is a secret guessed like a password: a miss counts as a failed
// attempt of the client's address, on the sign-in throttle, so codes
// cannot be tried by the million; a hit gives its attempt back. It returns
// the authorization, or a message for the form and its status.
func (h *Handlers) pendingDevice(c echo.Context, typed string) (*models.DeviceAuthorization, int, string, error) {
	ctx := c.Request().Context()
	if typed == "" {
		return nil, http.StatusUnprocessableEntity, "Enter the code your device shows.", nil
	}
	attempt, wait, err := h.throttle.Begin(ctx, throttle.IPKey(c.RealIP()))
	if err != nil {
		return nil, 0, "", err
	}
	if wait > 0 {
		h.metrics.Throttled(metrics.ThrottleAttempts)
		r := tooManyAttempts(c, wait)
		return nil, r.status, r.message, nil
	}
	code, err := models.NormalizeUserCode(typed)
	if err != nil {
		h.settle(ctx, attempt.Fail)
		return nil, http.StatusUnprocessableEntity, msgUserCodeMalformed, nil
	}
	d, err := h.deviceAuths.Pending(ctx, code, h.now())
	switch {
	case errors.Is(err, models.ErrDeviceCodeUnknown):
		h.settle(ctx, attempt.Fail)
		return nil, http.StatusUnprocessableEntity, msgUserCodeUnknown, nil
	case err != nil:
		h.settle(ctx, attempt.Cancel)
		return nil, 0, "", err
	}
	h.settle(ctx, attempt.Succeed)
	return d, 0, "", nil
}

// errBrowserOnly refuses the /activate pages to an app's token: a device
// sign-in is approved from a browser, which the new session then names.
var errBrowserOnly = &publicError{status: http.StatusForbidden, title: "Browsers only",
	message: "Sign-ins of devices are answered from a browser where you are signed in, not from an app."}

// browserOnly guards the /activate routes against app sessions (which
// reach web routes with a bearer token).
func browserOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p := session.Current(c.Request().Context()); p != nil && p.App {
			return errBrowserOnly
		}
		return next(c)
	}
}

// typedDevice finds the pending authorization of the form's user_code.
// When there is none, it answers with the code form showing the problem
// and returns nil.
func (h *Handlers) typedDevice(c echo.Context) (*models.DeviceAuthorization, error) {
	typed := formValue(c, "user_code")
	d, status, msg, err := h.pendingDevice(c, typed)
	if d != nil || err != nil {
		return d, err
	}
	f := views.ActivateForm{UserCode: models.Truncate(typed, 64), Errors: views.FieldErrors{"user_code": msg}}
	return nil, h.render(c, status, views.ActivateView(f))
}

// activateForm is GET /activate: the code form, filled in from the link a
// device shows (verification_uri_complete).
func (h *Handlers) activateForm(c echo.Context) error {
	return h.render(c, http.StatusOK, views.ActivateView(views.ActivateForm{UserCode: formValue(c, "user_code")}))
}

// activate is POST /activate: which app the code belongs to, with the
// buttons that answer it.
func (h *Handlers) activate(c echo.Context) error {
	d, err := h.typedDevice(c)
	if d == nil {
		return err
	}
	return h.render(c, http.StatusOK, views.ActivateClientView(views.ActivateClient{Auth: *d, Now: h.now()}))
}

// approveDevice is POST /activate/approve (after re-authentication:
// requireRecentAuth): the app's next poll gets its tokens.
func (h *Handlers) approveDevice(c echo.Context) error { return h.decideDevice(c, true) }

// denyDevice is POST /activate/deny: the app's next poll hears
// access_denied, and the code is dead.
func (h *Handlers) denyDevice(c echo.Context) error { return h.decideDevice(c, false) }

func (h *Handlers) decideDevice(c echo.Context, approve bool) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	d, err := h.typedDevice(c)
	if d == nil {
		return err
	}
	d, err = h.deviceAuths.Decide(ctx, d.UserCode, approve, p.UserID, p.SessionID, h.now())
	if errors.Is(err, models.ErrDeviceCodeUnknown) {
		return errUserCodeGone // answered from another tab a moment ago, or expired
	} else if err != nil {
		return err
	}
	kind := models.AuditDeviceDenied
	if approve {
		kind = models.AuditDeviceApproved
	}
	h.record(c, models.AuditEvent{Kind: kind, UserID: &p.UserID, SessionID: p.SessionID,
		Detail: d.ClientName + " at " + d.IP + ", code " + models.FormatUserCode(d.UserCode)})
	return h.render(c, http.StatusOK, views.ActivateDoneView(views.ActivateDone{ClientName: d.ClientName, Approved: approve}))
}

// describeApproveDevice names a pending approval on the confirm-password
// page and gives its confirmation page, the Approve button ready. It looks
// the code up as /activate does, on the same throttle: these pages are
// GETs anyone signed in can load with any code.
func (h *Handlers) describeApproveDevice(c echo.Context, _ map[string]string, q url.Values) (*views.PendingAction, error) {
	d, status, msg, err := h.pendingDevice(c, strings.TrimSpace(q.Get("user_code")))
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, &publicError{status: status, title: "Code no longer works", message: msg}
	}
	a := pending("sign in "+d.ClientName+" ("+d.IP+")", views.ApproveDeviceConsequence(*d), "/activate")
	a.Fields = []views.HiddenField{{Name: "user_code", Value: d.UserCode}}
	return a, nil
}

// deviceGrant answers a poll of the device flow: POST /api/v1/token with
// grant_type urn:ietf:params:oauth:grant-type:device_code and device_code.
// Until the person answers, 400 with the RFC 8628 error code (and the
// interval to keep); once approved, the tokens of a new app session,
// once. The session names the browser session that approved it. If that
// browser session has ended since (signed out, revoked, a password
// change), or the account was disabled, the approval no longer holds:
// access_denied.
func (h *Handlers) deviceGrant(c echo.Context) error {
	ctx := c.Request().Context()
	var tokens session.AppTokens
	var approved models.DeviceAuthorization
	err := h.deviceAuths.Poll(ctx, strings.TrimSpace(c.FormValue("device_code")), h.now(), func(d *models.DeviceAuthorization) error {
		u, err := h.users.ByID(ctx, *d.UserID)
		switch {
		case errors.Is(err, models.ErrNotFound):
			return &models.PollError{Code: models.PollDenied}
		case err != nil:
			return err
		case u.Disabled():
			return &models.PollError{Code: models.PollDenied}
		}
		if _, err := h.activeSession(c, u.ID, d.ApprovedBy); errors.Is(err, errSessionGone) {
			return &models.PollError{Code: models.PollDenied}
		} else if err != nil {
			return err
		}
		tokens, err = h.sessions.StartApp(ctx, u, session.AppClient{
			Name: d.ClientName, UserAgent: session.UserAgent(c.Request()), IP: c.RealIP(),
		}, session.ApprovedBy(d.ApprovedBy), session.SignedInWith(models.AuthDeviceCode))
		if errors.Is(err, session.ErrAccountDisabled) {
			return &models.PollError{Code: models.PollDenied}
		}
		approved = *d
		return err
	})
	var pe *models.PollError
	if errors.As(err, &pe) {
		answer := map[string]any{"error": pe.Code, "message": pollMessages[pe.Code]}
		if pe.Interval > 0 {
			answer["interval"] = int(pe.Interval / time.Second)
		}
		return apiJSON(c, http.StatusBadRequest, answer)
	} else if err != nil {
		return err
	}
	h.metrics.SignIn(metrics.SignInSuccess)
	h.record(c, models.AuditEvent{Kind: models.AuditSignIn, UserID: approved.UserID, ActorID: approved.UserID,
		SessionID: tokens.SessionID, Detail: "app " + approved.ClientName + ", approved from a browser with code " +
			models.FormatUserCode(approved.UserCode)})
	return answerTokens(c, tokens)
}

// pollMessages are the words of each poll answer (models.Poll*).
var pollMessages = map[string]string{
	models.PollPending:  "The sign-in has not been approved yet. Poll again after the interval.",
	models.PollSlowDown: "Polled too soon. Wait the new interval between polls.",
	models.PollDenied:   "The sign-in was denied, or its approval no longer holds. Start again.",
	models.PollExpired:  "The code expired before it was approved. Ask for a new one.",
	models.PollInvalid:  "The device code is not valid, or its tokens were already given.",
}
