package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/views"
)

// Password recovery: GET/POST /password/forgot asks for a link, GET
// /password/reset?token= shows the form, POST /password/reset sets the
// password.

func resetMail(base *url.URL, u *models.User, token string) views.ResetMail {
	return views.ResetMail{Name: u.Name, Link: link(base, "/password/reset", url.Values{"token": {token}})}
}

func (h *Handlers) forgotForm(c echo.Context) error {
	return h.render(c, http.StatusOK, views.ForgotPage(views.ForgotForm{}))
}

// forgot takes a "forgot password" request. Whether or not the address
// has an account, it does the same work (count the request for the client
// and for the address, write one row) and gives the same answer; the mail
// worker decides in the background whether a mail goes out
// (AccountMail.ProcessResetRequests). At most resetMailsPerAddress
// requests per address per hour get that far: further ones are answered
// the same and send nothing.
func (h *Handlers) forgot(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.ForgotForm{Email: formValue(c, "email"), Errors: views.FieldErrors{}}
	wait, err := h.throttle.Take(ctx, mailLimitKey("forgot-ip", throttle.IPKey(c.RealIP())), forgotRequestsPerIP, time.Hour)
	if err != nil {
		return err
	}
	if wait > 0 {
		setRetryAfter(c, wait)
		f.Errors["email"] = "Too many requests from your network. Try again in " + waitWords(wait) + "."
		return h.render(c, http.StatusTooManyRequests, views.ForgotPage(f))
	}
	email, err := models.NormalizeEmail(f.Email)
	if err != nil {
		f.Errors["email"] = err.Error()
		return h.render(c, http.StatusUnprocessableEntity, views.ForgotPage(f))
	}
	wait, err = h.throttle.Take(ctx, mailLimitKey("reset", email), resetMailsPerAddress, time.Hour)
	if err != nil {
		return err
	}
	if wait == 0 {
		req := models.ResetRequest{Email: email, IP: c.RealIP(), UserAgent: session.UserAgent(c.Request()), RequestedAt: h.now()}
		if err := h.store.AddResetRequest(ctx, req); err != nil {
			return err
		}
		h.wakeMail()
	}
	return h.render(c, http.StatusOK, views.ForgotSentPage())
}

// errLinkInvalid answers a mailed link that is forged, altered, used,
// expired, or meant for something else.
var errLinkInvalid = &publicError{status: http.StatusBadRequest, title: "This link no longer works",
	message: "The link is invalid, has expired, or was already used. Ask for a new one."}

// errAccountDisabled answers a link of a disabled account.
var errAccountDisabled = &publicError{status: http.StatusForbidden, title: "Account disabled",
	message: "This account has been disabled. Contact an administrator."}

// noReferrer keeps a page's URL, which holds a token, out of the Referer
// of everything the page loads or links to.
func noReferrer(c echo.Context) { c.Response().Header().Set("Referrer-Policy", "no-referrer") }

func (h *Handlers) resetForm(c echo.Context) error {
	noReferrer(c)
	token := c.QueryParam("token")
	if _, err := h.tokenUser(c, token, models.TokenResetPassword); err != nil {
		return err
	}
	return h.render(c, http.StatusOK, resetPage(c, views.ResetForm{Token: token}))
}

// tokenUser is the enabled account a valid, unused token of purpose names.
func (h *Handlers) tokenUser(c echo.Context, token string, purpose models.TokenPurpose) (*models.User, error) {
	ctx := c.Request().Context()
	t, err := h.store.PeekToken(ctx, token, purpose, h.now())
	if errors.Is(err, models.ErrTokenInvalid) {
		return nil, errLinkInvalid
	} else if err != nil {
		return nil, err
	}
	u, err := h.users.ByID(ctx, t.UserID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, errLinkInvalid
	} else if err != nil {
		return nil, err
	}
	if u.Disabled() {
		return nil, errAccountDisabled
	}
	return u, nil
}

// reset sets a new password with a reset link. The token is used in the
// transaction that sets the password, so of two uses at once exactly one
// succeeds; every session of the account ends (before the commit: if that
// fails, nothing changed and the link still works); the owner gets a
// notice. Nobody is signed in by it.
func (h *Handlers) reset(c echo.Context) error {
	noReferrer(c)
	ctx := c.Request().Context()
	token, pw := c.FormValue("token"), c.FormValue("new_password")
	if !models.WellFormedToken(token) {
		return errLinkInvalid
	}
	// A token is a secret checked like a password: the client's failures
	// count against the same limit.
	attempt, wait, err := h.throttle.Begin(ctx, throttle.IPKey(c.RealIP()))
	if err != nil {
		return err
	}
	if wait > 0 {
		r := tooManyAttempts(c, wait)
		return &publicError{status: r.status, title: "Too many attempts", message: r.message}
	}
	_, err = h.tokenUser(c, token, models.TokenResetPassword)
	if errors.Is(err, errLinkInvalid) {
		h.settle(ctx, attempt.Fail)
		return err
	} else if err != nil {
		h.settle(ctx, attempt.Cancel)
		return err
	}
	f := views.ResetForm{Token: token, Errors: views.FieldErrors{}}
	checkNewPassword(f.Errors, "new_password", pw)
	if len(f.Errors) > 0 {
		h.settle(ctx, attempt.Cancel)
		return h.render(c, http.StatusUnprocessableEntity, resetPage(c, f))
	}
	hash, err := h.hasher.Hash(ctx, pw)
	if err != nil {
		h.settle(ctx, attempt.Cancel)
		if errors.Is(err, password.ErrBusy) {
			r := busy(c)
			f.Errors["new_password"] = r.message
			return h.render(c, r.status, resetPage(c, f))
		}
		return err
	}
	var ended int
	err = h.store.InTx(ctx, func(tx *models.Tx) error {
		now := h.now()
		t, err := tx.UseToken(ctx, token, models.TokenResetPassword, now)
		if err != nil {
			return err
		}
		// Locked until the commit: a disable racing this reset waits, and
		// is seen.
		u, err := tx.LockUser(ctx, t.UserID)
		if errors.Is(err, models.ErrNotFound) {
			return models.ErrTokenInvalid
		} else if err != nil {
			return err
		}
		if u.Disabled() {
			return errAccountDisabled
		}
		if err := tx.Users().SetPasswordHash(ctx, u.ID, hash); err != nil {
			return err
		}
		if err := tx.RetireTokens(ctx, u.ID, models.TokenResetPassword, now); err != nil {
			return err
		}
		notice := views.PasswordResetNotice{Name: u.Name, ForgotLink: link(h.baseURL, "/password/forgot", nil)}
		if err := enqueue(ctx, tx, "password_reset_notice", u, notice); err != nil {
			return err
		}
		ended, err = h.sessions.RevokeAll(ctx, u.ID, nil, models.EndPasswordReset, nil)
		if err != nil {
			return err
		}
		e := h.requestEvent(c, models.AuditPasswordReset, u.ID)
		e.ActorID, e.SessionID = &u.ID, ""
		e.Detail = "with a link sent by e-mail; sessions ended: " + sessionCount(ended)
		return tx.Audit(ctx, e)
	})
	switch {
	case errors.Is(err, models.ErrTokenInvalid):
		h.settle(ctx, attempt.Fail)
		return errLinkInvalid
	case err != nil:
		h.settle(ctx, attempt.Cancel)
		return err
	}
	h.settle(ctx, attempt.Succeed)
	h.wakeMail()
	h.rotateCSRF(c)
	return h.redirect(c, "/signin", flashPasswordReset)
}

// resetPage is the page that carries a reset token in its form; like every
// page holding a secret, it is sent uncompressed (compress.go).
func resetPage(c echo.Context, f views.ResetForm) templ.Component {
	c.Set(noCompression, true)
	return views.ResetPage(f)
}
