package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// Pending actions. A sensitive POST refused for want of a recent password
// is not lost: the confirm page names it, and once the password is proved
// the user lands on its confirmation page, a GET on the same path showing
// the action's form ready (or, for an email change, the profile form
// re-filled), which they submit themselves. Nothing is replayed.
//
// Only the routes below can be pending. The next= URL carries the route's
// path and a few named fields; every word the pages show is read from the
// server's own data (the user's sessions, the target account), and
// rendered escaped, so a crafted next= can name nothing else.

// pendingAction is a sensitive POST route that re-authentication hands
// back.
type pendingAction struct {
	route string   // the Echo route of the POST, and of its confirmation page
	carry []string // form fields kept, through the next= query, to the confirmation page
	// describe says what the action does, from the route's parameters and
	// the carried fields. A *publicError means it no longer applies (a
	// session already ended, an account gone) or is not the user's to do.
	describe func(h *Handlers, c echo.Context, param map[string]string, q url.Values) (*views.PendingAction, error)
}

var pendingActions = []pendingAction{
	{route: "/account", carry: []string{"name", "email"}, describe: (*Handlers).describeEmailChange},
	{route: "/account/sessions/revoke-others", describe: (*Handlers).describeRevokeOthers},
	{route: "/account/sessions/:id/revoke", describe: (*Handlers).describeRevoke},
	{route: "/admin/users/:id/sessions/:sid/revoke", carry: []string{"return_to"}, describe: (*Handlers).describeAdminRevoke},
	{route: "/admin/users/:id/sessions/revoke-all", carry: []string{"return_to"}, describe: adminAction("end all sessions of %s", views.AdminRevokeAll)},
	{route: "/admin/users/:id/disable", carry: []string{"return_to"}, describe: adminAction("disable the account of %s", views.AdminDisable)},
	{route: "/admin/users/:id/enable", carry: []string{"return_to"}, describe: adminAction("enable the account of %s", views.AdminEnable)},
	{route: "/admin/users/:id/promote", carry: []string{"return_to"}, describe: adminAction("make %s an administrator", views.AdminPromote)},
	{route: "/admin/users/:id/demote", carry: []string{"return_to"}, describe: adminAction("remove the administrator role from %s", views.AdminDemote)},
	{route: "/admin/users/:id/send-reset", carry: []string{"return_to"}, describe: adminAction("send %s a password reset link", views.AdminSendReset)},
	{route: "/admin/users/:id/2fa/reset", carry: []string{"return_to"}, describe: adminAction("remove the second factor of %s", views.AdminResetTwoFactor)},
	{route: "/account/2fa/recovery-codes", describe: (*Handlers).describeNewRecoveryCodes},
	{route: "/account/2fa/totp/disable", describe: (*Handlers).describeTOTPDisable},
	{route: "/account/passkeys/:id/remove", describe: (*Handlers).describePasskeyRemove},
	{route: "/activate/approve", carry: []string{"user_code"}, describe: (*Handlers).describeApproveDevice},
}

// pendingURL is the confirmation page of the POST being refused: its path,
// with the fields its action carries. A route that is not a pending action
// returns to the page the form was on. A page (GET) refused is its own.
func pendingURL(c echo.Context) string {
	if c.Request().Method == http.MethodGet {
		return c.Request().URL.RequestURI()
	}
	for _, a := range pendingActions {
		if a.route != c.Path() {
			continue
		}
		q := url.Values{}
		for _, name := range a.carry {
			if v := formValue(c, name); v != "" {
				q.Set(name, v)
			}
		}
		if len(q) == 0 {
			return c.Request().URL.Path
		}
		return c.Request().URL.Path + "?" + q.Encode()
	}
	if back := sameSiteReferer(c); back != "" {
		return back
	}
	return "/account"
}

// describePending describes the pending action target (a next= URL)
// names; nil when it names none.
func (h *Handlers) describePending(c echo.Context, target string) (*views.PendingAction, error) {
	u, err := url.Parse(safeNext(target))
	if err != nil || u.Path == "" {
		return nil, nil
	}
	for _, a := range pendingActions {
		if param, ok := matchRoute(a.route, u.Path); ok {
			p, err := a.describe(h, c, param, u.Query())
			if p != nil {
				p.Action = u.EscapedPath() // the POST of the route matched
			}
			return p, err
		}
	}
	return nil, nil
}

// pendingForConfirm is the pending action to name on the confirm page: nil
// also when it no longer applies, in which case the page asks for the
// password without naming anything.
func (h *Handlers) pendingForConfirm(c echo.Context, next string) (*views.PendingAction, error) {
	a, err := h.describePending(c, next)
	var pe *publicError
	if errors.As(err, &pe) {
		return nil, nil
	}
	return a, err
}

// pendingActionPage is the confirmation page of a pending action: its
// form, ready.
func (h *Handlers) pendingActionPage(c echo.Context) error {
	a, err := h.describePending(c, c.Request().URL.RequestURI())
	if err != nil {
		return err
	}
	if a == nil {
		return notFound()
	}
	return h.render(c, http.StatusOK, views.PendingActionView(*a))
}

// matchRoute matches path against an Echo route with :name parameters.
func matchRoute(route, path string) (map[string]string, bool) {
	rs, ps := strings.Split(route, "/"), strings.Split(path, "/")
	if len(rs) != len(ps) {
		return nil, false
	}
	param := map[string]string{}
	for i, r := range rs {
		switch {
		case strings.HasPrefix(r, ":") && ps[i] != "":
			param[r[1:]] = ps[i]
		case r != ps[i]:
			return nil, false
		}
	}
	return param, true
}

// pendingProfile reads an email change carried to the profile page; ok is
// false unless both fields are there and valid.
func pendingProfile(q url.Values) (name, email string, ok bool) {
	name, email = strings.TrimSpace(q.Get("name")), strings.TrimSpace(q.Get("email"))
	errs := views.FieldErrors{}
	checkProfile(errs, name, email)
	return name, email, email != "" && len(errs) == 0
}

func (h *Handlers) describeEmailChange(_ echo.Context, _ map[string]string, q url.Values) (*views.PendingAction, error) {
	_, email, ok := pendingProfile(q)
	if !ok {
		return nil, notFound()
	}
	// Its confirmation page is the profile page, re-filled (account).
	return &views.PendingAction{Doing: "change your email to " + email, Back: "/account"}, nil
}

func (h *Handlers) describeRevokeOthers(echo.Context, map[string]string, url.Values) (*views.PendingAction, error) {
	return pending("sign out all other devices", views.RevokeOthersConsequence(), "/account/sessions"), nil
}

// pending is a pending action that does what doing says, with the
// consequence its confirmation dialog also states.
func pending(doing string, c views.Consequence, back string) *views.PendingAction {
	return &views.PendingAction{Doing: doing, Heading: c.Heading, Detail: c.Detail, Button: c.Button, Back: back}
}

func (h *Handlers) describeRevoke(c echo.Context, param map[string]string, _ url.Values) (*views.PendingAction, error) {
	p := session.Current(c.Request().Context())
	s, err := h.activeSession(c, p.UserID, param["id"])
	if err != nil {
		return nil, err
	}
	return pending("sign out "+views.DeviceName(*s)+" ("+s.IP+")", views.RevokeConsequence(*s), "/account/sessions"), nil
}

func (h *Handlers) describeAdminRevoke(c echo.Context, param map[string]string, q url.Values) (*views.PendingAction, error) {
	u, err := h.adminTarget(c, param["id"])
	if err != nil {
		return nil, err
	}
	if param["sid"] == session.Current(c.Request().Context()).SessionID {
		return nil, errOwnSession
	}
	s, err := h.activeSession(c, u.ID, param["sid"])
	if err != nil {
		return nil, err
	}
	doing := "end the session of " + u.Email + " (" + views.DeviceName(*s) + ", " + s.IP + ")"
	return withReturn(pending(doing, views.AdminRevokeConsequence(u.Email, *s), ""), u.ID, q), nil
}

// adminAction describes an admin action (views.Admin*) on a user
// account; doing has one %s, the account's email.
func adminAction(doing, action string) func(*Handlers, echo.Context, map[string]string, url.Values) (*views.PendingAction, error) {
	return func(h *Handlers, c echo.Context, param map[string]string, q url.Values) (*views.PendingAction, error) {
		u, err := h.adminTarget(c, param["id"])
		if err != nil {
			return nil, err
		}
		return withReturn(pending(fmt.Sprintf(doing, u.Email), views.AdminConsequence(action, u.Email), ""), u.ID, q), nil
	}
}

// withReturn completes an admin action: Cancel and the action return to the
// admin page named by return_to (adminBack's rule), which the form carries.
func withReturn(a *views.PendingAction, userID int64, q url.Values) *views.PendingAction {
	a.Back = adminBackTo(q.Get("return_to"), userID)
	if a.Back != adminBackTo("", userID) {
		a.Fields = append(a.Fields, views.HiddenField{Name: "return_to", Value: a.Back})
	}
	return a
}

// adminTarget is the account an admin action names, when the request's user
// is an administrator.
func (h *Handlers) adminTarget(c echo.Context, id string) (*models.User, error) {
	if err := h.checkAdmin(c); err != nil {
		return nil, err
	}
	return h.userByParam(c, id)
}

// activeSession is userID's active session publicID; errSessionGone when
// it has ended or is not theirs.
func (h *Handlers) activeSession(c echo.Context, userID int64, publicID string) (*models.SessionRecord, error) {
	if !session.ValidPublicID(publicID) {
		return nil, notFound()
	}
	list, err := h.sessions.List(c.Request().Context(), userID, 0)
	if err != nil {
		return nil, err
	}
	for _, s := range list.Active {
		if s.PublicID == publicID {
			return &s, nil
		}
	}
	return nil, errSessionGone
}
