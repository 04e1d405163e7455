package models_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

func TestNormalizeUserCode(t *testing.T) {
	good := []string{
		"WDJB-MJHT", "wdjb-mjht", "WdJb MjHt", "WDJBMJHT", " wdjb-mjht ", "W-D-J-B-M-J-H-T",
		"ＷＤＪＢ－ＭＪＨＴ", // fullwidth, as an East Asian input method types it
		"ｗｄｊｂｍｊｈｔ",
		"WDJB\u2013MJHT", // an en dash a phone substitutes
		"WDJB\u2212MJHT", // a minus sign
	}
	for _, in := range good {
		got, err := models.NormalizeUserCode(in)
		if err != nil || got != "WDJBMJHT" {
			t.Errorf("NormalizeUserCode(%q) = %q, %v; want WDJBMJHT", in, got, err)
		}
	}
	bad := []string{
		"", "WDJB-MJH", "WDJB-MJHTB", "WDJB-MJH7", // a digit
		"ABCD-EFGH",           // vowels are not in the alphabet
		"WDJB-MJH0",           // zero for O (itself not in the alphabet)
		"\u0412DJB-MJHT",      // Cyrillic VE, a look-alike of B
		"WDJB-MJ\u041dT",      // Cyrillic EN, a look-alike of H
		"WDJB\u200bMJHT",      // a zero-width space
		"WDJB_MJHT",           // not a separator
		"WDJB-MJHT\x00",       // NUL
		"WDJB-MJHT\u202e",     // a bidi override
		"\xff\xfeWDJBMJHT",    // not UTF-8
		"'; DROP TABLE x; --", // injection text
		string(make([]byte, 100000)),
	}
	for _, in := range bad {
		if got, err := models.NormalizeUserCode(in); !errors.Is(err, models.ErrUserCodeMalformed) {
			t.Errorf("NormalizeUserCode(%.40q) = %q, %v; want ErrUserCodeMalformed", in, got, err)
		}
	}
	if got := models.FormatUserCode("WDJBMJHT"); got != "WDJB-MJHT" {
		t.Errorf("FormatUserCode = %q", got)
	}
}

// deviceEnv is a store on a test database, with a user to approve as.
func deviceEnv(t *testing.T) (*models.DeviceStore, int64) {
	t.Helper()
	env := apptest.New(t)
	c := env.Client(t)
	c.SignUp("Ada", "ada@example.com", "correct horse battery")
	u, err := env.App.Users.ByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	return models.NewDeviceStore(env.App.DB), u.ID
}

func pollCode(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var pe *models.PollError
	if !errors.As(err, &pe) {
		t.Fatalf("poll: %v, want a PollError", err)
	}
	return pe.Code
}

func TestDevicePollStateMachine(t *testing.T) {
	store, userID := deviceEnv(t)
	ctx := context.Background()
	now := time.Now()
	d, code, err := store.Create(ctx, models.NewDeviceAuthorization{ClientName: "CLI", IP: "192.0.2.1", UserAgent: "cli/1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.UserCode) != 8 || !models.WellFormedToken(code) {
		t.Fatalf("user code %q, device code %q", d.UserCode, code)
	}
	issued := 0
	issue := func(got *models.DeviceAuthorization) error {
		issued++
		if got.UserID == nil || *got.UserID != userID || got.ApprovedBy != "browser-session" || got.ClientName != "CLI" {
			t.Errorf("issued for %+v", got)
		}
		return nil
	}
	poll := func(at time.Time) (string, time.Duration) {
		t.Helper()
		err := store.Poll(ctx, code, at, issue)
		var pe *models.PollError
		if errors.As(err, &pe) {
			return pe.Code, pe.Interval
		}
		return pollCode(t, err), 0
	}

	if got, iv := poll(now); got != models.PollPending || iv != 5*time.Second {
		t.Fatalf("first poll: %s %v, want authorization_pending 5s", got, iv)
	}
	// Too soon: slow_down, and the interval grows by 5 s each time.
	if got, iv := poll(now.Add(time.Second)); got != models.PollSlowDown || iv != 10*time.Second {
		t.Fatalf("poll after 1s: %s %v, want slow_down 10s", got, iv)
	}
	if got, iv := poll(now.Add(8 * time.Second)); got != models.PollSlowDown || iv != 15*time.Second {
		t.Fatalf("poll 7s later (interval 10s): %s %v, want slow_down 15s", got, iv)
	}
	if got, iv := poll(now.Add(23 * time.Second)); got != models.PollPending || iv != 15*time.Second {
		t.Fatalf("poll 15s later: %s %v, want authorization_pending 15s", got, iv)
	}

	// A failed issuance undoes the poll: the approval stands for the next.
	if _, err := store.Decide(ctx, d.UserCode, true, userID, "browser-session", now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("issuance failed")
	if err := store.Poll(ctx, code, now.Add(40*time.Second), func(*models.DeviceAuthorization) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("poll with failing issuance: %v", err)
	}
	if got, _ := poll(now.Add(41 * time.Second)); got != "" || issued != 1 {
		t.Fatalf("poll after approval: %q, issued %d; want tokens once", got, issued)
	}
	// Once only.
	if got, _ := poll(now.Add(60 * time.Second)); got != models.PollInvalid || issued != 1 {
		t.Fatalf("second poll after tokens: %q, issued %d; want invalid_grant", got, issued)
	}
	// Answering again changes nothing.
	if _, err := store.Decide(ctx, d.UserCode, false, userID, "x", now.Add(61*time.Second)); !errors.Is(err, models.ErrDeviceCodeUnknown) {
		t.Fatalf("deny after use: %v", err)
	}
	// Unknown and malformed codes.
	for _, bad := range []string{"", "x", code + "A", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "\x00"} {
		if got := pollCode(t, store.Poll(ctx, bad, now, issue)); got != models.PollInvalid {
			t.Errorf("poll %q: %q, want invalid_grant", bad, got)
		}
	}
}

func TestDevicePollDeniedAndExpired(t *testing.T) {
	store, userID := deviceEnv(t)
	ctx := context.Background()
	now := time.Now()
	never := func(*models.DeviceAuthorization) error { t.Error("issued"); return nil }

	denied, code, err := store.Create(ctx, models.NewDeviceAuthorization{ClientName: "CLI"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Decide(ctx, denied.UserCode, false, userID, "s", now); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if got := pollCode(t, store.Poll(ctx, code, now.Add(time.Duration(i)*time.Minute), never)); got != models.PollDenied {
			t.Errorf("poll of denied code: %q, want access_denied", got)
		}
	}
	if _, err := store.Decide(ctx, denied.UserCode, true, userID, "s", now); !errors.Is(err, models.ErrDeviceCodeUnknown) {
		t.Errorf("approve after deny: %v, want ErrDeviceCodeUnknown", err)
	}

	late, code, err := store.Create(ctx, models.NewDeviceAuthorization{ClientName: "CLI"}, now)
	if err != nil {
		t.Fatal(err)
	}
	after := now.Add(models.DeviceCodeLifetime)
	if _, err := store.Pending(ctx, late.UserCode, after); !errors.Is(err, models.ErrDeviceCodeUnknown) {
		t.Errorf("expired code still pending: %v", err)
	}
	if _, err := store.Decide(ctx, late.UserCode, true, userID, "s", after); !errors.Is(err, models.ErrDeviceCodeUnknown) {
		t.Errorf("approve of expired code: %v, want ErrDeviceCodeUnknown", err)
	}
	if got := pollCode(t, store.Poll(ctx, code, after, never)); got != models.PollExpired {
		t.Errorf("poll of expired code: %q, want expired_token", got)
	}
	// Approved in time but polled too late: expired all the same.
	inTime, code, _ := store.Create(ctx, models.NewDeviceAuthorization{ClientName: "CLI"}, now)
	if _, err := store.Decide(ctx, inTime.UserCode, true, userID, "s", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := pollCode(t, store.Poll(ctx, code, after, never)); got != models.PollExpired {
		t.Errorf("late poll of approved code: %q, want expired_token", got)
	}
}

// TestDevicePollRace: many pollers at once with one approved device code;
// exactly one gets to issue tokens, the others hear invalid_grant.
func TestDevicePollRace(t *testing.T) {
	store, userID := deviceEnv(t)
	ctx := context.Background()
	now := time.Now()
	d, code, err := store.Create(ctx, models.NewDeviceAuthorization{ClientName: "CLI"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Decide(ctx, d.UserCode, true, userID, "s", now); err != nil {
		t.Fatal(err)
	}
	var issued, invalid atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 12 {
		wg.Go(func() {
			<-start
			err := store.Poll(ctx, code, now.Add(time.Second), func(*models.DeviceAuthorization) error {
				issued.Add(1)
				time.Sleep(20 * time.Millisecond) // widen the window a second poller would need
				return nil
			})
			var pe *models.PollError
			switch {
			case err == nil:
			case errors.As(err, &pe) && pe.Code == models.PollInvalid:
				invalid.Add(1)
			default:
				t.Errorf("poll: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if issued.Load() != 1 || invalid.Load() != 11 {
		t.Fatalf("issued %d, invalid_grant %d; want 1 and 11", issued.Load(), invalid.Load())
	}
}

// TestDeviceDecideRace: an approve and a deny at once (two tabs); exactly
// one counts.
func TestDeviceDecideRace(t *testing.T) {
	store, userID := deviceEnv(t)
	ctx := context.Background()
	now := time.Now()
	for range 5 {
		d, _, err := store.Create(ctx, models.NewDeviceAuthorization{ClientName: "CLI"}, now)
		if err != nil {
			t.Fatal(err)
		}
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				_, err := store.Decide(ctx, d.UserCode, i%2 == 0, userID, "s", now)
				switch {
				case err == nil:
					won.Add(1)
				case !errors.Is(err, models.ErrDeviceCodeUnknown):
					t.Errorf("decide: %v", err)
				}
			})
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("%d answers counted, want 1", won.Load())
		}
	}
}
