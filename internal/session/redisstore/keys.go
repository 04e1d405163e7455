package redisstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
)

// Redis layout, every key under the configured prefix P. A user's keys
// carry the user's tag T in braces, Redis Cluster's hash tag, so they all
// sit in one slot and every script touches one slot:
//
//	P s:{T}<token>  scs session data, expires with the session
//	P o:{T}<token>  "<user id>:<public id>": whose session the token is,
//	                so the lookup checks it in the same script (store.go)
//	P u:{T}         hash: "s:<public id>" -> token for each live session
//	                ("app:<token>" for an app session's access token),
//	                "uid" -> the user id, the user's name, email and role
//	                for page chrome, and "e:<public id>" -> end mark for
//	                each ended session whose record is not yet written
//	                (ends.go, EndMark)
//	P ending        set: the users with end marks (its own slot, written
//	                after the revoke, never inside a script)
//
// T is 16 characters of base64url: 96 bits of HMAC-SHA256 of the user id
// under a secret kept in Postgres (models.Secret "session-tag"). It names
// the user's slot without revealing the id, and the cookie carries it
// ("T.<token>"), so a request finds the session's slot from its cookie
// alone. Two users sharing a tag (about one chance in 10^13 among 100
// million users) would share a hash: the "uid" field makes sign-in refuse
// rather than mix them.
//
// Sessions signed in before tags (cookies that are a bare token) keep
// their old keys until they end: P s:<token>, P o:<token>, P u:{<user id>}.
// Their lookup costs a GET of the owner key first, and revokes, lists and
// end records look at both user hashes (Keys.hashes). On a Cluster there
// are none: Gatehouse never ran on one before.
//
// The user hash is the kill switch: a request is authenticated only while
// its session's field there names its token. Revoking is removing fields
// from that one key, which is atomic on its own. The revoked session's data
// is left to the next request that presents it (which finds its field
// gone, learns which session ended so it can say why, and deletes it) or
// to its TTL.
type Keys struct {
	prefix string
	tagKey []byte // HMAC key of tags
	legacy bool   // sessions may still use the layout before tags
}

// NewKeys names keys under prefix, with tags keyed by tagKey; legacy says
// sessions from before tags may still exist (never on a Cluster).
func NewKeys(prefix string, tagKey []byte, legacy bool) Keys {
	return Keys{prefix: prefix, tagKey: tagKey, legacy: legacy}
}

// TagSecret names the secret (models.Secret) that keys tags.
const TagSecret = "session-tag"

// tagLen is the length of a tag: 12 bytes of HMAC in base64url.
const tagLen = 16

// Tag returns the user's tag.
func (k Keys) Tag(userID int64) string {
	mac := hmac.New(sha256.New, k.tagKey)
	mac.Write([]byte("session-tag:" + strconv.FormatInt(userID, 10)))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:tagLen*3/4])
}

// Data, Owner and User name a session's keys and its user's hash; tag ""
// names the layout before tags.
func (k Keys) Data(tag, token string) string {
	if tag == "" {
		return k.prefix + "s:" + token
	}
	return k.prefix + "s:{" + tag + "}" + token
}

func (k Keys) Owner(tag, token string) string {
	if tag == "" {
		return k.prefix + "o:" + token
	}
	return k.prefix + "o:{" + tag + "}" + token
}

func (k Keys) User(tag string, userID int64) string {
	if tag == "" {
		return k.prefix + "u:{" + strconv.FormatInt(userID, 10) + "}"
	}
	return k.prefix + "u:{" + tag + "}"
}

// Ending names the set of users with end marks.
func (k Keys) Ending() string { return k.prefix + "ending" }

// userHash is one of a user's hashes and the tag of its sessions' keys.
type userHash struct{ tag, key string }

// hashes returns the user's hashes: the tagged one, then the one from
// before tags when such sessions may still exist.
func (k Keys) hashes(userID int64) []userHash {
	tag := k.Tag(userID)
	out := []userHash{{tag, k.User(tag, userID)}}
	if k.legacy {
		out = append(out, userHash{"", k.User("", userID)})
	}
	return out
}

// Fields of the user hash.
const (
	sessionField   = "s:" // + public id: the session's token
	endField       = "e:" // + public id: the session's end mark
	appFieldPrefix = "app:"
)

// Owner is the value of an owner key.
func Owner(userID int64, publicID string) string {
	return strconv.FormatInt(userID, 10) + ":" + publicID
}

// CookieValue is what the session cookie holds for token of a user with
// tag.
func CookieValue(tag, token string) string {
	if tag == "" {
		return token
	}
	return tag + "." + token
}

// SplitCookie returns the tag and the token of a cookie value, tag ""
// for a session from before tags; ok false when the value has the shape
// of neither (so malformed cookies never reach the store).
func SplitCookie(v string) (tag, token string, ok bool) {
	if len(v) == tagLen+1+TokenLen && v[tagLen] == '.' {
		tag, token = v[:tagLen], v[tagLen+1:]
		return tag, token, Base64URL(tag) && Base64URL(token)
	}
	return "", v, len(v) == TokenLen && Base64URL(v)
}

// TokenLen is the length of an scs token: 32 random bytes, base64url.
const TokenLen = 43

// Base64URL reports whether s holds only base64url characters.
func Base64URL(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) < 0
}
