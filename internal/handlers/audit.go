package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// activityShown is how many of their own events a user sees.
const activityShown = 20

// record appends a security event, filling in when, from where, and (unless
// set) who did it: the request's signed-in user. The event is queued and
// written in the background (session.AuditQueue), so the request never
// waits for Postgres. The act it records has already happened, so a
// failure to queue is logged, not shown.
func (h *Handlers) record(c echo.Context, e models.AuditEvent) {
	ctx := c.Request().Context()
	e.At = h.now()
	e.IP = c.RealIP()
	e.UserAgent = session.UserAgent(c.Request())
	if e.ActorID == nil {
		if p := session.Current(ctx); p != nil {
			e.ActorID = &p.UserID
		}
	}
	if err := h.audits.Record(ctx, &e); err != nil {
		h.log.ErrorContext(ctx, "audit event not recorded", "kind", e.Kind, "err", err)
	}
}

// activity shows the user their own recent security events.
func (h *Handlers) activity(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	events, err := h.audits.List(ctx, models.AuditFilter{UserID: p.UserID, Limit: activityShown})
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.ActivityView(views.ActivityPage{Events: events, Now: h.now()}))
}
