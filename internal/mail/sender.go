package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Transport hands messages to a mail server. Send returns one error per
// message (nil: accepted), or a single error for all of them when it could
// not even connect.
type Transport interface {
	Send(ctx context.Context, msgs []Message) ([]error, error)
}

// PermanentError marks a refusal that retrying cannot fix (an SMTP 5xx):
// the message is given up at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// SenderOptions configure a Sender; zero values take the defaults.
type SenderOptions struct {
	// Transport sends the mail; nil means nothing is sent and mail waits.
	Transport Transport
	// KeepBodies keeps a sent message's bodies (the development mailbox
	// shows them); otherwise they are cleared, since they hold tokens.
	KeepBodies bool
	// GiveUpAfter bounds how long after its creation a message is retried.
	GiveUpAfter time.Duration
	// Poll is how often the outbox is checked for due messages.
	Poll time.Duration
	// SendTimeout bounds one batch's SMTP conversation.
	SendTimeout time.Duration
	// Batch is how many messages one claim takes.
	Batch int
	// Before runs at the start of every round, in the same goroutine: the
	// account mail worker turns requests into messages there.
	Before func(ctx context.Context) error
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultGiveUpAfter = 24 * time.Hour
	DefaultPoll        = 500 * time.Millisecond
	DefaultSendTimeout = 30 * time.Second
	maxBackoff         = 10 * time.Minute
)

// Sender sends the outbox's messages in the background. Several instances
// can run one each against one database: a claimed message is leased to
// its claimer for longer than a send can take, so it is sent once.
type Sender struct {
	db   *gorm.DB
	opt  SenderOptions
	wake chan struct{}
}

// NewSender returns a Sender on db.
func NewSender(db *gorm.DB, opt SenderOptions) *Sender {
	if opt.GiveUpAfter <= 0 {
		opt.GiveUpAfter = DefaultGiveUpAfter
	}
	if opt.Poll <= 0 {
		opt.Poll = DefaultPoll
	}
	if opt.SendTimeout <= 0 {
		opt.SendTimeout = DefaultSendTimeout
	}
	if opt.Batch <= 0 {
		opt.Batch = 20
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Sender{db: db, opt: opt, wake: make(chan struct{}, 1)}
}

// Wake asks the sender to look at the outbox now rather than at its next
// poll (after this instance queued a message).
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run sends until ctx is cancelled. A failing database or mail server is
// logged and tried again at the next round; nothing is lost.
func (s *Sender) Run(ctx context.Context) {
	failures := 0
	for {
		wait := s.opt.Poll
		if err := s.Round(ctx); err != nil && ctx.Err() == nil {
			// While Postgres is down, wait longer between rounds (up to
			// 64 polls) and say so less often.
			failures++
			wait = s.opt.Poll << min(failures, 6)
			s.opt.Logger.WarnContext(ctx, "mail: sending round failed; retrying", "in", wait, "err", err)
		} else {
			failures = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.wake:
			t.Stop()
		}
	}
}

// Round runs Before, then sends every due message, batch by batch.
func (s *Sender) Round(ctx context.Context) error {
	if s.opt.Before != nil {
		if err := s.opt.Before(ctx); err != nil {
			return err
		}
	}
	if s.opt.Transport == nil {
		return nil
	}
	for ctx.Err() == nil {
		n, err := s.sendBatch(ctx)
		if err != nil || n < s.opt.Batch {
			return err
		}
	}
	return nil
}

// lease is how long a claimed message is its claimer's: longer than any
// send may take, so no other instance sends it meanwhile.
func (s *Sender) lease() time.Duration { return 2*s.opt.SendTimeout + time.Minute }

func (s *Sender) sendBatch(ctx context.Context) (int, error) {
	var msgs []Message
	err := s.db.WithContext(ctx).Raw(`UPDATE mail_outbox SET attempts = attempts + 1,
			next_attempt_at = now() + ? * interval '1 millisecond'
		WHERE id IN (SELECT id FROM mail_outbox
			WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
			ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED)
		RETURNING *`, s.lease().Milliseconds(), s.opt.Batch).Scan(&msgs).Error
	if err != nil {
		return 0, fmt.Errorf("claim mail: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	sendCtx, cancel := context.WithTimeout(ctx, s.opt.SendTimeout)
	errs, err := s.opt.Transport.Send(sendCtx, msgs)
	cancel()
	if err != nil {
		errs = make([]error, len(msgs))
		for i := range errs {
			errs[i] = err
		}
	}
	// The outcome is recorded even while ctx ends (shutdown): a message
	// sent must not be sent again.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for i, m := range msgs {
		if rerr := s.record(rctx, m, errs[i]); rerr != nil {
			return len(msgs), rerr
		}
	}
	return len(msgs), nil
}

// record notes how sending m went: sent, retried later with back-off, or
// given up (permanent refusal, or older than GiveUpAfter). The update is
// fenced by the attempt number, so a claimer whose lease ran out cannot
// overwrite a newer claimer's outcome.
func (s *Sender) record(ctx context.Context, m Message, sendErr error) error {
	q := s.db.WithContext(ctx).Model(&Message{}).Where("id = ? AND attempts = ?", m.ID, m.Attempts)
	clear := map[string]any{}
	if !s.opt.KeepBodies {
		clear = map[string]any{"text_body": "", "html_body": ""}
	}
	log := s.opt.Logger.With("mail_id", m.ID, "kind", m.Kind, "attempt", m.Attempts)
	var err error
	switch {
	case sendErr == nil:
		err = q.Updates(merge(clear, map[string]any{"sent_at": gorm.Expr("now()"), "last_error": ""})).Error
		log.InfoContext(ctx, "mail: sent")
	case isPermanent(sendErr) || time.Since(m.CreatedAt) >= s.opt.GiveUpAfter:
		err = q.Updates(merge(clear, map[string]any{"failed_at": gorm.Expr("now()"), "last_error": errorText(sendErr)})).Error
		log.ErrorContext(ctx, "mail: giving up", "err", sendErr)
	default:
		wait := backoff(m.Attempts)
		err = q.Updates(map[string]any{
			"next_attempt_at": gorm.Expr("now() + ? * interval '1 millisecond'", wait.Milliseconds()),
			"last_error":      errorText(sendErr),
		}).Error
		log.WarnContext(ctx, "mail: not sent; will retry", "in", wait, "err", sendErr)
	}
	if err != nil {
		return fmt.Errorf("record mail %d: %w", m.ID, err)
	}
	return nil
}

// backoff is the wait after the n-th failed attempt: 1 s, 2 s, 4 s, ...
// up to ten minutes.
func backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 20 {
		return maxBackoff
	}
	return min(time.Second<<(n-1), maxBackoff)
}

func isPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// errorText keeps a stored error short and on one line.
func errorText(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

func merge(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
