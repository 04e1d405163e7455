package handlers

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// activityShown is how many of their own events a user sees.
const activityShown = 20

// record appends a security event, filling in when, from where, and (unless
// set) who did it: the request's signed-in user. The event is queued and
// written in the background (auditqueue.Queue), so the request never
// waits for Postgres. The act it records has already happened, so a
// failure to queue is logged, not shown.
func (h *Handlers) record(c echo.Context, e models.AuditEvent) {
	ctx := c.Request().Context()
	h.describeEvent(c, &e)
	if err := h.audits.Record(ctx, &e); err != nil {
		h.log.ErrorContext(ctx, "audit event not recorded", "kind", e.Kind, "err", err)
	}
}

// describeEvent fills in when, from where, and (unless set) who did it:
// the request's signed-in user.
func (h *Handlers) describeEvent(c echo.Context, e *models.AuditEvent) {
	e.At = h.now()
	e.IP = c.RealIP()
	e.UserAgent = session.UserAgent(c.Request())
	d := session.Describe(e.UserAgent)
	e.Browser, e.OS = d.Browser, d.OS
	if e.ActorID == nil {
		if p := session.Current(c.Request().Context()); p != nil {
			e.ActorID = &p.UserID
		}
	}
}

// activity shows the user their own security events, newest first, a
// page at a time.
func (h *Handlers) activity(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	before := queryID(c, "before")
	events, err := h.listEvents(c, models.AuditFilter{UserID: p.UserID, Before: before, Limit: activityShown + 1})
	if err != nil {
		return err
	}
	page := views.ActivityPage{Events: events, Now: h.now(), ViewerID: p.UserID}
	if len(events) > activityShown {
		page.Events = events[:activityShown]
		page.Older = pageURL("/account/activity", "before", strconv.FormatInt(page.Events[activityShown-1].ID, 10))
	}
	if before != 0 {
		page.Newest = "/account/activity"
	}
	return h.render(c, http.StatusOK, views.ActivityView(page))
}

// listEvents lists audit events, naming the device of those recorded
// before devices were stored from their user agent.
func (h *Handlers) listEvents(c echo.Context, f models.AuditFilter) ([]models.AuditEventView, error) {
	events, err := h.audits.List(c.Request().Context(), f)
	for i, e := range events {
		if e.Browser == "" && e.UserAgent != "" {
			d := session.Describe(e.UserAgent)
			events[i].Browser, events[i].OS = d.Browser, d.OS
		}
	}
	return events, err
}
