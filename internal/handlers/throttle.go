package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// Brute-force throttling and load shedding of password work (see package
// throttle for the policy). Every place that checks a password (sign-in,
// confirm, password change) goes through checkPassword: an attempt counts
// against the account it names, whether or not that account exists, and
// against the client's address (Echo's RealIP, which honours
// X-Forwarded-For only with TRUST_PROXY), before the password is checked.

// errWrongPassword is checkPassword's answer to a wrong password (or an
// unknown email): the attempt is counted and audited.
var errWrongPassword = errors.New("wrong password")

// refusal is a request refused before any password work: throttled (429)
// or the server too busy to hash (503). Its message is for the form's page;
// Retry-After is already set.
type refusal struct {
	status  int
	message string
}

func (r *refusal) Error() string { return r.message }

// asRefusal returns err's refusal, if it is one.
func asRefusal(err error) (*refusal, bool) {
	var r *refusal
	return r, errors.As(err, &r)
}

// formProblem says how a form answers checkPassword's err: a refusal with
// its status and message, a wrong password with 422 and wrong; ok is false
// for anything else (nil, or a failure to return).
func formProblem(err error, wrong string) (status int, message string, ok bool) {
	if r, isRefusal := asRefusal(err); isRefusal {
		return r.status, r.message, true
	}
	if errors.Is(err, errWrongPassword) {
		return http.StatusUnprocessableEntity, wrong, true
	}
	return 0, "", false
}

// tooManyAttempts refuses a throttled attempt, saying how long to wait.
func tooManyAttempts(c echo.Context, wait time.Duration) *refusal {
	setRetryAfter(c, wait)
	return &refusal{http.StatusTooManyRequests, "Too many attempts. Try again in " + waitWords(wait) + "."}
}

// busy refuses a request that found the hasher's queue full: the moment
// will pass, so the page says to try again.
func busy(c echo.Context) *refusal {
	setRetryAfter(c, time.Second)
	return &refusal{http.StatusServiceUnavailable, "Gatehouse is busy right now. Try again in a moment."}
}

// setRetryAfter sets the Retry-After header to wait, in whole seconds.
func setRetryAfter(c echo.Context, wait time.Duration) {
	c.Response().Header().Set("Retry-After", strconv.FormatInt(ceilSeconds(wait), 10))
}

// passwordCheck is what checkPassword checks.
type passwordCheck struct {
	// email names the account's throttle key: as typed on sign-in, from the
	// session when signed in.
	email string
	// userID is the signed-in user whose password it is; 0 on sign-in,
	// where the account is found by email.
	userID   int64
	password string
	// where says in the audit log where the check was, after "wrong
	// password" ("" on sign-in).
	where string
}

// checkPassword is the one place a password is checked. It counts the
// attempt before any lookup or hash, in one atomic step with the throttle
// check, so parallel guesses get no more tries than sequential ones; a
// throttled attempt is refused (a *refusal, 429) the same way whether the
// account exists. A wrong password (or an unknown email, which costs a
// dummy hash so timing tells nothing) is audited and answered
// errWrongPassword; the attempt stays counted, its wait starting now. The
// right one gives the attempt back and returns the user. An attempt never
// evaluated (hasher busy: a *refusal, 503; or a failure) is given back
// too.
func (h *Handlers) checkPassword(c echo.Context, chk passwordCheck) (*models.User, error) {
	ctx := c.Request().Context()
	attempt, wait, err := h.throttle.Begin(ctx, throttle.AccountKey(chk.email), throttle.IPKey(c.RealIP()))
	if err != nil {
		return nil, err
	}
	if wait > 0 {
		h.metrics.Throttled(metrics.ThrottleAttempts)
		return nil, tooManyAttempts(c, wait)
	}
	u, err := h.verifyPassword(ctx, chk)
	switch {
	case err == nil:
		h.settle(ctx, attempt.Succeed)
		return u, nil
	case errors.Is(err, password.ErrMismatch):
		h.settle(ctx, attempt.Fail)
		e := models.AuditEvent{Kind: models.AuditSignInFailed, Detail: "wrong password"}
		if u == nil {
			e.Detail = "unknown email"
		} else {
			e.UserID = &u.ID
		}
		if chk.where != "" {
			e.Detail += " " + chk.where
		}
		if p := session.Current(ctx); p != nil && chk.userID != 0 {
			e.SessionID = p.SessionID
		}
		h.record(c, e)
		return nil, errWrongPassword
	case errors.Is(err, password.ErrBusy):
		h.settle(ctx, attempt.Cancel)
		h.metrics.Throttled(metrics.ThrottleBusy)
		return nil, busy(c)
	default:
		h.settle(ctx, attempt.Cancel)
		return nil, err
	}
}

// verifyPassword finds chk's user and checks the password against their
// hash. An unknown email costs a dummy check and answers ErrMismatch with
// no user.
func (h *Handlers) verifyPassword(ctx context.Context, chk passwordCheck) (*models.User, error) {
	var u *models.User
	var err error
	if chk.userID != 0 {
		u, err = h.users.ByID(ctx, chk.userID)
	} else {
		u, err = h.users.ByEmail(ctx, chk.email)
	}
	if errors.Is(err, models.ErrNotFound) && chk.userID == 0 {
		return nil, h.hasher.VerifyDummy(ctx, chk.password)
	}
	if err != nil {
		return nil, err
	}
	return u, h.hasher.Verify(ctx, u.PasswordHash, chk.password)
}

// beginSignUp counts a sign-up before its password is hashed, as an
// attempt on the client's address: one for an address that already has an
// account stays counted, as a failed sign-in would (it is a way to probe
// for accounts); the others are given back by the caller. At most
// SIGNUP_RATE_PER_IP sign-ups per address are let through per hour. It
// returns the attempt, or a *refusal.
func (h *Handlers) beginSignUp(c echo.Context) (*throttle.Attempt, error) {
	ctx := c.Request().Context()
	attempt, wait, err := h.throttle.Begin(ctx, throttle.IPKey(c.RealIP()))
	if err != nil {
		return nil, err
	}
	if wait > 0 {
		h.metrics.Throttled(metrics.ThrottleAttempts)
		return nil, tooManyAttempts(c, wait)
	}
	wait, err = h.throttle.Take(ctx, throttle.SignUpKey(c.RealIP()), h.signUpRate, time.Hour)
	if err != nil || wait > 0 {
		h.settle(ctx, attempt.Cancel)
	}
	if err != nil {
		return nil, err
	}
	if wait > 0 {
		h.metrics.Throttled(metrics.ThrottleSignUpRate)
		setRetryAfter(c, wait)
		return nil, &refusal{http.StatusTooManyRequests,
			"Too many sign-ups from your network. Try again in " + waitWords(wait) + "."}
	}
	return attempt, nil
}

// settle settles an attempt (Fail, Succeed or Cancel). The request's
// outcome is decided by then, so a failure is only logged: the attempt
// stays counted, and the count expires on its own.
func (h *Handlers) settle(ctx context.Context, how func(context.Context) error) {
	if err := how(ctx); err != nil {
		h.log.WarnContext(ctx, "settling a password attempt", "err", err)
	}
}

// inFlight counts the requests doing password work per client address, to
// cap them (capPasswordWork). It lives in process memory on purpose: what
// it protects is this process's hasher, and it holds nothing that outlives
// a request.
type inFlight struct {
	mu  sync.Mutex
	n   map[string]int
	max int // 0: no cap
}

func (f *inFlight) enter(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[key] >= f.max {
		return false
	}
	f.n[key]++
	return true
}

func (f *inFlight) leave(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[key]--; f.n[key] <= 0 {
		delete(f.n, key)
	}
}

// capPasswordWork guards the routes that hash passwords: one client
// address may have at most PASSWORD_CONCURRENCY_PER_IP of them in flight;
// one more is answered 429 at once, without touching Redis or the hasher,
// so a single client cannot fill the hasher's queue and starve everyone.
func (h *Handlers) capPasswordWork(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if h.inFlight.max <= 0 {
			return next(c)
		}
		key := throttle.IPKey(c.RealIP())
		if !h.inFlight.enter(key) {
			h.metrics.Throttled(metrics.ThrottleConcurrency)
			setRetryAfter(c, time.Second)
			return &publicError{status: http.StatusTooManyRequests, title: "Too many requests",
				message: "Too many sign-in requests at once from your network. Wait a moment and try again."}
		}
		defer h.inFlight.leave(key)
		return next(c)
	}
}

// ceilSeconds is d in whole seconds, rounded up, so nobody is told to come
// back before they may.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// waitWords says how long d is: "N seconds" under a minute, "N minutes"
// (rounded up) from there.
func waitWords(d time.Duration) string {
	secs := ceilSeconds(d)
	if secs < 60 {
		return plural(secs, "second")
	}
	return plural((secs+59)/60, "minute")
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
