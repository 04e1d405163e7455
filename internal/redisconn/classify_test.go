package redisconn

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
)

// reply is an error reply as go-redis hands it over.
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

// TestClassifyRedirectsLeftOver: an ASK or MOVED that reaches the app
// means the cluster client ran out of redirects while a slot moved
// (TestReshardingUnderLoad in internal/session meets both under load):
// Redis cannot serve that key right now, a 503, not a 500. Replies about
// the command itself keep their type.
func TestClassifyRedirectsLeftOver(t *testing.T) {
	var _ redis.Error = reply("")
	for msg, unavailable := range map[string]bool{
		"ASK 3999 127.0.0.1:7001":                                  true,
		"MOVED 3999 127.0.0.1:7002":                                true,
		"TRYAGAIN Multiple keys request during rehashing of slot":  true,
		"ERR Error running script (call to f_x): wrong number":     false,
		"WRONGTYPE Operation against a key holding the wrong kind": false,
		"NOSCRIPT No matching script":                              false,
		"ASKING is not a redirect":                                 false,
	} {
		err := Classify(reply(msg))
		if got := errors.Is(err, ErrUnavailable); got != unavailable {
			t.Errorf("%q: unavailable %v, want %v", msg, got, unavailable)
		}
		if err.Error() != msg {
			t.Errorf("%q became %q", msg, err.Error())
		}
	}
	// internal/session's revoke tells a redirect by its prefix, through
	// the mark.
	for _, prefix := range []string{"ASK", "MOVED"} {
		if !redis.HasErrorPrefix(Classify(reply(prefix+" 1 127.0.0.1:7001")), prefix) {
			t.Errorf("a marked %s reply no longer reads as one", prefix)
		}
	}
}
