// Package factor holds the cryptography of second factors, apart from any
// storage or HTTP: the sealing of secrets at rest under SECRET_KEY, TOTP
// codes (RFC 6238) with their time steps, and recovery codes with their
// keyed hashes.
package factor
