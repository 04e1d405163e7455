package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// endedShown is how many ended sessions the Devices page lists.
const endedShown = 10

func (h *Handlers) devices(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	list, err := h.sessions.List(ctx, p.UserID, endedShown)
	if err != nil {
		return err
	}
	now := h.now()
	return h.render(c, http.StatusOK, views.DevicesView(views.DevicesPage{
		Sessions: views.SessionTable{
			Active: list.Active, CurrentID: p.SessionID, Now: now, RevokeAction: views.DevicesRevokeAction,
			Confirm:        views.RevokeConsequence,
			IdleTimeout:    h.sessions.IdleTimeout(),
			AppIdleTimeout: h.sessions.AppIdleTimeout(),
		},
		Ended: views.EndedTable{Ended: list.Ended, Now: now},
	}))
}

func (h *Handlers) revokeSession(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	id := c.Param("id")
	if !session.ValidPublicID(id) {
		return notFound()
	}
	if id == p.SessionID {
		// Revoking the session in hand is signing out: no password needed.
		return h.signOut(c)
	}
	// Ending another session is as sensitive as ending them all (ASVS
	// 3.3.4, 5.0 7.5.2): both need a recent password.
	if !h.recentlyAuthenticated(c) {
		return h.askToConfirm(c)
	}
	err := h.sessions.Revoke(ctx, p.UserID, id, models.EndRevokedByUser, &p.UserID)
	if errors.Is(err, session.ErrNotFound) {
		if isHTMX(c) {
			// Ended meanwhile (from another tab, say): the page in hand is
			// stale, so answer with the list as it is now.
			htmxFlash(c, flashAlreadyEnded)
			return h.devices(c)
		}
		return notFound()
	} else if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditSessionRevoked, UserID: &p.UserID, SessionID: id})
	if isHTMX(c) {
		// Answer with the Devices page as it is now; htmx swaps its
		// #sessions region in place of the old one.
		htmxFlash(c, flashSessionRevoked)
		return h.devices(c)
	}
	return h.redirect(c, "/account/sessions", flashSessionRevoked)
}

func (h *Handlers) revokeOtherSessions(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	n, err := h.sessions.RevokeAll(ctx, p.UserID, []string{p.SessionID}, models.EndRevokedByUser, &p.UserID)
	if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditSessionsRevoked, UserID: &p.UserID, Detail: sessionCount(n)})
	return h.redirect(c, "/account/sessions", flashOthersRevoked)
}

// sessionCount reads like "3 sessions".
func sessionCount(n int) string {
	if n == 1 {
		return "1 session"
	}
	return strconv.Itoa(n) + " sessions"
}
