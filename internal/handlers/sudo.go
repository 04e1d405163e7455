package handlers

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/session"
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
	pw := c.FormValue("password")
	if pw == "" {
		f.Error = "Enter your password."
		return h.render(c, http.StatusUnprocessableEntity, views.ConfirmView(f))
	}
	_, err := h.checkPassword(c, passwordCheck{email: p.Email, userID: p.UserID, password: pw, where: "when confirming"})
	if status, msg, ok := formProblem(err, "That is not your password."); ok {
		f.Error = msg
		return h.render(c, status, views.ConfirmView(f))
	} else if err != nil {
		return err
	}
	// Proving the password is a privilege change: new token.
	if err := h.sessions.Renew(ctx); err != nil {
		return err
	}
	next := f.Next
	if next == "" || strings.HasPrefix(next, "/account/confirm") {
		next = "/account"
	}
	return h.redirect(c, next, flashConfirmed)
}
