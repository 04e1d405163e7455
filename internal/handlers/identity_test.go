package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// Identifiers: email addresses have one canonical form (NFKC, lower case,
// IDNA domain) used for storage, uniqueness, comparison and sign-in, and
// look-alike or invisible characters are refused (models.NormalizeEmail).

// storedEmail is the address Postgres holds for the user with id.
func storedEmail(t *testing.T, env *apptest.Env, id int64) string {
	t.Helper()
	u, err := env.App.Users.ByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u.Email
}

// TestLookAlikeEmailChangeChangesNothing replays the attack of issue 11: a
// stolen cookie, too old for sensitive actions, "changes" sam@ to ſam@ (or
// kate@ to Kelvin-sign-ate@), which a case-insensitive comparison let
// through without the password, locking the owner out and freeing sam@ for
// the attacker. Now the look-alike is the same canonical address: nothing
// changes, the owner still signs in, and sam@ stays taken. An address that
// only case-folding equates (Greek final sigma) is a real change and asks
// for the password.
func TestLookAlikeEmailChangeChangesNothing(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	for _, tt := range []struct{ owner, lookAlike string }{
		{"sam@example.com", "\u017fam@example.com"},   // ſ LATIN SMALL LETTER LONG S
		{"kate@example.com", "\u212aate@example.com"}, // K KELVIN SIGN
	} {
		t.Run(tt.lookAlike, func(t *testing.T) {
			stolen, u := signedInUser(t, env, tt.owner)
			env.Clock.Advance(11 * time.Minute) // past REAUTH_WINDOW
			res := stolen.Post("/account", url.Values{"name": {u.Name}, "email": {tt.lookAlike}})
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d\n%s", res.StatusCode, res.Body)
			}
			if got := storedEmail(t, env, u.ID); got != tt.owner {
				t.Fatalf("the stored address is now %q, want %q", got, tt.owner)
			}
			if hasKind(auditKinds(t, env, u.ID), models.AuditEmailChanged) {
				t.Error("an email change was recorded")
			}
			env.Client(t).SignIn(tt.owner, "user password")
			attacker := env.Client(t)
			res = attacker.Post("/signup", url.Values{"name": {"Mallory"}, "email": {tt.owner}, "password": {"mallory's own password"}})
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("the attacker signed up as %s: status %d", tt.owner, res.StatusCode)
			}
		})
	}

	t.Run("a change only case-folding hides", func(t *testing.T) {
		stolen, u := signedInUser(t, env, "σοφος@example.gr")
		env.Clock.Advance(11 * time.Minute)
		res := postFrom(stolen, "/account", "/account", url.Values{"name": {u.Name}, "email": {"σοφοσ@example.gr"}})
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Location(), "/account/confirm") {
			t.Fatalf("stale change to another address: %d to %q, want the confirm page", res.StatusCode, res.Location())
		}
		if got := storedEmail(t, env, u.ID); got != "σοφος@example.gr" {
			t.Fatalf("the address changed without the password: %q", got)
		}
	})
}

// TestSignUpOfALookAlikeIsRefusedAsTaken: every spelling that reads as an
// existing address is that address, so signing up with it is refused and
// creates nothing.
func TestSignUpOfALookAlikeIsRefusedAsTaken(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.Client(t).SignUp("Sam", "sam@example.com", "sams password")
	env.Client(t).SignUp("Kate", "kate@example.com", "kates password")
	for _, email := range []string{
		"\u017fam@example.com",  // long s
		"\u212aATE@EXAMPLE.COM", // Kelvin sign, upper case
		"ｓａｍ@ｅｘａｍｐｌｅ.ｃｏｍ",       // fullwidth
		"SAM@example.com",       // case
		"sam@EXAMPLE.com",       // case in the domain
	} {
		t.Run(email, func(t *testing.T) {
			before := userCount(t, env)
			c := env.Client(t)
			res := c.Post("/signup", url.Values{"name": {"Mallory"}, "email": {email}, "password": {"mallory's own password"}})
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", res.StatusCode)
			}
			doc := res.Doc(t)
			checkOnlyFieldError(t, doc, "email")
			if got := fieldErrors(doc)["email"]; got != "An account with this email already exists. Sign in instead?" {
				t.Errorf("email error %q", got)
			}
			if got := inputValue(doc, "email"); got != email {
				t.Errorf("the form shows %q, want what was typed, %q", got, email)
			}
			if userCount(t, env) != before || setsSession(res) {
				t.Error("the look-alike sign-up created an account or a session")
			}
		})
	}
}

// TestSignInWorksWithAnyFormOfTheAddress: the address is stored in its
// canonical form, and any case or compatibility spelling of it signs in.
func TestSignInWorksWithAnyFormOfTheAddress(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.Client(t)
	c.SignUp("Sam", "Sam@Example.COM", "sams password")
	u := mustUser(t, env, "sam@example.com")
	if u.Email != "sam@example.com" {
		t.Fatalf("stored %q, want the canonical sam@example.com", u.Email)
	}
	if got := inputValue(c.Get("/account").Doc(t), "email"); got != "sam@example.com" {
		t.Errorf("the profile shows %q", got)
	}
	for _, email := range []string{
		"sam@example.com", "SAM@EXAMPLE.COM", "\u017fam@example.com", "ｓａｍ@ｅｘａｍｐｌｅ.ｃｏｍ", " sam@example.com ",
	} {
		env.Client(t).SignIn(email, "sams password")
	}

	// Failures count against the account whatever spelling they use.
	attacker := env.Client(t)
	spellings := []string{"sam@example.com", "SAM@example.com", "\u017fam@example.com", "ｓａｍ@example.com", "Sam@Example.com"}
	for i := range throttle.AccountFreeFailures {
		if res := signInAttempt(attacker, spellings[i%len(spellings)], "wrong password"); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("failure %d: status %d", i+1, res.StatusCode)
		}
	}
	if res := signInAttempt(env.Client(t), "sam@example.com", "sams password"); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after the free failures in several spellings: status %d, want 429 (one account, one count)", res.StatusCode)
	}
}

// TestLookAlikeAndInvisibleAddressesAreRefused: control and format
// characters anywhere, and local parts or domain labels mixing scripts,
// are refused on sign-up and on the profile, with a message on the field,
// and nothing is created or changed.
func TestLookAlikeAndInvisibleAddressesAreRefused(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	me, u := signedInUser(t, env, "ada@example.com")
	for _, tt := range []struct{ name, email, message string }{
		{"zero-width space", "ad\u200bmin@example.com", "invisible characters"},
		{"right-to-left override", "\u202emoc.elpmaxe@nimda", "invisible characters"},
		{"soft hyphen", "ad\u00admin@example.com", "invisible characters"},
		{"Cyrillic a in a Latin local part", "\u0430dmin@example.com", "mixes Cyrillic and Latin letters"},
		{"Greek omicron in a Latin local part", "r\u03bfot@example.com", "mixes Greek and Latin letters"},
		{"Cyrillic e in a Latin domain", "admin@\u0435xample.com", "mixes Cyrillic and Latin letters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := userCount(t, env)
			res := env.Client(t).Post("/signup", url.Values{"name": {"Mallory"}, "email": {tt.email}, "password": {"mallory's own password"}})
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("sign-up: status %d, want 422", res.StatusCode)
			}
			doc := res.Doc(t)
			checkOnlyFieldError(t, doc, "email")
			if got := fieldErrors(doc)["email"]; !strings.Contains(got, tt.message) {
				t.Errorf("sign-up email error %q, want it to say %q", got, tt.message)
			}
			if userCount(t, env) != before {
				t.Error("the sign-up created an account")
			}

			res = me.Post("/account", url.Values{"name": {u.Name}, "email": {tt.email}})
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("profile: status %d, want 422", res.StatusCode)
			}
			checkOnlyFieldError(t, res.Doc(t), "email")
			if got := storedEmail(t, env, u.ID); got != "ada@example.com" {
				t.Errorf("the address changed to %q", got)
			}
		})
	}

	// Scripts that are written together are not "mixed", nor are addresses
	// in one script other than Latin.
	for _, email := range []string{"иван@example.com", "山田たろう@example.jp", "yamadaタロウ@example.jp", "ab@bücher.de"} {
		env.Client(t).SignUp("Someone", email, "their own password")
	}
}

// TestNamesRefuseControlAndFormatCharacters: a name with a bidirectional
// override (which renders as other text in admin pages and the audit log),
// an invisible or a control character is refused with a message on the
// field; the joiners Persian and Indic names need are accepted.
func TestNamesRefuseControlAndFormatCharacters(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	me, u := signedInUser(t, env, "ada@example.com")
	for _, name := range []string{"Ada \u202enimda", "Ada\u2066 admin", "Ad\u200ba", "Ada\u2028Admin"} {
		res := env.Client(t).Post("/signup", url.Values{"name": {name}, "email": {"other@example.com"}, "password": {"their own password"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("sign-up as %q: status %d, want 422", name, res.StatusCode)
		}
		doc := res.Doc(t)
		checkOnlyFieldError(t, doc, "name")
		if got := fieldErrors(doc)["name"]; got != "Your name cannot contain control characters or invisible formatting characters." {
			t.Errorf("name error %q", got)
		}
		if res := me.Post("/account", url.Values{"name": {name}, "email": {u.Email}}); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("profile name %q: status %d, want 422", name, res.StatusCode)
		}
	}
	if got := mustUser(t, env, "ada@example.com").Name; got != u.Name {
		t.Errorf("the name changed to %q", got)
	}
	if res := me.Post("/account", url.Values{"name": {"مریم می\u200cخواهد"}, "email": {u.Email}}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("a Persian name with a zero-width non-joiner: status %d, want 303", res.StatusCode)
	}
}
