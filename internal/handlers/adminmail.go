package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
)

// adminSendReset mails the user a password reset link (flow 5). The
// administrator never sees or sets the password: only the owner of the
// address can use the link.
func (h *Handlers) adminSendReset(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.targetUser(c)
	if err != nil {
		return err
	}
	if u.Disabled() {
		return &publicError{status: http.StatusConflict, title: "Account disabled",
			message: "A disabled account cannot reset its password. Enable it first."}
	}
	me := session.Current(ctx)
	err = h.store.InTx(ctx, func(tx *models.Tx) error {
		token, err := tx.IssueToken(ctx, models.MailToken{Purpose: models.TokenResetPassword, UserID: u.ID, Email: u.Email},
			resetTokenTTL, h.now())
		if err != nil {
			return err
		}
		if err := enqueue(ctx, tx, "password_reset", u, resetMail(h.baseURL, u, token)); err != nil {
			return err
		}
		e := h.requestEvent(c, models.AuditResetRequested, u.ID)
		e.ActorID, e.Detail = &me.UserID, "sent by an administrator"
		return tx.Audit(ctx, e)
	})
	if err != nil {
		return err
	}
	h.wakeMail()
	return h.redirect(c, adminBack(c, u.ID), flashResetSent)
}
