package session_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

// TestRedisShape checks the suite runs against the Redis it says
// (GATEHOUSE_TEST_REDIS): a Cluster of three primaries with a replica
// each, or a Sentinel group whose primary has a replica. A run that fell
// back to a single Redis would prove nothing about the others.
func TestRedisShape(t *testing.T) {
	env := apptest.New(t)
	ctx := context.Background()
	switch mode := apptest.RedisMode(); mode {
	case "cluster":
		cc, ok := env.App.Redis.(*redis.ClusterClient)
		if !ok {
			t.Fatalf("the app's client is %T, want a cluster client", env.App.Redis)
		}
		shards, err := cc.ClusterShards(ctx).Result()
		if err != nil || len(shards) != 3 {
			t.Fatalf("%d shards (%v), want 3", len(shards), err)
		}
		for _, s := range shards {
			if len(s.Nodes) != 2 {
				t.Errorf("a shard with %d nodes, want a primary and a replica", len(s.Nodes))
			}
		}
	case "sentinel":
		if env.Config.Redis.Mode() != "sentinel" || len(env.Config.Redis.SentinelAddrs) != 3 {
			t.Fatalf("configured %+v, want three sentinels", env.Config.Redis)
		}
		info, err := env.App.Redis.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "role:master") || !strings.Contains(info, "connected_slaves:1") {
			t.Fatalf("the app's Redis: %q, %v; want a primary with one replica", info, err)
		}
	default:
		if env.Config.Redis.Mode() != "single" {
			t.Fatalf("configured %+v, want a single Redis", env.Config.Redis)
		}
	}
	if n := env.App.Sessions.RevokeReplicas(); (apptest.RedisMode() != "single") != (n == 1) {
		t.Errorf("revokes wait for %d replicas on a %s Redis", n, apptest.RedisMode())
	}
}
