package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// account shows the profile page. Its data comes from the session (kept
// fresh in Redis by SetProfile), so it costs no Postgres query.
func (h *Handlers) account(c echo.Context) error {
	p := session.Current(c.Request().Context())
	return h.render(c, http.StatusOK, views.AccountView(views.AccountPage{
		Profile:  views.ProfileForm{Name: p.Name, Email: p.Email},
		Password: views.PasswordForm{RevokeOthers: true},
	}))
}

func (h *Handlers) saveProfile(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	f := views.ProfileForm{Name: formValue(c, "name"), Email: formValue(c, "email"), Errors: views.FieldErrors{}}
	page := views.AccountPage{Profile: f, Password: views.PasswordForm{RevokeOthers: true}}
	checkProfile(f.Errors, f.Name, f.Email)
	if len(f.Errors) > 0 {
		return h.render(c, http.StatusUnprocessableEntity, views.AccountView(page))
	}
	// Changing the email changes who can sign in: a sensitive action.
	if !strings.EqualFold(f.Email, p.Email) && !h.recentlyAuthenticated(c) {
		return h.askToConfirm(c)
	}
	if err := h.users.UpdateProfile(ctx, p.UserID, f.Name, f.Email); errors.Is(err, models.ErrConflict) {
		f.Errors["email"] = "Another account already uses this email."
		return h.render(c, http.StatusUnprocessableEntity, views.AccountView(page))
	} else if err != nil {
		return err
	}
	if err := h.sessions.SetProfile(p.UserID, f.Name, f.Email, p.Role); err != nil {
		return err
	}
	if f.Email != p.Email {
		h.record(c, models.AuditEvent{Kind: models.AuditEmailChanged, UserID: &p.UserID, SessionID: p.SessionID,
			Detail: p.Email + " → " + f.Email})
	}
	return h.redirect(c, "/account", flashProfileSaved)
}

func (h *Handlers) changePassword(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	current, next := c.FormValue("current_password"), c.FormValue("new_password")
	f := views.PasswordForm{RevokeOthers: formBool(c, "revoke_others"), Errors: views.FieldErrors{}}
	page := views.AccountPage{Profile: views.ProfileForm{Name: p.Name, Email: p.Email}, Password: f}
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
		r := busy(c)
		f.Errors["new_password"] = r.message
		return h.render(c, r.status, views.AccountView(page))
	} else if err != nil {
		return err
	}
	if err := h.users.SetPasswordHash(ctx, p.UserID, hash); err != nil {
		return err
	}
	if err := h.sessions.Renew(ctx); err != nil {
		return err
	}
	if !f.RevokeOthers {
		h.record(c, models.AuditEvent{Kind: models.AuditPasswordChanged, UserID: &p.UserID, SessionID: p.SessionID})
		return h.redirect(c, "/account", flashPasswordChanged)
	}
	n, err := h.sessions.RevokeAll(ctx, p.UserID, []string{p.SessionID}, models.EndPasswordChanged, &p.UserID)
	if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditPasswordChanged, UserID: &p.UserID, SessionID: p.SessionID,
		Detail: "other devices signed out: " + sessionCount(n)})
	return h.redirect(c, "/account", flashPasswordAndRest)
}
