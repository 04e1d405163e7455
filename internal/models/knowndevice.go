package models

import (
	"context"
	"fmt"
	"time"
)

// KnownDevice is a browser an account has signed in from (or signed up
// in), named by the SHA-256 of the random id its device cookie carries.
type KnownDevice struct {
	UserID      int64
	DeviceHash  []byte
	Browser     string
	OS          string `gorm:"column:os"`
	IP          string
	FirstSeenAt time.Time
	LastSeenAt  time.Time
	// AlertedAt is when a sign-in from the device was last mailed about;
	// AlertSessionID is the session that alert names.
	AlertedAt      *time.Time
	AlertSessionID string
}

// maxKnownDevices bounds the devices kept per account: a client that drops
// the cookie is a new device at every sign-in. Beyond it the devices seen
// once, then the least recently seen, are forgotten; a forgotten device is
// only new again (one more alert), never wrongly trusted.
const maxKnownDevices = 100

// SeeDevice records that d.UserID signed in from d's device at
// d.LastSeenAt, within tx, and reports whether the account had never seen
// it (it is then added).
func (tx *Tx) SeeDevice(ctx context.Context, d KnownDevice) (isNew bool, err error) {
	var inserted []bool
	err = tx.db.WithContext(ctx).Raw(`INSERT INTO known_devices (user_id, device_hash, browser, os, ip, first_seen_at, last_seen_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id, device_hash) DO UPDATE
		SET browser = EXCLUDED.browser, os = EXCLUDED.os, ip = EXCLUDED.ip, last_seen_at = EXCLUDED.last_seen_at
		RETURNING (xmax = 0)`,
		d.UserID, d.DeviceHash, d.Browser, d.OS, d.IP, d.LastSeenAt, d.LastSeenAt).Scan(&inserted).Error
	if err != nil {
		return false, fmt.Errorf("see device: %w", err)
	}
	if len(inserted) != 1 {
		return false, fmt.Errorf("see device: %d rows", len(inserted))
	}
	if inserted[0] {
		err = tx.db.WithContext(ctx).Exec(`DELETE FROM known_devices WHERE (user_id, device_hash) IN (
			SELECT user_id, device_hash FROM known_devices WHERE user_id = ?
			ORDER BY last_seen_at > first_seen_at DESC, last_seen_at DESC OFFSET ?)`, d.UserID, maxKnownDevices).Error
		if err != nil {
			return false, fmt.Errorf("forget old devices: %w", err)
		}
	}
	return inserted[0], nil
}

// HasDevices reports whether userID has any known device.
func (tx *Tx) HasDevices(ctx context.Context, userID int64) (bool, error) {
	var has bool
	err := tx.db.WithContext(ctx).Raw(`SELECT EXISTS (SELECT 1 FROM known_devices WHERE user_id = ?)`, userID).Scan(&has).Error
	if err != nil {
		return false, fmt.Errorf("known devices of user %d: %w", userID, err)
	}
	return has, nil
}

// DeviceAlerts counts userID's devices alerted about since hourAgo, and
// those alike to d (same browser, OS and address) alerted about since
// dayAgo.
func (tx *Tx) DeviceAlerts(ctx context.Context, userID int64, d KnownDevice, hourAgo, dayAgo time.Time) (lastHour, alike int64, err error) {
	err = tx.db.WithContext(ctx).Raw(`SELECT count(*) FILTER (WHERE alerted_at > ?),
			count(*) FILTER (WHERE alerted_at > ? AND browser = ? AND os = ? AND ip = ?)
		FROM known_devices WHERE user_id = ? AND alerted_at > LEAST(?::timestamptz, ?::timestamptz)`,
		hourAgo, dayAgo, d.Browser, d.OS, d.IP, userID, hourAgo, dayAgo).Row().Scan(&lastHour, &alike)
	if err != nil {
		return 0, 0, fmt.Errorf("device alerts of user %d: %w", userID, err)
	}
	return lastHour, alike, nil
}

// MarkAlerted records, within tx, that a sign-in from the device as
// session sessionID was mailed about at.
func (tx *Tx) MarkAlerted(ctx context.Context, userID int64, deviceHash []byte, sessionID string, at time.Time) error {
	err := tx.db.WithContext(ctx).Exec(`UPDATE known_devices SET alerted_at = ?, alert_session_id = ?
		WHERE user_id = ? AND device_hash = ?`, at, sessionID, userID, deviceHash).Error
	if err != nil {
		return fmt.Errorf("mark device alerted: %w", err)
	}
	return nil
}

// ForgetAlertedDevice removes, within tx, the device whose alert named
// sessionID: its owner said the sign-in was not them.
func (tx *Tx) ForgetAlertedDevice(ctx context.Context, userID int64, sessionID string) error {
	if sessionID == "" {
		return nil
	}
	err := tx.db.WithContext(ctx).Exec(`DELETE FROM known_devices WHERE user_id = ? AND alert_session_id = ?`,
		userID, sessionID).Error
	if err != nil {
		return fmt.Errorf("forget device: %w", err)
	}
	return nil
}
