package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

func tokenOf(link, path string) string { return strings.TrimPrefix(link, path+"?token=") }

// userID is the id of email's account.
func userID(t *testing.T, env *apptest.Env, email string) int64 {
	t.Helper()
	u, err := env.App.Users.ByEmail(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func TestEmailChangeConfirmAndUndo(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, apptest.With("PASSWORD_CONCURRENCY_PER_IP", "0"))
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	laptop := env.Client(t)
	laptop.SignIn("ada@example.com", "analytical engine")

	res := c.Post("/account", url.Values{"name": {"Ada"}, "email": {"ada@new.example"}})
	if res.StatusCode != http.StatusSeeOther || !strings.Contains(c.Get("/account").Body, "Your email changes when you open it") {
		t.Fatalf("change request: %d", res.StatusCode)
	}
	if storedEmail(t, env, userID(t, env, "ada@example.com")) != "ada@example.com" {
		t.Fatal("the address changed before the link was opened")
	}
	m := env.Mail.WaitFor(t, "ada@new.example", 1)
	if m.Subject() != "Confirm your new email address for Gatehouse" {
		t.Fatalf("subject %q", m.Subject())
	}
	confirm := m.Link(t, "/email/confirm")
	// Opened in a browser without a session: GET changes nothing, the
	// button does.
	browser := env.Client(t)
	if page := browser.Get(confirm); page.StatusCode != http.StatusOK || !strings.Contains(page.Body, "ada@new.example") {
		t.Fatalf("confirm page: %d", page.StatusCode)
	}
	if res := browser.Post("/email/confirm", url.Values{"token": {tokenOf(confirm, "/email/confirm")}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %d", res.StatusCode)
	}
	id := userID(t, env, "ada@new.example")
	if !verified(t, env, "ada@new.example") {
		t.Fatal("the confirmed address is not verified")
	}
	if v, _ := c.Get("/account").Doc(t).Find(`input[name="email"]`).Attr("value"); v != "ada@new.example" {
		t.Fatalf("the profile shows %q", v)
	}
	if res := browser.Post("/email/confirm", url.Values{"token": {tokenOf(confirm, "/email/confirm")}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("confirm link used twice: %d", res.StatusCode)
	}

	// The old address is told, with an undo link; racers use it once.
	notice := env.Mail.WaitForSubject(t, "ada@example.com", "Your Gatehouse email address was changed", 1)
	undo := notice.Link(t, "/email/undo")
	if page := env.Client(t).Get(undo); page.StatusCode != http.StatusOK {
		t.Fatalf("undo page: %d", page.StatusCode)
	}
	raceOnce(t, env, 4, "/email/undo", url.Values{"token": {tokenOf(undo, "/email/undo")}})
	if got := storedEmail(t, env, id); got != "ada@example.com" {
		t.Fatalf("after undo the address is %q", got)
	}
	// Every session ended; the password no longer works.
	for _, s := range []*apptest.Client{c, laptop} {
		if res := s.Get("/account"); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("a session survived the undo: %d", res.StatusCode)
		}
	}
	if res := env.Client(t).Post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"analytical engine"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("the old password still works: %d", res.StatusCode)
	}
	// The reset link sent to the restored address sets the new one.
	reset := env.Mail.WaitForSubject(t, "ada@example.com", resetSubject, 1).Link(t, "/password/reset")
	if res := env.Client(t).Post("/password/reset", url.Values{"token": {tokenOf(reset, "/password/reset")}, "new_password": {"a fresh start"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reset after undo: %d", res.StatusCode)
	}
	env.Client(t).SignIn("ada@example.com", "a fresh start")
	var kinds []string
	env.App.DB.Table("audit_events").Where("kind IN ?", []string{"email_change_requested", "email_changed", "email_change_undone"}).Order("id").Pluck("kind", &kinds)
	if strings.Join(kinds, ",") != "email_change_requested,email_changed,email_change_undone" {
		t.Fatalf("audit kinds %v", kinds)
	}
}

func TestEmailChangeToAnAddressTakenMeanwhileChangesNothing(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "analytical engine")
	c.Post("/account", url.Values{"name": {"Ada"}, "email": {"shared@example.com"}})
	confirm := env.Mail.WaitFor(t, "shared@example.com", 1).Link(t, "/email/confirm")
	env.Client(t).SignUp("Bob", "shared@example.com", "builder bob")
	if res := c.Post("/email/confirm", url.Values{"token": {tokenOf(confirm, "/email/confirm")}}); res.StatusCode != http.StatusConflict {
		t.Fatalf("confirm to a taken address: %d", res.StatusCode)
	}
	if got := storedEmail(t, env, userID(t, env, "ada@example.com")); got != "ada@example.com" {
		t.Fatalf("address now %q", got)
	}
	// A change link is no undo link, and no verification link.
	for _, path := range []string{"/email/undo", "/verify", "/password/reset"} {
		if res := c.Post(path, url.Values{"token": {tokenOf(confirm, "/email/confirm")}, "new_password": {"whatever it is"}}); res.StatusCode != http.StatusBadRequest {
			t.Errorf("change token at %s: %d", path, res.StatusCode)
		}
	}
}
