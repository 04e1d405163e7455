// Package throttle slows down password guessing on sign-in. It keeps its
// counters in Redis, so the limits hold across app instances and restarts.
//
// Two kinds of key are counted: the account (derived from the lower-cased
// email, hashed so no address sits in Redis in clear) and the client IP.
// Each failed attempt adds one to every key it names. After a number of free
// failures (AccountFreeFailures, IPFreeFailures) each further failure
// imposes a wait before the next attempt: BaseDelay, doubling with every
// failure, capped at MaxDelay. A key is forgotten once Window has passed
// since its last failure, and a successful sign-in clears the account key.
//
// The back-off is bounded on purpose: throttling must not become a way to
// lock someone out of their own account. However long an attacker kept
// guessing, the victim waits at most MaxDelay after the attacker stops.
//
// Redis layout, under the prefix P the limiter is built with (the app uses
// REDIS_PREFIX + "t:"):
//
//	P a:<sha256 hex of the email>   hash: n (failures), last (Unix ms)
//	P ip:<address or IPv6 /64>      hash: n (failures), last (Unix ms)
//
// Every decision is made from the app's clock (passed to New), stored as
// Unix milliseconds; Redis TTLs only clean up keys nobody will read again.
// Each operation is one Lua script, so checking and counting is atomic and
// one round trip.
package throttle
