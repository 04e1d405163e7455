package models

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what users type.
const (
	MaxNameLength  = 100
	MaxEmailLength = 254 // RFC 5321's limit on a forward path
)

// CheckName says what is wrong with a display name, or "".
func CheckName(name string) string {
	switch {
	case name == "":
		return "Enter your name."
	case !utf8.ValidString(name):
		return "Your name contains characters we cannot read."
	case utf8.RuneCountInString(name) > MaxNameLength:
		return fmt.Sprintf("Use at most %d characters.", MaxNameLength)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "Your name cannot contain control characters."
	}
	return ""
}

// CheckEmail says what is wrong with an email address, or "".
func CheckEmail(email string) string {
	if email == "" {
		return "Enter your email address."
	}
	if len(email) > MaxEmailLength {
		return fmt.Sprintf("Use at most %d characters.", MaxEmailLength)
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || !strings.Contains(email[strings.LastIndexByte(email, '@'):], ".") {
		return "Enter an email address like name@example.com."
	}
	return ""
}
