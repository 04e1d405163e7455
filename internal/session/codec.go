package session

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/alexedwards/scs/v2"
)

// codec encodes session data for the store. scs's default, gob, builds a
// new encoder or decoder for every session it reads or writes, which
// compiles the type anew each time: on the hot path that was a quarter of
// the CPU of a request and two thirds of its allocations
// (docs/performance.md). Gatehouse keeps only int64, string and bool
// values in a session, so codec writes those in a small binary form:
//
//	0x00 0x01                       marker and version
//	varint                          deadline, Unix nanoseconds
//	uvarint                         number of values
//	per value: uvarint len, key, type ('i' int64 varint | 's' uvarint len, bytes | 'b' 0/1)
//
// A gob stream never starts with 0x00 (its first byte is a message
// length), so Decode reads both forms: sessions written before the change
// keep working. Values of any other type make Encode fall back to gob.
type codec struct{}

const (
	codecMarker  = 0x00
	codecVersion = 0x01
)

var errBadSessionData = errors.New("session data: malformed")

var gobCodec scs.GobCodec

// Encode implements scs.Codec.
func (codec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	n := 2 + binary.MaxVarintLen64*2
	for k, v := range values {
		n += binary.MaxVarintLen64 + len(k) + 1
		switch v := v.(type) {
		case int64:
			n += binary.MaxVarintLen64
		case string:
			n += binary.MaxVarintLen64 + len(v)
		case bool:
			n++
		default:
			return gobCodec.Encode(deadline, values)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, codecMarker, codecVersion)
	b = binary.AppendVarint(b, deadline.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(values)))
	// Keys in order: the same values always encode to the same bytes, so
	// the store can tell a session whose data did not change (redisstore).
	// The keys are sorted in an array on the stack: a session holds a
	// handful, and slices.Sorted(maps.Keys(values)) cost 7 allocations
	// a request.
	var arr [16]string
	keys := arr[:0]
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := values[k]
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		switch v := v.(type) {
		case int64:
			b = append(b, 'i')
			b = binary.AppendVarint(b, v)
		case string:
			b = append(b, 's')
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		case bool:
			b = append(b, 'b', 0)
			if v {
				b[len(b)-1] = 1
			}
		}
	}
	return b, nil
}

// Decode implements scs.Codec.
func (codec) Decode(b []byte) (time.Time, map[string]any, error) {
	if len(b) == 0 || b[0] != codecMarker {
		return gobCodec.Decode(b)
	}
	if len(b) < 2 || b[1] != codecVersion {
		return time.Time{}, nil, errBadSessionData
	}
	d := decoder{b: b[2:]}
	deadline := time.Unix(0, d.varint()).UTC()
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each value takes at least a byte
		return time.Time{}, nil, errBadSessionData
	}
	values := make(map[string]any, n)
	for range n {
		k := d.str()
		switch d.byte() {
		case 'i':
			values[k] = d.varint()
		case 's':
			values[k] = d.str()
		case 'b':
			values[k] = d.byte() == 1
		default:
			d.bad = true
		}
		if d.bad {
			return time.Time{}, nil, errBadSessionData
		}
	}
	if d.bad || len(d.b) != 0 {
		return time.Time{}, nil, errBadSessionData
	}
	return deadline, values, nil
}

// decoder reads codec's fields, remembering whether any was malformed.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad, d.b = true, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
