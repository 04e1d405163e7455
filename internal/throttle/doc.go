// Package throttle slows down password guessing. It keeps its counters in
// Redis, so the limits hold across app instances and restarts.
//
// Two kinds of key are counted: the account (derived from the lower-cased
// email, hashed so no address sits in Redis in clear) and the client IP.
// An attempt is counted before the password is checked, in the same atomic
// step (one Lua script) that checks the wait (Begin): however many attempts
// arrive at once, no more are evaluated than one after another. After a
// number of free attempts (AccountFreeFailures, IPFreeFailures) each
// further one imposes a wait before the next: BaseDelay, doubling with
// every attempt, capped at MaxDelay. A key is forgotten once Window has
// passed since its last attempt.
//
// A wrong password leaves its attempt counted and starts its wait when it
// is found wrong (Attempt.Fail), so a slow hash does not use the wait up.
// An attempt whose password was right is given back (Attempt.Succeed): the
// account keys are cleared, and the IP keys lose this one attempt only, so
// an honest sign-in does not use up its address's allowance while an
// attacker cannot reset their address's count by signing in to an account
// of their own between guesses. An attempt that was never evaluated (the
// server was too busy to hash) is given back on every key (Attempt.Cancel).
//
// The back-off is bounded on purpose: throttling must not become a way to
// lock someone out of their own account. However long an attacker kept
// guessing, the victim waits at most MaxDelay after the attacker stops.
//
// Besides failures, Take counts events against a fixed cap per window
// (sign-ups, passkey ceremonies and device-flow codes per IP).
//
// Redis layout, under the prefix P the limiter is built with (the app uses
// REDIS_PREFIX + "t:"):
//
//	P a:<sha256 hex of the email>   hash: n (attempts), last (Unix ms)
//	P ip:<address or IPv6 /64>      hash: n (attempts), last (Unix ms)
//	P su:<address or IPv6 /64>      hash: n (sign-ups), start (Unix ms)
//	P dc:<address or IPv6 /64>      hash: n (device-flow codes asked for), start (Unix ms)
//
// Every decision is made from the app's clock (passed to New), stored as
// Unix milliseconds; Redis TTLs only clean up keys nobody will read again.
package throttle
