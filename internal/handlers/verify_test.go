package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// verifiedAt reads whether email's account is verified.
func verified(t *testing.T, env *apptest.Env, email string) bool {
	t.Helper()
	u, err := env.App.Users.ByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u.EmailVerifiedAt != nil
}

func TestSignUpSendsAVerificationLinkThatVerifiesOnPost(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	// The account works at once, and says it is unverified.
	doc := c.Get("/account").Doc(t)
	if doc.Find(`[data-testid="unverified"]`).Length() != 1 || doc.Find(`form[action="/account/verify/resend"]`).Length() != 1 {
		t.Fatal("the profile does not show the address as unverified with Resend")
	}
	m := env.Mail.WaitFor(t, "ada@example.com", 1)
	if m.Subject() != "Verify your email address for Gatehouse" {
		t.Fatalf("subject %q", m.Subject())
	}
	link := m.Link(t, "/verify")
	// Opening the link (a preview, a scanner, or the person) changes
	// nothing; the page's button does, in a browser without a session.
	browser := env.Client(t)
	for range 3 {
		page := browser.Get(link)
		if page.StatusCode != http.StatusOK || page.Doc(t).Find(`form[action="/verify"] button`).Length() != 1 {
			t.Fatalf("verify page: %d\n%s", page.StatusCode, page.Body)
		}
	}
	if verified(t, env, "ada@example.com") {
		t.Fatal("GET verified the address")
	}
	token := strings.TrimPrefix(link, "/verify?token=")
	// In the browser that signed up (it holds the page's "unverified"
	// hint): back to the profile.
	res := c.Post("/verify", url.Values{"token": {token}})
	if res.StatusCode != http.StatusSeeOther || res.Location() != "/account" {
		t.Fatalf("verify: %d → %q", res.StatusCode, res.Location())
	}
	if !verified(t, env, "ada@example.com") {
		t.Fatal("the address is not verified")
	}
	if doc := c.Get("/account").Doc(t); doc.Find(`[data-testid="unverified"]`).Length() != 0 {
		t.Fatal("the profile still says unverified")
	}
	// Used: refused, with a clear page.
	if res := browser.Post("/verify", url.Values{"token": {token}}); res.StatusCode != http.StatusBadRequest || !strings.Contains(res.Body, "This link no longer works") {
		t.Fatalf("second use: %d", res.StatusCode)
	}
	// A verification token is no reset token, and the reverse.
	if res := browser.Post("/password/reset", url.Values{"token": {token}, "new_password": {"hijacked password"}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("verify token at /password/reset: %d", res.StatusCode)
	}
	forgot(env.Client(t), "ada@example.com")
	reset := strings.TrimPrefix(env.Mail.WaitForSubject(t, "ada@example.com", resetSubject, 1).Link(t, "/password/reset"), "/password/reset?token=")
	if res := browser.Post("/verify", url.Values{"token": {reset}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("reset token at /verify: %d", res.StatusCode)
	}
	var kinds []string
	env.App.DB.Table("audit_events").Where("kind LIKE 'email_%'").Order("id").Pluck("kind", &kinds)
	if strings.Join(kinds, ",") != "email_verification_sent,email_verified" {
		t.Fatalf("audit kinds %v", kinds)
	}
}

func TestVerificationLinkIsSingleUseUnderConcurrentUse(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Client(t).SignUp("Ada", "ada@example.com", "analytical engine")
	token := strings.TrimPrefix(env.Mail.WaitFor(t, "ada@example.com", 1).Link(t, "/verify"), "/verify?token=")
	statuses := make([]int, 6)
	var wg sync.WaitGroup
	for i := range statuses {
		c := env.Client(t)
		c.CSRFToken()
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = c.Post("/verify", url.Values{"token": {token}}).StatusCode
		}()
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		if s == http.StatusSeeOther {
			won++
		} else if s != http.StatusBadRequest {
			t.Fatalf("statuses %v", statuses)
		}
	}
	if won != 1 {
		t.Fatalf("%d uses of one link succeeded (%v), want 1", won, statuses)
	}
	var events int64
	env.App.DB.Table("audit_events").Where("kind = 'email_verified'").Count(&events)
	if events != 1 {
		t.Fatalf("%d email_verified events, want 1", events)
	}
}

func TestResendVerificationIsBoundedAndOldAddressLinksDie(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	first := env.Mail.WaitFor(t, "ada@example.com", 1).Link(t, "/verify")
	for i := range 3 {
		if res := c.Post("/account/verify/resend", nil); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("resend %d: %d", i+1, res.StatusCode)
		}
	}
	res := c.Post("/account/verify/resend", nil)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth resend: %d", res.StatusCode)
	}
	env.Mail.WaitFor(t, "ada@example.com", 4)
	drained(t, env)
	if n := len(env.Mail.To("ada@example.com")); n != 4 {
		t.Fatalf("%d mails, want 4", n)
	}
	// After the address changes, a link for the old one verifies nothing;
	// opening the change's link proved the new one.
	if res := c.Post("/account", url.Values{"name": {"Ada"}, "email": {"ada@newmail.example"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("email change: %d", res.StatusCode)
	}
	change := env.Mail.WaitFor(t, "ada@newmail.example", 1).Link(t, "/email/confirm")
	if res := c.Post("/email/confirm", url.Values{"token": {strings.TrimPrefix(change, "/email/confirm?token=")}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %d", res.StatusCode)
	}
	if res := env.Client(t).Post("/verify", url.Values{"token": {strings.TrimPrefix(first, "/verify?token=")}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("old address's link: %d", res.StatusCode)
	}
	if !verified(t, env, "ada@newmail.example") {
		t.Fatal("the confirmed new address is not verified")
	}
	if c.Get("/account").Doc(t).Find(`[data-testid="unverified"]`).Length() != 0 {
		t.Fatal("after confirming the new address the profile says unverified")
	}
}

func TestAdminPagesShowVerifiedStatus(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	admin, _ := signedInAdmin(t, env)
	_, u := signedInUser(t, env, "bea@example.com")
	doc := admin.Get(userPath(u)).Doc(t)
	if got := doc.Find(`[data-testid="user-verified"]`).Text(); got != "no" {
		t.Fatalf("admin user page says verified %q", got)
	}
	if admin.Get("/admin/users").Doc(t).Find(`[data-testid="unverified"]`).Length() != 2 {
		t.Fatal("the user list does not mark both unverified accounts")
	}
	link := env.Mail.WaitFor(t, "bea@example.com", 1).Link(t, "/verify")
	env.Client(t).Post("/verify", url.Values{"token": {strings.TrimPrefix(link, "/verify?token=")}})
	if got := admin.Get(userPath(u)).Doc(t).Find(`[data-testid="user-verified"]`).Text(); !strings.HasPrefix(got, "yes") {
		t.Fatalf("after verifying, admin page says %q", got)
	}
}
