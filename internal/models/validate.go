package models

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Limits on what users type.
const (
	MaxNameLength  = 100
	MaxEmailLength = 254 // RFC 5321's limit on a forward path
)

// Truncate cuts s to at most n bytes, never inside a character, so valid
// UTF-8 stays valid (Postgres refuses the rest).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// CheckName says what is wrong with a display name, or "".
func CheckName(name string) string {
	switch {
	case name == "":
		return "Enter your name."
	case !utf8.ValidString(name):
		return "Your name contains characters we cannot read."
	case utf8.RuneCountInString(name) > MaxNameLength:
		return fmt.Sprintf("Use at most %d characters.", MaxNameLength)
	case strings.IndexFunc(name, invisibleInName) >= 0:
		return "Your name cannot contain control characters or invisible formatting characters."
	}
	return ""
}

// invisibleInName reports whether r must not appear in a display name:
// anything that is not a visible character or a space, such as controls,
// bidirectional overrides (which make a name render as other text in admin
// pages and the audit log), line separators, and private-use or unassigned
// code points. The zero-width (non-)joiners are the exception: Persian and
// Indic names need them, and they never reorder text.
func invisibleInName(r rune) bool {
	return !unicode.IsGraphic(r) && r != '\u200c' && r != '\u200d'
}

// InvalidEmailError says, in words for the person who typed the address,
// why it cannot be used.
type InvalidEmailError struct{ Reason string }

func (e *InvalidEmailError) Error() string { return e.Reason }

func invalidEmail(format string, args ...any) error {
	return &InvalidEmailError{Reason: fmt.Sprintf(format, args...)}
}

// NormalizeEmail returns the one canonical form of an email address, or an
// *InvalidEmailError saying why it has none. Gatehouse stores, compares,
// looks up and keeps unique only this form, so two spellings that read the
// same are one address. The canonical form is:
//
//   - Unicode NFKC, then lower case: fullwidth, ligature and other
//     compatibility letters become the plain ones (the long s "ſ" is "s",
//     the Kelvin sign is "k"), and case does not matter. Local parts are
//     case-sensitive in theory, but no mail provider in use treats them so.
//   - the domain in its IDNA (UTS #46) Unicode form, so that an A-label
//     ("xn--bcher-kva.de") and its U-label ("bücher.de") are one domain.
//
// Refused: invalid UTF-8, control and invisible characters anywhere
// (zero-width spaces, bidirectional overrides, ...), a local part or a
// domain label that mixes scripts (Cyrillic "а" among Latin letters), and
// anything whose canonical form would change when normalised again.
func NormalizeEmail(email string) (string, error) {
	canonical, err := normalizeEmail(email)
	if err != nil {
		return "", err
	}
	// Normalising must be idempotent, or the stored form would not be the
	// form a later sign-in computes: the few strings whose canonical form
	// normalises differently again (lower case that is not NFKC-stable, a
	// punycode label that decodes to nothing) are refused rather than
	// stored in two forms.
	if again, err := normalizeEmail(canonical); err != nil || again != canonical {
		return "", invalidEmail("Enter an email address like name@example.com.")
	}
	return canonical, nil
}

// normalizeEmail is one pass of NormalizeEmail.
func normalizeEmail(email string) (string, error) {
	if email == "" {
		return "", invalidEmail("Enter your email address.")
	}
	if !utf8.ValidString(email) {
		return "", invalidEmail("Your email address contains characters we cannot read.")
	}
	if strings.IndexFunc(email, invisibleInEmail) >= 0 {
		return "", invalidEmail("Your email address cannot contain spaces, control characters or invisible characters.")
	}
	canonical := strings.ToLower(norm.NFKC.String(email))
	if len(canonical) > MaxEmailLength {
		return "", invalidEmail("Use at most %d characters.", MaxEmailLength)
	}
	at := strings.LastIndexByte(canonical, '@')
	addr, err := mail.ParseAddress(canonical)
	if err != nil || addr.Address != canonical || at < 0 || !strings.Contains(canonical[at:], ".") {
		return "", invalidEmail("Enter an email address like name@example.com.")
	}
	local, domain := canonical[:at], canonical[at+1:]
	if mixed := mixedScripts(local); mixed != nil {
		return "", invalidEmail("The part before the @ mixes %s letters, as look-alike addresses do. Use one alphabet.",
			strings.Join(mixed, " and "))
	}
	domain, err = normalizeDomain(domain)
	if err != nil {
		return "", err
	}
	return local + "@" + domain, nil
}

// invisibleInEmail reports whether r must not appear in an email address:
// anything but visible characters (so no spaces, controls, format
// characters such as U+200B ZERO WIDTH SPACE or U+202E RIGHT-TO-LEFT
// OVERRIDE, private-use or unassigned code points), nor the characters
// Unicode says to render as nothing (Hangul fillers, variation selectors).
func invisibleInEmail(r rune) bool {
	return !unicode.IsGraphic(r) || unicode.IsSpace(r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) || unicode.Is(unicode.Variation_Selector, r)
}

// normalizeDomain validates an email's domain as an internationalised
// domain name (UTS #46 lookup rules: letters, digits and hyphens, bidi and
// joiner rules) and returns its Unicode form; each label must be written
// in one script.
func normalizeDomain(domain string) (string, error) {
	bad := invalidEmail("Enter an email address like name@example.com.")
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", bad
	}
	unicodeForm, err := idna.Lookup.ToUnicode(ascii)
	if err != nil {
		return "", bad
	}
	for label := range strings.SplitSeq(unicodeForm, ".") {
		if mixed := mixedScripts(label); mixed != nil {
			return "", invalidEmail("The part after the @ mixes %s letters, as look-alike addresses do. Use one alphabet.", strings.Join(mixed, " and "))
		}
	}
	return unicodeForm, nil
}

// scriptSets are the combinations of scripts one word may use: a single
// script, or one of the combinations Japanese, Chinese and Korean writing
// needs (Unicode TS #39's "highly restrictive" level). Common characters
// (digits, punctuation) and inherited ones (combining marks) go with any.
var scriptSets = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// mixedScripts returns the scripts s mixes, sorted, when no single script
// or allowed combination covers them; nil when s is fine.
func mixedScripts(s string) []string {
	var used []string
	for _, r := range s {
		script := scriptOf(r)
		if script == "" || script == "Common" || script == "Inherited" || slices.Contains(used, script) {
			continue
		}
		used = append(used, script)
	}
	if len(used) <= 1 {
		return nil
	}
	for _, set := range scriptSets {
		if !slices.ContainsFunc(used, func(s string) bool { return !slices.Contains(set, s) }) {
			return nil
		}
	}
	slices.Sort(used)
	return used
}

// scriptOf names the Unicode script of r, "" if it has none. The common
// scripts are tried first; the rest are rare in addresses.
func scriptOf(r rune) string {
	if r < utf8.RuneSelf {
		if unicode.IsLetter(r) {
			return "Latin"
		}
		return "Common"
	}
	for _, name := range []string{"Latin", "Common", "Inherited", "Cyrillic", "Greek"} {
		if unicode.Is(unicode.Scripts[name], r) {
			return name
		}
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}
