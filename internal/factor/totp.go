package factor

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: those every authenticator app supports (RFC 6238's
// defaults): 30-second steps, 6 digits, HMAC-SHA1.
const (
	Period     = 30 * time.Second
	CodeDigits = 6
	// Drift is how many steps a code may be off either way (a phone's
	// clock, the time to type).
	Drift = 1
	// secretBytes is the size of a new secret: 160 bits, RFC 4226's
	// recommendation for SHA-1.
	secretBytes = 20
)

var encoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTPSecret returns a new random secret in base32, as apps take it.
func NewTOTPSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return encoding.EncodeToString(b)
}

// KeyURI is the otpauth:// URI of a secret, which the QR code carries.
func KeyURI(issuer, account, secret string) (string, error) {
	raw, err := encoding.DecodeString(secret)
	if err != nil {
		return "", err
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Secret: raw,
		Period: uint(Period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return "", err
	}
	return key.URL(), nil
}

// Step is the TOTP time step of t.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// Code is the TOTP code of secret for step (for tests and tools that play
// the authenticator app).
func Code(secret string, step int64) (string, error) {
	return hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
}

// MatchTOTP finds the step, within Drift of now and after lastUsed, whose
// code is code; ok is false when none is. The caller must then record the
// step as used, atomically, so the code is accepted once: a code replayed
// within its window, or one from a step before a code already used, fails.
// code must be CodeDigits ASCII digits (IsTOTPCode).
func MatchTOTP(secret, code string, now time.Time, lastUsed int64) (step int64, ok bool) {
	cur := Step(now)
	for s := cur - Drift; s <= cur+Drift; s++ {
		if s <= lastUsed {
			continue
		}
		want, err := Code(secret, s)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}

// IsTOTPCode reports whether s has the form of a TOTP code: exactly
// CodeDigits ASCII digits (no other script's digits).
func IsTOTPCode(s string) bool {
	if len(s) != CodeDigits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
