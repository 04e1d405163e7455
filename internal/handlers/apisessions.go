package handlers

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
)

// The session endpoints of the API: who am I, my sessions, end one, and
// re-authenticate. They take a bearer token or the session cookie alike,
// and follow the Devices page's rules.

// apiUser is the signed-in user as the API shows them.
type apiUser struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

// apiSessionView is a session as the API shows it. It never holds a
// token: sessions are named by their public id.
type apiSessionView struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"` // browser or app
	ClientName string     `json:"client_name,omitempty"`
	Browser    string     `json:"browser"`
	OS         string     `json:"os"`
	DeviceType string     `json:"device_type"`
	IP         string     `json:"ip"`
	AuthMethod string     `json:"auth_method"`
	Current    bool       `json:"current"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	ExpiresAt  time.Time  `json:"expires_at"` // the absolute lifetime's end
	IdleEndsAt *time.Time `json:"idle_expires_at,omitempty"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	EndReason  string     `json:"end_reason,omitempty"`
}

func (h *Handlers) sessionView(r models.SessionRecord, current string) apiSessionView {
	v := apiSessionView{ID: r.PublicID, Kind: r.Kind, ClientName: r.ClientName, Browser: r.Browser, OS: r.OS,
		DeviceType: r.DeviceType, IP: r.IP, AuthMethod: string(r.AuthMethod), Current: r.PublicID == current,
		CreatedAt: r.CreatedAt, LastSeenAt: r.LastSeenAt, ExpiresAt: r.ExpiresAt, EndedAt: r.EndedAt,
		EndReason: string(r.EndReason)}
	if v.Kind == "" {
		v.Kind = models.SessionBrowser
	}
	if r.Active() {
		idle := r.LastSeenAt.Add(h.sessions.IdleTimeout())
		if r.IsApp() {
			idle = r.AppIdleSince().Add(h.sessions.AppIdleTimeout())
		}
		v.IdleEndsAt = &idle
	}
	return v
}

// apiSession is "who am I": the signed-in user and the session in use.
func (h *Handlers) apiSession(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	rec, err := h.sessions.Records().ByPublicID(ctx, p.SessionID)
	if err != nil {
		return err
	}
	return apiJSON(c, http.StatusOK, map[string]any{
		"user":    apiUser{Name: p.Name, Email: p.Email, Role: p.Role},
		"session": h.sessionView(*rec, p.SessionID),
	})
}

// apiSessions lists the user's sessions as the Devices page does.
func (h *Handlers) apiSessions(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	list, err := h.sessions.List(ctx, p.UserID, endedShown)
	if err != nil {
		return err
	}
	active := make([]apiSessionView, 0, len(list.Active))
	for _, r := range list.Active {
		active = append(active, h.sessionView(r, p.SessionID))
	}
	ended := make([]apiSessionView, 0, len(list.Ended))
	for _, r := range list.Ended {
		ended = append(ended, h.sessionView(r, p.SessionID))
	}
	return apiJSON(c, http.StatusOK, map[string]any{"active": active, "ended": ended})
}

// apiEndSession ends one of the user's sessions. Ending the one in use is
// signing out; ending another needs a recent password proof, as on the
// Devices page (403 reauth_required: POST /api/v1/reauth first).
func (h *Handlers) apiEndSession(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	id := c.Param("id")
	if !session.ValidPublicID(id) {
		return apiErr(http.StatusNotFound, "not_found", "There is no such session.")
	}
	if id == p.SessionID {
		if err := h.sessions.SignOut(ctx); err != nil {
			return err
		}
		h.record(c, models.AuditEvent{Kind: models.AuditSignOut, UserID: &p.UserID, ActorID: &p.UserID, SessionID: p.SessionID})
		return apiJSON(c, http.StatusOK, map[string]string{"ended": id})
	}
	if !h.recentlyAuthenticated(c) {
		return apiErr(http.StatusForbidden, "reauth_required",
			"Ending another session needs a recent password: POST /api/v1/reauth, then try again.")
	}
	err := h.sessions.Revoke(ctx, p.UserID, id, models.EndRevokedByUser, &p.UserID)
	if errors.Is(err, session.ErrNotFound) {
		return apiErr(http.StatusNotFound, "not_found", "There is no such session, or it has already ended.")
	} else if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditSessionRevoked, UserID: &p.UserID, SessionID: id})
	return apiJSON(c, http.StatusOK, map[string]string{"ended": id})
}

// apiReauth proves the password (and second factor) again in the session
// in use, as the confirm-password page does, so that sensitive actions are
// allowed for REAUTH_WINDOW.
func (h *Handlers) apiReauth(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	pw := c.FormValue("password")
	if pw == "" {
		return apiErr(http.StatusBadRequest, "invalid_request", "password is required.")
	}
	_, _, err := h.provePassword(c, passwordCheck{email: p.Email, userID: p.UserID, password: pw, where: "when confirming"},
		c.FormValue("code"), "invalid_credentials")
	if err != nil {
		return err
	}
	if err := h.sessions.Renew(ctx); errors.Is(err, session.ErrNotFound) {
		return apiErr(http.StatusUnauthorized, "invalid_token", "This session has ended. Sign in again.")
	} else if err != nil {
		return err
	}
	return apiJSON(c, http.StatusOK, map[string]any{"reauth_until": p.AuthAt.Add(h.reauthWindow)})
}
