package session

import (
	"maps"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

func TestCodecRoundTrip(t *testing.T) {
	deadline := time.Now().Add(12 * time.Hour).UTC()
	values := map[string]any{
		keyUserID: int64(42), keyPublicID: "abcdefghijklmnopqrstuvwxyz", keyAuthAt: int64(-5),
		keySeenAt: int64(1 << 62), "__rememberMe": true, "empty": "", "no": false,
	}
	b, err := codec{}.Encode(deadline, values)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != codecMarker {
		t.Fatalf("encoded with gob, not codec: % x", b[:4])
	}
	gotDeadline, got, err := codec{}.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !gotDeadline.Equal(deadline) || gotDeadline.Location() != time.UTC {
		t.Errorf("deadline %v, want %v in UTC", gotDeadline, deadline)
	}
	if !maps.Equal(got, values) {
		t.Errorf("values %v, want %v", got, values)
	}
}

// TestCodecReadsGob: sessions written by scs's gob codec (before Gatehouse
// had its own) still load, and values the codec does not know go to gob.
func TestCodecReadsGob(t *testing.T) {
	deadline := time.Now().Add(time.Hour).UTC()
	values := map[string]any{keyUserID: int64(7), keyPublicID: "x", "__rememberMe": false}
	old, err := scs.GobCodec{}.Encode(deadline, values)
	if err != nil {
		t.Fatal(err)
	}
	d, got, err := codec{}.Decode(old)
	if err != nil || !d.Equal(deadline) || !maps.Equal(got, values) {
		t.Fatalf("decoding gob: %v %v %v", d, got, err)
	}
	other := map[string]any{"int": 3, "float": 1.5}
	b, err := codec{}.Encode(deadline, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := (codec{}).Decode(b); err != nil || !maps.Equal(got, other) {
		t.Fatalf("values of other types: %v %v", got, err)
	}
}

// FuzzCodecDecode: malformed session data is an error, never a panic; and
// whatever decodes re-encodes to the same values.
func FuzzCodecDecode(f *testing.F) {
	good, _ := codec{}.Encode(time.Unix(1_800_000_000, 0), map[string]any{keyUserID: int64(1), keyPublicID: "p", "b": true})
	f.Add(good)
	f.Add([]byte{codecMarker})
	f.Add([]byte{codecMarker, codecVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(good[:len(good)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != codecMarker {
			return // gob's business
		}
		d, values, err := codec{}.Decode(b)
		if err != nil {
			return
		}
		again, err := codec{}.Encode(d, values)
		if err != nil {
			t.Fatal(err)
		}
		d2, values2, err := codec{}.Decode(again)
		if err != nil || !d2.Equal(d) || !maps.Equal(values, values2) {
			t.Fatalf("round trip of %q: %v %v %v", b, d2, values2, err)
		}
	})
}
