package models

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// The device flow (RFC 8628): an app that cannot show a browser asks for a
// device code and a user code; a person types the user code into a
// signed-in browser and approves or denies; the app polls with the device
// code and gets its tokens once, after an approval.

// DeviceStatus is where a device authorization stands.
type DeviceStatus string

// The states of a device authorization. pending goes to approved or
// denied (the person's answer), approved to used (the poll that got the
// tokens); nothing goes back.
const (
	DevicePending  DeviceStatus = "pending"
	DeviceApproved DeviceStatus = "approved"
	DeviceDenied   DeviceStatus = "denied"
	DeviceUsed     DeviceStatus = "used"
)

// Device flow timing.
const (
	// DeviceCodeLifetime is how long a person has to type the code.
	DeviceCodeLifetime = 10 * time.Minute
	// DevicePollInterval is the least time between polls the app is told.
	DevicePollInterval = 5 * time.Second
	// deviceSlowDownStep is what a poll too early adds to the interval
	// (RFC 8628 3.5).
	deviceSlowDownStep = 5 * time.Second
	// deviceKeepAfterExpiry is how long a row stays after it expires, so a
	// late poll still hears expired_token rather than an unknown code.
	deviceKeepAfterExpiry = time.Hour
)

// DeviceAuthorization is one device-flow sign-in, from the app's request
// to its tokens.
type DeviceAuthorization struct {
	ID             int64
	DeviceCodeHash []byte
	UserCode       string // normalised: 8 letters of userCodeAlphabet, no dash
	ClientName     string
	IP             string // of the app that asked
	UserAgent      string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	// IntervalSeconds is the least time between polls, grown by every
	// slow_down.
	IntervalSeconds int
	LastPolledAt    *time.Time
	Status          DeviceStatus
	UserID          *int64 // who approved or denied
	ApprovedBy      string // the public id of the browser session that answered
	DecidedAt       *time.Time
}

// Interval is the least time between polls.
func (d *DeviceAuthorization) Interval() time.Duration {
	return time.Duration(d.IntervalSeconds) * time.Second
}

// userCodeAlphabet has no vowels (no words, rude or otherwise, can be
// spelled) and no letters that read like digits or like each other in
// common fonts (RFC 8628 6.1).
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// userCodeLen is a user code's length: 20^8, about 2^34.6 codes, against
// guesses throttled per client.
const userCodeLen = 8

// ErrUserCodeMalformed means the text typed cannot be a user code at all
// (wrong length, a character outside the alphabet).
var ErrUserCodeMalformed = errors.New("not a user code")

// ErrDeviceCodeUnknown means no live device authorization has that user
// code (never issued, expired, or already answered).
var ErrDeviceCodeUnknown = errors.New("device authorization unknown or no longer pending")

// NormalizeUserCode returns the user code typed as s in its stored form
// (8 letters, upper case, no dash): case does not matter, and dashes,
// spaces and the fullwidth or compatibility forms of letters (as an input
// method may type them) are accepted. Anything else outside the alphabet (a
// Cyrillic look-alike, a digit, a vowel) is refused with
// ErrUserCodeMalformed rather than guessed at.
func NormalizeUserCode(s string) (string, error) {
	if len(s) > 64 {
		return "", ErrUserCodeMalformed
	}
	s = norm.NFKC.String(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\u2010' || r == '\u2011' || r == '\u2012' ||
			r == '\u2013' || r == '\u2014' || r == '\u2212':
			continue // separators, including the dashes a phone or word processor substitutes
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		}
		if r > 'Z' || !strings.ContainsRune(userCodeAlphabet, r) {
			return "", ErrUserCodeMalformed
		}
		b.WriteRune(r)
	}
	if b.Len() != userCodeLen {
		return "", ErrUserCodeMalformed
	}
	return b.String(), nil
}

// FormatUserCode shows a normalised user code as people read it: WDJB-MJHT.
func FormatUserCode(code string) string {
	if len(code) != userCodeLen {
		return code
	}
	return code[:4] + "-" + code[4:]
}

func newUserCode() string {
	b := make([]byte, userCodeLen)
	for i := range b {
		// A uniform letter: bytes of 240 and above (240 = 12 * 20) are
		// drawn again, so no letter is likelier than another.
		var one [1]byte
		for {
			rand.Read(one[:]) // never fails (Go 1.24 and later)
			if one[0] < 240 {
				break
			}
		}
		b[i] = userCodeAlphabet[int(one[0])%len(userCodeAlphabet)]
	}
	return string(b)
}

// DeviceStore keeps device authorizations.
type DeviceStore struct{ db *gorm.DB }

// NewDeviceStore returns a DeviceStore on db.
func NewDeviceStore(db *gorm.DB) *DeviceStore { return &DeviceStore{db: db} }

// NewDeviceAuthorization is an app's request for codes.
type NewDeviceAuthorization struct {
	ClientName, IP, UserAgent string
}

// Create stores a new pending authorization, valid for DeviceCodeLifetime
// from now, and returns it with its device code, which only the app will
// hold. Rows long expired are deleted on the way.
func (s *DeviceStore) Create(ctx context.Context, n NewDeviceAuthorization, now time.Time) (*DeviceAuthorization, string, error) {
	db := s.db.WithContext(ctx)
	if _, err := s.PruneExpired(ctx, now); err != nil {
		return nil, "", err
	}
	b := make([]byte, 32)
	rand.Read(b) // never fails (Go 1.24 and later)
	deviceCode := base64.RawURLEncoding.EncodeToString(b)
	d := &DeviceAuthorization{
		DeviceCodeHash: hashToken(deviceCode), ClientName: n.ClientName, IP: n.IP, UserAgent: n.UserAgent,
		CreatedAt: now, ExpiresAt: now.Add(DeviceCodeLifetime),
		IntervalSeconds: int(DevicePollInterval / time.Second), Status: DevicePending,
	}
	// A user code clashing with a live one is drawn again; with 2^34
	// codes, a second clash in a row means something else is wrong.
	for try := 0; ; try++ {
		d.ID, d.UserCode = 0, newUserCode()
		res := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "user_code"}}, DoNothing: true}).Create(d)
		if res.Error != nil {
			return nil, "", fmt.Errorf("create device authorization: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			return d, deviceCode, nil
		}
		if try == 2 {
			return nil, "", errors.New("create device authorization: user codes keep clashing")
		}
	}
}

// PruneExpired deletes the authorizations that expired more than
// deviceKeepAfterExpiry ago, and says how many. Create does it on the way,
// and the sweep does it too, so the rows go even when no app asks for a
// new code.
func (s *DeviceStore) PruneExpired(ctx context.Context, now time.Time) (int, error) {
	res := s.db.WithContext(ctx).Where("expires_at < ?", now.Add(-deviceKeepAfterExpiry)).Delete(&DeviceAuthorization{})
	if res.Error != nil {
		return 0, fmt.Errorf("delete expired device authorizations: %w", res.Error)
	}
	return int(res.RowsAffected), nil
}

// Pending returns the pending, unexpired authorization with the
// normalised user code; ErrDeviceCodeUnknown when there is none.
func (s *DeviceStore) Pending(ctx context.Context, userCode string, now time.Time) (*DeviceAuthorization, error) {
	var d DeviceAuthorization
	err := s.db.WithContext(ctx).Where("user_code = ? AND status = ? AND expires_at > ?", userCode, DevicePending, now).Take(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrDeviceCodeUnknown
	} else if err != nil {
		return nil, fmt.Errorf("find device authorization: %w", err)
	}
	return &d, nil
}

// Decide records userID's answer to the pending authorization with the
// user code, given from the browser session sessionID (a public id):
// approve or deny. It is one conditional UPDATE, so of two answers at once
// exactly one counts; the other gets ErrDeviceCodeUnknown, as does a code
// that expired or was answered already.
func (s *DeviceStore) Decide(ctx context.Context, userCode string, approve bool, userID int64, sessionID string, now time.Time) (*DeviceAuthorization, error) {
	status := DeviceDenied
	if approve {
		status = DeviceApproved
	}
	var ds []DeviceAuthorization
	err := s.db.WithContext(ctx).Raw(`UPDATE device_authorizations
		SET status = ?, user_id = ?, approved_by = ?, decided_at = ?
		WHERE user_code = ? AND status = ? AND expires_at > ? RETURNING *`,
		status, userID, sessionID, now, userCode, DevicePending, now).Scan(&ds).Error
	if err != nil {
		return nil, fmt.Errorf("decide device authorization: %w", err)
	}
	if len(ds) == 0 {
		return nil, ErrDeviceCodeUnknown
	}
	return &ds[0], nil
}

// PollError is a poll's answer other than tokens, with its OAuth error
// code (RFC 8628 3.5).
type PollError struct {
	Code     string // authorization_pending, slow_down, access_denied, expired_token, invalid_grant
	Interval time.Duration
}

func (e *PollError) Error() string { return "device poll: " + e.Code }

// The poll answers.
const (
	PollPending  = "authorization_pending"
	PollSlowDown = "slow_down"
	PollDenied   = "access_denied"
	PollExpired  = "expired_token"
	PollInvalid  = "invalid_grant"
)

// Poll is one poll of the app holding deviceCode, at now. Unless the
// authorization is approved it returns a *PollError saying why there are
// no tokens: an unknown or malformed code, or one whose tokens were given
// already, is invalid_grant; one polled sooner than its interval after the
// last poll is slow_down, and its interval grows by 5 s.
//
// An approved authorization is marked used and issue is called, within one
// transaction that holds the row locked: issue creates the app session (it
// returns an error to undo everything, leaving the authorization approved
// for the next poll). Two polls at once are serialised on the row, so
// exactly one gets to issue; the other finds it used.
func (s *DeviceStore) Poll(ctx context.Context, deviceCode string, now time.Time, issue func(*DeviceAuthorization) error) error {
	if !WellFormedToken(deviceCode) {
		return &PollError{Code: PollInvalid}
	}
	// A pending poll's answer is returned after its transaction commits
	// (an error inside would roll back the poll it counts).
	var answer *PollError
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var d DeviceAuthorization
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("device_code_hash = ?", hashToken(deviceCode)).Take(&d).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return &PollError{Code: PollInvalid}
		} else if err != nil {
			return fmt.Errorf("find device authorization: %w", err)
		}
		switch {
		case d.Status == DeviceUsed:
			return &PollError{Code: PollInvalid}
		case !now.Before(d.ExpiresAt):
			return &PollError{Code: PollExpired}
		case d.Status == DeviceDenied:
			return &PollError{Code: PollDenied}
		case d.Status == DeviceApproved:
			if err := tx.Model(&d).Updates(map[string]any{"status": DeviceUsed, "last_polled_at": now}).Error; err != nil {
				return fmt.Errorf("use device authorization: %w", err)
			}
			return issue(&d)
		}
		// Pending: count the poll, and slow a client down that polls
		// sooner than it was told.
		answer = &PollError{Code: PollPending}
		if d.LastPolledAt != nil && now.Sub(*d.LastPolledAt) < d.Interval() {
			d.IntervalSeconds += int(deviceSlowDownStep / time.Second)
			answer.Code = PollSlowDown
		}
		answer.Interval = d.Interval()
		err = tx.Model(&d).Updates(map[string]any{"interval_seconds": d.IntervalSeconds, "last_polled_at": now}).Error
		if err != nil {
			return fmt.Errorf("count device poll: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if answer != nil {
		return answer
	}
	return nil
}
