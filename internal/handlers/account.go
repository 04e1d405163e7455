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

// account shows the profile page. Its data comes from the session (kept
// fresh in Redis by SetProfile), so it costs no Postgres query.
func (h *Handlers) account(c echo.Context) error {
	p := session.Current(c.Request().Context())
	page := views.AccountPage{
		Profile:  views.ProfileForm{Name: p.Name, Email: p.Email},
		Password: views.PasswordForm{RevokeOthers: true},
	}
	page.Unverified = unverifiedHint(c, p.UserID) // verify.go: no query on this page
	page.AlertsOff = hasHint(c, alertsOffCookie, p.UserID)
	// An email change that waited for the password comes back re-filled,
	// for the user to check and save (pending.go).
	if name, email, ok := pendingProfile(c.QueryParams()); ok {
		page.Profile = views.ProfileForm{Name: name, Email: email}
		page.EmailChange = true
	}
	return h.render(c, http.StatusOK, views.AccountView(page))
}

func (h *Handlers) saveProfile(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	f := views.ProfileForm{Name: formValue(c, "name"), Email: formValue(c, "email"), Errors: views.FieldErrors{}}
	page := views.AccountPage{Profile: f, Password: views.PasswordForm{RevokeOthers: true}, AlertsOff: hasHint(c, alertsOffCookie, p.UserID)}
	email := checkProfile(f.Errors, f.Name, f.Email)
	if len(f.Errors) > 0 {
		return h.render(c, http.StatusUnprocessableEntity, views.AccountView(page))
	}
	// Changing the email changes who can sign in: a sensitive action. Any
	// change of the stored (canonical) address counts, compared byte for
	// byte: a case-insensitive comparison would fold letters ("ſ" to "s")
	// that make another address.
	if email != p.Email && !h.recentlyAuthenticated(c) {
		return h.askToConfirm(c)
	}
	// The name changes now; a new address only once its owner opens the
	// link mailed to it (emailchange.go).
	if email != p.Email {
		if _, err := h.users.ByEmail(ctx, email); err == nil {
			f.Errors["email"] = "Another account already uses this email."
			return h.render(c, http.StatusUnprocessableEntity, views.AccountView(page))
		} else if !errors.Is(err, models.ErrNotFound) {
			return err
		}
	}
	err := h.store.InTx(ctx, func(tx *models.Tx) error {
		if err := tx.Users().UpdateProfile(ctx, p.UserID, f.Name, p.Email); err != nil || email == p.Email {
			return err
		}
		return h.requestEmailChange(ctx, tx, c, &models.User{ID: p.UserID, Name: f.Name, Email: p.Email}, email)
	})
	if err != nil {
		return err
	}
	if err := h.sessions.SetProfile(p.UserID, f.Name, p.Email, p.Role); err != nil {
		return err
	}
	if email != p.Email {
		h.wakeMail()
		return h.redirect(c, "/account", flashEmailChangeSent)
	}
	return h.redirect(c, "/account", flashProfileSaved)
}

func (h *Handlers) changePassword(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	current, next := c.FormValue("current_password"), c.FormValue("new_password")
	f := views.PasswordForm{RevokeOthers: formBool(c, "revoke_others"), Errors: views.FieldErrors{}}
	page := views.AccountPage{Profile: views.ProfileForm{Name: p.Name, Email: p.Email}, Password: f, AlertsOff: hasHint(c, alertsOffCookie, p.UserID)}
	if current == "" {
		f.Errors["current_password"] = "Enter your current password."
	}
	checkNewPassword(f.Errors, "new_password", next)
	if len(f.Errors) > 0 {
		return h.render(c, http.StatusUnprocessableEntity, views.AccountView(page))
	}
	_, err := h.checkPassword(c, passwordCheck{email: p.Email, userID: p.UserID, password: current, where: "when changing password"})
	if status, msg, ok := formProblem(err, "That is not your current password."); ok {
		f.Errors["current_password"] = msg
		return h.render(c, status, views.AccountView(page))
	} else if err != nil {
		return err
	}
	hash, err := h.hasher.Hash(ctx, next)
	if errors.Is(err, password.ErrBusy) {
		h.metrics.Throttled(metrics.ThrottleBusy)
		r := busy(c)
		f.Errors["new_password"] = r.message
		return h.render(c, r.status, views.AccountView(page))
	} else if err != nil {
		return err
	}
	if err := h.users.SetPasswordHash(ctx, p.UserID, hash); err != nil {
		return err
	}
	// The password has changed. What keeps a thief out comes first, and
	// runs whatever the step before it did: the other sessions end, the
	// change is recorded, and only then does this session get a new token.
	event := models.AuditEvent{Kind: models.AuditPasswordChanged, UserID: &p.UserID, SessionID: p.SessionID}
	flash := flashPasswordChanged
	var revokeErr error
	if f.RevokeOthers {
		var n int
		n, revokeErr = h.sessions.RevokeAll(ctx, p.UserID, []string{p.SessionID}, models.EndPasswordChanged, &p.UserID)
		event.Detail = "other devices signed out: " + sessionCount(n)
		if revokeErr != nil {
			event.Detail = "other devices could not be signed out"
		}
		flash = flashPasswordAndRest
	}
	h.record(c, event)
	if revokeErr != nil {
		return revokeErr
	}
	if err := h.sessions.Renew(ctx); errors.Is(err, session.ErrNotFound) {
		// This session was ended meanwhile (from another device, or by
		// an administrator); the new password stands.
		return h.redirect(c, "/signin", flashPasswordEnded)
	} else if err != nil {
		return err
	}
	return h.redirect(c, "/account", flash)
}
