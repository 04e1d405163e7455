package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// Verifying an address: sign-up (and "Resend" on the profile) mails a
// link; GET /verify?token= shows a page whose button POSTs /verify, so a
// link preview or a mail scanner fetching the URL uses nothing.

// sendVerification issues a verification token for u's current address
// and queues the mail, within tx.
func (h *Handlers) sendVerification(ctx context.Context, tx *models.Tx, u *models.User, e models.AuditEvent) error {
	token, err := tx.IssueToken(ctx, models.MailToken{Purpose: models.TokenVerifyEmail, UserID: u.ID, Email: u.Email},
		verifyTokenTTL, h.now())
	if err != nil {
		return err
	}
	content := views.VerifyMail{Name: u.Name, Email: u.Email, Valid: "48 hours",
		Link: link(h.baseURL, "/verify", url.Values{"token": {token}})}
	if err := enqueue(ctx, tx, "verify_email", u, content); errors.Is(err, mail.ErrBadAddress) {
		// An address the mail header cannot carry: the account works, and
		// stays unverified.
		h.log.WarnContext(ctx, "verification mail not sent: unusable address", "user", u.ID)
		return nil
	} else if err != nil {
		return err
	}
	e.Kind, e.Detail = models.AuditEmailVerifySent, "to "+u.Email
	return tx.Audit(ctx, e)
}

func (h *Handlers) verifyForm(c echo.Context) error {
	noReferrer(c)
	token := c.QueryParam("token")
	u, err := h.tokenUser(c, token, models.TokenVerifyEmail)
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.VerifyPage(views.VerifyForm{Token: token, Email: u.Email}))
}

// verify uses a verification token: the address is verified if it is
// still the account's address (a link for an address changed since is
// refused).
func (h *Handlers) verify(c echo.Context) error {
	noReferrer(c)
	ctx := c.Request().Context()
	token := c.FormValue("token")
	if !models.WellFormedToken(token) {
		return errLinkInvalid
	}
	var userID int64
	err := h.store.InTx(ctx, func(tx *models.Tx) error {
		now := h.now()
		t, err := tx.UseToken(ctx, token, models.TokenVerifyEmail, now)
		if err != nil {
			return err
		}
		u, err := tx.LockUser(ctx, t.UserID)
		if errors.Is(err, models.ErrNotFound) {
			return models.ErrTokenInvalid
		} else if err != nil {
			return err
		}
		if u.Email != t.Email {
			return models.ErrTokenInvalid
		}
		if u.Disabled() {
			return errAccountDisabled
		}
		userID = u.ID
		if u.EmailVerifiedAt == nil {
			if err := tx.Users().MarkEmailVerified(ctx, u.ID, now); err != nil {
				return err
			}
		}
		e := h.requestEvent(c, models.AuditEmailVerified, u.ID)
		e.Detail = u.Email
		return tx.Audit(ctx, e)
	})
	if errors.Is(err, models.ErrTokenInvalid) {
		return errLinkInvalid
	} else if err != nil {
		return err
	}
	if unverifiedHint(c, userID) {
		h.clearUnverifiedHint(c)
	}
	if p := session.Current(ctx); p != nil && p.UserID == userID {
		return h.redirect(c, "/account", flashVerified)
	}
	return h.redirect(c, "/signin", flashVerified)
}

// resendVerification mails a new verification link to the signed-in
// user's address, at most verifyMailsPerAccount times an hour.
func (h *Handlers) resendVerification(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	u, err := h.users.ByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	if u.EmailVerifiedAt != nil {
		h.clearUnverifiedHint(c)
		return h.redirect(c, "/account", flashVerified)
	}
	wait, err := h.throttle.Take(ctx, mailLimitKey("verify", strconv.FormatInt(u.ID, 10)), verifyMailsPerAccount, time.Hour)
	if err != nil {
		return err
	}
	if wait > 0 {
		setRetryAfter(c, wait)
		return &publicError{status: http.StatusTooManyRequests, title: "Too many requests",
			message: "We already sent several links. Check your inbox (and spam folder), or try again in " + waitWords(wait) + "."}
	}
	err = h.store.InTx(ctx, func(tx *models.Tx) error {
		return h.sendVerification(ctx, tx, u, h.requestEvent(c, "", u.ID))
	})
	if err != nil {
		return err
	}
	h.wakeMail()
	return h.redirect(c, "/account", flashVerifySent)
}

// The profile page costs no Postgres query (the hot path), so whether the
// address is verified travels as a hint in a cookie: set when this
// browser signs up or in to an unverified account (or changes its
// address), cleared when it verifies, or when Resend finds the address
// already verified (from another browser). It names the user it is about,
// so another account signing in on the browser never sees it. A forged
// hint only shows a banner; the truth is in Postgres.
const unverifiedCookie = "gatehouse_unverified"

func (h *Handlers) setUnverifiedHint(c echo.Context, u *models.User) {
	if u.EmailVerifiedAt != nil {
		h.clearUnverifiedHint(c)
		return
	}
	h.setHint(c, unverifiedCookie, u.ID)
}

func (h *Handlers) clearUnverifiedHint(c echo.Context) { h.clearHint(c, unverifiedCookie) }

// unverifiedHint reports whether the browser's hint says userID's address
// is unverified.
func unverifiedHint(c echo.Context, userID int64) bool { return hasHint(c, unverifiedCookie, userID) }

// A hint cookie tells a page that costs no query something about the
// signed-in user, named by id so another account on the browser is not
// told it; forged, it changes only what a page shows.
func (h *Handlers) setHint(c echo.Context, name string, userID int64) {
	c.SetCookie(&http.Cookie{Name: name, Value: strconv.FormatInt(userID, 10), Path: "/",
		MaxAge: int((30 * 24 * time.Hour).Seconds()), HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode})
}

func (h *Handlers) clearHint(c echo.Context, name string) {
	if _, err := c.Cookie(name); err != nil {
		return
	}
	c.SetCookie(&http.Cookie{Name: name, Path: "/", MaxAge: -1, Expires: time.Unix(1, 0),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode})
}

// hasHint reports whether the browser holds the hint name about userID.
func hasHint(c echo.Context, name string, userID int64) bool {
	ck, err := c.Cookie(name)
	return err == nil && ck.Value == strconv.FormatInt(userID, 10)
}
