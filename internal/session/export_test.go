package session

import (
	"context"
	"strings"
	"time"
)

// CommitWithExpiry saves data of the session whose cookie is cookie through the store, as scs does
// at the end of a request, handing it the absolute expiry scs computed
// from its instance's clock.
func (m *Manager) CommitWithExpiry(ctx context.Context, cookie string, data []byte, expiry time.Time) error {
	tag, token, _ := splitCookie(cookie)
	ctx = context.WithValue(ctx, lookupKey{}, &lookup{tag: tag})
	return m.scs.Store.(*store).CommitCtx(ctx, token, data, expiry)
}

// EndingKey names the set of users with end marks.
func (m *Manager) EndingKey() string { return m.keys.ending() }

// MakeOld moves the session whose cookie is cookie to the layout from
// before tags (P s:<token>, P o:<token>, P u:{<user id>}), as a session
// signed in before the upgrade left it, and returns its cookie then: the
// bare token.
func (m *Manager) MakeOld(ctx context.Context, userID int64, cookie string) (string, error) {
	tag, token, _ := splitCookie(cookie)
	data, err := m.rdb.Get(ctx, m.keys.data(tag, token)).Bytes()
	if err != nil {
		return "", err
	}
	owner, err := m.rdb.Get(ctx, m.keys.owner(tag, token)).Result()
	if err != nil {
		return "", err
	}
	dataTTL := m.rdb.PTTL(ctx, m.keys.data(tag, token)).Val()
	ownerTTL := m.rdb.PTTL(ctx, m.keys.owner(tag, token)).Val()
	_, publicID, _ := strings.Cut(owner, ":")
	user := m.keys.user(tag, userID)
	profile, err := m.rdb.HMGet(ctx, user, "name", "email", "role").Result()
	if err != nil {
		return "", err
	}
	old := m.keys.user("", userID)
	pipe := m.rdb.TxPipeline()
	pipe.Set(ctx, m.keys.data("", token), data, dataTTL)
	pipe.Set(ctx, m.keys.owner("", token), owner, ownerTTL)
	pipe.HSet(ctx, old, sessionField+publicID, token, "name", profile[0], "email", profile[1], "role", profile[2])
	pipe.Expire(ctx, old, time.Hour)
	pipe.Del(ctx, m.keys.data(tag, token), m.keys.owner(tag, token))
	pipe.HDel(ctx, user, sessionField+publicID)
	_, err = pipe.Exec(ctx)
	return token, err
}

// The scripts and key names, for scripts_test.go.
var (
	FindScript       = findScript
	CommitScript     = commitScript
	RenewScript      = renewScript
	RegisterScript   = registerScript
	RevokeScript     = revokeScript
	DisableScript    = disableScript
	ForgetScript     = forgetScript
	SetProfileScript = setProfileScript
	ClearScript      = clearScript
	Owner            = owner
)

// Keys names keys as the manager does under prefix.
type Keys struct{ k keys }

func NewKeys(prefix string) Keys { return Keys{keys{prefix: prefix, tagKey: make([]byte, 32)}} }

func (k Keys) Data(tag, token string) string  { return k.k.data(tag, token) }
func (k Keys) Owner(tag, token string) string { return k.k.owner(tag, token) }
func (k Keys) User(tag string, uid int64) string {
	return k.k.user(tag, uid)
}

// CommitScriptHash is the SHA1 that EVALSHA names the commit script by.
var CommitScriptHash = commitScript.Hash()
