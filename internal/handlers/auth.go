package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// Messages of the sign-in form. Unknown email and wrong password get the
// same one, so the form does not reveal who has an account.
const (
	msgBadCredentials = "Incorrect email or password."
	msgDisabled       = "This account has been disabled. Contact an administrator."
)

// home sends visitors to their profile, or to sign in.
func (h *Handlers) home(c echo.Context) error {
	return c.Redirect(http.StatusSeeOther, "/account")
}

func (h *Handlers) signUpForm(c echo.Context) error {
	if session.Current(c.Request().Context()) != nil {
		return c.Redirect(http.StatusSeeOther, "/account")
	}
	return h.render(c, http.StatusOK, views.SignUpPage(views.SignUpForm{}))
}

func (h *Handlers) signUp(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.SignUpForm{Name: formValue(c, "name"), Email: formValue(c, "email"), Errors: views.FieldErrors{}}
	pw := c.FormValue("password")
	email := checkProfile(f.Errors, f.Name, f.Email)
	checkNewPassword(f.Errors, "password", pw)
	if len(f.Errors) > 0 {
		return h.render(c, http.StatusUnprocessableEntity, views.SignUpPage(f))
	}
	refuse := func(r *refusal) error {
		f.Errors["email"] = r.message
		return h.render(c, r.status, views.SignUpPage(f))
	}
	attempt, err := h.beginSignUp(c)
	if r, ok := asRefusal(err); ok {
		return refuse(r)
	} else if err != nil {
		return err
	}
	hash, err := h.hasher.Hash(ctx, pw)
	if err != nil {
		h.settle(ctx, attempt.Cancel)
		if errors.Is(err, password.ErrBusy) {
			h.metrics.Throttled(metrics.ThrottleBusy)
			return refuse(busy(c))
		}
		return err
	}
	u := &models.User{Name: f.Name, Email: email, PasswordHash: hash}
	device := h.browserDevice(c)
	// The account, its verification mail and its first device (this
	// browser: signing in here later alerts nobody) are written together.
	err = h.store.InTx(ctx, func(tx *models.Tx) error {
		if err := tx.Users().Create(ctx, u); err != nil {
			return err
		}
		if _, err := tx.SeeDevice(ctx, knownDevice(c, u.ID, device, h.now())); err != nil {
			return err
		}
		e := h.requestEvent(c, "", u.ID)
		e.ActorID, e.SessionID = &u.ID, ""
		return h.sendVerification(ctx, tx, u, e)
	})
	if errors.Is(err, models.ErrConflict) {
		// The attempt stays counted: a failure on the client's address.
		f.Errors["email"] = "An account with this email already exists. Sign in instead?"
		return h.render(c, http.StatusUnprocessableEntity, views.SignUpPage(f))
	} else if err != nil {
		h.settle(ctx, attempt.Cancel)
		return err
	}
	h.settle(ctx, attempt.Succeed)
	h.wakeMail()
	if err := h.endCurrent(c); err != nil {
		return err
	}
	sid, err := h.sessions.Start(c, u, false)
	if err != nil {
		return err
	}
	h.rotateCSRF(c)
	h.setUnverifiedHint(c, u)
	h.setDeviceCookie(c, device)
	h.setAlertsHint(c, u.ID, false)
	h.record(c, models.AuditEvent{Kind: models.AuditSignUp, UserID: &u.ID, ActorID: &u.ID, SessionID: sid})
	return h.redirect(c, "/account", flashWelcome)
}

func (h *Handlers) signInForm(c echo.Context) error {
	next := safeNext(c.QueryParam("next"))
	if session.Current(c.Request().Context()) != nil {
		if next == "" {
			next = "/account"
		}
		return c.Redirect(http.StatusSeeOther, next)
	}
	return h.render(c, http.StatusOK, views.SignInPage(views.SignInForm{Next: next}))
}

func (h *Handlers) signIn(c echo.Context) error {
	f := views.SignInForm{
		Email:    formValue(c, "email"),
		Next:     safeNext(c.FormValue("next")),
		Remember: formBool(c, "remember"),
	}
	pw := c.FormValue("password")
	if f.Email == "" || pw == "" {
		h.metrics.SignIn(metrics.SignInInvalid)
		f.Error = "Enter your email and password."
		return h.render(c, http.StatusUnprocessableEntity, views.SignInPage(f))
	}
	fail := func(status int, msg string) error {
		f.Error = msg
		return h.render(c, status, views.SignInPage(f))
	}
	// Accounts are found, and throttled, by the canonical form of their
	// address, whatever case or compatibility form was typed. An address
	// without one names no account, and fails as an unknown one does.
	email, err := models.NormalizeEmail(f.Email)
	if err != nil {
		email = f.Email
	}
	// Unknown email and wrong password count and read alike, so neither the
	// answer nor throttling reveals who has an account.
	u, err := h.checkPassword(c, passwordCheck{email: email, password: pw})
	if status, msg, ok := formProblem(err, msgBadCredentials); ok {
		h.metrics.SignIn(signInResult(status))
		return fail(status, msg)
	} else if err != nil {
		return err
	}
	// Only now, with the right password, may the form say the account is
	// disabled.
	disabled := func() error {
		h.metrics.SignIn(metrics.SignInDisabled)
		h.record(c, models.AuditEvent{Kind: models.AuditSignInFailed, UserID: &u.ID, Detail: "account disabled"})
		return fail(http.StatusUnprocessableEntity, msgDisabled)
	}
	if u.Disabled() {
		return disabled()
	}
	// An account with a second factor gets no session yet: the code step
	// comes first (signin2fa.go).
	if has, err := h.factors.HasSecondFactor(c.Request().Context(), u.ID); err != nil {
		return err
	} else if has {
		return h.beginSecondStep(c, u, f)
	}
	if err := h.endCurrent(c); err != nil {
		return err
	}
	sid, err := h.sessions.Start(c, u, f.Remember)
	if errors.Is(err, session.ErrAccountDisabled) {
		return disabled()
	} else if err != nil {
		return err
	}
	if err := h.signedInFrom(c, u, sid); err != nil {
		return err
	}
	h.rotateCSRF(c)
	h.setUnverifiedHint(c, u)
	h.metrics.SignIn(metrics.SignInSuccess)
	h.record(c, models.AuditEvent{Kind: models.AuditSignIn, UserID: &u.ID, ActorID: &u.ID, SessionID: sid})
	next := f.Next
	if next == "" {
		next = "/account"
	}
	return h.redirect(c, next, flashSignedIn)
}

// signInResult names the sign-in metric's result for a refused form's
// status (formProblem).
func signInResult(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return metrics.SignInThrottled
	case http.StatusServiceUnavailable:
		return metrics.SignInBusy
	}
	return metrics.SignInFailed
}

// endCurrent signs out the session the request arrived with, if any, before
// another account signs in on the same browser.
func (h *Handlers) endCurrent(c echo.Context) error {
	p := session.Current(c.Request().Context())
	if p == nil {
		return nil
	}
	if err := h.sessions.SignOut(c.Request().Context()); err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditSignOut, UserID: &p.UserID, ActorID: &p.UserID, SessionID: p.SessionID})
	return nil
}

func (h *Handlers) signOut(c echo.Context) error {
	if err := h.endCurrent(c); err != nil {
		return err
	}
	h.rotateCSRF(c)
	return h.redirect(c, "/signin", flashSignedOut)
}
