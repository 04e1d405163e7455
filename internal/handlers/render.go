package handlers

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// renderBuffers are reused page buffers: a page is a few kilobytes, and a
// fresh buffer grew through half a dozen allocations on every request.
var renderBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps an unusually large page's buffer out of the pool.
const maxPooledBuffer = 256 << 10

// render writes page with status. It renders into a buffer first, so a
// failed render still becomes a clean error page, and the response has a
// Content-Length rather than chunked encoding; then compresses it when the
// client accepts that (compress.go).
func (h *Handlers) render(c echo.Context, status int, page templ.Component) error {
	ctx := views.WithChrome(c.Request().Context(), h.chrome(c))
	buf := renderBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBuffer(buf)
	if err := page.Render(ctx, buf); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	body, encoding, release := compressPage(c, status, buf.Bytes())
	defer release()
	hdr := c.Response().Header()
	// Pages can show personal data: never let a cache keep them.
	hdr.Set(echo.HeaderCacheControl, "no-store")
	if encoding != "" {
		hdr.Set(echo.HeaderContentEncoding, encoding)
	}
	hdr.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	return c.HTMLBlob(status, body)
}

// putBuffer returns buf to renderBuffers, unless it grew unusually large.
func putBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer {
		renderBuffers.Put(buf)
	}
}

func (h *Handlers) chrome(c echo.Context) views.Chrome {
	ch := views.Chrome{}
	ch.Flash, ch.FlashTone = h.popFlash(c)
	if tok, ok := c.Get(middleware.DefaultCSRFConfig.ContextKey).(string); ok {
		// Masked afresh for each page, so compression cannot leak it
		// (compress.go).
		ch.CSRF = maskCSRF(tok)
	}
	if p := session.Current(c.Request().Context()); p != nil {
		ch.User = &views.CurrentUser{Name: p.Name, Email: p.Email, Admin: p.IsAdmin()}
	}
	return ch
}

// redirect answers a successful POST (post/redirect/get) and leaves a flash
// message for the next page.
func (h *Handlers) redirect(c echo.Context, to string, flash flashKey) error {
	if flash != "" {
		h.setFlash(c, flash)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// flashKey names a message from the flashes catalogue. The cookie carries
// only the key, so nobody can make the page say words of their choosing.
type flashKey string

const (
	flashWelcome         flashKey = "welcome"
	flashSignedIn        flashKey = "signed_in"
	flashSignedOut       flashKey = "signed_out"
	flashProfileSaved    flashKey = "profile_saved"
	flashPasswordChanged flashKey = "password_changed"
	flashPasswordAndRest flashKey = "password_changed_others"
	flashSessionRevoked  flashKey = "session_revoked"
	flashOthersRevoked   flashKey = "others_revoked"
	flashSessionExpired  flashKey = "session_expired"
	flashEndedByUser     flashKey = "ended_by_user"
	flashEndedByAdmin    flashKey = "ended_by_admin"
	flashEndedByPassword flashKey = "ended_by_password"
	flashEndedDisabled   flashKey = "ended_disabled"
	flashEndedLimit      flashKey = "ended_limit"
	flashEndedByRole     flashKey = "ended_by_role"
	flashAllRevoked      flashKey = "all_revoked"
	flashDisabled        flashKey = "account_disabled"
	flashEnabled         flashKey = "account_enabled"
	flashRoleChanged     flashKey = "role_changed"
	flashConfirmed       flashKey = "confirmed"
	// The session ended (another device, an administrator) while the
	// request renewed its token.
	flashPasswordEnded   flashKey = "password_changed_ended"
	flashConfirmEnded    flashKey = "confirm_ended"
	flashEndedByReset    flashKey = "ended_by_reset"
	flashPasswordReset   flashKey = "password_reset"
	flashVerified        flashKey = "email_verified"
	flashVerifySent      flashKey = "verification_sent"
	flashResetSent       flashKey = "reset_sent"
	flashEmailChangeSent flashKey = "email_change_sent"
	flashEmailChanged    flashKey = "email_changed"
	flashEndedByUndo     flashKey = "ended_by_undo"
	// An htmx revoke of a session another tab had already ended.
	flashAlreadyEnded flashKey = "already_ended"
	// Second factors.
	flashSignInExpired    flashKey = "signin_expired"
	flashTOTPAlreadyOn    flashKey = "totp_already_on"
	flashTOTPSetupExpired flashKey = "totp_setup_expired"
	flashTOTPOff          flashKey = "totp_off"
	flashTOTPDisabled     flashKey = "totp_disabled"
	flashAdminNeeds2FA    flashKey = "admin_needs_2fa"
	flashTwoFactorReset   flashKey = "2fa_reset"
	flashNoSecondFactor   flashKey = "no_second_factor"
	flashPasskeyAdded     flashKey = "passkey_added"
	flashPasskeyRenamed   flashKey = "passkey_renamed"
	flashPasskeyRemoved   flashKey = "passkey_removed"
	// New-device alerts (newdevice.go).
	flashAlertsOn     flashKey = "alerts_on"
	flashAlertsOff    flashKey = "alerts_off"
	flashEndedByNotMe flashKey = "ended_by_not_me"
)

var flashes = map[flashKey]string{
	flashWelcome:         "Welcome to Gatehouse. Your account is ready.",
	flashSignedIn:        "You are signed in.",
	flashSignedOut:       "You have been signed out.",
	flashProfileSaved:    "Your profile has been saved.",
	flashPasswordChanged: "Your password has been changed.",
	flashPasswordAndRest: "Your password has been changed and your other devices have been signed out.",
	flashSessionRevoked:  "That device has been signed out.",
	flashOthersRevoked:   "All your other devices have been signed out.",
	flashSessionExpired:  "Your session has expired. Please sign in again.",
	flashEndedByUser:     "This device was signed out from another device. Please sign in again.",
	flashEndedByAdmin:    "An administrator ended your session. Please sign in again.",
	flashEndedByPassword: "Your password was changed, so this device was signed out. Please sign in again.",
	flashEndedDisabled:   "Your account has been disabled, so this device was signed out. Contact an administrator.",
	flashEndedLimit:      "This device was signed out because too many devices were signed in. Please sign in again.",
	flashEndedByRole:     "Your account's role changed, so you were signed out. Please sign in again.",
	flashAllRevoked:      "All of the user's sessions have been ended.",
	flashDisabled:        "The account has been disabled and its sessions ended.",
	flashEnabled:         "The account has been enabled.",
	flashRoleChanged:     "The role has been changed and the user's sessions ended.",
	flashConfirmed:       "Password confirmed. You can continue.",
	flashPasswordEnded:   "Your password has been changed, and this device was signed out meanwhile. Please sign in with your new password.",
	flashConfirmEnded:    "This device was signed out while you confirmed your password. Please sign in again.",
	flashEndedByReset:    "Your password was reset by e-mail, so this device was signed out. Please sign in again.",
	flashPasswordReset:   "Your new password is set and every device was signed out. Sign in with your new password.",
	flashVerified:        "Your email address is verified. Thank you.",
	flashVerifySent:      "We sent a new verification link. Check your inbox.",
	flashResetSent:       "A password reset link has been sent to the user's email address.",
	flashEmailChangeSent: "We sent a confirmation link to your new address. Your email changes when you open it.",
	flashEmailChanged:    "Your email address has been changed.",
	flashEndedByUndo:     "An email change on your account was undone, so every device was signed out. Set a new password with the link we sent.",
	flashAlreadyEnded:    "That session had already ended. The list is up to date now.",
	// Second factors.
	flashSignInExpired:    "Your sign-in was not completed in time, or was already used. Please sign in again.",
	flashTOTPAlreadyOn:    "Your authenticator app is already set up.",
	flashTOTPSetupExpired: "That set-up took too long, so here is a new code to scan.",
	flashTOTPOff:          "Two-factor authentication is not turned on.",
	flashTOTPDisabled:     "Two-factor authentication is off, and your other devices have been signed out.",
	flashAdminNeeds2FA:    "Administrators must use two-factor authentication. Set it up to open the admin pages.",
	flashTwoFactorReset:   "The user's second factor has been removed and their sessions ended.",
	flashNoSecondFactor:   "The user has no second factor.",
	flashPasskeyAdded:     "Your passkey has been added.",
	flashPasskeyRenamed:   "The passkey has been renamed.",
	flashPasskeyRemoved:   "The passkey has been removed.",
	flashAlertsOn:         "We will email you when your account is signed in to from a new device.",
	flashAlertsOff:        "New-device alerts are off. We no longer email you about sign-ins from new devices.",
	flashEndedByNotMe:     "A sign-in to your account was reported as not yours, so every device was signed out. Set a new password with the link we sent.",
}

// flashTones gives a message that is not good news its tone (views.Tone*):
// a session that ended without being asked to, a refusal. Messages not
// listed confirm what the user just did.
var flashTones = map[flashKey]string{
	flashSessionExpired:  views.ToneInfo,
	flashEndedByUser:     views.ToneWarning,
	flashEndedByAdmin:    views.ToneWarning,
	flashEndedByPassword: views.ToneWarning,
	flashEndedDisabled:   views.ToneError,
	flashEndedLimit:      views.ToneWarning,
	flashEndedByRole:     views.ToneInfo,
	flashPasswordEnded:   views.ToneWarning,
	flashConfirmEnded:    views.ToneWarning,
	flashAlreadyEnded:    views.ToneInfo,
	flashEndedByReset:    views.ToneWarning,
	flashEndedByUndo:     views.ToneWarning,
	flashEndedByNotMe:    views.ToneWarning,
	flashSignInExpired:   views.ToneWarning,
	flashAdminNeeds2FA:   views.ToneInfo,
}

const flashCookie = "gatehouse_flash"

func (h *Handlers) setFlash(c echo.Context, key flashKey) { h.setFlashAbout(c, key, "") }

// setFlashAbout leaves a flash message about the ended session publicID:
// the cookie carries the key and the session's public id, never words, and
// the message is completed from the server's own records (flashDevice).
func (h *Handlers) setFlashAbout(c echo.Context, key flashKey, publicID string) {
	value := string(key)
	if publicID != "" {
		value += "." + publicID
	}
	c.SetCookie(&http.Cookie{
		Name: flashCookie, Value: value, Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
}

// flashesNamingDevice are the messages that can name a device, when it is
// known: %s is "Firefox on Windows". A session revoked from another device
// names the device that did it; every other end names this browser's own
// session, so that someone signed in on several devices knows which one
// ended.
var flashesNamingDevice = map[flashKey]string{
	flashEndedByUser:     "This device was signed out from %s. Please sign in again.",
	flashSessionExpired:  "Your session on this device (%s) has expired. Please sign in again.",
	flashEndedByAdmin:    "An administrator ended your session on this device (%s). Please sign in again.",
	flashEndedByPassword: "Your password was changed, so this device (%s) was signed out. Please sign in again.",
	flashEndedDisabled:   "Your account has been disabled, so this device (%s) was signed out. Contact an administrator.",
	flashEndedLimit:      "This device (%s) was signed out because too many devices were signed in. Please sign in again.",
	flashEndedByRole:     "Your account's role changed, so this device (%s) was signed out. Please sign in again.",
	flashEndedByReset:    "Your password was reset by e-mail, so this device (%s) was signed out. Please sign in again.",
	flashEndedByUndo:     "An email change on your account was undone, so every device was signed out, this one (%s) too. Set a new password with the link we sent.",
}

// flashDevice names the device the message key is about, for the session
// publicID: for a revoke from another device, the device of the revoke's
// audit event; otherwise the session's own. "" when there is none to name.
func (h *Handlers) flashDevice(c echo.Context, key flashKey, publicID string) string {
	if !session.ValidPublicID(publicID) {
		return ""
	}
	if key != flashEndedByUser {
		rec, err := h.sessions.Records().ByPublicID(c.Request().Context(), publicID)
		if err != nil || rec.Browser == "" {
			return "" // the message without the device will do
		}
		return views.DeviceName(*rec)
	}
	events, err := h.listEvents(c, models.AuditFilter{SessionID: publicID, Kind: models.AuditSessionRevoked, Limit: 1})
	if err != nil || len(events) == 0 || events[0].Browser == "" {
		return ""
	}
	return events[0].Browser + " on " + events[0].OS
}

// popFlash returns the pending flash message and its tone, if any, and
// clears it.
func (h *Handlers) popFlash(c echo.Context) (msg, tone string) {
	ck, err := c.Cookie(flashCookie)
	if err != nil {
		return "", ""
	}
	c.SetCookie(&http.Cookie{
		Name: flashCookie, Path: "/", MaxAge: -1, Expires: time.Unix(1, 0),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
	k, publicID, _ := strings.Cut(ck.Value, ".")
	key := flashKey(k)
	if format, ok := flashesNamingDevice[key]; ok && publicID != "" {
		if device := h.flashDevice(c, key, publicID); device != "" {
			return fmt.Sprintf(format, device), flashTones[key]
		}
	}
	return flashes[key], flashTones[key]
}
