package mail_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a-h/templ"
	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/mail"
)

// note is a mail for tests.
type note struct{ subject, text string }

func (n note) Subject() string       { return n.subject }
func (n note) Text() string          { return n.text }
func (n note) HTML() templ.Component { return templ.Raw("<p>" + templ.EscapeString(n.text) + "</p>") }

// send queues one mail in a transaction of its own, as a handler would.
func send(t *testing.T, db *gorm.DB, to, subject string) {
	t.Helper()
	err := db.Transaction(func(tx *gorm.DB) error {
		m, err := mail.Compose(context.Background(), "test", "Test User", to, note{subject, "Hello from " + subject})
		if err != nil {
			return err
		}
		return mail.Enqueue(tx, m)
	})
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

// row reads an outbox row by subject.
func row(t *testing.T, db *gorm.DB, subject string) mail.Message {
	t.Helper()
	var m mail.Message
	if err := db.Where("subject = ?", subject).Take(&m).Error; err != nil {
		t.Fatalf("outbox row %q: %v", subject, err)
	}
	return m
}

// eventually polls cond for up to 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMultipartMailArrives(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	send(t, env.App.DB, "ada@example.com", "Greetings")
	m := env.Mail.WaitFor(t, "ada@example.com", 1)
	if m.Subject() != "Greetings" || !strings.Contains(m.Text, "Hello from Greetings") || !strings.Contains(m.HTML, "<p>Hello from Greetings</p>") {
		t.Fatalf("mail: subject %q, text %q, html %q", m.Subject(), m.Text, m.HTML)
	}
	if !strings.Contains(m.Header.Get("Content-Type"), "multipart/alternative") {
		t.Errorf("Content-Type = %q, want multipart/alternative", m.Header.Get("Content-Type"))
	}
	from, err := netmail.ParseAddress(m.Header.Get("From"))
	if err != nil || from.Address != "no-reply@localhost" {
		t.Errorf("From = %q (%v)", m.Header.Get("From"), err)
	}
	// Sent: the row stays as a record, without the bodies (they hold tokens).
	eventually(t, "the row marked sent", func() bool { return row(t, env.App.DB, "Greetings").SentAt != nil })
	if r := row(t, env.App.DB, "Greetings"); r.TextBody != "" || r.HTMLBody != "" {
		t.Errorf("a sent message keeps its bodies: %+v", r)
	}
}

func TestRefusedMailIsRetriedThenSent(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Mail.Refuse(451)
	send(t, env.App.DB, "bob@example.com", "Retry me")
	eventually(t, "two refused attempts", func() bool { return env.Mail.Attempts() >= 2 })
	r := row(t, env.App.DB, "Retry me")
	if r.SentAt != nil || r.FailedAt != nil || !strings.Contains(r.LastError, "451") || r.Attempts < 2 {
		t.Fatalf("after refusals the row is %+v, want waiting with the 451 recorded", r)
	}
	if r.TextBody == "" {
		t.Fatal("a message waiting for a retry lost its body")
	}
	env.Mail.Accept()
	env.Mail.WaitFor(t, "bob@example.com", 1)
	eventually(t, "the row marked sent", func() bool { return row(t, env.App.DB, "Retry me").SentAt != nil })
}

func TestMailIsGivenUpAfterTheBoundWithTheFailureRecorded(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("MAIL_GIVE_UP_AFTER", "2s"))
	env.Mail.Refuse(451)
	send(t, env.App.DB, "carol@example.com", "Doomed")
	eventually(t, "the message given up", func() bool { return row(t, env.App.DB, "Doomed").FailedAt != nil })
	r := row(t, env.App.DB, "Doomed")
	if !strings.Contains(r.LastError, "451") || r.TextBody != "" || r.SentAt != nil {
		t.Fatalf("given-up row: %+v", r)
	}
	attempts := env.Mail.Attempts()
	env.Mail.Accept()
	time.Sleep(1500 * time.Millisecond) // three polls
	if got := env.Mail.Attempts(); got != attempts || len(env.Mail.Mails()) != 0 {
		t.Fatalf("a given-up message was tried again: %d offers, %d mails", got, len(env.Mail.Mails()))
	}
	if !strings.Contains(env.Logs.String(), "mail: giving up") {
		t.Error("giving up was not logged")
	}
}

func TestPermanentRefusalIsGivenUpAtOnce(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Mail.Refuse(550)
	send(t, env.App.DB, "dave@example.com", "No such mailbox")
	eventually(t, "the message given up", func() bool { return row(t, env.App.DB, "No such mailbox").FailedAt != nil })
	if r := row(t, env.App.DB, "No such mailbox"); r.Attempts != 1 || !strings.Contains(r.LastError, "550") {
		t.Fatalf("row: %+v", r)
	}
}

func TestTwoInstancesSendEachMessageOnce(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	other := apptest.Start(t, env.Config) // same database, same SMTP server
	const n = 60
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := env.App.DB
			if i%2 == 1 {
				db = other.App.DB
			}
			send(t, db, "many@example.com", fmt.Sprintf("Message %d", i))
			env.App.Mail.Wake()
			other.App.Mail.Wake()
		}()
	}
	wg.Wait()
	env.Mail.WaitFor(t, "many@example.com", n)
	time.Sleep(time.Second) // let a duplicate, if any, arrive
	seen := map[string]int{}
	for _, m := range env.Mail.Mails() {
		seen[m.Subject()]++
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages arrived, want %d", len(seen), n)
	}
	for s, k := range seen {
		if k != 1 {
			t.Errorf("%q arrived %d times", s, k)
		}
	}
	if !strings.Contains(env.Logs.String(), "mail: sent") || !strings.Contains(other.Logs.String(), "mail: sent") {
		t.Log("note: one instance sent everything this time")
	}
}

func TestHungMailServerStallsNothingAndLosesNothing(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Mail.Hang()
	send(t, env.App.DB, "erin@example.com", "Through the hang")
	eventually(t, "the sender stuck in DATA", func() bool { return env.Mail.Attempts() >= 1 })
	// Requests go on while the sender waits on the hung server.
	c := env.Client(t)
	c.SignUp("Frank", "frank@example.com", "correct horse battery")
	if res := c.Get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("GET /account while SMTP hangs: %d", res.StatusCode)
	}
	if len(env.Mail.Mails()) != 0 {
		t.Fatal("the hung server accepted mail")
	}
	// The send times out and is retried; once the server answers, the
	// message arrives.
	eventually(t, "the timed-out attempt recorded", func() bool {
		return row(t, env.App.DB, "Through the hang").LastError != ""
	})
	env.Mail.Release()
	env.Mail.WaitFor(t, "erin@example.com", 1)
}

func TestStoppingTheSenderDuringAHungSendIsPrompt(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Mail.Hang()
	send(t, env.App.DB, "gina@example.com", "Interrupted")
	eventually(t, "the sender stuck in DATA", func() bool { return env.Mail.Attempts() >= 1 })
	done := make(chan struct{})
	go func() { env.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stopping the app waited on the hung mail server")
	}
	// The message was not sent and waits for another instance.
	other := apptest.Start(t, env.Config)
	if r := row(t, other.App.DB, "Interrupted"); r.SentAt != nil || r.FailedAt != nil {
		t.Fatalf("row after an interrupted send: %+v", r)
	}
}

func TestHeaderInjectionIsImpossible(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct{ name, addr string }{
		{"Eve\r\nBcc: victim@example.com", "eve@example.com"},
		{"Eve", "eve@example.com\r\nBcc: victim@example.com"},
		{"Eve", "eve@example.com\nSubject: owned"},
		{"Eve", "eve@example.com, victim@example.com"},
		{"Eve", "Victim <victim@example.com>"},
		{"Eve\x00", "eve@example.com"},
		{"Eve", ""},
	} {
		if _, err := mail.Compose(ctx, "test", tc.name, tc.addr, note{"Hi", "Hi"}); !errors.Is(err, mail.ErrBadAddress) {
			t.Errorf("Compose(%q, %q) = %v, want ErrBadAddress", tc.name, tc.addr, err)
		}
		if err := mail.Enqueue(nil, mail.Message{ToName: tc.name, ToAddress: tc.addr}); !errors.Is(err, mail.ErrBadAddress) {
			t.Errorf("Enqueue(%q, %q) = %v, want ErrBadAddress", tc.name, tc.addr, err)
		}
	}
	if _, err := mail.Compose(ctx, "test", "Eve", "eve@example.com", note{"Hi\r\nBcc: x@example.com", "Hi"}); err == nil {
		t.Error("a subject with CR LF was accepted")
	}

	// Names that look like addresses or header syntax travel as the name.
	env := apptest.New(t)
	tricky := `"Mallory" <mallory@evil.example>, Bob; Bcc: =?utf-8?q?x?= Ünïcødé`
	err := env.App.DB.Transaction(func(tx *gorm.DB) error {
		m, err := mail.Compose(ctx, "test", tricky, "bob@example.com", note{"Tricky", "Hi"})
		if err != nil {
			return err
		}
		return mail.Enqueue(tx, m)
	})
	if err != nil {
		t.Fatal(err)
	}
	m := env.Mail.WaitFor(t, "bob@example.com", 1)
	if len(m.Rcpt) != 1 || m.Rcpt[0] != "bob@example.com" {
		t.Fatalf("envelope recipients %q, want only bob", m.Rcpt)
	}
	to, err := netmail.ParseAddressList(m.Header.Get("To"))
	if err != nil || len(to) != 1 || to[0].Address != "bob@example.com" || to[0].Name != tricky {
		t.Fatalf("To header %q parses to %v (%v)", m.Header.Get("To"), to, err)
	}
	if m.Header.Get("Bcc") != "" {
		t.Fatal("a Bcc header appeared")
	}
}

func TestSTARTTLSWhenOfferedAndAuthOnlyWithCredentials(t *testing.T) {
	t.Parallel()
	// httptest's certificate, for 127.0.0.1, and a client config trusting it.
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	sink := apptest.StartSink(t, ts.TLS)
	trust := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	from := &netmail.Address{Name: "Gatehouse", Address: "no-reply@localhost"}

	s, err := mail.ParseSMTPURL(sink.URL(), from)
	if err != nil {
		t.Fatal(err)
	}
	s.TLSConfig = trust
	msg, _ := mail.Compose(context.Background(), "test", "Ann", "ann@example.com", note{"Secret", "over TLS"})
	errs, err := s.Send(context.Background(), []mail.Message{msg})
	if err != nil || errs[0] != nil {
		t.Fatalf("send: %v %v", err, errs)
	}
	if got := sink.OverTLS(); len(got) != 1 || !got[0] {
		t.Fatalf("over TLS: %v, want the STARTTLS the server offered", got)
	}

	// Without trust in the certificate, STARTTLS fails and nothing is sent
	// in clear.
	s2, _ := mail.ParseSMTPURL(sink.URL(), from)
	s2.TLSConfig = &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if _, err := s2.Send(context.Background(), []mail.Message{msg}); err == nil {
		t.Fatal("a certificate nobody trusts was accepted")
	}

	// Credentials in the URL mean AUTH; this sink offers none, so the send
	// fails rather than going out unauthenticated.
	s3, _ := mail.ParseSMTPURL("smtp://user:pass@"+sink.Addr, from)
	s3.TLSConfig = trust
	if _, err := s3.Send(context.Background(), []mail.Message{msg}); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("send with credentials to a server without AUTH: %v", err)
	}
	if n := len(sink.Mails()); n != 1 {
		t.Fatalf("sink has %d mails, want only the first", n)
	}
}

func TestParseSMTPURL(t *testing.T) {
	from := &netmail.Address{Address: "a@example.com"}
	for _, bad := range []string{"http://host", "smtp://", "smtp://host:0", "smtp://host:99999", "smtp://host/path", "smtp://host?x=1"} {
		if _, err := mail.ParseSMTPURL(bad, from); err == nil {
			t.Errorf("ParseSMTPURL(%q) accepted", bad)
		}
	}
	for _, good := range []string{"smtp://mail.example.com", "smtps://u:p@mail.example.com:2465", "smtp://127.0.0.1:2525"} {
		if _, err := mail.ParseSMTPURL(good, from); err != nil {
			t.Errorf("ParseSMTPURL(%q): %v", good, err)
		}
	}
}

func TestOldestUnsentAge(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	ctx := context.Background()
	if age, err := mail.OldestUnsentAge(ctx, env.App.DB); err != nil || age != 0 {
		t.Fatalf("empty outbox: %v, %v", age, err)
	}
	env.Mail.Refuse(451)
	send(t, env.App.DB, "hal@example.com", "Waiting")
	time.Sleep(300 * time.Millisecond)
	age, err := mail.OldestUnsentAge(ctx, env.App.DB)
	if err != nil || age < 200*time.Millisecond {
		t.Fatalf("age of a waiting message: %v, %v", age, err)
	}
	env.Mail.Accept()
	env.Mail.WaitFor(t, "hal@example.com", 1)
	eventually(t, "the outbox empty", func() bool {
		age, err := mail.OldestUnsentAge(ctx, env.App.DB)
		return err == nil && age == 0
	})
}

// With credentials in SMTP_URL and a server that offers AUTH (here over
// STARTTLS), the right ones send; wrong or missing ones deliver nothing.
func TestAuthWithTheURLsCredentials(t *testing.T) {
	t.Parallel()
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	sink := apptest.StartSink(t, ts.TLS)
	sink.RequireAuth("gatehouse", "s3cret pass")
	trust := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	from := &netmail.Address{Name: "Gatehouse", Address: "no-reply@localhost"}
	msg, _ := mail.Compose(context.Background(), "test", "Ann", "ann@example.com", note{"Hello", "authenticated"})

	send := func(url string) error {
		t.Helper()
		s, err := mail.ParseSMTPURL(url, from)
		if err != nil {
			t.Fatal(err)
		}
		s.TLSConfig = trust
		errs, err := s.Send(context.Background(), []mail.Message{msg})
		if err != nil {
			return err
		}
		return errs[0]
	}
	if err := send(sink.URL()); err == nil {
		t.Fatal("a server that requires AUTH took mail without it")
	}
	if err := send("smtp://gatehouse:wrong@" + sink.Addr); err == nil {
		t.Fatal("wrong credentials sent mail")
	}
	if n := len(sink.Mails()); n != 0 {
		t.Fatalf("%d mails delivered without the right credentials", n)
	}
	if err := send("smtp://gatehouse:s3cret%20pass@" + sink.Addr); err != nil {
		t.Fatalf("the right credentials: %v", err)
	}
	if got := sink.OverTLS(); len(got) != 1 || !got[0] {
		t.Fatalf("delivered %v, want one mail over TLS", got)
	}
}

// A server without TLS that offers AUTH PLAIN does not get the password:
// PLAIN would send it in clear, so nothing is sent at all.
func TestNoPasswordWithoutTLS(t *testing.T) {
	t.Parallel()
	sink := apptest.StartSink(t, nil)
	sink.RequireAuth("gatehouse", "s3cret")
	from := &netmail.Address{Name: "Gatehouse", Address: "no-reply@localhost"}
	msg, _ := mail.Compose(context.Background(), "test", "Ann", "ann@example.com", note{"Hello", "in clear?"})
	s, err := mail.ParseSMTPURL("smtp://gatehouse:s3cret@"+sink.Addr, from)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := s.Send(context.Background(), []mail.Message{msg})
	if err == nil && (len(errs) == 0 || errs[0] == nil) {
		t.Fatal("sent with a password over a connection without TLS")
	}
	if n := len(sink.Mails()); n != 0 {
		t.Fatalf("%d mails delivered", n)
	}
}
