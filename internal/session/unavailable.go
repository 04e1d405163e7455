package session

import "github.com/gatehouse/gatehouse/internal/redisconn"

// ErrUnavailable marks an error that means Redis could not be reached (or
// cannot serve right now): every page that needs a session answers it with
// "Sign-in is temporarily unavailable" rather than a generic failure.
// Test with errors.Is. Errors are marked where the Redis client is made
// (redisconn), for every user of Redis alike.
var ErrUnavailable = redisconn.ErrUnavailable
