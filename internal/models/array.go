package models

import (
	"database/sql/driver"
	"strings"
)

// textArray passes a list of strings as one Postgres text[] parameter (in
// SQL: ?::text[]), where GORM would expand a slice into one parameter per
// element. A statement with a thousand parameters is slow to bind and plan,
// and a different statement for every list length; matching rows against
// it with a join on unnest(?::text[]) keeps the plan the same whatever the
// length (docs/performance.md).
type textArray []string

// Value renders the array literal, every element quoted.
func (a textArray) Value() (driver.Value, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range s {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String(), nil
}
