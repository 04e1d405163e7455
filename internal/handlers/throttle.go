package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/views"
)

// Brute-force throttling of sign-in (see package throttle for the policy):
// an attempt counts against the account it names, whether or not that
// account exists, and against the client's address (Echo's RealIP, which
// honours X-Forwarded-For only with TRUST_PROXY).

// signInKeys are the throttle keys a sign-in attempt for email counts on.
func signInKeys(c echo.Context, email string) []string {
	return []string{throttle.AccountKey(email), throttle.IPKey(c.RealIP())}
}

// tooManyAttempts answers a throttled sign-in: the sign-in page, with the
// email the user typed, saying how long to wait, with status 429 and a
// Retry-After header.
func (h *Handlers) tooManyAttempts(c echo.Context, f views.SignInForm, wait time.Duration) error {
	f.Error = tooManyAttemptsMessage(c, wait)
	return h.render(c, http.StatusTooManyRequests, views.SignInPage(f))
}

// tooManyAttemptsMessage sets Retry-After and says how long to wait.
func tooManyAttemptsMessage(c echo.Context, wait time.Duration) string {
	c.Response().Header().Set("Retry-After", strconv.FormatInt(ceilSeconds(wait), 10))
	return "Too many attempts. Try again in " + waitWords(wait) + "."
}

// clearSignInFailures forgets the account's failed attempts after a
// successful sign-in. The user is signed in by then, so a failure is only
// logged: the count expires on its own.
func (h *Handlers) clearSignInFailures(ctx context.Context, email string) {
	if err := h.throttle.Succeed(ctx, throttle.AccountKey(email)); err != nil {
		h.log.WarnContext(ctx, "clearing sign-in failures", "err", err)
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
