package handlers

import (
	"encoding/json"
	"errors"
	"mime"
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
// code (devicePoll) and gets its tokens once. The states live in Postgres
// (models.DeviceStore).

// Device codes one client address may ask for per deviceCodeWindow: each
// keeps a row until it expires. A CLI asks once per sign-in.
const (
	deviceCodesPerIP = 30
	deviceCodeWindow = 10 * time.Minute
)

// deviceGrantType is the grant type a device-code poll names.
const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// apiError is an API answer that is not a success: an OAuth-style error
// code a program can act on and a message a person can read.
func apiError(c echo.Context, status int, code, message string) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(status, map[string]string{"error": code, "message": message})
}

// apiFields reads the named fields of an API request's body, which is
// form-encoded (as RFC 6749 and 8628 say) or a JSON object of strings. A
// field missing is "". Anything else (another content type, malformed
// JSON, a field that is not a string, text that is not valid UTF-8 or holds
// a NUL) is a 4xx answer, already written: ok is false.
func apiFields(c echo.Context, names ...string) (fields map[string]string, ok bool, err error) {
	r := c.Request()
	fields = map[string]string{}
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	switch mt {
	case echo.MIMEApplicationForm:
		if err := r.ParseForm(); err != nil {
			var he *echo.HTTPError
			if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge {
				return nil, false, apiError(c, he.Code, "invalid_request", "The request body is too large.")
			}
			return nil, false, apiError(c, http.StatusBadRequest, "invalid_request", "The form could not be read.")
		}
		if !validText(r.PostForm) {
			return nil, false, apiError(c, http.StatusBadRequest, "invalid_request", "The request contains bytes that are not text.")
		}
		for _, n := range names {
			fields[n] = strings.TrimSpace(r.PostForm.Get(n))
		}
	case echo.MIMEApplicationJSON:
		var body map[string]any
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&body); err != nil || dec.More() {
			var maxErr *http.MaxBytesError
			if errors.As(err, &maxErr) {
				return nil, false, apiError(c, http.StatusRequestEntityTooLarge, "invalid_request", "The request body is too large.")
			}
			return nil, false, apiError(c, http.StatusBadRequest, "invalid_request", "The body is not a JSON object.")
		}
		values := url.Values{}
		for _, n := range names {
			v, present := body[n]
			if !present || v == nil {
				continue
			}
			s, isString := v.(string)
			if !isString {
				return nil, false, apiError(c, http.StatusBadRequest, "invalid_request", "The field "+n+" must be a string.")
			}
			values.Set(n, s)
			fields[n] = strings.TrimSpace(s)
		}
		if !validText(values) {
			return nil, false, apiError(c, http.StatusBadRequest, "invalid_request", "The request contains bytes that are not text.")
		}
	default:
		return nil, false, apiError(c, http.StatusUnsupportedMediaType, "invalid_request",
			"Send the fields form-encoded (application/x-www-form-urlencoded) or as JSON (application/json).")
	}
	return fields, true, nil
}

// deviceCode starts a device-flow sign-in: POST /api/v1/device/code with
// client_name.
func (h *Handlers) deviceCode(c echo.Context) error {
	ctx := c.Request().Context()
	f, ok, err := apiFields(c, "client_name")
	if !ok {
		return err
	}
	name := f["client_name"]
	if msg := models.CheckClientName(name); msg != "" {
		return apiError(c, http.StatusBadRequest, "invalid_request", msg)
	}
	wait, err := h.throttle.Take(ctx, throttle.DeviceCodeKey(c.RealIP()), deviceCodesPerIP, deviceCodeWindow)
	if err != nil {
		return err
	}
	if wait > 0 {
		h.metrics.Throttled(metrics.ThrottleAttempts)
		setRetryAfter(c, wait)
		return apiError(c, http.StatusTooManyRequests, "slow_down", "Too many codes asked for from your network. Try again in "+waitWords(wait)+".")
	}
	d, deviceCode, err := h.deviceAuths.Create(ctx, models.NewDeviceAuthorization{
		ClientName: name, IP: c.RealIP(), UserAgent: session.UserAgent(c.Request()),
	}, h.now())
	if err != nil {
		return err
	}
	userCode := models.FormatUserCode(d.UserCode)
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, map[string]any{
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
