package factor

import (
	"bytes"
	"encoding/base32"
	"strings"
	"testing"
	"time"
)

func testKeys(t *testing.T, secret string) *Keys {
	t.Helper()
	k, err := NewKeys([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpensOnlyForItsUserAndKey(t *testing.T) {
	k := testKeys(t, strings.Repeat("a", 32))
	sealed := k.Seal(7, []byte("JBSWY3DPEHPK3PXP"))
	if bytes.Contains(sealed, []byte("JBSWY3DPEHPK3PXP")) {
		t.Fatal("the sealed secret contains the plain text")
	}
	if got, err := k.Open(7, sealed); err != nil || string(got) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := k.Open(8, sealed); err != ErrUnsealable {
		t.Fatalf("another user's row opened: %v", err)
	}
	if _, err := testKeys(t, strings.Repeat("b", 32)).Open(7, sealed); err != ErrUnsealable {
		t.Fatalf("another SECRET_KEY opened it: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := k.Open(7, sealed); err != ErrUnsealable {
		t.Fatalf("an altered secret opened: %v", err)
	}
	if _, err := k.Open(7, []byte("short")); err != ErrUnsealable {
		t.Fatalf("a truncated secret: %v", err)
	}
	if _, err := NewKeys([]byte("too short")); err == nil {
		t.Fatal("a short secret key was taken")
	}
}

// RFC 6238 appendix B, SHA-1, truncated to 6 digits.
func TestTOTPMatchesRFC6238Vectors(t *testing.T) {
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte("12345678901234567890"))
	for _, v := range []struct {
		unix int64
		code string
	}{{59, "287082"}, {1111111109, "081804"}, {1234567890, "005924"}, {2000000000, "279037"}} {
		got, err := Code(secret, Step(time.Unix(v.unix, 0)))
		if err != nil || got != v.code {
			t.Errorf("code at %d = %q, %v; want %q", v.unix, got, err, v.code)
		}
	}
}

func TestMatchTOTPDriftAndLastUsed(t *testing.T) {
	secret := NewTOTPSecret()
	now := time.Unix(1_700_000_000, 0)
	cur := Step(now)
	code := func(s int64) string { c, _ := Code(secret, s); return c }
	for _, d := range []int64{-1, 0, 1} {
		if s, ok := MatchTOTP(secret, code(cur+d), now, 0); !ok || s != cur+d {
			t.Errorf("drift %d: step %d, %v", d, s, ok)
		}
	}
	for _, d := range []int64{-2, 2} {
		if c := code(cur + d); c != code(cur-1) && c != code(cur) && c != code(cur+1) {
			if _, ok := MatchTOTP(secret, c, now, 0); ok {
				t.Errorf("a code %d steps off was accepted", d)
			}
		}
	}
	if _, ok := MatchTOTP(secret, code(cur), now, cur); ok {
		t.Error("a code of the step already used was accepted again")
	}
	if _, ok := MatchTOTP(secret, code(cur-1), now, cur); ok {
		t.Error("a code older than the one used was accepted")
	}
}

func TestIsTOTPCode(t *testing.T) {
	for s, want := range map[string]bool{
		"123456": true, "12345": false, "1234567": false, "12a456": false, "": false,
		"１２３４５６": false, "١٢٣٤٥٦": false, "12345\x00": false, " 12345": false,
	} {
		if IsTOTPCode(s) != want {
			t.Errorf("IsTOTPCode(%q) = %v", s, !want)
		}
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes := NewRecoveryCodes()
	seen := map[string]bool{}
	for _, c := range codes {
		n, ok := NormalizeRecoveryCode(c)
		if !ok || len(n) != 10 || seen[n] {
			t.Fatalf("code %q: %q %v (dup %v)", c, n, ok, seen[n])
		}
		seen[n] = true
		if up, ok := NormalizeRecoveryCode(" " + strings.ToUpper(c) + " "); !ok || up != n {
			t.Errorf("upper case with spaces: %q %v", up, ok)
		}
	}
	if len(codes) != RecoveryCodeCount {
		t.Fatalf("%d codes", len(codes))
	}
	for _, bad := range []string{"", "abcde", "abcde-fghij-k", "abcde-fghi1", "abcde-fghiο" /* Greek omicron */, "ａbcde-fghij", "abcde_fghij"} {
		if n, ok := NormalizeRecoveryCode(bad); ok {
			t.Errorf("NormalizeRecoveryCode(%q) = %q, ok", bad, n)
		}
	}
	k := testKeys(t, strings.Repeat("k", 40))
	if bytes.Equal(k.HashRecoveryCode(1, "abcdefghij"), k.HashRecoveryCode(2, "abcdefghij")) {
		t.Error("the same code hashes alike for two users")
	}
}

func TestQRSVG(t *testing.T) {
	svg, err := QRSVG("otpauth://totp/Gatehouse:a@example.com?secret=JBSWY3DPEHPK3PXP&issuer=Gatehouse")
	if err != nil || !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "h1v1h-1z") {
		t.Fatalf("QRSVG: %v %.80s", err, svg)
	}
}
