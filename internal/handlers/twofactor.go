package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/factor"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/views"
)

// Second factors on the account: the overview (/account/2fa), setting up
// an authenticator app, recovery codes, turning it off; and the one check
// of a second-factor code that sign-in and re-authentication share.

// totpIssuer names Gatehouse in authenticator apps.
const totpIssuer = "Gatehouse"

// totpSetupLifetime is how long a secret shown for set-up can be
// confirmed; after it, the set-up page shows a new one.
const totpSetupLifetime = 15 * time.Minute

// maxCodeLen bounds what is read as a code: the longest form of a
// recovery code with generous spacing.
const maxCodeLen = 64

// Answers of checkSecondFactor: a wrong (or already used) code, and input
// that is no code at all. Both are counted and audited.
var (
	errWrongCode     = errors.New("wrong second-factor code")
	errMalformedCode = errors.New("malformed second-factor code")
)

const (
	msgWrongCode     = "That code is not right, or it was already used. Enter the current code from your app, or an unused recovery code."
	msgMalformedCode = "Enter the 6-digit code from your authenticator app, or a recovery code such as abcde-fghij."
	msgEnterCode     = "Enter the code from your authenticator app, or a recovery code."
)

// codeProblem says how a form answers checkSecondFactor's err, as
// formProblem does for passwords.
func codeProblem(err error) (status int, message string, ok bool) {
	if r, isRefusal := asRefusal(err); isRefusal {
		return r.status, r.message, true
	}
	switch {
	case errors.Is(err, errWrongCode):
		return http.StatusUnprocessableEntity, msgWrongCode, true
	case errors.Is(err, errMalformedCode):
		return http.StatusUnprocessableEntity, msgMalformedCode, true
	}
	return 0, "", false
}

// checkSecondFactor is the one place a second-factor code is checked
// (sign-in, confirm, turning the app off). Like checkPassword, it counts
// the attempt before checking, on the account's password key, on a key of
// its own that a right password does not clear (throttle.SecondFactorKey),
// and on the client's address. A TOTP code is accepted once: its time
// step is recorded atomically, so a replay, or a code older than one
// used, fails; a recovery code is marked used in the statement that finds
// it unused. It returns how the factor was proved: AuthPasswordTOTP or
// AuthRecoveryCode.
func (h *Handlers) checkSecondFactor(c echo.Context, u *models.User, code, where string) (models.AuthMethod, error) {
	ctx := c.Request().Context()
	attempt, wait, err := h.throttle.Begin(ctx, throttle.AccountKey(u.Email), throttle.SecondFactorKey(u.ID), throttle.IPKey(c.RealIP()))
	if err != nil {
		return "", err
	}
	if wait > 0 {
		return "", tooManyAttempts(c, wait)
	}
	method, err := h.verifySecondFactor(c, u.ID, code, where)
	switch {
	case err == nil:
		h.settle(ctx, attempt.Succeed)
		if method == models.AuthRecoveryCode {
			h.wakeMail()
		}
		return method, nil
	case errors.Is(err, errWrongCode), errors.Is(err, errMalformedCode):
		h.settle(ctx, attempt.Fail)
		detail := "wrong second-factor code"
		if errors.Is(err, errMalformedCode) {
			detail = "malformed second-factor code"
		}
		e := models.AuditEvent{Kind: models.AuditSignInFailed, UserID: &u.ID, Detail: detail + " " + where}
		if p := session.Current(ctx); p != nil {
			e.SessionID = p.SessionID
		}
		h.record(c, e)
		return "", err
	default:
		h.settle(ctx, attempt.Cancel)
		return "", err
	}
}

// verifySecondFactor checks code against userID's authenticator app or
// recovery codes, and uses it up. A recovery code is used in the
// transaction that records recovery_code_used and queues its notice
// (where says where it was used).
func (h *Handlers) verifySecondFactor(c echo.Context, userID int64, code, where string) (models.AuthMethod, error) {
	ctx := c.Request().Context()
	if len(code) > maxCodeLen {
		return "", errMalformedCode
	}
	code = strings.ReplaceAll(code, " ", "")
	if factor.IsTOTPCode(code) {
		f, err := h.factors.TOTP(ctx, userID)
		if errors.Is(err, models.ErrNotFound) {
			return "", errWrongCode
		} else if err != nil {
			return "", err
		}
		if !f.Confirmed() {
			return "", errWrongCode
		}
		secret, err := h.keys.Open(userID, f.Secret)
		if err != nil {
			return "", err
		}
		step, ok := factor.MatchTOTP(string(secret), code, h.now(), f.LastStep)
		if !ok {
			return "", errWrongCode
		}
		if used, err := h.factors.UseTOTPStep(ctx, userID, step); err != nil {
			return "", err
		} else if !used { // another request used this step (or a later one) first
			return "", errWrongCode
		}
		return models.AuthPasswordTOTP, nil
	}
	if rc, ok := factor.NormalizeRecoveryCode(code); ok {
		err := h.store.InTx(ctx, func(tx *models.Tx) error {
			factors := tx.Factors()
			used, err := factors.UseRecoveryCode(ctx, userID, h.keys.HashRecoveryCode(userID, rc), h.now())
			if err != nil {
				return err
			}
			if !used {
				return errWrongCode
			}
			left, err := factors.Factors(ctx, userID)
			if err != nil {
				return err
			}
			return h.securityNotice(c, tx, models.AuditEvent{Kind: models.AuditRecoveryCodeUsed, UserID: &userID, ActorID: &userID,
				Detail: where + "; " + plural(int64(left.RecoveryCodes), "code") + " left"})
		})
		if err != nil {
			return "", err
		}
		return models.AuthRecoveryCode, nil
	}
	return "", errMalformedCode
}

// securityNotice records e, an event the account's owner must also be
// told about by e-mail (a second factor turned off or reset by an
// administrator, a passkey removed, a recovery code used), and queues the
// notice, both within tx, the transaction of the change itself: the notice
// goes out if and only if the change committed. The caller wakes the
// sender after the commit. It is the one place to send those notices.
func (h *Handlers) securityNotice(c echo.Context, tx *models.Tx, e models.AuditEvent) error {
	ctx := c.Request().Context()
	h.describeEvent(c, &e)
	if err := tx.Audit(ctx, e); err != nil {
		return err
	}
	about, ok := securityNotices[e.Kind]
	if !ok || e.UserID == nil {
		return nil
	}
	u, err := tx.Users().ByID(ctx, *e.UserID)
	if err != nil {
		return err
	}
	err = enqueue(ctx, tx, string(e.Kind), u, views.SecurityNotice{
		Name: u.Name, Title: about.title, What: about.what,
		When:        e.At.UTC().Format("2006-01-02 15:04 UTC"),
		From:        e.Browser + " on " + e.OS + ", " + e.IP,
		DevicesLink: link(h.baseURL, "/account/sessions", nil),
		ForgotLink:  link(h.baseURL, "/password/forgot", nil),
	})
	if errors.Is(err, mail.ErrBadAddress) {
		h.log.WarnContext(ctx, "security notice not sent: unusable address", "kind", e.Kind, "user", u.ID)
		return nil
	}
	return err
}

// securityNotices are the mails securityNotice sends, by event.
var securityNotices = map[models.AuditKind]struct{ title, what string }{
	models.AuditTwoFactorDisabled: {"Two-factor authentication was turned off",
		"Two-factor authentication was turned off for your Gatehouse account, and every other device signed in to it was signed out."},
	models.AuditRecoveryCodeUsed: {"A recovery code was used to sign in",
		"Someone signed in to your Gatehouse account with one of your recovery codes. That code no longer works."},
	models.AuditPasskeyRemoved: {"A passkey was removed from your account",
		"A passkey was removed from your Gatehouse account."},
	models.AuditTwoFactorReset: {"An administrator removed your second factor",
		"An administrator removed the second factor of your Gatehouse account and signed you out everywhere. Until you set up a new one, your password alone signs you in."},
}

// twoFactor is the overview: which factors the user has, and the actions.
func (h *Handlers) twoFactor(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	f, err := h.factors.Factors(ctx, p.UserID)
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.TwoFactorView(views.TwoFactorPage{Factors: f}))
}

// pendingTOTP returns the user's authenticator secret waiting for
// confirmation, opened; ok is false when there is none still fresh.
// confirmed reports that an app is already on.
func (h *Handlers) pendingTOTP(ctx context.Context, userID int64) (f *models.TOTPFactor, secret string, confirmed bool, err error) {
	f, err = h.factors.TOTP(ctx, userID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, "", false, nil
	} else if err != nil {
		return nil, "", false, err
	}
	if f.Confirmed() {
		return f, "", true, nil
	}
	if h.now().Sub(f.CreatedAt) >= totpSetupLifetime {
		return nil, "", false, nil
	}
	b, err := h.keys.Open(userID, f.Secret)
	if errors.Is(err, factor.ErrUnsealable) {
		return nil, "", false, nil // SECRET_KEY changed: start again
	} else if err != nil {
		return nil, "", false, err
	}
	return f, string(b), false, nil
}

// totpSetupForm shows a new authenticator secret (or the one still
// waiting, so a reload keeps what the app scanned) as a QR code and text.
func (h *Handlers) totpSetupForm(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	_, secret, confirmed, err := h.pendingTOTP(ctx, p.UserID)
	if err != nil {
		return err
	}
	if confirmed {
		return c.Redirect(http.StatusSeeOther, "/account/2fa")
	}
	if secret == "" {
		secret = factor.NewTOTPSecret()
		err := h.factors.StartTOTP(ctx, p.UserID, h.keys.Seal(p.UserID, []byte(secret)), h.now())
		if errors.Is(err, models.ErrConflict) { // turned on meanwhile, in another tab
			return c.Redirect(http.StatusSeeOther, "/account/2fa")
		} else if err != nil {
			return err
		}
	}
	return h.renderTOTPSetup(c, http.StatusOK, p.Email, secret, "")
}

func (h *Handlers) renderTOTPSetup(c echo.Context, status int, email, secret, problem string) error {
	uri, err := factor.KeyURI(totpIssuer, email, secret)
	if err != nil {
		return err
	}
	qr, err := factor.QRSVG(uri)
	if err != nil {
		return err
	}
	c.Set(noCompression, true) // the page shows a secret (compress.go)
	return h.render(c, status, views.TOTPSetupView(views.TOTPSetup{Secret: secret, QRSVG: qr, Error: problem}))
}

// totpConfirm turns the app on with a first code from it, and answers
// with the recovery codes, shown this once.
func (h *Handlers) totpConfirm(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	f, secret, confirmed, err := h.pendingTOTP(ctx, p.UserID)
	if err != nil {
		return err
	}
	if confirmed {
		return h.redirect(c, "/account/2fa", flashTOTPAlreadyOn)
	}
	if secret == "" {
		return h.redirect(c, "/account/2fa/totp", flashTOTPSetupExpired)
	}
	code := strings.ReplaceAll(c.FormValue("code"), " ", "")
	if !factor.IsTOTPCode(code) {
		return h.renderTOTPSetup(c, http.StatusUnprocessableEntity, p.Email, secret, "Enter the 6-digit code your app shows.")
	}
	step, ok := factor.MatchTOTP(secret, code, h.now(), f.LastStep)
	if !ok {
		return h.renderTOTPSetup(c, http.StatusUnprocessableEntity, p.Email, secret,
			"That code is not right. Check that your phone's clock is set automatically, and enter the code your app shows now.")
	}
	codes := factor.NewRecoveryCodes()
	if err := h.factors.ConfirmTOTP(ctx, p.UserID, step, h.hashCodes(p.UserID, codes), h.now()); errors.Is(err, models.ErrConflict) {
		return h.redirect(c, "/account/2fa", flashTOTPAlreadyOn)
	} else if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditTwoFactorEnabled, UserID: &p.UserID, SessionID: p.SessionID, Detail: "authenticator app"})
	c.Set(noCompression, true) // the page shows a secret (compress.go)
	return h.render(c, http.StatusOK, views.RecoveryCodesView(views.RecoveryCodes{Codes: codes, JustEnabled: true}))
}

func (h *Handlers) hashCodes(userID int64, codes []string) [][]byte {
	hashes := make([][]byte, len(codes))
	for i, c := range codes {
		n, _ := factor.NormalizeRecoveryCode(c)
		hashes[i] = h.keys.HashRecoveryCode(userID, n)
	}
	return hashes
}

// newRecoveryCodes replaces the user's recovery codes (after
// re-authentication) and shows the new ones once.
func (h *Handlers) newRecoveryCodes(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	codes := factor.NewRecoveryCodes()
	if err := h.factors.ReplaceRecoveryCodes(ctx, p.UserID, h.hashCodes(p.UserID, codes), h.now()); errors.Is(err, models.ErrNotFound) {
		return h.redirect(c, "/account/2fa", flashTOTPOff)
	} else if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditRecoveryCodesRenewed, UserID: &p.UserID, SessionID: p.SessionID})
	c.Set(noCompression, true) // the page shows a secret (compress.go)
	return h.render(c, http.StatusOK, views.RecoveryCodesView(views.RecoveryCodes{Codes: codes}))
}

// provedFactorSince reports whether the session's last proof of identity
// (sign-in or confirm, AuthAt) came after the app was turned on, and so
// included the second factor. AuthAt is kept in whole seconds: a proof in
// the same second as turning on counts as before it.
func provedFactorSince(p *session.Principal, f *models.TOTPFactor) bool {
	return f.ConfirmedAt != nil && p.AuthAt.After(f.ConfirmedAt.Truncate(time.Second))
}

// totpDisable turns the second factor off: it needs a recent
// re-authentication that proved the second factor, ends every other
// session, and tells the owner.
func (h *Handlers) totpDisable(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	f, err := h.factors.TOTP(ctx, p.UserID)
	if errors.Is(err, models.ErrNotFound) || err == nil && !f.Confirmed() {
		return h.redirect(c, "/account/2fa", flashTOTPOff)
	} else if err != nil {
		return err
	}
	if !provedFactorSince(p, f) {
		return h.askToConfirm(c)
	}
	// The factor goes, the other sessions end and the owner's notice is
	// queued in one transaction; sessions end before the commit, so a
	// failure leaves them ended and the factor on, never the reverse.
	err = h.store.InTx(ctx, func(tx *models.Tx) error {
		if _, err := tx.Factors().RemoveSecondFactors(ctx, p.UserID); err != nil {
			return err
		}
		n, err := h.sessions.RevokeAll(ctx, p.UserID, []string{p.SessionID}, models.EndRevokedByUser, &p.UserID)
		if err != nil {
			return err
		}
		return h.securityNotice(c, tx, models.AuditEvent{Kind: models.AuditTwoFactorDisabled, UserID: &p.UserID, SessionID: p.SessionID,
			Detail: plural(int64(n), "other session") + " ended"})
	})
	if err != nil {
		return err
	}
	h.wakeMail()
	return h.redirect(c, "/account/2fa", flashTOTPDisabled)
}

// Confirmation pages of the second-factor actions (pending.go).
func (h *Handlers) describeNewRecoveryCodes(echo.Context, map[string]string, url.Values) (*views.PendingAction, error) {
	return &views.PendingAction{
		Doing: "make new recovery codes", Heading: "Make new recovery codes?",
		Detail: "Your current recovery codes stop working, and ten new ones are shown once.",
		Button: "Make new recovery codes", Back: "/account/2fa",
	}, nil
}

func (h *Handlers) describeTOTPDisable(echo.Context, map[string]string, url.Values) (*views.PendingAction, error) {
	return &views.PendingAction{
		Doing: "turn off two-factor authentication", Heading: "Turn off two-factor authentication?",
		Detail: "Your password alone will then sign in to your account, and every other device signed in to it is signed out.",
		Button: "Turn off two-factor authentication", Back: "/account/2fa",
	}, nil
}
