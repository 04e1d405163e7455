package redisstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/session/redisstore"
)

// One test per Lua script, named after it, run straight against the test
// Redis (a Cluster too, with GATEHOUSE_TEST_REDIS=cluster: every call names
// keys of one tag only). Each checks the script's result and its effect on
// the keys. Each key is under a prefix of the test's own.

type scriptFixture struct {
	t   *testing.T
	ctx context.Context
	rdb redis.UniversalClient
	k   redisstore.Keys
	tag string
}

func newScriptFixture(t *testing.T) *scriptFixture {
	return &scriptFixture{t: t, ctx: context.Background(), rdb: apptest.Redis(t),
		k: redisstore.NewKeys(apptest.RedisPrefix(t), make([]byte, 32), false), tag: "AAAAAAAAAAAAAAAA"}
}

func (f *scriptFixture) run(s *redis.Script, keys []string, args ...any) *redis.Cmd {
	f.t.Helper()
	return s.Run(f.ctx, f.rdb, keys, args...)
}

func (f *scriptFixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// session writes a live session: data, owner key, field in the user hash.
func (f *scriptFixture) session(token, sid string, uid int64) {
	f.t.Helper()
	n, err := f.run(redisstore.RegisterScript, []string{f.k.User(f.tag, uid), f.k.Owner(f.tag, token)},
		"s:"+sid, token, 3600, "Ada", "ada@example.com", "user", redisstore.Owner(uid, sid), time.Hour.Milliseconds(), uid).Int()
	f.must(err)
	if n < 1 {
		f.t.Fatalf("register: %d", n)
	}
	f.must(f.rdb.Set(f.ctx, f.k.Data(f.tag, token), "data-"+token, time.Minute).Err())
}

func (f *scriptFixture) find(token string, idle time.Duration) []string {
	f.t.Helper()
	v, err := f.run(redisstore.FindScript, []string{f.k.Data(f.tag, token), f.k.Owner(f.tag, token), f.k.User(f.tag, 0)},
		token, idle.Milliseconds()).StringSlice()
	f.must(err)
	return v
}

func TestFindScript(t *testing.T) {
	f := newScriptFixture(t)
	if got := f.find("none", time.Minute); len(got) != 0 {
		t.Errorf("no data: %q", got)
	}
	f.must(f.rdb.Set(f.ctx, f.k.Data(f.tag, "unowned"), "x", time.Minute).Err())
	if got := f.find("unowned", time.Minute); !slices.Equal(got, []string{"x"}) {
		t.Errorf("data without owner: %q", got)
	}
	f.session("tok", "sid1", 7)
	f.must(f.rdb.PExpire(f.ctx, f.k.Data(f.tag, "tok"), time.Second).Err())
	if got := f.find("tok", 30*time.Second); !slices.Equal(got, []string{"data-tok", "7", "sid1", "1", "Ada", "ada@example.com", "user"}) {
		t.Errorf("live: %q", got)
	}
	if left := f.rdb.PTTL(f.ctx, f.k.Data(f.tag, "tok")).Val(); left < 29*time.Second || left > 30*time.Second {
		t.Errorf("the lookup left the idle expiry at %v, want it slid to 30s", left)
	}
	// The idle expiry never outlives the absolute lifetime (the owner key).
	f.must(f.rdb.PExpire(f.ctx, f.k.Owner(f.tag, "tok"), 5*time.Second).Err())
	f.find("tok", 30*time.Second)
	if left := f.rdb.PTTL(f.ctx, f.k.Data(f.tag, "tok")).Val(); left > 5*time.Second {
		t.Errorf("slid past the lifetime: %v", left)
	}
	// Another user's hash under the same tag: not this session's owner.
	f.must(f.rdb.HSet(f.ctx, f.k.User(f.tag, 0), "uid", "8").Err())
	if got := f.find("tok", time.Minute); len(got) != 1 {
		t.Errorf("a hash of another user: %q, want the data alone (unowned)", got)
	}
	f.must(f.rdb.HSet(f.ctx, f.k.User(f.tag, 0), "uid", "7").Err())
	// Revoked: the field is gone, an end mark waits; the data is deleted.
	f.must(f.rdb.HDel(f.ctx, f.k.User(f.tag, 0), "s:sid1").Err())
	f.must(f.rdb.HSet(f.ctx, f.k.User(f.tag, 0), "e:sid1", "mark").Err())
	if got := f.find("tok", time.Minute); !slices.Equal(got, []string{"", "7", "sid1", "0", "mark"}) {
		t.Errorf("revoked: %q", got)
	}
	if f.rdb.Exists(f.ctx, f.k.Data(f.tag, "tok")).Val() != 0 {
		t.Error("a revoked session's data was kept")
	}
	// Still revoked, with its mark, when asked again without the data.
	if got := f.find("tok", time.Minute); !slices.Equal(got, []string{"", "7", "sid1", "0", "mark"}) {
		t.Errorf("revoked, data gone: %q", got)
	}

	// Gone idle: the data expired while the owner key (the lifetime) lives
	// on and the field still names the token. Reported ended, no mark, so
	// the page can name the session's device; nothing is written.
	f.session("idle", "sid2", 7)
	f.must(f.rdb.Del(f.ctx, f.k.Data(f.tag, "idle")).Err())
	if got := f.find("idle", time.Minute); !slices.Equal(got, []string{"", "7", "sid2", "0", ""}) {
		t.Errorf("gone idle: %q", got)
	}
	if f.rdb.Exists(f.ctx, f.k.Data(f.tag, "idle")).Val() != 0 {
		t.Error("the lookup of an idle session brought its data back")
	}
	if f.rdb.HGet(f.ctx, f.k.User(f.tag, 0), "s:sid2").Val() != "idle" {
		t.Error("the lookup of an idle session changed its field")
	}
	// Without data, an owner key whose hash belongs to another user says
	// nothing about it.
	f.must(f.rdb.HSet(f.ctx, f.k.User(f.tag, 0), "uid", "8").Err())
	if got := f.find("idle", time.Minute); len(got) != 0 {
		t.Errorf("gone idle, a hash of another user: %q, want nothing", got)
	}
}

func TestCommitScript(t *testing.T) {
	f := newScriptFixture(t)
	keys := []string{f.k.Data(f.tag, "tok"), f.k.Owner(f.tag, "tok")}
	// A token not yet registered is written with the lifetime given.
	if n, err := f.run(redisstore.CommitScript, keys, 0, time.Hour.Milliseconds(), "v1").Int(); err != nil || n != 1 {
		t.Fatalf("fresh: %d, %v", n, err)
	}
	f.must(f.rdb.Del(f.ctx, keys[0]).Err())
	// Expired data is never brought back by a later commit.
	if n, err := f.run(redisstore.CommitScript, keys, time.Minute.Milliseconds(), 0, "v2").Int(); err != nil || n != 0 {
		t.Errorf("expired: %d, %v; want 0", n, err)
	}
	if f.rdb.Exists(f.ctx, keys[0]).Val() != 0 {
		t.Error("expired data came back")
	}
	f.session("tok", "sid", 1)
	if n, err := f.run(redisstore.CommitScript, keys, time.Minute.Milliseconds(), 0, "v3").Int(); err != nil || n != 1 {
		t.Fatalf("live: %d, %v", n, err)
	}
	if v := f.rdb.Get(f.ctx, keys[0]).Val(); v != "v3" {
		t.Errorf("data %q, want v3", v)
	}
	if left := f.rdb.PTTL(f.ctx, keys[0]).Val(); left > time.Minute || left < 59*time.Second {
		t.Errorf("TTL %v, want the idle timeout", left)
	}
}

func TestRenewScript(t *testing.T) {
	f := newScriptFixture(t)
	f.session("old", "sid", 1)
	user := f.k.User(f.tag, 1)
	keys := []string{user, f.k.Owner(f.tag, "old"), f.k.Owner(f.tag, "new"), f.k.Data(f.tag, "old"), f.k.Data(f.tag, "new")}
	if n, err := f.run(redisstore.RenewScript, keys, "s:sid", "old", "new", "renewed", time.Minute.Milliseconds()).Int(); err != nil || n != 1 {
		t.Fatalf("renew: %d, %v", n, err)
	}
	if f.rdb.HGet(f.ctx, user, "s:sid").Val() != "new" || f.rdb.Get(f.ctx, keys[4]).Val() != "renewed" ||
		f.rdb.Exists(f.ctx, keys[1], keys[3]).Val() != 0 || f.rdb.Get(f.ctx, keys[2]).Val() != "1:sid" {
		t.Error("the session did not move to the new token")
	}
	if left := f.rdb.PTTL(f.ctx, keys[2]).Val(); left > time.Hour || left < 59*time.Minute {
		t.Errorf("the new owner key lives %v, want what was left of the old one", left)
	}
	// Revoked meanwhile: nothing moves.
	f.must(f.rdb.HDel(f.ctx, user, "s:sid").Err())
	keys = []string{user, keys[2], f.k.Owner(f.tag, "newer"), keys[4], f.k.Data(f.tag, "newer")}
	if n, err := f.run(redisstore.RenewScript, keys, "s:sid", "new", "newer", "x", 0).Int(); err != nil || n != 0 {
		t.Errorf("revoked: %d, %v; want 0", n, err)
	}
	if f.rdb.Exists(f.ctx, keys[4]).Val() != 0 {
		t.Error("a revoked session was renewed")
	}
}

func TestRegisterScript(t *testing.T) {
	f := newScriptFixture(t)
	f.session("a", "sid-a", 1)
	f.session("b", "sid-b", 1)
	user := f.k.User(f.tag, 1)
	reg := func(uid int64, token string) int {
		n, err := f.run(redisstore.RegisterScript, []string{user, f.k.Owner(f.tag, token)}, "s:x"+token, token, 3600,
			"n", "e", "r", redisstore.Owner(uid, "x"+token), 60000, uid).Int()
		f.must(err)
		return n
	}
	if n := reg(1, "c"); n != 3 {
		t.Errorf("third session: count %d", n)
	}
	if n := reg(2, "d"); n != -2 {
		t.Errorf("another user's hash (tags collide): %d, want -2", n)
	}
	if f.rdb.HExists(f.ctx, user, "s:xd").Val() {
		t.Error("a colliding user's session was entered")
	}
	f.must(f.rdb.HSet(f.ctx, user, "disabled", "1").Err())
	if n := reg(1, "e"); n != -1 {
		t.Errorf("disabled account: %d, want -1", n)
	}
}

func TestRevokeScript(t *testing.T) {
	f := newScriptFixture(t)
	for _, s := range []string{"1", "2", "3", "4"} {
		f.session("t"+s, "sid"+s, 1)
	}
	user := f.k.User(f.tag, 1)
	ended, err := f.run(redisstore.RevokeScript, []string{user}, "mark1", "only", "sid1", "nosuch").StringSlice()
	if f.must(err); !slices.Equal(ended, []string{"sid1"}) {
		t.Errorf("only: ended %q", ended)
	}
	ended, err = f.run(redisstore.RevokeScript, []string{user}, "mark2", "except", "sid2").StringSlice()
	f.must(err)
	if slices.Sort(ended); !slices.Equal(ended, []string{"sid3", "sid4"}) {
		t.Errorf("except: ended %q", ended)
	}
	all := f.rdb.HGetAll(f.ctx, user).Val()
	if all["e:sid1"] != "mark1" || all["e:sid3"] != "mark2" || all["s:sid2"] != "t2" || all["s:sid1"] != "" {
		t.Errorf("hash after revokes: %v", all)
	}
}

func TestDisableScript(t *testing.T) {
	f := newScriptFixture(t)
	f.session("t1", "sid1", 1)
	f.session("t2", "sid2", 1)
	user := f.k.User(f.tag, 1)
	f.must(f.rdb.Expire(f.ctx, user, time.Minute).Err())
	ended, err := f.run(redisstore.DisableScript, []string{user}, "mark3", 3600).StringSlice()
	f.must(err)
	if slices.Sort(ended); !slices.Equal(ended, []string{"sid1", "sid2"}) || f.rdb.HGet(f.ctx, user, "disabled").Val() != "1" ||
		f.rdb.HGet(f.ctx, user, "e:sid1").Val() != "mark3" || f.rdb.HGet(f.ctx, user, "e:sid2").Val() != "mark3" ||
		f.rdb.HExists(f.ctx, user, "s:sid1").Val() || f.rdb.HExists(f.ctx, user, "s:sid2").Val() {
		t.Errorf("disable: ended %q, hash %v", ended, f.rdb.HGetAll(f.ctx, user).Val())
	}
	if left := f.rdb.TTL(f.ctx, user).Val(); left < 59*time.Minute {
		t.Errorf("the disabled mark lives %v, want the TTL lengthened to an hour", left)
	}
	// A second disable ends nothing more.
	if ended, err := f.run(redisstore.DisableScript, []string{user}, "mark4", 60).StringSlice(); err != nil || len(ended) != 0 {
		t.Errorf("second disable: %q, %v", ended, err)
	}
	if left := f.rdb.TTL(f.ctx, user).Val(); left < 59*time.Minute {
		t.Errorf("a shorter TTL shortened the hash's: %v", left)
	}
}

func TestForgetScript(t *testing.T) {
	f := newScriptFixture(t)
	f.session("tok", "sid", 1)
	user := f.k.User(f.tag, 1)
	if n, err := f.run(redisstore.ForgetScript, []string{user}, "s:sid", "other").Int(); err != nil || n != 0 ||
		!f.rdb.HExists(f.ctx, user, "s:sid").Val() {
		t.Errorf("forget with another token: %d, %v; the field must stay", n, err)
	}
	if n, err := f.run(redisstore.ForgetScript, []string{user}, "s:sid", "tok").Int(); err != nil || n != 1 ||
		f.rdb.HExists(f.ctx, user, "s:sid").Val() {
		t.Errorf("forget: %d, %v; the stale field must go", n, err)
	}
	if n, err := f.run(redisstore.ForgetScript, []string{user}, "s:sid", "tok").Int(); err != nil || n != 0 {
		t.Errorf("forget of a field already gone: %d, %v", n, err)
	}
}

func TestSetProfileScript(t *testing.T) {
	f := newScriptFixture(t)
	f.session("tok", "sid", 1)
	user := f.k.User(f.tag, 1)
	if n, err := f.run(redisstore.SetProfileScript, []string{f.k.User("BBBBBBBBBBBBBBBB", 9)}, "name", "x").Int(); err != nil || n != 0 ||
		f.rdb.Exists(f.ctx, f.k.User("BBBBBBBBBBBBBBBB", 9)).Val() != 0 {
		t.Errorf("setProfile without a hash: %d, %v; it must make none (it would have no TTL)", n, err)
	}
	if n, err := f.run(redisstore.SetProfileScript, []string{user}, "name", "Grace", "email", "grace@example.com").Int(); err != nil || n != 1 ||
		f.rdb.HGet(f.ctx, user, "name").Val() != "Grace" || f.rdb.HGet(f.ctx, user, "email").Val() != "grace@example.com" ||
		f.rdb.HGet(f.ctx, user, "s:sid").Val() != "tok" {
		t.Errorf("setProfile: %d, %v; hash %v", n, err, f.rdb.HGetAll(f.ctx, user).Val())
	}
}

func TestClearScript(t *testing.T) {
	f := newScriptFixture(t)
	f.session("tok", "sid", 1)
	user := f.k.User(f.tag, 1)
	f.must(f.rdb.HSet(f.ctx, user, "e:a", "m1", "e:b", "m2").Err())
	// A mark replaced since it was read stays; the others go.
	if n, err := f.run(redisstore.ClearScript, []string{user}, "a", "m1", "b", "old").Int(); err != nil || n != 1 {
		t.Errorf("clear: %d left, %v; want 1", n, err)
	}
	if f.rdb.HExists(f.ctx, user, "e:a").Val() || !f.rdb.HExists(f.ctx, user, "e:b").Val() || !f.rdb.HExists(f.ctx, user, "s:sid").Val() {
		t.Errorf("clear left %v", f.rdb.HGetAll(f.ctx, user).Val())
	}
	if n, err := f.run(redisstore.ClearScript, []string{user}, "b", "m2").Int(); err != nil || n != 0 || f.rdb.HExists(f.ctx, user, "e:b").Val() {
		t.Errorf("clear of the last mark: %d left, %v", n, err)
	}
}

// appKeys are the KEYS of appScript for a new token, and for the old one
// it replaces.
func (f *scriptFixture) appKeys(uid int64, token, old string) []string {
	ks := []string{f.k.User(f.tag, uid), f.k.Owner(f.tag, token), f.k.Data(f.tag, token)}
	if old != "" {
		ks = append(ks, f.k.Owner(f.tag, old), f.k.Data(f.tag, old))
	}
	return ks
}

func (f *scriptFixture) app(uid int64, sid, token, old, data string) (int, error) {
	f.t.Helper()
	args := []any{"s:" + sid, "app:" + token, 3600, "Ada", "ada@example.com", "user", redisstore.Owner(uid, sid),
		time.Minute.Milliseconds(), uid, data, "e:" + sid}
	if old != "" {
		args = append(args, "app:"+old)
	}
	return f.run(redisstore.AppScript, f.appKeys(uid, token, old), args...).Int()
}

func TestAppScript(t *testing.T) {
	f := newScriptFixture(t)
	f.session("browser", "sid-b", 1)
	user := f.k.User(f.tag, 1)
	if n, err := f.app(1, "sid-a", "at1", "", "app|1|1"); err != nil || n != 2 {
		t.Fatalf("first access token: %d, %v; want 2 sessions", n, err)
	}
	if f.rdb.HGet(f.ctx, user, "s:sid-a").Val() != "app:at1" || f.rdb.Get(f.ctx, f.k.Data(f.tag, "at1")).Val() != "app|1|1" ||
		f.rdb.Get(f.ctx, f.k.Owner(f.tag, "at1")).Val() != "1:sid-a" {
		t.Errorf("after the first token: hash %v", f.rdb.HGetAll(f.ctx, user).Val())
	}
	if left := f.rdb.PTTL(f.ctx, f.k.Data(f.tag, "at1")).Val(); left > time.Minute || left < 59*time.Second {
		t.Errorf("the access token lives %v, want its TTL", left)
	}
	// The next token replaces it, carrying its data over; the old keys go.
	if n, err := f.app(1, "sid-a", "at2", "at1", "app|0|2"); err != nil || n != 2 {
		t.Fatalf("second access token: %d, %v", n, err)
	}
	if f.rdb.HGet(f.ctx, user, "s:sid-a").Val() != "app:at2" || f.rdb.Get(f.ctx, f.k.Data(f.tag, "at2")).Val() != "app|1|1" ||
		f.rdb.Exists(f.ctx, f.k.Data(f.tag, "at1"), f.k.Owner(f.tag, "at1")).Val() != 0 {
		t.Errorf("after the second token: hash %v, data %q", f.rdb.HGetAll(f.ctx, user).Val(), f.rdb.Get(f.ctx, f.k.Data(f.tag, "at2")).Val())
	}
	// An ended session (its end mark waits) gets no token.
	f.must(f.rdb.HSet(f.ctx, user, "e:sid-a", "mark").Err())
	if n, err := f.app(1, "sid-a", "at3", "at2", "x"); err != nil || n != -3 || f.rdb.Exists(f.ctx, f.k.Data(f.tag, "at3")).Val() != 0 {
		t.Errorf("ended session: %d, %v; want -3 and no token", n, err)
	}
	if n, err := f.app(2, "sid-c", "at4", "", "x"); err != nil || n != -2 || f.rdb.HExists(f.ctx, user, "s:sid-c").Val() {
		t.Errorf("another user's hash: %d, %v; want -2 and nothing entered", n, err)
	}
	f.must(f.rdb.HSet(f.ctx, user, "disabled", "1").Err())
	if n, err := f.app(1, "sid-d", "at5", "", "x"); err != nil || n != -1 || f.rdb.Exists(f.ctx, f.k.Data(f.tag, "at5")).Val() != 0 {
		t.Errorf("disabled account: %d, %v; want -1 and no token", n, err)
	}
}

// TestEveryScriptIsTested: each script in the store's list has its test
// above (a new script without one fails here), and each is loaded.
func TestEveryScriptIsTested(t *testing.T) {
	tested := []*redis.Script{redisstore.FindScript, redisstore.CommitScript, redisstore.RenewScript, redisstore.RegisterScript,
		redisstore.AppScript, redisstore.RevokeScript, redisstore.DisableScript, redisstore.ForgetScript,
		redisstore.SetProfileScript, redisstore.ClearScript}
	for i, s := range redisstore.Scripts {
		if !slices.Contains(tested, s) {
			t.Errorf("script %d (%s) has no test", i, s.Hash())
		}
	}
	if len(redisstore.Scripts) != len(tested) {
		t.Errorf("%d scripts, %d tested", len(redisstore.Scripts), len(tested))
	}
}
