package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/views"
)

// Re-authentication ("sudo mode"): sensitive actions need a password proved
// within the last reauthWindow. Without one, the action is not performed:
// the user is sent to confirm their password and then back to the page the
// action was on, to do it again with a fresh form. A POST is never replayed.

// recentlyAuthenticated reports whether the request's user proved their
// password recently enough for a sensitive action.
func (h *Handlers) recentlyAuthenticated(c echo.Context) bool {
	p := session.Current(c.Request().Context())
	return p != nil && h.now().Sub(p.AuthAt) < h.reauthWindow
}

// requireRecentAuth guards sensitive routes with re-authentication.
func (h *Handlers) requireRecentAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if h.recentlyAuthenticated(c) {
			return next(c)
		}
		return h.askToConfirm(c)
	}
}

// askToConfirm sends the user to the confirm-password page, remembering the
// page they came from (same site only) so they return there afterwards.
func (h *Handlers) askToConfirm(c echo.Context) error {
	back := sameSiteReferer(c)
	if back == "" {
		back = "/account"
	}
	to := "/account/confirm?next=" + url.QueryEscape(back)
	if isHTMX(c) {
		// htmx would follow a 303 in the background; tell it to navigate.
		c.Response().Header().Set("HX-Redirect", to)
		return c.NoContent(http.StatusOK)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// sameSiteReferer returns the path of the Referer when it is a page of this
// site, else "".
func sameSiteReferer(c echo.Context) string {
	ref, err := url.Parse(c.Request().Referer())
	if err != nil || ref.Host != c.Request().Host {
		return ""
	}
	return safeNext(ref.RequestURI())
}

func (h *Handlers) confirmForm(c echo.Context) error {
	next := safeNext(c.QueryParam("next"))
	return h.render(c, http.StatusOK, views.ConfirmView(views.ConfirmForm{Next: next}))
}

func (h *Handlers) confirm(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	f := views.ConfirmForm{Next: safeNext(c.FormValue("next"))}
	keys := []string{throttle.AccountKey(p.Email), throttle.IPKey(c.RealIP())}
	if wait, err := h.throttle.Check(ctx, keys...); err != nil {
		return err
	} else if wait > 0 {
		f.Error = tooManyAttemptsMessage(c, wait)
		return h.render(c, http.StatusTooManyRequests, views.ConfirmView(f))
	}
	u, err := h.users.ByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	pw := c.FormValue("password")
	if err := h.hasher.Verify(ctx, u.PasswordHash, pw); errors.Is(err, password.ErrMismatch) || pw == "" {
		h.record(c, models.AuditEvent{Kind: models.AuditSignInFailed, UserID: &p.UserID, SessionID: p.SessionID,
			Detail: "wrong password when confirming"})
		if _, err := h.throttle.Fail(ctx, keys...); err != nil {
			return err
		}
		f.Error = "That is not your password."
		return h.render(c, http.StatusUnprocessableEntity, views.ConfirmView(f))
	} else if err != nil {
		return err
	}
	// Proving the password is a privilege change: new token.
	if err := h.sessions.Renew(ctx); errors.Is(err, session.ErrNotFound) {
		return h.redirect(c, "/signin", flashConfirmEnded)
	} else if err != nil {
		return err
	}
	h.clearSignInFailures(ctx, p.Email)
	next := f.Next
	if next == "" || strings.HasPrefix(next, "/account/confirm") {
		next = "/account"
	}
	return h.redirect(c, next, flashConfirmed)
}
