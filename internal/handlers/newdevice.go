package handlers

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// New-device alerts (flow 4 of issue 12). Every browser that signs up or
// in gets a long-lived device cookie: a random id and its HMAC under a key
// derived from SECRET_KEY, so a made-up, altered or another deployment's
// cookie names no known device (it is replaced by a new one, never an
// error). Each account keeps the hashes of the ids it has seen
// (known_devices). A sign-in from a device the account has not seen, other
// than its very first, mails the owner, in the transaction that records the
// device: when, which browser and OS, from which address, and a "This
// wasn't me" link (GET/POST /signin/not-me) that ends every session of the
// account, locks its password and mails a reset link.

const (
	// deviceCookieTTL is how long a browser stays known without signing
	// in again.
	deviceCookieTTL = 365 * 24 * time.Hour
	// deviceIDLen is the length of a device id, in bytes (128 bits).
	deviceIDLen = 16
	// notMeTokenTTL is how long a "This wasn't me" link works.
	notMeTokenTTL = 7 * 24 * time.Hour
	// alertsPerAccountPerHour caps the alerts one account gets: a flood
	// of sign-ins from new devices (a client that keeps no cookie is a
	// new device every time) sends at most this many an hour.
	alertsPerAccountPerHour = 10
	// alertAlikeEvery: a device alike to one alerted about (same browser,
	// OS and address: a client that keeps no cookie, say) is alerted
	// about at most once in this long.
	alertAlikeEvery = 24 * time.Hour
)

// deviceCookieName is the device cookie's name; __Host- on https, like the
// session cookie.
func (h *Handlers) deviceCookieName() string {
	if h.secure {
		return "__Host-gatehouse_device"
	}
	return "gatehouse_device"
}

// browserDevice is the device id the request's cookie carries when this
// deployment signed it; otherwise a new random one.
func (h *Handlers) browserDevice(c echo.Context) []byte {
	if ck, err := c.Cookie(h.deviceCookieName()); err == nil && len(ck.Value) < 128 {
		if idText, sigText, ok := strings.Cut(ck.Value, "."); ok {
			id, err1 := base64.RawURLEncoding.DecodeString(idText)
			sig, err2 := base64.RawURLEncoding.DecodeString(sigText)
			if err1 == nil && err2 == nil && len(id) == deviceIDLen && h.keys.DeviceSigned(id, sig) {
				return id
			}
		}
	}
	id := make([]byte, deviceIDLen)
	_, _ = rand.Read(id) // never fails (crypto/rand)
	return id
}

// setDeviceCookie gives the browser its device cookie for another
// deviceCookieTTL.
func (h *Handlers) setDeviceCookie(c echo.Context, id []byte) {
	value := base64.RawURLEncoding.EncodeToString(id) + "." + base64.RawURLEncoding.EncodeToString(h.keys.SignDevice(id))
	c.SetCookie(&http.Cookie{Name: h.deviceCookieName(), Value: value, Path: "/",
		MaxAge: int(deviceCookieTTL / time.Second), HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode})
}

// knownDevice describes the request's browser, device id, as userID's
// device seen now.
func knownDevice(c echo.Context, userID int64, id []byte, now time.Time) models.KnownDevice {
	d := session.Describe(session.UserAgent(c.Request()))
	hash := sha256.Sum256(id)
	return models.KnownDevice{UserID: userID, DeviceHash: hash[:], Browser: d.Browser, OS: d.OS, IP: c.RealIP(),
		FirstSeenAt: now, LastSeenAt: now}
}

// signedInFrom follows a browser's sign-in of u that started session sid:
// the browser is recorded as one of u's devices, and alerted about if new
// (seeDevice); it keeps its device cookie.
func (h *Handlers) signedInFrom(c echo.Context, u *models.User, sid string) error {
	id := h.browserDevice(c)
	alertsOff, err := h.seeDevice(c, u, sid, knownDevice(c, u.ID, id, h.now()))
	if err != nil {
		return err
	}
	h.setDeviceCookie(c, id)
	h.setAlertsHint(c, u.ID, alertsOff)
	return nil
}

// appSignedInFrom follows an app's password-grant sign-in of u as session
// sid. An app keeps no cookie, so it is named by its client_name and user
// agent (keyed like a device id, so the table holds neither): the same CLI
// signing in again on the same machine is known, a new app is alerted
// about like a new browser, and a stolen password used through the API
// is not a way around the alert. The alert names the app.
func (h *Handlers) appSignedInFrom(c echo.Context, u *models.User, sid, client string) error {
	id := h.keys.SignDevice([]byte("app\x00" + client + "\x00" + session.UserAgent(c.Request())))[:deviceIDLen]
	d := knownDevice(c, u.ID, id, h.now())
	d.Browser = client
	_, err := h.seeDevice(c, u, sid, d)
	return err
}

// seeDevice records d as one of u's devices and, if the account had seen
// other devices but not this one, alerts the owner, both in one
// transaction, and says whether u has turned alerts off. If it fails the
// new session sid is ended, so no sign-in stands without its alert.
func (h *Handlers) seeDevice(c echo.Context, u *models.User, sid string, d models.KnownDevice) (alertsOff bool, err error) {
	ctx := c.Request().Context()
	now := d.LastSeenAt
	var alerted bool
	err = h.store.InTx(ctx, func(tx *models.Tx) error {
		// The account stays locked until the commit, so sign-ins at once
		// count each other's alerts against the limits.
		owner, err := tx.LockUser(ctx, u.ID)
		if err != nil {
			return err
		}
		alertsOff = !owner.NewDeviceAlerts
		seenOthers, err := tx.HasDevices(ctx, u.ID)
		if err != nil {
			return err
		}
		isNew, err := tx.SeeDevice(ctx, d)
		if err != nil || !isNew || !seenOthers || alertsOff {
			return err
		}
		lastHour, alike, err := tx.DeviceAlerts(ctx, u.ID, d, now.Add(-time.Hour), now.Add(-alertAlikeEvery))
		if err != nil {
			return err
		}
		if lastHour >= alertsPerAccountPerHour || alike > 0 {
			h.log.InfoContext(ctx, "new-device alert not sent: limit reached", "user", u.ID,
				"alerts_last_hour", lastHour, "alike_last_day", alike)
			return nil
		}
		alerted, err = h.alertNewDevice(c, tx, owner, d, sid)
		return err
	})
	if err != nil {
		if rerr := h.sessions.Revoke(context.WithoutCancel(ctx), u.ID, sid, models.EndSignedOut, &u.ID); rerr != nil && !errors.Is(rerr, session.ErrNotFound) {
			h.log.ErrorContext(ctx, "ending a sign-in whose device could not be recorded", "err", rerr)
		}
		return false, err
	}
	if alerted {
		h.wakeMail()
	}
	return alertsOff, nil
}

// alertNewDevice queues the alert about u's sign-in from d as session sid,
// with its "This wasn't me" token and audit event, within tx; false when
// u's address cannot be mailed.
func (h *Handlers) alertNewDevice(c echo.Context, tx *models.Tx, u *models.User, d models.KnownDevice, sid string) (bool, error) {
	ctx := c.Request().Context()
	token, err := tx.IssueToken(ctx, models.MailToken{Purpose: models.TokenNotMe, UserID: u.ID, Email: u.Email, SessionID: sid},
		notMeTokenTTL, d.LastSeenAt)
	if err != nil {
		return false, err
	}
	device := d.Browser + " on " + d.OS
	content := views.NewDeviceAlert{Name: u.Name, When: d.LastSeenAt.UTC().Format("2006-01-02 15:04 UTC"),
		Device: device, IP: d.IP, DevicesLink: link(h.baseURL, "/account/sessions", nil),
		NotMeLink: link(h.baseURL, "/signin/not-me", url.Values{"token": {token}})}
	if err := enqueue(ctx, tx, "new_device_alert", u, content); errors.Is(err, mail.ErrBadAddress) {
		h.log.WarnContext(ctx, "new-device alert not sent: unusable address", "user", u.ID)
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := tx.MarkAlerted(ctx, u.ID, d.DeviceHash, sid, d.LastSeenAt); err != nil {
		return false, err
	}
	e := h.requestEvent(c, models.AuditNewDeviceAlert, u.ID)
	e.ActorID, e.SessionID, e.Browser, e.OS = &u.ID, sid, d.Browser, d.OS
	e.Detail = "to " + u.Email + ": " + device + ", " + d.IP
	return true, tx.Audit(ctx, e)
}

// notMeForm is the page a "This wasn't me" link opens: its button POSTs,
// so a link scanner fetching the URL uses nothing.
func (h *Handlers) notMeForm(c echo.Context) error {
	noReferrer(c)
	token := c.QueryParam("token")
	if _, err := h.tokenUser(c, token, models.TokenNotMe); err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.EmailLinkPage(views.EmailLinkForm{
		Action: "/signin/not-me", Token: token, Heading: "This wasn't me",
		Text: "Was that sign-in to your Gatehouse account not you? We end it at once, sign out every device, " +
			"and your password stops working: we mail you a link to choose a new one.",
		Button: "End that sign-in and lock my account", Danger: true,
	}))
}

// notMe uses a "This wasn't me" link: the sign-in it names ends with every
// other session, the device is forgotten, the password is locked and a
// reset link mailed, in one transaction (the undo of an address change
// does the same: lockAccount).
func (h *Handlers) notMe(c echo.Context) error {
	noReferrer(c)
	ctx := c.Request().Context()
	token := c.FormValue("token")
	if _, err := h.tokenUser(c, token, models.TokenNotMe); err != nil {
		return err
	}
	u, err := h.lockAccount(c, token, models.TokenNotMe, models.EndNotMe,
		func(tx *models.Tx, t *models.MailToken, u *models.User, _ time.Time) error {
			return tx.ForgetAlertedDevice(ctx, u.ID, t.SessionID)
		},
		func(t *models.MailToken, u *models.User, ended int) models.AuditEvent {
			e := h.requestEvent(c, models.AuditThisWasntMe, u.ID)
			e.ActorID, e.SessionID = &u.ID, t.SessionID
			e.Detail = "password locked, reset link sent; sessions ended: " + sessionCount(ended)
			return e
		})
	if err != nil {
		return err
	}
	h.rotateCSRF(c)
	return h.render(c, http.StatusOK, views.NotMeDonePage(u.Email))
}

// saveAlerts turns the user's new-device alerts on or off (the profile's
// checkbox: absent means off).
//
// Turning them off is what someone who took over a session would do
// before signing in elsewhere, so it asks for the password when it was
// not proved within REAUTH_WINDOW, like the other security settings;
// turning them on never does. Either way it is audited.
func (h *Handlers) saveAlerts(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	on := formBool(c, "new_device_alerts")
	if !on && !h.recentlyAuthenticated(c) {
		return h.askToConfirm(c)
	}
	if err := h.users.SetNewDeviceAlerts(ctx, p.UserID, on); err != nil {
		return err
	}
	h.setAlertsHint(c, p.UserID, !on)
	e := models.AuditEvent{Kind: models.AuditAlertsOff, UserID: &p.UserID}
	if on {
		e.Kind = models.AuditAlertsOn
	}
	h.record(c, e)
	if on {
		return h.redirect(c, "/account", flashAlertsOn)
	}
	return h.redirect(c, "/account", flashAlertsOff)
}

// The profile page costs no Postgres query, so, like the unverified
// banner (verify.go), it learns that alerts are off from a hint cookie
// naming the user: set at sign-in and when the box is saved. Turned off
// from another browser, the box here shows the old state until the next
// sign-in; saving it stores exactly what it shows.
const alertsOffCookie = "gatehouse_alerts_off"

func (h *Handlers) setAlertsHint(c echo.Context, userID int64, off bool) {
	if off {
		h.setHint(c, alertsOffCookie, userID)
	} else {
		h.clearHint(c, alertsOffCookie)
	}
}
