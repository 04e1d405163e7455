// Package mail sends Gatehouse's e-mail through a durable outbox.
//
// A handler that causes a mail writes it with Enqueue in the same database
// transaction as the event itself, so the mail goes out if and only if the
// event happened, and no request ever waits for an SMTP server. A Sender
// running in the background of every instance claims due messages (FOR
// UPDATE SKIP LOCKED, with a lease), hands them to the SMTP server, and
// retries with back-off until a bounded time has passed, when it gives up
// and records why. See docs/email.md.
package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"

	"github.com/a-h/templ"
	"gorm.io/gorm"
)

// Content is one kind of mail: its subject, its plain-text body and its
// HTML body (a templ component). The views package defines them.
type Content interface {
	Subject() string
	Text() string
	HTML() templ.Component
}

// Message is a mail in the outbox.
type Message struct {
	ID            int64
	Kind          string // what the mail is about ("password_reset", ...), for logs and the dev mailbox
	ToAddress     string
	ToName        string
	Subject       string
	TextBody      string
	HTMLBody      string
	CreatedAt     time.Time `gorm:"default:now()"`
	Attempts      int
	NextAttemptAt time.Time `gorm:"default:now()"`
	SentAt        *time.Time
	FailedAt      *time.Time
	LastError     string
}

// TableName maps Message onto the outbox table.
func (Message) TableName() string { return "mail_outbox" }

// ErrBadAddress means a recipient's name or address cannot be put in a
// mail header safely.
var ErrBadAddress = errors.New("mail: unusable recipient")

// Compose renders c into a message of kind for the recipient name <address>.
// The address must be a single plain address and the name may hold no
// control characters, so neither can add a header (CR LF) or a recipient.
func Compose(ctx context.Context, kind, name, address string, c Content) (Message, error) {
	if err := checkRecipient(name, address); err != nil {
		return Message{}, err
	}
	var html bytes.Buffer
	if err := c.HTML().Render(ctx, &html); err != nil {
		return Message{}, fmt.Errorf("render %s mail: %w", kind, err)
	}
	subject := c.Subject()
	if strings.ContainsFunc(subject, unicode.IsControl) {
		return Message{}, fmt.Errorf("%s mail: subject has control characters", kind)
	}
	return Message{
		Kind: kind, ToAddress: address, ToName: name, Subject: subject,
		TextBody: c.Text(), HTMLBody: html.String(),
	}, nil
}

// checkRecipient refuses what could escape the To header.
func checkRecipient(name, address string) error {
	if strings.ContainsFunc(name, unicode.IsControl) || strings.ContainsFunc(address, unicode.IsControl) {
		return fmt.Errorf("%w: control characters", ErrBadAddress)
	}
	a, err := mail.ParseAddress(address)
	if err != nil || a.Address != address || a.Name != "" {
		return fmt.Errorf("%w: %q is not a single plain address", ErrBadAddress, address)
	}
	return nil
}

// Enqueue puts m in the outbox within tx, the transaction of the event that
// causes it: the mail is sent once tx commits, and never if it rolls back.
// Messages made by Compose are safe; Enqueue checks the recipient again.
// Handlers hold no *gorm.DB: they call it through models.Tx.EnqueueMail.
//
//	err := db.Transaction(func(tx *gorm.DB) error {
//		// ... the event's own writes ...
//		msg, err := mail.Compose(ctx, "password_changed", u.Name, u.Email, views.PasswordChangedMail{...})
//		if err != nil {
//			return err
//		}
//		return mail.Enqueue(tx, msg)
//	})
func Enqueue(tx *gorm.DB, m Message) error {
	if err := checkRecipient(m.ToName, m.ToAddress); err != nil {
		return err
	}
	row := Message{Kind: m.Kind, ToAddress: m.ToAddress, ToName: m.ToName, Subject: m.Subject,
		TextBody: m.TextBody, HTMLBody: m.HTMLBody}
	if err := tx.Create(&row).Error; err != nil {
		return fmt.Errorf("enqueue %s mail: %w", m.Kind, err)
	}
	return nil
}

// OldestUnsentAge is how long the oldest message still waiting to be sent
// has waited (0 when none waits): the outbox's lag, cheap to read (a
// partial index holds only unsent messages).
func OldestUnsentAge(ctx context.Context, db *gorm.DB) (time.Duration, error) {
	var secs *float64
	err := db.WithContext(ctx).Raw(`SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM mail_outbox
		WHERE sent_at IS NULL AND failed_at IS NULL`).Scan(&secs).Error
	if err != nil {
		return 0, fmt.Errorf("outbox age: %w", err)
	}
	if secs == nil || *secs < 0 {
		return 0, nil
	}
	return time.Duration(*secs * float64(time.Second)), nil
}

// Recent returns the newest messages of the outbox, for the development
// mailbox.
func Recent(ctx context.Context, db *gorm.DB, limit int) ([]Message, error) {
	var out []Message
	if err := db.WithContext(ctx).Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("recent mail: %w", err)
	}
	return out, nil
}
