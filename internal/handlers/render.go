package handlers

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

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
	ch := views.Chrome{Flash: h.popFlash(c)}
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
	flashPasswordEnded flashKey = "password_changed_ended"
	flashConfirmEnded  flashKey = "confirm_ended"
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
	flashEndedDisabled:   "Your account has been disabled.",
	flashEndedLimit:      "This device was signed out because too many devices were signed in. Please sign in again.",
	flashEndedByRole:     "Your account's role changed, so you were signed out. Please sign in again.",
	flashAllRevoked:      "All of the user's sessions have been ended.",
	flashDisabled:        "The account has been disabled and its sessions ended.",
	flashEnabled:         "The account has been enabled.",
	flashRoleChanged:     "The role has been changed and the user's sessions ended.",
	flashConfirmed:       "Password confirmed. You can continue.",
	flashPasswordEnded:   "Your password has been changed, and this device was signed out meanwhile. Please sign in with your new password.",
	flashConfirmEnded:    "This device was signed out while you confirmed your password. Please sign in again.",
}

const flashCookie = "gatehouse_flash"

func (h *Handlers) setFlash(c echo.Context, key flashKey) {
	c.SetCookie(&http.Cookie{
		Name: flashCookie, Value: string(key), Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
}

// popFlash returns the pending flash message, if any, and clears it.
func (h *Handlers) popFlash(c echo.Context) string {
	ck, err := c.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	c.SetCookie(&http.Cookie{
		Name: flashCookie, Path: "/", MaxAge: -1, Expires: time.Unix(1, 0),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
	return flashes[flashKey(ck.Value)]
}
