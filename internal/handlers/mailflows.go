package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// Mail-driven flows share these helpers: links on BASE_URL, mail queued in
// the transaction of its event (Tx.EnqueueMail), audit events written in the
// same transaction, and limits on how often one address is mailed.

// Lifetimes of mailed links.
const (
	resetTokenTTL  = time.Hour
	verifyTokenTTL = 48 * time.Hour
)

// Limits on mail per hour.
const (
	resetMailsPerAddress  = 3  // reset mails to one address
	forgotRequestsPerIP   = 20 // "forgot password" requests from one client address
	verifyMailsPerAccount = 3  // verification mails one account may ask for again
)

// link is the absolute URL of path on BASE_URL with query q.
func link(base *url.URL, path string, q url.Values) string {
	u := *base
	u.Path = path
	u.RawQuery = q.Encode()
	return u.String()
}

// mailLimitKey is a throttle key (for Limiter.Take) counting what kind of
// mail goes to value. The throttle's Take accepts only SignUpKey keys;
// SignUpKey keeps an address's own text out of Redis (it hashes anything
// that is not an IP address), so kind and value make a key of their own.
func mailLimitKey(kind, value string) string {
	return throttle.SignUpKey("mail-limit " + kind + " " + value)
}

// requestEvent is an event from the request's client, at the handlers'
// clock, by the signed-in user if any.
func (h *Handlers) requestEvent(c echo.Context, kind models.AuditKind, userID int64) models.AuditEvent {
	e := models.AuditEvent{Kind: kind, UserID: &userID, At: h.now(), IP: c.RealIP(),
		UserAgent: session.UserAgent(c.Request())}
	if p := session.Current(c.Request().Context()); p != nil {
		e.ActorID, e.SessionID = &p.UserID, p.SessionID
	}
	return e
}

// enqueue composes c for u and queues it within tx.
func enqueue(ctx context.Context, tx *models.Tx, kind string, u *models.User, c mail.Content) error {
	msg, err := mail.Compose(ctx, kind, u.Name, u.Email, c)
	if err != nil {
		return err
	}
	return tx.EnqueueMail(msg)
}

// wakeMail tells this instance's sender that mail is waiting.
func (h *Handlers) wakeMail() {
	if h.mailer != nil {
		h.mailer.Wake()
	}
}

// Waker is the sender, woken after a request queued mail.
type Waker interface{ Wake() }

// AccountMail turns "forgot password" requests into reset mails, in the
// background (the sender's round runs it first). The request path wrote
// one row whatever the address; here the address is looked up, and only
// an enabled account gets a token and a mail.
type AccountMail struct {
	DB      *models.DB
	BaseURL *url.URL
	Now     func() time.Time
	Logger  *slog.Logger
}

// ProcessResetRequests handles every waiting request, a batch per
// transaction; several instances share the work (SKIP LOCKED).
func (a *AccountMail) ProcessResetRequests(ctx context.Context) error {
	const batch = 20
	for ctx.Err() == nil {
		var n int
		err := a.DB.InTx(ctx, func(tx *models.Tx) error {
			reqs, err := tx.ClaimResetRequests(ctx, batch)
			if err != nil {
				return err
			}
			n = len(reqs)
			for _, r := range reqs {
				if err := a.resetRequest(ctx, tx, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || n < batch {
			return err
		}
	}
	return nil
}

func (a *AccountMail) resetRequest(ctx context.Context, tx *models.Tx, r models.ResetRequest) error {
	u, err := tx.Users().ByEmail(ctx, r.Email)
	if errors.Is(err, models.ErrNotFound) {
		return nil // no account: nothing is sent, and the answer was the same
	} else if err != nil {
		return err
	}
	if u.Disabled() {
		return nil // a disabled account cannot reset its way back in
	}
	now := a.Now()
	token, err := tx.IssueToken(ctx, models.MailToken{Purpose: models.TokenResetPassword, UserID: u.ID, Email: u.Email},
		resetTokenTTL, now)
	if err != nil {
		return err
	}
	content := resetMail(a.BaseURL, u, token)
	if err := enqueue(ctx, tx, "password_reset", u, content); errors.Is(err, mail.ErrBadAddress) {
		a.Logger.WarnContext(ctx, "reset mail not sent: unusable address", "user", u.ID)
		return nil
	} else if err != nil {
		return err
	}
	return tx.Audit(ctx, models.AuditEvent{Kind: models.AuditResetRequested, UserID: &u.ID, At: now,
		IP: r.IP, UserAgent: r.UserAgent, Detail: "requested on the forgot-password page"})
}
