package factor

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
)

// Keys are the keys derived from SECRET_KEY: one to encrypt secrets at
// rest (AES-256-GCM), one to key the hashes of recovery codes (HMAC-SHA256),
// so a copy of the database alone opens neither, and one to sign device
// cookies (HMAC-SHA256), so a browser cannot make up a known device.
type Keys struct {
	aead      cipher.AEAD
	codeMAC   []byte
	deviceMAC []byte
}

// ErrUnsealable means a sealed secret could not be opened: another
// SECRET_KEY sealed it, or it was altered (or moved to another user).
var ErrUnsealable = errors.New("sealed secret cannot be opened with this SECRET_KEY")

// NewKeys derives the keys from secret (SECRET_KEY).
func NewKeys(secret []byte) (*Keys, error) {
	if len(secret) < 32 {
		return nil, errors.New("secret key: want at least 32 bytes")
	}
	derive := func(purpose string) ([]byte, error) {
		return hkdf.Key(sha256.New, secret, nil, "gatehouse "+purpose, 32)
	}
	encKey, err := derive("seal v1")
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	macKey, err := derive("recovery codes v1")
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	deviceKey, err := derive("device cookie v1")
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keys{aead: aead, codeMAC: macKey, deviceMAC: deviceKey}, nil
}

// owner binds a sealed secret to its user: a secret copied into another
// user's row does not open.
func owner(userID int64) []byte { return []byte("user " + strconv.FormatInt(userID, 10)) }

// Seal encrypts userID's secret: a random nonce, then the ciphertext.
func (k *Keys) Seal(userID int64, secret []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce) // never fails (crypto/rand)
	return k.aead.Seal(nonce, nonce, secret, owner(userID))
}

// Open decrypts what Seal sealed for userID.
func (k *Keys) Open(userID int64, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrUnsealable
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], owner(userID))
	if err != nil {
		return nil, ErrUnsealable
	}
	return plain, nil
}

// UserHandle is userID's WebAuthn user handle: stable, opaque (a keyed
// hash, not the id), 32 bytes.
func (k *Keys) UserHandle(userID int64) []byte {
	m := hmac.New(sha256.New, k.codeMAC)
	m.Write([]byte("webauthn user handle\x00"))
	m.Write(owner(userID))
	return m.Sum(nil)
}

// HashRecoveryCode is the stored form of userID's recovery code (in the
// form NormalizeRecoveryCode returns).
func (k *Keys) HashRecoveryCode(userID int64, code string) []byte {
	m := hmac.New(sha256.New, k.codeMAC)
	m.Write(owner(userID))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// SignDevice is the signature of a device cookie's id.
func (k *Keys) SignDevice(id []byte) []byte {
	m := hmac.New(sha256.New, k.deviceMAC)
	m.Write([]byte("device\x00"))
	m.Write(id)
	return m.Sum(nil)
}

// DeviceSigned reports whether sig is id's signature (SignDevice), in
// constant time.
func (k *Keys) DeviceSigned(id, sig []byte) bool { return hmac.Equal(k.SignDevice(id), sig) }
