package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// Re-authentication ("sudo mode"): sensitive actions need a password proved
// within the last reauthWindow. Without one, the action is not performed:
// the user is sent to confirm their password, on a page that names the
// action, and then to the action's confirmation page, its form ready, to
// submit it themselves (pending.go). A POST is never replayed.

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

// askToConfirm sends the user to the confirm-password page, and from there
// to the confirmation page of the action refused (pendingURL).
func (h *Handlers) askToConfirm(c echo.Context) error {
	to := "/account/confirm?next=" + url.QueryEscape(pendingURL(c))
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
	f := views.ConfirmForm{Next: safeNext(c.QueryParam("next"))}
	var err error
	if f.Pending, err = h.pendingForConfirm(c, f.Next); err != nil {
		return err
	}
	if f.Factors, err = h.factors.Factors(c.Request().Context(), session.Current(c.Request().Context()).UserID); err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.ConfirmView(f))
}

func (h *Handlers) confirm(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	f := views.ConfirmForm{Next: safeNext(c.FormValue("next"))}
	var err error
	if f.Pending, err = h.pendingForConfirm(c, f.Next); err != nil {
		return err
	}
	// A user with a second factor proves it too (twofactor.go). The
	// password is checked first, so a flood of guesses waits on the
	// hasher's bounded queue and nothing else.
	problem := func(status int, msg string) error {
		var err error
		if f.Factors, err = h.factors.Factors(ctx, p.UserID); err != nil {
			return err
		}
		f.Error = msg
		return h.render(c, status, views.ConfirmView(f))
	}
	pw, code := c.FormValue("password"), c.FormValue("code")
	if pw == "" {
		return problem(http.StatusUnprocessableEntity, "Enter your password.")
	}
	u, err := h.checkPassword(c, passwordCheck{email: p.Email, userID: p.UserID, password: pw, where: "when confirming"})
	if status, msg, ok := formProblem(err, "That is not your password."); ok {
		return problem(status, msg)
	} else if err != nil {
		return err
	}
	if f.Factors, err = h.factors.Factors(ctx, p.UserID); err != nil {
		return err
	}
	switch {
	case !f.Factors.TOTP && f.Factors.Passkeys > 0:
		// The password alone is one factor: this user confirms with their
		// passkey (passkeys.go).
		f.Error = "Confirm with your passkey."
		return h.render(c, http.StatusUnprocessableEntity, views.ConfirmView(f))
	case f.Factors.TOTP && code == "":
		f.Error = "Enter the code from your authenticator app (or a recovery code) as well as your password."
		return h.render(c, http.StatusUnprocessableEntity, views.ConfirmView(f))
	}
	if f.Factors.TOTP {
		_, err := h.checkSecondFactor(c, u, code, "when confirming")
		if status, msg, ok := codeProblem(err); ok {
			f.Error = msg
			return h.render(c, status, views.ConfirmView(f))
		} else if err != nil {
			return err
		}
	}
	// Proving the password is a privilege change: new token.
	if err := h.sessions.Renew(ctx); errors.Is(err, session.ErrNotFound) {
		return h.redirect(c, "/signin", flashConfirmEnded)
	} else if err != nil {
		return err
	}
	next := f.Next
	if next == "" || strings.HasPrefix(next, "/account/confirm") {
		next = "/account"
	}
	return h.redirect(c, next, flashConfirmed)
}
