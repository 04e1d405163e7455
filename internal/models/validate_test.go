package models

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizeEmail(t *testing.T) {
	canonical := map[string]string{
		"sam@example.com":              "sam@example.com",
		"Sam@Example.COM":              "sam@example.com",
		"\u017fam@example.com":         "sam@example.com",  // ſ LATIN SMALL LETTER LONG S
		"\u212aate@example.com":        "kate@example.com", // K KELVIN SIGN
		"ｓａｍ@ｅｘａｍｐｌｅ.ｃｏｍ":              "sam@example.com",  // fullwidth
		"sam＠example.com":              "sam@example.com",  // fullwidth @
		"ÉLODIE@example.fr":            "élodie@example.fr",
		"e\u0301lodie@example.fr":      "élodie@example.fr", // decomposed é
		"иван@example.com":             "иван@example.com",
		"山田太郎@example.jp":              "山田太郎@example.jp",
		"やまだtaro@example.jp":           "やまだtaro@example.jp", // Hiragana with Latin: Japanese usage
		"ab@xn--bcher-kva.de":          "ab@bücher.de",
		"ab@BÜCHER.de":                 "ab@bücher.de",
		"first.last+tag@example.com":   "first.last+tag@example.com",
		"o'brien-2@mail.example.co.uk": "o'brien-2@mail.example.co.uk",
	}
	for in, want := range canonical {
		got, err := NormalizeEmail(in)
		if err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
			continue
		}
		if again, err := NormalizeEmail(got); err != nil || again != got {
			t.Errorf("NormalizeEmail(%q) = %q, %v: not idempotent", got, again, err)
		}
	}

	refused := map[string]string{
		"empty":                       "",
		"no at sign":                  "no-at-sign",
		"no dot in the domain":        "a@b",
		"markup":                      "<script>@x.com",
		"header injection":            "a@example.com\r\nBcc: x@y.z",
		"display name":                "Sam <sam@example.com>",
		"space":                       "sam smith@example.com",
		"no-break space":              "sam\u00a0smith@example.com",
		"NUL":                         "sam\x00@example.com",
		"invalid UTF-8":               "sam\xff@example.com",
		"zero-width space":            "sa\u200bm@example.com",
		"zero-width joiner":           "sa\u200dm@example.com",
		"right-to-left override":      "\u202emoc.elpmaxe@mas",
		"left-to-right mark":          "sam\u200e@example.com",
		"soft hyphen":                 "sa\u00adm@example.com",
		"Hangul filler":               "sam\u3164@example.com",
		"variation selector":          "sam\ufe0f@example.com",
		"private use":                 "sam\ue000@example.com",
		"unassigned":                  "sam\U000e0fff@example.com",
		"Cyrillic a among Latin":      "\u0430dmin@example.com",
		"Greek omicron among Latin":   "r\u03bfot@example.com",
		"mixed scripts in the domain": "sam@ex\u0430mple.com",
		"domain with underscore":      "sam@exa_mple.com",
		"domain label with hyphen":    "sam@-example.com",
		"bad punycode":                "sam@xn--zz.com",
		"over 254 characters":         strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com",
		"over 254 once normalised":    strings.Repeat("\ufdfa", 14) + "@example.com", // each is 18 letters
	}
	for name, in := range refused {
		got, err := NormalizeEmail(in)
		var invalid *InvalidEmailError
		if !errors.As(err, &invalid) || invalid.Reason == "" {
			t.Errorf("%s: NormalizeEmail(%q) = %q, %v; want an *InvalidEmailError", name, in, got, err)
		}
	}
}

func TestNormalizeEmailNamesTheMixedScripts(t *testing.T) {
	_, err := NormalizeEmail("\u0430dmin@example.com")
	if err == nil || !strings.Contains(err.Error(), "Cyrillic and Latin") {
		t.Errorf("error %v, want it to name Cyrillic and Latin", err)
	}
}

func TestCheckNameRefusesInvisibleCharacters(t *testing.T) {
	for _, name := range []string{
		"Ada\u202e nimda", // right-to-left override
		"Ada\u2066x",      // left-to-right isolate
		"Ada\u200b",       // zero-width space
		"Ada\x00",
		"Ada\nLovelace",
		"Ada\u2028Lovelace", // line separator
		"Ada\ue000",         // private use
	} {
		if CheckName(name) == "" {
			t.Errorf("CheckName(%q) accepted it", name)
		}
	}
	for _, name := range []string{
		"Ada Lovelace", "Ada ❤️", "مریم می\u200cخواهد", "Zoë O'Brien", "山田 太郎", "Ада",
	} {
		if msg := CheckName(name); msg != "" {
			t.Errorf("CheckName(%q) = %q", name, msg)
		}
	}
}

func TestTruncateNeverSplitsACharacter(t *testing.T) {
	s := strings.Repeat("é", 200) // 400 bytes
	for n := 0; n <= len(s)+1; n++ {
		got := Truncate(s, n)
		if len(got) > n || !utf8.ValidString(got) || len(got) < n-1 && len(got) < len(s) {
			t.Fatalf("Truncate(%d) = %d bytes, valid %v", n, len(got), utf8.ValidString(got))
		}
	}
}

// FuzzNormalizeEmail: whatever comes in, an address accepted is valid
// UTF-8, visible characters only, within the length limit, and its own
// canonical form (so the stored form is the form sign-in computes).
// `go test -fuzz FuzzNormalizeEmail -run '^$' ./internal/models/` explores.
func FuzzNormalizeEmail(f *testing.F) {
	for _, seed := range []string{
		"sam@example.com", "\u017fam@example.com", "\u212aate@example.com", "ab@xn--bcher-kva.de",
		"ｓａｍ＠ｅｘａｍｐｌｅ.ｃｏｍ", "\u0430dmin@example.com", "sa\u200bm@example.com", "a@b", "\xff@x.com",
		"\ufdfa@example.com", "\u0130stanbul@example.com", "ẞ@example.de", "\"a b\"@example.com",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, email string) {
		canonical, err := NormalizeEmail(email)
		if err != nil {
			return
		}
		if !utf8.ValidString(canonical) || strings.IndexFunc(canonical, invisibleInEmail) >= 0 || len(canonical) > MaxEmailLength {
			t.Fatalf("NormalizeEmail(%q) = %q", email, canonical)
		}
		if again, err := NormalizeEmail(canonical); err != nil || again != canonical {
			t.Fatalf("NormalizeEmail(%q) = %q, but NormalizeEmail(%q) = %q, %v", email, canonical, canonical, again, err)
		}
	})
}
