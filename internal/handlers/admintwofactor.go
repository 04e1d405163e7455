package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
)

// Second factors on the admin side: REQUIRE_2FA_FOR_ADMINS, and an
// administrator's reset of a user's second factor.

// requireAdminFactor sends an administrator without a second factor to
// set one up, when REQUIRE_2FA_FOR_ADMINS is on. It runs after
// requireAdmin, so only administrators reach it.
func (h *Handlers) requireAdminFactor(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !h.require2FAForAdmins {
			return next(c)
		}
		p := session.Current(c.Request().Context())
		has, err := h.factors.HasSecondFactor(c.Request().Context(), p.UserID)
		if err != nil {
			return err
		}
		if !has {
			if isHTMX(c) {
				c.Response().Header().Set("HX-Redirect", "/account/2fa")
				h.setFlash(c, flashAdminNeeds2FA)
				return c.NoContent(http.StatusOK)
			}
			return h.redirect(c, "/account/2fa", flashAdminNeeds2FA)
		}
		return next(c)
	}
}

// adminResetTwoFactor removes a user's authenticator app and recovery
// codes (they lost their phone, say), and ends their sessions: whoever
// holds one may be who has the phone. The administrator's own session
// stays when they reset their own account.
func (h *Handlers) adminResetTwoFactor(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.targetUser(c)
	if err != nil {
		return err
	}
	me := session.Current(ctx)
	var keep []string
	if me.UserID == u.ID {
		keep = []string{me.SessionID}
	}
	// The factors go, the sessions end and the owner's notice is queued in
	// one transaction (sessions end before the commit).
	var had bool
	var n int64
	err = h.store.InTx(ctx, func(tx *models.Tx) error {
		var err error
		if had, err = tx.Factors().RemoveSecondFactors(ctx, u.ID); err != nil {
			return err
		}
		if n, err = tx.Passkeys().RemoveAll(ctx, u.ID); err != nil {
			return err
		}
		if !had && n == 0 {
			return nil
		}
		ended, err := h.sessions.RevokeAll(ctx, u.ID, keep, models.EndRevokedByAdmin, &me.UserID)
		if err != nil {
			return err
		}
		return h.securityNotice(c, tx, models.AuditEvent{Kind: models.AuditTwoFactorReset, UserID: &u.ID,
			Detail: plural(n, "passkey") + " removed, " + sessionCount(ended) + " ended"})
	})
	if err != nil {
		return err
	}
	if !had && n == 0 {
		return h.redirect(c, adminBack(c, u.ID), flashNoSecondFactor)
	}
	h.wakeMail()
	return h.redirect(c, adminBack(c, u.ID), flashTwoFactorReset)
}
