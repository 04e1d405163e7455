package handlers

import (
	"cmp"
	"net/url"
	"strings"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/views"
)

// formValue returns a trimmed form field. Fields the client repeats count
// once: the first wins, as net/http does.
func formValue(c echo.Context, name string) string {
	return strings.TrimSpace(c.FormValue(name))
}

// formBool reads a checkbox: present and ticked, or not.
func formBool(c echo.Context, name string) bool {
	switch strings.ToLower(c.FormValue(name)) {
	case "1", "on", "true", "yes":
		return true
	}
	return false
}

// checkProfile validates a name and email pair into errs, and returns the
// email's canonical form (models.NormalizeEmail), the one to compare and
// store.
func checkProfile(errs views.FieldErrors, name, email string) (canonicalEmail string) {
	if msg := models.CheckName(name); msg != "" {
		errs["name"] = msg
	}
	canonicalEmail, err := models.NormalizeEmail(email)
	if err != nil {
		errs["email"] = err.Error()
	}
	return canonicalEmail
}

// checkNewPassword validates a password being set into errs under field:
// its length, and that it is not one of the most common passwords.
func checkNewPassword(errs views.FieldErrors, field, pw string) {
	if msg := cmp.Or(password.CheckLength(pw), password.CheckCommon(pw)); msg != "" {
		errs[field] = msg
	}
}

// safeNext returns next if it is a path on this site, else "". It rejects
// anything a browser could read as another origin: schemes, "//host",
// "/\host", and their percent-encoded forms.
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || next[0] != '/' {
		return ""
	}
	if strings.ContainsAny(next, "\\") || strings.IndexFunc(next, unicode.IsControl) >= 0 {
		return ""
	}
	decoded, err := url.PathUnescape(next)
	if err != nil {
		return ""
	}
	for _, s := range []string{next, decoded} {
		if strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") || strings.ContainsAny(s, "\\") ||
			strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return next
}
