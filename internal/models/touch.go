package models

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"
)

// Sighting is one last-seen write: session PublicID was used at At from IP.
type Sighting struct {
	PublicID string
	IP       string
	At       time.Time
}

// TouchMany is Touch for many sessions in one statement: with a million
// sessions each used now and then, nearly every request is a session's
// first in a minute, and one UPDATE (and one commit) per session would be
// most of what Postgres does (docs/performance.md). Like Touch, it never
// moves last_seen_at backwards and leaves ended sessions alone.
func (s *SessionStore) TouchMany(ctx context.Context, sightings []Sighting) error {
	if len(sightings) == 0 {
		return nil
	}
	ids := make(textArray, len(sightings))
	ips := make(textArray, len(sightings))
	ats := make(timeArray, len(sightings))
	for i, v := range sightings {
		ids[i], ips[i], ats[i] = v.PublicID, v.IP, v.At
	}
	err := s.db.WithContext(ctx).Exec(`UPDATE sessions s SET last_seen_at = v.at, ip = v.ip
		FROM unnest(?::text[], ?::text[], ?::timestamptz[]) AS v(public_id, ip, at)
		WHERE s.public_id = v.public_id AND s.ended_at IS NULL AND s.last_seen_at < v.at`,
		ids, ips, ats).Error
	if err != nil {
		return fmt.Errorf("touch session records: %w", err)
	}
	return nil
}

// timeArray passes times as one timestamptz[] parameter (see textArray).
type timeArray []time.Time

// Value renders the array literal.
func (a timeArray) Value() (driver.Value, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, t := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(t.UTC().Format(time.RFC3339Nano))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String(), nil
}
