package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTP sends through one SMTP server, named by an SMTP_URL:
//
//	smtp://[user:pass@]host[:port]   STARTTLS when the server offers it (port 587 unless given)
//	smtps://[user:pass@]host[:port]  TLS from the first byte (port 465 unless given)
//
// AUTH is used only when the URL has credentials.
type SMTP struct {
	host     string
	port     int
	implicit bool // smtps
	user     string
	pass     string
	hasAuth  bool
	from     *mail.Address
	// TLSConfig, when set, replaces the default (verify the server's
	// certificate for host); tests trust their own certificate with it.
	TLSConfig *tls.Config
	// Timeout bounds each step of the conversation (dial, each command).
	Timeout time.Duration
}

// ParseSMTPURL checks an SMTP_URL.
func ParseSMTPURL(raw string, from *mail.Address) (*SMTP, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return nil, errors.New("want smtp://[user:pass@]host[:port] or smtps://[user:pass@]host[:port]")
	}
	s := &SMTP{host: u.Hostname(), from: from, Timeout: 15 * time.Second}
	switch u.Scheme {
	case "smtp":
		s.port = 587
	case "smtps":
		s.port, s.implicit = 465, true
	default:
		return nil, errors.New("scheme must be smtp or smtps")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, errors.New("bad port")
		}
		s.port = n
	}
	if u.User != nil && u.User.Username() != "" {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		s.hasAuth = true
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, errors.New("must have no path or query")
	}
	return s, nil
}

// Send sends msgs over one connection. A failure to connect, say hello,
// start TLS or authenticate is the second result; a refusal of one message
// is that message's error, marked *PermanentError for a 5xx reply.
// Cancelling ctx closes the connection at once, even mid-command.
func (s *SMTP) Send(ctx context.Context, msgs []Message) ([]error, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.TLSConfig != nil {
		tlsConf = s.TLSConfig.Clone()
	}
	if tlsConf.ServerName == "" {
		tlsConf.ServerName = s.host
	}
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d interface {
			DialContext(context.Context, string, string) (net.Conn, error)
		} = &net.Dialer{}
		if s.implicit {
			d = &tls.Dialer{Config: tlsConf}
		}
		conn, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		// Closing the connection is the one way to stop a command that a
		// hung server never answers.
		context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}
	opts := []gomail.Option{
		gomail.WithPort(s.port), gomail.WithTimeout(s.Timeout), gomail.WithDialContextFunc(dial),
		gomail.WithTLSConfig(tlsConf),
	}
	if s.implicit {
		// TLS is already on (the dialer); no STARTTLS on top.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.hasAuth {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.user), gomail.WithPassword(s.pass))
	}
	client, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	conn, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("smtp %s:%d: %w", s.host, s.port, err)
	}
	defer client.CloseWithSMTPClient(conn)
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		gm, err := s.build(m)
		if err != nil {
			errs[i] = &PermanentError{err}
			continue
		}
		if err := client.SendWithSMTPClient(conn, gm); err != nil {
			// Only the server's own 5xx answer is final; timeouts and
			// broken connections are tried again.
			var se *gomail.SendError
			if errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
				err = &PermanentError{err}
			}
			errs[i] = err
			if ctx.Err() != nil {
				for j := i + 1; j < len(msgs); j++ {
					errs[j] = ctx.Err()
				}
				break
			}
		}
	}
	return errs, nil
}

// build makes the MIME message: multipart/alternative, plain text first.
// Addresses go in as structured values, which go-mail encodes, never as
// header text.
func (s *SMTP) build(m Message) (*gomail.Msg, error) {
	if err := checkRecipient(m.ToName, m.ToAddress); err != nil {
		return nil, err
	}
	gm := gomail.NewMsg()
	gm.FromMailAddress(s.from)
	gm.ToMailAddress(&mail.Address{Name: m.ToName, Address: m.ToAddress})
	gm.Subject(m.Subject)
	gm.SetMessageID()
	gm.SetDate()
	gm.SetBodyString(gomail.TypeTextPlain, m.TextBody)
	gm.AddAlternativeString(gomail.TypeTextHTML, m.HTMLBody)
	return gm, nil
}
