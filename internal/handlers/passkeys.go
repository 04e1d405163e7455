package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/views"
)

// Passkeys (WebAuthn, through github.com/go-webauthn/webauthn): the list on
// /account/passkeys, registering (after re-authentication), renaming and
// removing; signing in with a passkey alone (discoverable credentials) or
// as the second step after the password. The relying party id and origin
// come from BASE_URL.
//
// A ceremony's state (challenge, allowed credentials) is kept in Postgres
// (webauthn_ceremonies), named by the hash of a random token in the
// gatehouse_webauthn cookie, for ceremonyLifetime, and taken (deleted) by
// the request that finishes it: each challenge is answered once.
//
// The ceremony endpoints speak JSON to static/passkey.js; everything else
// is plain forms.

const ceremonyLifetime = 5 * time.Minute

// maxAnonymousCeremonies caps the passkey ceremonies one client address
// may start per minute without being signed in: each stores a row until
// it expires. A sign-in page starts one for autofill on every load.
const maxAnonymousCeremonies = 60

// capCeremonies refuses a client that started too many ceremonies.
func (h *Handlers) capCeremonies(c echo.Context) error {
	wait, err := h.throttle.Take(c.Request().Context(), throttle.CeremonyKey(c.RealIP()), maxAnonymousCeremonies, time.Minute)
	if err != nil {
		return err
	}
	if wait > 0 {
		setRetryAfter(c, wait)
		return jsonProblem(c, http.StatusTooManyRequests, "Too many passkey requests from your network. Try again in "+waitWords(wait)+".")
	}
	return nil
}

// maxPasskeyName bounds a passkey's name.
const maxPasskeyName = 60

// NewRelyingParty configures the WebAuthn relying party from the public
// URL (BASE_URL): its host is the relying party id, its scheme, host and
// port the one origin accepted.
func NewRelyingParty(base *url.URL) (*webauthn.WebAuthn, error) {
	return webauthn.New(&webauthn.Config{
		RPID:          base.Hostname(),
		RPDisplayName: "Gatehouse",
		RPOrigins:     []string{base.Scheme + "://" + base.Host},
	})
}

// passkeyUser is a Gatehouse user as the library sees it. The user handle
// is a keyed hash of the user id: stable, opaque, and not the id itself.
type passkeyUser struct {
	user   *models.User
	handle []byte
	keys   []models.Passkey
	creds  []webauthn.Credential
}

func (p *passkeyUser) WebAuthnID() []byte                         { return p.handle }
func (p *passkeyUser) WebAuthnName() string                       { return p.user.Email }
func (p *passkeyUser) WebAuthnDisplayName() string                { return p.user.Name }
func (p *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

func (h *Handlers) passkeyUser(ctx context.Context, u *models.User) (*passkeyUser, error) {
	keys, err := h.passkeys.List(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	pu := &passkeyUser{user: u, handle: h.keys.UserHandle(u.ID), keys: keys}
	for _, k := range keys {
		var cred webauthn.Credential
		if err := json.Unmarshal(k.Credential, &cred); err != nil {
			return nil, fmt.Errorf("passkey %d: %w", k.ID, err)
		}
		pu.creds = append(pu.creds, cred)
	}
	return pu, nil
}

func (h *Handlers) ceremonyCookieName() string {
	if h.secure {
		return "__Host-gatehouse_webauthn"
	}
	return "gatehouse_webauthn"
}

// startCeremony keeps sd for the request that finishes the ceremony.
func (h *Handlers) startCeremony(c echo.Context, purpose string, userID *int64, sd *webauthn.SessionData) error {
	b, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	token := rand.Text()
	now := h.now()
	if err := h.passkeys.StartCeremony(c.Request().Context(), &models.WebAuthnCeremony{
		TokenHash: hashToken(token), UserID: userID, Purpose: purpose, SessionData: b,
		CreatedAt: now, ExpiresAt: now.Add(ceremonyLifetime),
	}); err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{
		Name: h.ceremonyCookieName(), Value: token, Path: "/", MaxAge: int(ceremonyLifetime / time.Second),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode,
	})
	return nil
}

// takeCeremony returns the request's ceremony for purpose, deleting it;
// nil when there is none still waiting.
func (h *Handlers) takeCeremony(c echo.Context, purpose string) (*models.WebAuthnCeremony, *webauthn.SessionData, error) {
	ck, err := c.Cookie(h.ceremonyCookieName())
	if err != nil || ck.Value == "" || len(ck.Value) > 64 {
		return nil, nil, nil
	}
	c.SetCookie(&http.Cookie{Name: h.ceremonyCookieName(), Path: "/", MaxAge: -1, Expires: time.Unix(1, 0),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode})
	cer, err := h.passkeys.TakeCeremony(c.Request().Context(), hashToken(ck.Value), purpose, h.now())
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	var sd webauthn.SessionData
	if err := json.Unmarshal(cer.SessionData, &sd); err != nil {
		return nil, nil, err
	}
	return cer, &sd, nil
}

// jsonProblem answers a ceremony endpoint with a message for the page.
func jsonProblem(c echo.Context, status int, msg string) error {
	return c.JSON(status, map[string]string{"error": msg})
}

// passkeys lists the user's passkeys.
func (h *Handlers) passkeyList(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	keys, err := h.passkeys.List(ctx, p.UserID)
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.PasskeysView(views.PasskeysPage{Passkeys: keys, Now: h.now()}))
}

// passkeyNew is the page that registers a passkey (after re-auth).
func (h *Handlers) passkeyNew(c echo.Context) error {
	return h.render(c, http.StatusOK, views.NewPasskeyView())
}

// checkPasskeyName returns the name trimmed, or a message.
func checkPasskeyName(name string) (string, string) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", "Give the passkey a name, such as the device it is on."
	case len([]rune(name)) > maxPasskeyName:
		return "", "Keep the name under " + strconv.Itoa(maxPasskeyName) + " characters."
	case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsGraphic(r) }) >= 0:
		return "", "The name cannot contain control characters or invisible formatting characters."
	}
	return name, ""
}

// passkeyRegisterBegin starts registering a passkey for the signed-in
// user: discoverable (so it can sign in without an email), excluding the
// authenticators they already registered.
func (h *Handlers) passkeyRegisterBegin(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	if !h.recentlyAuthenticated(c) {
		return jsonProblem(c, http.StatusForbidden, "Confirm your password first: reload the page.")
	}
	u, err := h.users.ByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	pu, err := h.passkeyUser(ctx, u)
	if err != nil {
		return err
	}
	var exclude []protocol.CredentialDescriptor
	for _, cr := range pu.creds {
		exclude = append(exclude, cr.Descriptor())
	}
	creation, sd, err := h.webauthn.BeginRegistration(pu,
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithExclusions(exclude))
	if err != nil {
		return err
	}
	if err := h.startCeremony(c, models.CeremonyRegister, &u.ID, sd); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, creation)
}

// passkeyRegisterFinish checks the new credential and keeps it, with the
// name the user gave (the query's name).
func (h *Handlers) passkeyRegisterFinish(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	name, problem := checkPasskeyName(c.QueryParam("name"))
	if problem != "" {
		return jsonProblem(c, http.StatusUnprocessableEntity, problem)
	}
	cer, sd, err := h.takeCeremony(c, models.CeremonyRegister)
	if err != nil {
		return err
	}
	if cer == nil || cer.UserID == nil || *cer.UserID != p.UserID || !h.recentlyAuthenticated(c) {
		return jsonProblem(c, http.StatusUnprocessableEntity, "This request has expired. Try again.")
	}
	u, err := h.users.ByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	pu, err := h.passkeyUser(ctx, u)
	if err != nil {
		return err
	}
	cred, err := h.webauthn.FinishRegistration(pu, *sd, c.Request())
	if err != nil {
		h.record(c, models.AuditEvent{Kind: models.AuditPasskeyRefused, UserID: &u.ID, SessionID: p.SessionID,
			Detail: "registration: " + protocolDetail(err)})
		return jsonProblem(c, http.StatusUnprocessableEntity, "This passkey could not be registered. Try again.")
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return err
	}
	err = h.passkeys.Create(ctx, &models.Passkey{UserID: u.ID, CredentialID: cred.ID, Credential: b, Name: name, CreatedAt: h.now()})
	if errors.Is(err, models.ErrConflict) {
		return jsonProblem(c, http.StatusConflict, "This passkey is already registered.")
	} else if err != nil {
		return err
	}
	h.record(c, models.AuditEvent{Kind: models.AuditPasskeyAdded, UserID: &u.ID, SessionID: p.SessionID, Detail: name})
	h.setFlash(c, flashPasskeyAdded)
	return c.JSON(http.StatusOK, map[string]string{"redirect": "/account/passkeys"})
}

// protocolDetail is what the audit log keeps of a refused ceremony: the
// library's reason, never shown to the client.
func protocolDetail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return models.Truncate(strings.TrimSpace(pe.Details+" "+pe.DevInfo), 200)
	}
	return models.Truncate(err.Error(), 200)
}

func (h *Handlers) passkeyID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound()
	}
	return id, nil
}

func (h *Handlers) passkeyRename(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	id, err := h.passkeyID(c)
	if err != nil {
		return err
	}
	name, problem := checkPasskeyName(c.FormValue("name"))
	if problem != "" {
		return &publicError{status: http.StatusUnprocessableEntity, title: "Name not changed", message: problem}
	}
	if err := h.passkeys.Rename(ctx, p.UserID, id, name); errors.Is(err, models.ErrNotFound) {
		return notFound()
	} else if err != nil {
		return err
	}
	return h.redirect(c, "/account/passkeys", flashPasskeyRenamed)
}

func (h *Handlers) passkeyRemove(c echo.Context) error {
	ctx := c.Request().Context()
	p := session.Current(ctx)
	id, err := h.passkeyID(c)
	if err != nil {
		return err
	}
	err = h.store.InTx(ctx, func(tx *models.Tx) error {
		k, err := tx.Passkeys().Remove(ctx, p.UserID, id)
		if err != nil {
			return err
		}
		return h.securityNotice(c, tx, models.AuditEvent{Kind: models.AuditPasskeyRemoved, UserID: &p.UserID, SessionID: p.SessionID, Detail: k.Name})
	})
	if errors.Is(err, models.ErrNotFound) {
		return notFound()
	} else if err != nil {
		return err
	}
	h.wakeMail()
	return h.redirect(c, "/account/passkeys", flashPasskeyRemoved)
}

func (h *Handlers) describePasskeyRemove(c echo.Context, param map[string]string, _ url.Values) (*views.PendingAction, error) {
	id, err := strconv.ParseInt(param["id"], 10, 64)
	if err != nil {
		return nil, notFound()
	}
	ctx := c.Request().Context()
	keys, err := h.passkeys.List(ctx, session.Current(ctx).UserID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.ID == id {
			return &views.PendingAction{
				Doing: "remove the passkey " + k.Name, Heading: "Remove the passkey " + k.Name + "?",
				Detail: "It will no longer sign in to your account.", Button: "Remove passkey", Back: "/account/passkeys",
			}, nil
		}
	}
	return nil, notFound()
}

// passkeyRefusal is a refused passkey ceremony: its text is what the page
// says; the audit log keeps the reason.
type passkeyRefusal string

func (r passkeyRefusal) Error() string { return string(r) }

const (
	errPasskeyExpired passkeyRefusal = "Your passkey request has expired. Try again."
	errPasskeyUnknown passkeyRefusal = "This passkey is not registered with Gatehouse. Sign in with your password."
	errPasskeyRefused passkeyRefusal = "This passkey could not be verified. Try again, or sign in with your password."
	errPasskeyCloned  passkeyRefusal = "This passkey was refused: its signature counter went backwards, a sign that it was copied. Sign in another way and remove it."
	errPasskeyOther   passkeyRefusal = "This passkey belongs to another account."
)

// verifyPasskey finishes a sign-in ceremony of purpose. For the second
// step (and re-authentication) expect is the user the passkey must belong
// to; for a passwordless sign-in it is nil and the credential names the
// user. Every attempt counts on the client address's throttle (and, once
// the account is known, on its keys); a refusal is audited with the
// library's reason and answered with one of the errPasskey messages.
func (h *Handlers) verifyPasskey(c echo.Context, purpose string, expect *models.User) (*models.User, error) {
	ctx := c.Request().Context()
	keys := []string{throttle.IPKey(c.RealIP())}
	if expect != nil {
		keys = append(keys, throttle.AccountKey(expect.Email), throttle.SecondFactorKey(expect.ID))
	}
	attempt, wait, err := h.throttle.Begin(ctx, keys...)
	if err != nil {
		return nil, err
	}
	if wait > 0 {
		return nil, tooManyAttempts(c, wait)
	}
	var subject *int64
	if expect != nil {
		subject = &expect.ID
	}
	refuse := func(public error, detail string) (*models.User, error) {
		h.settle(ctx, attempt.Fail)
		e := models.AuditEvent{Kind: models.AuditPasskeyRefused, UserID: subject, Detail: purpose + ": " + detail}
		if p := session.Current(ctx); p != nil {
			e.SessionID = p.SessionID
		}
		h.record(c, e)
		return nil, public
	}
	cer, sd, err := h.takeCeremony(c, purpose)
	if err != nil {
		h.settle(ctx, attempt.Cancel)
		return nil, err
	}
	if cer == nil || (expect != nil && (cer.UserID == nil || *cer.UserID != expect.ID)) {
		return refuse(errPasskeyExpired, "no ceremony under way (expired, used, or from another browser)")
	}
	parsed, err := protocol.ParseCredentialRequestResponse(c.Request())
	if err != nil {
		return refuse(errPasskeyRefused, "malformed response: "+protocolDetail(err))
	}
	key, err := h.passkeys.ByCredentialID(ctx, parsed.RawID)
	if errors.Is(err, models.ErrNotFound) {
		return refuse(errPasskeyUnknown, "unknown credential")
	} else if err != nil {
		h.settle(ctx, attempt.Cancel)
		return nil, err
	}
	if expect != nil && key.UserID != expect.ID {
		return refuse(errPasskeyOther, fmt.Sprintf("credential of user %d", key.UserID))
	}
	subject = &key.UserID
	u, err := h.users.ByID(ctx, key.UserID)
	if err != nil {
		h.settle(ctx, attempt.Cancel)
		return nil, err
	}
	pu, err := h.passkeyUser(ctx, u)
	if err != nil {
		h.settle(ctx, attempt.Cancel)
		return nil, err
	}
	var cred *webauthn.Credential
	if expect == nil {
		_, cred, err = h.webauthn.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			if !bytes.Equal(userHandle, pu.handle) {
				return nil, errors.New("user handle is not the credential owner's")
			}
			return pu, nil
		}, *sd, parsed)
	} else {
		cred, err = h.webauthn.ValidateLogin(pu, *sd, parsed)
	}
	if err != nil {
		return refuse(errPasskeyRefused, protocolDetail(err))
	}
	if cred.Authenticator.CloneWarning {
		return refuse(errPasskeyCloned, fmt.Sprintf("signature counter went backwards (%d)", parsed.Response.AuthenticatorData.Counter))
	}
	b, err := json.Marshal(cred)
	if err != nil {
		h.settle(ctx, attempt.Cancel)
		return nil, err
	}
	if ok, err := h.passkeys.Used(ctx, u.ID, key.ID, b, cred.Authenticator.SignCount, h.now()); err != nil {
		h.settle(ctx, attempt.Cancel)
		return nil, err
	} else if !ok {
		return refuse(errPasskeyCloned, "signature counter not above the stored one")
	}
	h.settle(ctx, attempt.Succeed)
	return u, nil
}

// passkeyAnswer answers a finished ceremony's failure as JSON.
func passkeyAnswer(c echo.Context, err error) error {
	if r, ok := asRefusal(err); ok {
		return jsonProblem(c, r.status, r.message)
	}
	var refused passkeyRefusal
	if errors.As(err, &refused) {
		return jsonProblem(c, http.StatusUnprocessableEntity, refused.Error())
	}
	return err
}

// passkeySignInBegin starts a passwordless sign-in: any passkey of this
// site the browser holds, chosen by the user (or offered by autofill).
// The passkey alone must prove both factors, so it must verify the user.
func (h *Handlers) passkeySignInBegin(c echo.Context) error {
	if err := h.capCeremonies(c); err != nil || c.Response().Committed {
		return err
	}
	assertion, sd, err := h.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return err
	}
	if err := h.startCeremony(c, models.CeremonySignIn, nil, sd); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, assertion)
}

func (h *Handlers) passkeySignInFinish(c echo.Context) error {
	u, err := h.verifyPasskey(c, models.CeremonySignIn, nil)
	if err != nil {
		return passkeyAnswer(c, err)
	}
	if u.Disabled() {
		h.record(c, models.AuditEvent{Kind: models.AuditSignInFailed, UserID: &u.ID, Detail: "account disabled"})
		return jsonProblem(c, http.StatusUnprocessableEntity, msgDisabled)
	}
	to, err := h.startSession(c, u, false, safeNext(c.QueryParam("next")), models.AuthPasskey)
	return h.passkeySignedIn(c, to, err)
}

// passkeySignedIn answers a ceremony that signed in: where the script
// goes next, with the flash for that page.
func (h *Handlers) passkeySignedIn(c echo.Context, to string, err error) error {
	if errors.Is(err, session.ErrAccountDisabled) {
		return jsonProblem(c, http.StatusUnprocessableEntity, msgDisabled)
	} else if err != nil {
		return err
	}
	h.setFlash(c, flashSignedIn)
	return c.JSON(http.StatusOK, map[string]string{"redirect": to})
}

// secondStepPasskeyBegin offers the passkeys of the pending sign-in's user.
func (h *Handlers) secondStepPasskeyBegin(c echo.Context) error {
	ctx := c.Request().Context()
	if err := h.capCeremonies(c); err != nil || c.Response().Committed {
		return err
	}
	ch, _, err := h.challenge(c)
	if err != nil {
		return err
	}
	if ch == nil {
		return jsonProblem(c, http.StatusUnprocessableEntity, flashes[flashSignInExpired])
	}
	u, err := h.users.ByID(ctx, ch.UserID)
	if err != nil {
		return err
	}
	pu, err := h.passkeyUser(ctx, u)
	if err != nil {
		return err
	}
	if len(pu.creds) == 0 {
		return jsonProblem(c, http.StatusUnprocessableEntity, "You have no passkey. Enter a code instead.")
	}
	assertion, sd, err := h.webauthn.BeginLogin(pu)
	if err != nil {
		return err
	}
	if err := h.startCeremony(c, models.CeremonySecondFactor, &u.ID, sd); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, assertion)
}

func (h *Handlers) secondStepPasskeyFinish(c echo.Context) error {
	ctx := c.Request().Context()
	ch, hash, err := h.challenge(c)
	if err != nil {
		return err
	}
	if ch == nil {
		return jsonProblem(c, http.StatusUnprocessableEntity, flashes[flashSignInExpired])
	}
	u, err := h.users.ByID(ctx, ch.UserID)
	if err != nil {
		return err
	}
	if _, err := h.verifyPasskey(c, models.CeremonySecondFactor, u); err != nil {
		return passkeyAnswer(c, err)
	}
	if ok, err := h.factors.ConsumeChallenge(ctx, hash, h.now()); err != nil {
		return err
	} else if !ok {
		return jsonProblem(c, http.StatusUnprocessableEntity, flashes[flashSignInExpired])
	}
	h.setChallengeCookie(c, "", 0)
	if u.Disabled() {
		return jsonProblem(c, http.StatusUnprocessableEntity, msgDisabled)
	}
	to, err := h.startSession(c, u, ch.Remember, ch.Next, models.AuthPasswordPasskey)
	return h.passkeySignedIn(c, to, err)
}

// confirmPasskeyBegin re-authenticates the signed-in user with one of
// their passkeys (user verification required: the passkey is both
// factors).
func (h *Handlers) confirmPasskeyBegin(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.users.ByID(ctx, session.Current(ctx).UserID)
	if err != nil {
		return err
	}
	pu, err := h.passkeyUser(ctx, u)
	if err != nil {
		return err
	}
	if len(pu.creds) == 0 {
		return jsonProblem(c, http.StatusUnprocessableEntity, "You have no passkey. Confirm with your password.")
	}
	assertion, sd, err := h.webauthn.BeginLogin(pu, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return err
	}
	if err := h.startCeremony(c, models.CeremonySecondFactor, &u.ID, sd); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, assertion)
}

func (h *Handlers) confirmPasskeyFinish(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := h.users.ByID(ctx, session.Current(ctx).UserID)
	if err != nil {
		return err
	}
	if _, err := h.verifyPasskey(c, models.CeremonySecondFactor, u); err != nil {
		return passkeyAnswer(c, err)
	}
	// Proving identity is a privilege change: new token (as confirm).
	if err := h.sessions.Renew(ctx); errors.Is(err, session.ErrNotFound) {
		return jsonProblem(c, http.StatusUnprocessableEntity, flashes[flashConfirmEnded])
	} else if err != nil {
		return err
	}
	next := safeNext(c.QueryParam("next"))
	if next == "" || strings.HasPrefix(next, "/account/confirm") {
		next = "/account"
	}
	h.setFlash(c, flashConfirmed)
	return c.JSON(http.StatusOK, map[string]string{"redirect": next})
}
