package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/password"
)

// commonPasswords are among the first passwords attackers try, each long
// enough for the length rule. NIST SP 800-63B asks that new passwords be
// checked against such a list; the forms say beforehand that they are
// refused, and say why on the field.
var commonPasswords = []string{"password", "12345678", "qwertyuiop", "iloveyou1", "Password1"}

func TestSignUpRefusesCommonPasswords(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	hint := env.Client(t).Get("/signup").Doc(t).Find("#password-hint").Text()
	if !strings.Contains(hint, "most common passwords") {
		t.Errorf("the sign-up form's hint does not say common passwords are refused: %q", hint)
	}
	for _, pw := range commonPasswords {
		t.Run(pw, func(t *testing.T) {
			c := env.Client(t)
			res := c.Post("/signup", url.Values{"name": {"Sam"}, "email": {"sam@example.com"}, "password": {pw}})
			checkTooCommon(t, res, "password")
			if userCount(t, env) != 0 || c.SessionToken() != "" {
				t.Error("the sign-up went through")
			}
		})
	}
}

func TestPasswordChangeRefusesCommonPasswords(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.Client(t)
	c.SignUp("Sam", "sam@example.com", "sams password")
	hint := c.Get("/account").Doc(t).Find("#new_password-hint").Text()
	if !strings.Contains(hint, "most common passwords") {
		t.Errorf("the change-password form's hint does not say common passwords are refused: %q", hint)
	}
	for _, pw := range commonPasswords {
		t.Run(pw, func(t *testing.T) {
			res := c.Post("/account/password", url.Values{"current_password": {"sams password"}, "new_password": {pw}})
			checkTooCommon(t, res, "new_password")
			env.Client(t).SignIn("sam@example.com", "sams password") // unchanged
		})
	}
}

// checkTooCommon asserts res refuses the password in field as too common:
// 422, the reason next to that field only, and the field described by its
// hint and its error.
func checkTooCommon(t *testing.T, res *apptest.Response, field string) {
	t.Helper()
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422", res.StatusCode)
	}
	doc := res.Doc(t)
	checkOnlyFieldError(t, doc, field)
	if got := fieldErrors(doc)[field]; got != password.MsgTooCommon {
		t.Errorf("%s error %q", field, got)
	}
	if got, _ := doc.Find(`input[name="` + field + `"]`).Attr("aria-describedby"); got != field+"-hint "+field+"-error" {
		t.Errorf("aria-describedby %q", got)
	}
}
