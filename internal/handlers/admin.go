package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// adminPageSize is how many rows an admin list shows per page.
const adminPageSize = 50

// requireAdmin lets through only administrators, checking the role in
// Postgres on every request: a role just taken away never lingers in a
// session.
func (h *Handlers) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := h.checkAdmin(c); err != nil {
			return err
		}
		return next(c)
	}
}

// checkAdmin answers 403 unless the request's user is an active
// administrator.
func (h *Handlers) checkAdmin(c echo.Context) error {
	p := session.Current(c.Request().Context())
	u, err := h.users.ByID(c.Request().Context(), p.UserID)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return err
	}
	if err != nil || !u.IsAdmin() || u.Disabled() {
		return &publicError{status: http.StatusForbidden, title: "Administrators only",
			message: "This page is for administrators."}
	}
	return nil
}

// queryID reads a positive id from the query string; 0 when absent or bad.
func queryID(c echo.Context, name string) int64 {
	id, err := strconv.ParseInt(c.QueryParam(name), 10, 64)
	if err != nil || id < 0 {
		return 0
	}
	return id
}

// pageURL is path with query values set, dropping empty ones.
func pageURL(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

func (h *Handlers) adminUsers(c echo.Context) error {
	f := models.UserFilter{
		Query: strings.TrimSpace(c.QueryParam("q")), Before: queryID(c, "before"), After: queryID(c, "after"),
		Limit: adminPageSize,
	}
	f.Query = models.Truncate(f.Query, models.MaxEmailLength)
	users, more, err := h.users.Search(c.Request().Context(), f)
	if err != nil {
		return err
	}
	total, err := h.users.Count(c.Request().Context(), f.Query)
	if err != nil {
		return err
	}
	page := views.AdminUsersPage{Query: f.Query, Total: total, Users: users, Now: h.now()}
	if len(users) > 0 {
		first, last := strconv.FormatInt(users[0].ID, 10), strconv.FormatInt(users[len(users)-1].ID, 10)
		// more says whether the page continues in the direction it was read.
		if (f.After == 0 && more) || f.After != 0 {
			page.Older = pageURL("/admin/users", "q", f.Query, "before", last)
		}
		if (f.After != 0 && more) || f.Before != 0 {
			page.Newer = pageURL("/admin/users", "q", f.Query, "after", first)
		}
	}
	return h.render(c, http.StatusOK, views.AdminUsersView(page))
}

// targetUser loads the user named by the :id path parameter; 404 if none.
func (h *Handlers) targetUser(c echo.Context) (*models.User, error) {
	return h.userByParam(c, c.Param("id"))
}

// userByParam loads the user a URL names by id; 404 if none.
func (h *Handlers) userByParam(c echo.Context, param string) (*models.User, error) {
	id, err := strconv.ParseInt(param, 10, 64)
	if err != nil || id <= 0 {
		return nil, notFound()
	}
	u, err := h.users.ByID(c.Request().Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, notFound()
	}
	return u, err
}

func (h *Handlers) adminUser(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.targetUser(c)
	if err != nil {
		return err
	}
	list, err := h.sessions.List(ctx, u.ID, endedShown)
	if err != nil {
		return err
	}
	var actorIDs []int64
	for _, s := range list.Ended {
		if s.EndedBy != nil {
			actorIDs = append(actorIDs, *s.EndedBy)
		}
	}
	actors, err := h.users.EmailsByID(ctx, actorIDs)
	if err != nil {
		return err
	}
	events, err := h.listEvents(c, models.AuditFilter{UserID: u.ID, Limit: activityShown})
	if err != nil {
		return err
	}
	factors, err := h.factors.Factors(ctx, u.ID)
	if err != nil {
		return err
	}
	now := h.now()
	me := session.Current(ctx)
	return h.render(c, http.StatusOK, views.AdminUserView(views.AdminUserPage{
		User: *u, Factors: factors,
		Sessions: views.SessionTable{
			Active: list.Active, CurrentID: currentIfSelf(me, u.ID), Now: now,
			RevokeAction: views.AdminRevokeAction(u.ID), IdleTimeout: h.sessions.IdleTimeout(),
			AppIdleTimeout: h.sessions.AppIdleTimeout(),
			Confirm:        func(s models.SessionRecord) views.Consequence { return views.AdminRevokeConsequence(u.Email, s) },
		},
		Ended:    views.EndedTable{Ended: list.Ended, Actors: actors, Now: now},
		Events:   events,
		Self:     me.UserID == u.ID,
		ViewerID: me.UserID,
	}))
}

// currentIfSelf marks the admin's own session when they look at their own
// account, so they cannot revoke the session they are using from here.
func currentIfSelf(me *session.Principal, userID int64) string {
	if me.UserID == userID {
		return me.SessionID
	}
	return ""
}

// adminBack is where an admin action returns: a same-site /admin page the
// form names, or the user's page.
func adminBack(c echo.Context, userID int64) string {
	return adminBackTo(c.FormValue("return_to"), userID)
}

// adminBackTo is returnTo when it is a same-site /admin page, else the
// user's page.
func adminBackTo(returnTo string, userID int64) string {
	if to := safeNext(returnTo); strings.HasPrefix(to, "/admin/") {
		return to
	}
	return "/admin/users/" + strconv.FormatInt(userID, 10)
}

func (h *Handlers) adminRevokeSession(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.targetUser(c)
	if err != nil {
		return err
	}
	sid := c.Param("sid")
	if !session.ValidPublicID(sid) {
		return notFound()
	}
	me := session.Current(ctx)
	if sid == me.SessionID {
		return errOwnSession
	}
	err = h.sessions.Revoke(ctx, u.ID, sid, models.EndRevokedByAdmin, &me.UserID)
	if errors.Is(err, session.ErrNotFound) {
		if isHTMX(c) {
			// Ended meanwhile: bring the page in hand up to date.
			if c.FormValue("return_to") != "" {
				return htmxRemoved(c, flashAlreadyEnded)
			}
			htmxFlash(c, flashAlreadyEnded)
			return h.adminUser(c)
		}
		return notFound()
	} else if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditSessionRevoked, UserID: &u.ID, SessionID: sid})
	if isHTMX(c) {
		if c.FormValue("return_to") != "" {
			// From the list of all sessions: its row is removed in place.
			return htmxRemoved(c, flashSessionRevoked)
		}
		// From the user's page: answer with the page as it is now; htmx
		// swaps its #sessions region in place of the old one.
		htmxFlash(c, flashSessionRevoked)
		return h.adminUser(c)
	}
	return h.redirect(c, adminBack(c, u.ID), flashSessionRevoked)
}

// errOwnSession refuses an administrator's revoke of the session they are
// using: the admin pages never offer it, and ending it is signing out, which
// has its own button (and its own audit event).
var errOwnSession = &publicError{status: http.StatusConflict, title: "That is your own session",
	message: "This is the session you are using now. To end it, sign out."}

func (h *Handlers) adminRevokeAll(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.targetUser(c)
	if err != nil {
		return err
	}
	me := session.Current(ctx)
	n, err := h.sessions.RevokeAll(ctx, u.ID, nil, models.EndRevokedByAdmin, &me.UserID)
	if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditSessionsRevoked, UserID: &u.ID, Detail: sessionCount(n)})
	return h.redirect(c, adminBack(c, u.ID), flashAllRevoked)
}

var errLastAdmin = &publicError{status: http.StatusConflict, title: "Not possible",
	message: "That would leave no active administrator. Make someone else an administrator first."}

func (h *Handlers) adminDisable(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.targetUser(c)
	if err != nil {
		return err
	}
	if err := h.users.SetDisabled(ctx, u.ID, true); errors.Is(err, models.ErrLastAdmin) {
		return errLastAdmin
	} else if err != nil {
		return err
	}
	me := session.Current(ctx)
	n, err := h.sessions.Disable(ctx, u.ID, &me.UserID)
	if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditAccountDisabled, UserID: &u.ID, ActorID: &me.UserID,
		Detail: "ended " + sessionCount(n)})
	return h.redirect(c, adminBack(c, u.ID), flashDisabled)
}

func (h *Handlers) adminEnable(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.targetUser(c)
	if err != nil {
		return err
	}
	if err := h.users.SetDisabled(ctx, u.ID, false); err != nil {
		return err
	}
	if err := h.sessions.Enable(u.ID); err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditAccountEnabled, UserID: &u.ID})
	return h.redirect(c, adminBack(c, u.ID), flashEnabled)
}

func (h *Handlers) adminPromote(c echo.Context) error { return h.adminSetRole(c, models.RoleAdmin) }
func (h *Handlers) adminDemote(c echo.Context) error  { return h.adminSetRole(c, models.RoleUser) }

// adminSetRole changes a user's role and ends their sessions, so the new
// privileges (or their loss) never ride on a token issued before.
func (h *Handlers) adminSetRole(c echo.Context, role string) error {
	ctx := c.Request().Context()
	u, err := h.targetUser(c)
	if err != nil {
		return err
	}
	if u.Role == role {
		return h.redirect(c, adminBack(c, u.ID), "")
	}
	if err := h.users.SetRole(ctx, u.ID, role); errors.Is(err, models.ErrLastAdmin) {
		return errLastAdmin
	} else if err != nil {
		return err
	}
	me := session.Current(ctx)
	n, err := h.sessions.RevokeAll(ctx, u.ID, nil, models.EndRoleChanged, &me.UserID)
	if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditRoleChanged, UserID: &u.ID, ActorID: &me.UserID,
		Detail: fmt.Sprintf("%s → %s; ended %s", u.Role, role, sessionCount(n))})
	if me.UserID == u.ID {
		// The administrator changed their own role: their session is gone.
		return h.redirect(c, "/signin", flashEndedByRole)
	}
	return h.redirect(c, adminBack(c, u.ID), flashRoleChanged)
}

func (h *Handlers) adminSessions(c echo.Context) error {
	f := models.SessionFilter{
		Email: strings.TrimSpace(c.QueryParam("email")), IP: strings.TrimSpace(c.QueryParam("ip")),
		Before: queryID(c, "before"), Limit: adminPageSize,
	}
	f.Email, f.IP = models.Truncate(f.Email, models.MaxEmailLength), models.Truncate(f.IP, 64)
	ctx := c.Request().Context()
	list, more, err := h.sessions.Records().ActiveAll(ctx, f)
	if err != nil {
		return err
	}
	page := views.AdminSessionsPage{
		Email: f.Email, IP: f.IP, Now: h.now(), CurrentID: session.Current(ctx).SessionID,
		Return: pageURL("/admin/sessions", "email", f.Email, "ip", f.IP),
	}
	if more {
		page.Older = pageURL("/admin/sessions", "email", f.Email, "ip", f.IP,
			"before", strconv.FormatInt(list[len(list)-1].ID, 10))
	}
	// A session revoked a moment ago may still read active in Postgres.
	if page.Sessions, err = h.sessions.DropEnded(ctx, list); err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.AdminSessionsView(page))
}

func (h *Handlers) adminAudit(c echo.Context) error {
	page := views.AdminAuditPage{
		Email: models.Truncate(strings.TrimSpace(c.QueryParam("email")), models.MaxEmailLength),
		IP:    models.Truncate(strings.TrimSpace(c.QueryParam("ip")), 64),
		From:  strings.TrimSpace(c.QueryParam("from")), To: strings.TrimSpace(c.QueryParam("to")),
		Kinds: models.AuditKinds, Now: h.now(), Errors: views.FieldErrors{},
		ViewerID: session.Current(c.Request().Context()).UserID,
	}
	f := models.AuditFilter{
		UserID: queryID(c, "user"), Email: page.Email, IP: page.IP,
		Before: queryID(c, "before"), Limit: adminPageSize,
	}
	kind := models.AuditKind(c.QueryParam("kind"))
	for _, k := range models.AuditKinds {
		if k == kind {
			f.Kind = kind
		}
	}
	page.Kind = string(f.Kind)
	// Dates are whole days in UTC, the To day included.
	var ok bool
	if f.From, ok = auditDay(page.From); !ok {
		page.Errors["from"] = "Enter a date like 2026-12-31."
	}
	if f.To, ok = auditDay(page.To); !ok {
		page.Errors["to"] = "Enter a date like 2026-12-31."
	} else if !f.To.IsZero() {
		f.To = f.To.AddDate(0, 0, 1)
	}
	if len(page.Errors) > 0 {
		return h.render(c, http.StatusUnprocessableEntity, views.AdminAuditView(page))
	}
	events, err := h.listEvents(c, f)
	if err != nil {
		return err
	}
	page.Events = events
	filter := []string{"email", page.Email, "ip", page.IP, "from", page.From, "to", page.To, "kind", page.Kind}
	if f.UserID != 0 {
		filter = append(filter, "user", strconv.FormatInt(f.UserID, 10))
	}
	if len(events) == adminPageSize {
		page.Older = pageURL("/admin/audit", append(filter, "before", strconv.FormatInt(events[len(events)-1].ID, 10))...)
	}
	if f.Before != 0 {
		page.Newest = pageURL("/admin/audit", filter...)
	}
	return h.render(c, http.StatusOK, views.AdminAuditView(page))
}

// auditDay reads a YYYY-MM-DD date (the value of an <input type=date>) as
// the start of that day in UTC; "" is no date. ok is false for anything
// else.
func auditDay(s string) (day time.Time, ok bool) {
	if s == "" {
		return time.Time{}, true
	}
	day, err := time.Parse(time.DateOnly, s)
	return day, err == nil
}
