package handlers_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// softKey is a software passkey for HTTP tests: the authenticator and the
// browser's part of WebAuthn, built from the specification (ES256, "none"
// attestation), so tests can also send what no honest browser would: a
// wrong origin, a bad signature, a counter going backwards.
type softKey struct {
	t      testing.TB
	id     []byte
	priv   *ecdsa.PrivateKey
	count  uint32
	rpID   string
	origin string
	handle []byte // the user handle the site gave at registration
}

var b64 = base64.RawURLEncoding

func newSoftKey(t testing.TB, env *apptest.Env) *softKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	rand.Read(id)
	base := env.Config.BaseURL
	return &softKey{t: t, id: id, priv: priv, rpID: base.Hostname(), origin: base.Scheme + "://" + base.Host}
}

// ceremonyOptions is what the site's begin endpoints answer.
type ceremonyOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
		User      struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

// postJSON posts body as the page's script does, with the CSRF header.
func postJSON(c *apptest.Client, path string, body any) *apptest.Response {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, c.Base+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", c.CSRFToken())
	return c.Do(req)
}

func begin(t testing.TB, c *apptest.Client, path string) ceremonyOptions {
	t.Helper()
	res := postJSON(c, path, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", path, res.StatusCode, res.Body)
	}
	var o ceremonyOptions
	if err := json.Unmarshal([]byte(res.Body), &o); err != nil || o.PublicKey.Challenge == "" {
		t.Fatalf("%s: %v %s", path, err, res.Body)
	}
	return o
}

func (k *softKey) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	return b
}

// authData is the authenticator data: rp id hash, flags (user present and
// verified, and attested credential data when att is set), counter.
func (k *softKey) authData(att []byte) []byte {
	h := sha256.Sum256([]byte(k.rpID))
	flags := byte(0x01 | 0x04)
	if att != nil {
		flags |= 0x40
	}
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, k.count)
	return append(out, att...)
}

// create answers a registration's options.
func (k *softKey) create(o ceremonyOptions) map[string]any {
	k.t.Helper()
	handle, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		k.t.Fatal(err)
	}
	k.handle = handle
	em, _ := cbor.CoreDetEncOptions().EncMode()
	pub, err := k.priv.PublicKey.Bytes() // 0x04, X, Y
	if err != nil {
		k.t.Fatal(err)
	}
	x, y := pub[1:33], pub[33:65]
	cose, err := em.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		k.t.Fatal(err)
	}
	att := make([]byte, 16) // AAGUID: none
	att = binary.BigEndian.AppendUint16(att, uint16(len(k.id)))
	att = append(append(att, k.id...), cose...)
	obj, err := em.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(att)})
	if err != nil {
		k.t.Fatal(err)
	}
	return map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(k.clientData("webauthn.create", o.PublicKey.Challenge)),
			"attestationObject": b64.EncodeToString(obj),
		},
	}
}

// get answers a sign-in's options, the counter one step on.
func (k *softKey) get(o ceremonyOptions) map[string]any {
	k.t.Helper()
	k.count++
	ad := k.authData(nil)
	cd := k.clientData("webauthn.get", o.PublicKey.Challenge)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		k.t.Fatal(err)
	}
	return map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"authenticatorData": b64.EncodeToString(ad),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(k.handle),
		},
	}
}
