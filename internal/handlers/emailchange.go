package handlers

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/views"
)

// Changing the address (flow 3). POST /account (after re-authentication)
// mails a confirmation link to the new address; the address changes only
// when it is opened (GET/POST /email/confirm). The old address is then
// told, with a link valid 7 days (GET/POST /email/undo) that restores it,
// ends every session and locks the password: the owner sets a new one
// with the reset link the undo mails them.

const (
	changeTokenTTL = 24 * time.Hour
	undoTokenTTL   = 7 * 24 * time.Hour
)

// requestEmailChange issues the confirmation token for u's change to
// newEmail and mails it to newEmail, within tx.
func (h *Handlers) requestEmailChange(ctx context.Context, tx *models.Tx, c echo.Context, u *models.User, newEmail string) error {
	token, err := tx.IssueToken(ctx, models.MailToken{Purpose: models.TokenChangeEmail, UserID: u.ID, Email: newEmail},
		changeTokenTTL, h.now())
	if err != nil {
		return err
	}
	content := views.ChangeEmailMail{Name: u.Name, OldEmail: u.Email, NewEmail: newEmail,
		Link: link(h.baseURL, "/email/confirm", url.Values{"token": {token}})}
	to := &models.User{ID: u.ID, Name: u.Name, Email: newEmail}
	if err := enqueue(ctx, tx, "email_change", to, content); err != nil {
		return err
	}
	e := h.requestEvent(c, models.AuditEmailChangeRequested, u.ID)
	e.Detail = u.Email + " → " + newEmail
	return tx.Audit(ctx, e)
}

// errAddressTaken answers a change (or undo) to an address another
// account took meanwhile.
var errAddressTaken = &publicError{status: http.StatusConflict, title: "Address in use",
	message: "Another account now uses this address, so it cannot be changed to it."}

func (h *Handlers) confirmEmailForm(c echo.Context) error {
	noReferrer(c)
	token := c.QueryParam("token")
	t, err := h.store.PeekToken(c.Request().Context(), token, models.TokenChangeEmail, h.now())
	if err != nil {
		return linkProblem(err)
	}
	return h.render(c, http.StatusOK, views.EmailLinkPage(views.EmailLinkForm{
		Action: "/email/confirm", Token: token, Heading: "Change your email address",
		Text: "Use " + t.Email + " as the email address of your Gatehouse account?", Button: "Change my address",
	}))
}

func (h *Handlers) undoEmailForm(c echo.Context) error {
	noReferrer(c)
	token := c.QueryParam("token")
	t, err := h.store.PeekToken(c.Request().Context(), token, models.TokenUndoEmailChange, h.now())
	if err != nil {
		return linkProblem(err)
	}
	return h.render(c, http.StatusOK, views.EmailLinkPage(views.EmailLinkForm{
		Action: "/email/undo", Token: token, Heading: "Undo the change of address",
		Text: "Put " + t.Email + " back as your address? Every device is signed out and your password stops working: " +
			"we mail you a link to choose a new one.",
		Button: "Undo the change", Danger: true,
	}))
}

// linkProblem turns a token lookup's error into the answer.
func linkProblem(err error) error {
	if errors.Is(err, models.ErrTokenInvalid) {
		return errLinkInvalid
	}
	return err
}

// lockedUser uses token (of purpose) in tx and returns its record and its
// account, locked until the commit; a disabled account is refused.
func lockedUser(ctx context.Context, tx *models.Tx, token string, purpose models.TokenPurpose, now time.Time) (*models.MailToken, *models.User, error) {
	t, err := tx.UseToken(ctx, token, purpose, now)
	if err != nil {
		return nil, nil, err
	}
	u, err := tx.LockUser(ctx, t.UserID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil, models.ErrTokenInvalid
	} else if err != nil {
		return nil, nil, err
	}
	if u.Disabled() {
		return nil, nil, errAccountDisabled
	}
	return t, u, nil
}

// setEmail stores a proven address (opening a link to it proves it).
func setEmail(ctx context.Context, tx *models.Tx, userID int64, email string, now time.Time) error {
	err := tx.Users().SetProvenEmail(ctx, userID, email, now)
	if errors.Is(err, models.ErrConflict) {
		return errAddressTaken
	}
	return err
}

func (h *Handlers) confirmEmail(c echo.Context) error {
	noReferrer(c)
	ctx := c.Request().Context()
	token := c.FormValue("token")
	if !models.WellFormedToken(token) {
		return errLinkInvalid
	}
	var u *models.User
	var oldEmail string
	err := h.store.InTx(ctx, func(tx *models.Tx) error {
		now := h.now()
		t, locked, err := lockedUser(ctx, tx, token, models.TokenChangeEmail, now)
		if err != nil {
			return err
		}
		u, oldEmail = locked, locked.Email
		if err := setEmail(ctx, tx, u.ID, t.Email, now); err != nil {
			return err
		}
		u.Email = t.Email
		undo, err := tx.IssueToken(ctx, models.MailToken{Purpose: models.TokenUndoEmailChange, UserID: u.ID, Email: oldEmail},
			undoTokenTTL, now)
		if err != nil {
			return err
		}
		notice := views.EmailChangedNotice{Name: u.Name, OldEmail: oldEmail, NewEmail: t.Email,
			UndoLink: link(h.baseURL, "/email/undo", url.Values{"token": {undo}})}
		if err := enqueue(ctx, tx, "email_changed_notice", &models.User{ID: u.ID, Name: u.Name, Email: oldEmail}, notice); err != nil {
			return err
		}
		e := h.requestEvent(c, models.AuditEmailChanged, u.ID)
		e.Detail = oldEmail + " → " + t.Email
		return tx.Audit(ctx, e)
	})
	if err != nil {
		return linkProblem(err)
	}
	h.wakeMail()
	// Pages read the address from the session data.
	if err := h.sessions.SetProfile(u.ID, u.Name, u.Email, u.Role); err != nil {
		h.log.ErrorContext(ctx, "email change: updating the sessions' profile", "err", err)
	}
	if unverifiedHint(c, u.ID) {
		h.clearUnverifiedHint(c)
	}
	if p := session.Current(ctx); p != nil && p.UserID == u.ID {
		return h.redirect(c, "/account", flashEmailChanged)
	}
	return h.redirect(c, "/signin", flashEmailChanged)
}

// undoEmail restores the old address, locks the password (a random one
// nobody knows), ends every session, and mails a reset link to the old
// address: whoever changed the address may know the password too.
func (h *Handlers) undoEmail(c echo.Context) error {
	noReferrer(c)
	ctx := c.Request().Context()
	token := c.FormValue("token")
	if !models.WellFormedToken(token) {
		return errLinkInvalid
	}
	if _, err := h.store.PeekToken(ctx, token, models.TokenUndoEmailChange, h.now()); err != nil {
		return linkProblem(err)
	}
	var changed string
	u, err := h.lockAccount(c, token, models.TokenUndoEmailChange, models.EndEmailUndone,
		func(tx *models.Tx, t *models.MailToken, u *models.User, now time.Time) error {
			changed = u.Email
			if err := setEmail(ctx, tx, u.ID, t.Email, now); err != nil {
				return err
			}
			u.Email = t.Email
			return nil
		},
		func(t *models.MailToken, u *models.User, ended int) models.AuditEvent {
			e := h.requestEvent(c, models.AuditEmailChangeUndone, u.ID)
			e.ActorID, e.SessionID = &u.ID, ""
			e.Detail = changed + " → " + t.Email + "; password locked, reset link sent; sessions ended: " + sessionCount(ended)
			return e
		})
	if err != nil {
		return err
	}
	h.wakeMail()
	if err := h.sessions.SetProfile(u.ID, u.Name, u.Email, u.Role); err != nil {
		h.log.ErrorContext(ctx, "email undo: updating the sessions' profile", "err", err)
	}
	h.rotateCSRF(c)
	return h.render(c, http.StatusOK, views.EmailUndonePage(u.Email))
}

// lockAccount is what an owner's "that was not me" link does (the undo
// of an address change, "This wasn't me"), in one transaction: it uses the
// link (token, of purpose), runs first (what that link undoes), then locks
// the password (the hash of a random one nobody knows, so the old one
// stops working at once), retires the account's other mailed links, mails
// a reset link to u.Email, ends every session for reason, and writes the
// audit event made by event. It answers a used or expired link as such.
func (h *Handlers) lockAccount(c echo.Context, token string, purpose models.TokenPurpose, reason models.EndReason,
	first func(tx *models.Tx, t *models.MailToken, u *models.User, now time.Time) error,
	event func(t *models.MailToken, u *models.User, ended int) models.AuditEvent) (*models.User, error) {
	ctx := c.Request().Context()
	locked, err := h.hasher.Hash(ctx, randomSecret()) // slow: before the transaction
	if err != nil {
		return nil, err
	}
	var u *models.User
	err = h.store.InTx(ctx, func(tx *models.Tx) error {
		now := h.now()
		t, lu, err := lockedUser(ctx, tx, token, purpose, now)
		if err != nil {
			return err
		}
		u = lu
		if err := first(tx, t, u, now); err != nil {
			return err
		}
		if err := tx.Users().SetPasswordHash(ctx, u.ID, locked); err != nil {
			return err
		}
		for _, p := range []models.TokenPurpose{models.TokenChangeEmail, models.TokenUndoEmailChange, models.TokenResetPassword, models.TokenNotMe} {
			if err := tx.RetireTokens(ctx, u.ID, p, now); err != nil {
				return err
			}
		}
		reset, err := tx.IssueToken(ctx, models.MailToken{Purpose: models.TokenResetPassword, UserID: u.ID, Email: u.Email},
			resetTokenTTL, now)
		if err != nil {
			return err
		}
		if err := enqueue(ctx, tx, "password_reset", u, resetMail(h.baseURL, u, reset)); err != nil {
			return err
		}
		ended, err := h.sessions.RevokeAll(ctx, u.ID, nil, reason, nil)
		if err != nil {
			return err
		}
		return tx.Audit(ctx, event(t, u, ended))
	})
	if err != nil {
		return nil, linkProblem(err)
	}
	h.wakeMail()
	return u, nil
}

// randomSecret is a password nobody knows: 128 random bits.
func randomSecret() string { return rand.Text() }
