package apptest

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Sink is a real SMTP server in the test process: the app sends to it as
// to any mail server, and tests read what arrived, parsed. It can be told
// to refuse mail (a temporary or permanent SMTP error) or to hang.
type Sink struct {
	Addr string // host:port
	srv  *smtp.Server

	mu       sync.Mutex
	mails    []*Mail
	refuse   *smtp.SMTPError
	hang     chan struct{} // while non-nil, DATA waits for it to close
	arrived  chan struct{} // closed and replaced whenever a mail arrives
	attempts int           // DATA commands seen, accepted or not
	tls      []bool        // whether each accepted mail came over TLS
	// user and pass, when set (RequireAuth), are the only credentials
	// AUTH PLAIN takes, and mail is refused without them.
	user, pass string
}

// RequireAuth makes the sink offer AUTH PLAIN, accept only user and pass,
// and refuse mail from a client that has not authenticated.
func (s *Sink) RequireAuth(user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, pass
}

// Mail is a message the sink accepted.
type Mail struct {
	From   string   // envelope sender
	Rcpt   []string // envelope recipients
	Header mail.Header
	Text   string // the text/plain part, decoded
	HTML   string // the text/html part, decoded
	Raw    string
}

// StartSink starts a sink on 127.0.0.1, closed when t ends. With tlsConf,
// it offers STARTTLS.
func StartSink(t testing.TB, tlsConf *tls.Config) *Sink {
	t.Helper()
	s := &Sink{arrived: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: s, conn: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.TLSConfig = tlsConf
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp sink: %v", err)
	}
	s.Addr, s.srv = ln.Addr().String(), srv
	go srv.Serve(ln)
	t.Cleanup(func() {
		s.Release()
		srv.Close()
	})
	return s
}

// URL is the SMTP_URL of the sink.
func (s *Sink) URL() string { return "smtp://" + s.Addr }

// Refuse makes the sink answer every message with code (451: try later;
// 550: refused for good) until Accept.
func (s *Sink) Refuse(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: "refused by the test"}
}

// Accept ends Refuse.
func (s *Sink) Accept() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = nil
}

// Hang makes the sink stop answering in the middle of DATA, as a hung
// server would, until Release.
func (s *Sink) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang == nil {
		s.hang = make(chan struct{})
	}
}

// Release ends Hang.
func (s *Sink) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

// Attempts is how many messages were offered (DATA), accepted or not.
func (s *Sink) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Mails returns the messages accepted so far.
func (s *Sink) Mails() []*Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Mail(nil), s.mails...)
}

// OverTLS reports, for each accepted message, whether it came over TLS.
func (s *Sink) OverTLS() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.tls...)
}

// To returns the accepted messages whose envelope names to.
func (s *Sink) To(to string) []*Mail {
	var out []*Mail
	for _, m := range s.Mails() {
		for _, r := range m.Rcpt {
			if strings.EqualFold(r, to) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// WaitFor waits (up to 15 s) until n messages to to have arrived, and
// returns the newest.
func (s *Sink) WaitFor(t testing.TB, to string, n int) *Mail {
	t.Helper()
	return s.WaitForSubject(t, to, "", n)
}

// WaitForSubject is WaitFor counting only the messages with subject (all
// of them when subject is "").
func (s *Sink) WaitForSubject(t testing.TB, to, subject string, n int) *Mail {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		s.mu.Lock()
		arrived := s.arrived
		s.mu.Unlock()
		var got []*Mail
		for _, m := range s.To(to) {
			if subject == "" || m.Subject() == subject {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got[len(got)-1]
		}
		select {
		case <-arrived:
		case <-deadline:
			t.Fatalf("no mail #%d to %s (subject %q) after 15 s; the sink has %d mails, %d offered", n, to, subject, len(s.Mails()), s.Attempts())
			return nil
		}
	}
}

// Subject is the decoded Subject header.
func (m *Mail) Subject() string {
	s, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		return m.Header.Get("Subject")
	}
	return s
}

var linkRE = regexp.MustCompile(`https?://[^\s"'<>]+`)

// Link returns the path and query of the first link in the text part whose
// path is path, to follow with a Client; it fails t if there is none, or
// if the HTML part does not have the same link.
func (m *Mail) Link(t testing.TB, path string) string {
	t.Helper()
	for _, raw := range linkRE.FindAllString(m.Text, -1) {
		u, err := url.Parse(raw)
		if err != nil || u.Path != path {
			continue
		}
		if !strings.Contains(m.HTML, strings.ReplaceAll(raw, "&", "&amp;")) {
			t.Fatalf("link %s is in the text part but not the HTML part", raw)
		}
		return u.RequestURI()
	}
	t.Fatalf("no link to %s in mail %q:\n%s", path, m.Subject(), m.Text)
	return ""
}

type sinkSession struct {
	sink *Sink
	conn *smtp.Conn
	from string
	rcpt []string
	// authed: the client gave the sink's credentials (RequireAuth).
	authed bool
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.sink.mu.Lock()
	required := ss.sink.user != ""
	ss.sink.mu.Unlock()
	if required && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

// AuthMechanisms offers AUTH PLAIN only when the sink requires it.
func (ss *sinkSession) AuthMechanisms() []string {
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	if ss.sink.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		ss.sink.mu.Lock()
		ok := user == ss.sink.user && pass == ss.sink.pass
		ss.sink.mu.Unlock()
		if !ok {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.rcpt = append(ss.rcpt, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := ss.sink
	s.mu.Lock()
	s.attempts++
	hang, refuse := s.hang, s.refuse
	s.mu.Unlock()
	if hang != nil {
		<-hang
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 0, 0}, Message: "hung"}
	}
	if refuse != nil {
		return refuse
	}
	m, err := parseMail(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unparseable: " + err.Error()}
	}
	m.From, m.Rcpt = ss.from, ss.rcpt
	_, overTLS := ss.conn.TLSConnectionState()
	s.mu.Lock()
	s.mails = append(s.mails, m)
	s.tls = append(s.tls, overTLS)
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset()        { ss.from, ss.rcpt = "", nil }
func (ss *sinkSession) Logout() error { return nil }

// parseMail reads a message and its text and HTML parts.
func parseMail(raw []byte) (*Mail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	m := &Mail{Header: msg.Header, Raw: string(raw)}
	err = readPart(m, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	return m, err
}

func readPart(m *Mail, contentType, encoding string, body io.Reader) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			if err := readPart(m, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	switch mt {
	case "text/plain":
		m.Text = string(b)
	case "text/html":
		m.HTML = string(b)
	}
	return nil
}
