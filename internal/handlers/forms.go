package handlers

import (
	"net/mail"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/views"
)

const (
	maxNameLength  = 100
	maxEmailLength = 254 // RFC 5321's limit on a forward path
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

// checkName says what is wrong with a display name, or "".
func checkName(name string) string {
	switch {
	case name == "":
		return "Enter your name."
	case !utf8.ValidString(name):
		return "Your name contains characters we cannot read."
	case utf8.RuneCountInString(name) > maxNameLength:
		return "Use at most 100 characters."
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "Your name cannot contain control characters."
	}
	return ""
}

// checkEmail says what is wrong with an email address, or "".
func checkEmail(email string) string {
	if email == "" {
		return "Enter your email address."
	}
	if len(email) > maxEmailLength {
		return "Use at most 254 characters."
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || !strings.Contains(email[strings.LastIndexByte(email, '@'):], ".") {
		return "Enter an email address like name@example.com."
	}
	return ""
}

// checkProfile validates a name and email pair into errs.
func checkProfile(errs views.FieldErrors, name, email string) {
	if msg := checkName(name); msg != "" {
		errs["name"] = msg
	}
	if msg := checkEmail(email); msg != "" {
		errs["email"] = msg
	}
}

// checkNewPassword validates a password being set into errs under field.
func checkNewPassword(errs views.FieldErrors, field, pw string) {
	if msg := password.CheckLength(pw); msg != "" {
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
