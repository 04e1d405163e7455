package handlers

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/views"
)

// The second step of signing in. A right password for an account with a
// second factor makes no session: it stores a pending sign-in (a
// challenge) in Postgres, named by the hash of a random token that only
// this browser holds, in a cookie, for challengeLifetime. /signin/2fa
// takes the code; the session starts only once the code is right, and the
// challenge is deleted in the same step (one use). Another browser, or
// this one after challengeLifetime, has no challenge and must sign in
// again.

// challengeLifetime is how long a pending sign-in waits for its code.
const challengeLifetime = 5 * time.Minute

// challengeCookieName is the cookie holding a pending sign-in's token.
func (h *Handlers) challengeCookieName() string {
	if h.secure {
		return "__Host-gatehouse_2fa"
	}
	return "gatehouse_2fa"
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// beginSecondStep stores a pending sign-in for u and sends the browser to
// the code step.
func (h *Handlers) beginSecondStep(c echo.Context, u *models.User, f views.SignInForm) error {
	token := rand.Text()
	now := h.now()
	err := h.factors.CreateChallenge(c.Request().Context(), &models.SignInChallenge{
		TokenHash: hashToken(token), UserID: u.ID, Remember: f.Remember, Next: f.Next,
		CreatedAt: now, ExpiresAt: now.Add(challengeLifetime),
	})
	if err != nil {
		return err
	}
	h.setChallengeCookie(c, token, challengeLifetime)
	return c.Redirect(http.StatusSeeOther, "/signin/2fa")
}

func (h *Handlers) setChallengeCookie(c echo.Context, token string, maxAge time.Duration) {
	ck := &http.Cookie{
		Name: h.challengeCookieName(), Value: token, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode,
	}
	if maxAge <= 0 {
		ck.MaxAge, ck.Expires = -1, time.Unix(1, 0)
	}
	c.SetCookie(ck)
}

// challenge is the request's pending sign-in and the hash naming it; nil
// when the browser has none that is still waiting.
func (h *Handlers) challenge(c echo.Context) (*models.SignInChallenge, []byte, error) {
	ck, err := c.Cookie(h.challengeCookieName())
	if err != nil || ck.Value == "" || len(ck.Value) > 64 {
		return nil, nil, nil
	}
	hash := hashToken(ck.Value)
	ch, err := h.factors.Challenge(c.Request().Context(), hash, h.now())
	if errors.Is(err, models.ErrNotFound) {
		return nil, hash, nil
	}
	return ch, hash, err
}

func (h *Handlers) secondStepForm(c echo.Context) error {
	ch, _, err := h.challenge(c)
	if err != nil {
		return err
	}
	if ch == nil {
		h.setChallengeCookie(c, "", 0)
		return h.redirect(c, "/signin", flashSignInExpired)
	}
	f, err := h.factors.Factors(c.Request().Context(), ch.UserID)
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.SecondFactorSignInView(views.SecondFactorForm{TOTP: f.TOTP, Passkeys: f.Passkeys > 0}))
}

// secondStep takes the code of a pending sign-in, and signs in.
func (h *Handlers) secondStep(c echo.Context) error {
	ctx := c.Request().Context()
	ch, hash, err := h.challenge(c)
	if err != nil {
		return err
	}
	if ch == nil {
		return h.noPendingSignIn(c, "second step without a pending sign-in (expired, used, or from another browser)")
	}
	fail := func(status int, msg string) error {
		f, err := h.factors.Factors(ctx, ch.UserID)
		if err != nil {
			return err
		}
		return h.render(c, status, views.SecondFactorSignInView(views.SecondFactorForm{Error: msg, TOTP: f.TOTP, Passkeys: f.Passkeys > 0}))
	}
	code := c.FormValue("code")
	if code == "" {
		return fail(http.StatusUnprocessableEntity, msgEnterCode)
	}
	u, err := h.users.ByID(ctx, ch.UserID)
	if err != nil {
		return err
	}
	method, err := h.checkSecondFactor(c, u, code, "at sign-in")
	if status, msg, ok := codeProblem(err); ok {
		return fail(status, msg)
	} else if err != nil {
		return err
	}
	// The code is used up; now the challenge, in one step, so of two
	// requests racing with it only one signs in.
	if ok, err := h.factors.ConsumeChallenge(ctx, hash, h.now()); err != nil {
		return err
	} else if !ok {
		return h.noPendingSignIn(c, "second step of a sign-in already completed or expired")
	}
	h.setChallengeCookie(c, "", 0)
	if u.Disabled() {
		h.record(c, models.AuditEvent{Kind: models.AuditSignInFailed, UserID: &u.ID, Detail: "account disabled"})
		return h.render(c, http.StatusUnprocessableEntity, views.SignInPage(views.SignInForm{Email: u.Email, Error: msgDisabled}))
	}
	to, err := h.startSession(c, u, ch.Remember, ch.Next, method)
	if errors.Is(err, session.ErrAccountDisabled) {
		return h.render(c, http.StatusUnprocessableEntity, views.SignInPage(views.SignInForm{Email: u.Email, Error: msgDisabled}))
	} else if err != nil {
		return err
	}
	return h.redirect(c, to, flashSignedIn)
}

// noPendingSignIn refuses a code sent without a pending sign-in: counted
// on the client's address (it may be a guess at someone's challenge),
// audited, and answered with the sign-in page.
func (h *Handlers) noPendingSignIn(c echo.Context, detail string) error {
	ctx := c.Request().Context()
	h.setChallengeCookie(c, "", 0)
	page := func(status int, msg string) error {
		return h.render(c, status, views.SignInPage(views.SignInForm{Error: msg}))
	}
	attempt, wait, err := h.throttle.Begin(ctx, throttle.IPKey(c.RealIP()))
	if err != nil {
		return err
	}
	if wait > 0 {
		return page(http.StatusTooManyRequests, tooManyAttempts(c, wait).message)
	}
	h.settle(ctx, attempt.Fail)
	h.record(c, models.AuditEvent{Kind: models.AuditSignInFailed, Detail: detail})
	return page(http.StatusUnprocessableEntity, flashes[flashSignInExpired])
}

// startSession signs u in on this browser, by method, and returns where
// to go next; session.ErrAccountDisabled (audited) when the account was
// disabled meanwhile.
func (h *Handlers) startSession(c echo.Context, u *models.User, remember bool, next string, method models.AuthMethod) (string, error) {
	if err := h.endCurrent(c); err != nil {
		return "", err
	}
	sid, err := h.sessions.Start(c, u, remember, session.SignedInWith(method))
	if errors.Is(err, session.ErrAccountDisabled) {
		h.record(c, models.AuditEvent{Kind: models.AuditSignInFailed, UserID: &u.ID, Detail: "account disabled"})
		return "", err
	} else if err != nil {
		return "", err
	}
	if err := h.signedInFrom(c, u, sid); err != nil {
		return "", err
	}
	h.rotateCSRF(c)
	h.record(c, models.AuditEvent{Kind: models.AuditSignIn, UserID: &u.ID, ActorID: &u.ID, SessionID: sid, Detail: views.AuthMethodLabel(method)})
	if next == "" {
		next = "/account"
	}
	return next, nil
}
