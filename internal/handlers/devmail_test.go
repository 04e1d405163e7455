package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

func TestDevMailboxShowsTheMailWithoutSMTP(t *testing.T) {
	t.Parallel()
	// SMTP_URL unset, BASE_URL on this machine (the default).
	env := apptest.New(t, apptest.With("SMTP_URL", ""))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	forgot(env.Client(t), "ada@example.com")
	deadline := time.Now().Add(15 * time.Second)
	var page *apptest.Response
	for {
		page = env.Client(t).Get("/dev/mail")
		if strings.Contains(page.Body, "Reset your Gatehouse password") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if page.StatusCode != http.StatusOK || !strings.Contains(page.Body, "Reset your Gatehouse password") {
		t.Fatalf("dev mailbox: %d\n%s", page.StatusCode, page.Body)
	}
	// Its link works, through the whole flow.
	i := strings.Index(page.Body, "/password/reset?token=")
	link := page.Body[i : i+len("/password/reset?token=")+43]
	res := env.Client(t).Post("/password/reset", url.Values{"token": {strings.TrimPrefix(link, "/password/reset?token=")}, "new_password": {"difference engine"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reset from the dev mailbox's link: %d", res.StatusCode)
	}
	// The HTML part is served on its own, styled inline, with no script.
	doc := page.Doc(t)
	href, _ := doc.Find(`[data-testid="devmail-message"] a`).First().Attr("href") // newest first: the reset mail
	html := env.Client(t).Get(href)
	if html.StatusCode != http.StatusOK || !strings.Contains(html.Body, "Choose a new password") ||
		!strings.Contains(html.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("HTML part %s: %d %q", href, html.StatusCode, html.Header.Get("Content-Security-Policy"))
	}
}

func TestDevMailboxOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	for _, vars := range [][]apptest.Option{
		{apptest.With("SMTP_URL", ""), apptest.With("BASE_URL", "https://gatehouse.example.com")},
		{}, // the sink: SMTP_URL set
	} {
		env := apptest.New(t, vars...)
		if res := env.Client(t).Get("/dev/mail"); res.StatusCode != http.StatusNotFound {
			t.Errorf("/dev/mail with %d options: %d, want 404", len(vars), res.StatusCode)
		}
	}
}
