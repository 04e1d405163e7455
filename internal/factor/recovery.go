package factor

import (
	"crypto/rand"
	"strings"
)

// RecoveryCodeCount is how many recovery codes a set has.
const RecoveryCodeCount = 10

// Recovery codes are 10 characters of lowercase base32 (50 random bits),
// shown as two groups of five: "k3j7q-x2mzp". They are stored only as
// keyed hashes (Keys.HashRecoveryCode).
const (
	recoveryLen      = 10
	recoveryAlphabet = "abcdefghijklmnopqrstuvwxyz234567"
)

// NewRecoveryCodes returns a set of new codes, as shown to the user.
func NewRecoveryCodes() []string {
	codes := make([]string, RecoveryCodeCount)
	for i := range codes {
		b := make([]byte, recoveryLen)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		for j := range b {
			b[j] = recoveryAlphabet[b[j]&31] // 256 is a multiple of 32: no bias
		}
		codes[i] = string(b[:5]) + "-" + string(b[5:])
	}
	return codes
}

// NormalizeRecoveryCode returns the canonical form of a recovery code as
// typed (any case, spaces and hyphens anywhere), or ok=false when it is
// not one: only ASCII letters and the digits 2-7 count, so look-alikes
// from other scripts never match.
func NormalizeRecoveryCode(s string) (code string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if strings.IndexByte(recoveryAlphabet, c) < 0 {
			return "", false
		}
		if b.Len() == recoveryLen {
			return "", false
		}
		b.WriteByte(c)
	}
	if b.Len() != recoveryLen {
		return "", false
	}
	return b.String(), true
}
