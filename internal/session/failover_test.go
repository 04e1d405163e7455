package session_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/models"
)

// TestRevokeSurvivesFailoverWhenAcknowledged runs the app on a private
// primary with one replica, so revokes WAIT for it (REDIS_REVOKE_REPLICAS
// defaults to 1 when a replica exists). A revoke the replica acknowledged
// is still final after the replica is promoted. A revoke made while the
// replica was paused (SIGSTOP) answers after the short wait, is logged
// and counted, and stands on the primary; a failover before the replica
// catches up loses it, which is what docs/reliability.md promises and no
// more.
func TestRevokeSurvivesFailoverWhenAcknowledged(t *testing.T) {
	primary := apptest.StartRedis(t)
	replica := apptest.StartRedis(t, "--replicaof", "127.0.0.1", fmt.Sprint(primary.Port))
	ctx := context.Background()
	p := primary.Client()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := p.Info(ctx, "replication").Result()
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica never came online: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	env := apptest.New(t, apptest.With("REDIS_URL", primary.URL()))
	if n := env.App.Sessions.RevokeReplicas(); n != 1 {
		t.Fatalf("revokes wait for %d replicas, want 1 (a replica exists)", n)
	}
	user, clients := signInMany(t, env, 3)
	acked, unacked, live := clients[0], clients[1], clients[2]

	if err := env.App.Sessions.Revoke(ctx, user.ID, sessionID(t, env, acked), models.EndRevokedByUser, &user.ID); err != nil {
		t.Fatal(err)
	}
	// With the replica up the revoke is normally acknowledged within the
	// 250 ms wait; on a machine loaded by three test passes the replica can
	// be slower (one CI run). The property tested below is about an
	// acknowledged revoke, so make sure the replica has it, and count the
	// paused revoke's miss from here.
	base := env.App.Sessions.RevokeReplicationMisses()
	if base != 0 {
		t.Logf("%d misses with the replica up (a loaded machine): waiting for the replica", base)
		if n, err := p.Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n != 1 {
			t.Fatalf("the replica did not acknowledge within 10 s: %d, %v", n, err)
		}
	}

	replica.Pause()
	start := time.Now()
	if err := env.App.Sessions.Revoke(ctx, user.ID, sessionID(t, env, unacked), models.EndRevokedByUser, &user.ID); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a revoke with the replica paused took %v", took)
	}
	if n := env.App.Sessions.RevokeReplicationMisses() - base; n != 1 {
		t.Errorf("%d misses counted, want 1", n)
	}
	if !strings.Contains(env.Logs.String(), "revoke not acknowledged by replicas") {
		t.Error("the miss was not logged")
	}
	if res := unacked.Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the unacknowledged revoke does not stand on the primary: %d", res.StatusCode)
	}

	// Failover: the primary dies before the replica catches up, and the
	// replica is promoted.
	primary.Stop()
	replica.Resume()
	r := replica.Client()
	if err := r.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	cfg := env.Config
	cfg.Redis.URL = replica.URL()
	after := apptest.Start(t, cfg)
	if res := acked.ForServer(after).Get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("an acknowledged revoke came back to life after failover: %d", res.StatusCode)
	}
	if res := live.ForServer(after).Get("/account"); res.StatusCode != http.StatusOK {
		t.Errorf("a live session after failover: %d", res.StatusCode)
	}
	// Without the acknowledgement the revoke was lost with the primary:
	// documented, and counted above.
	if res := unacked.ForServer(after).Get("/account"); res.StatusCode != http.StatusOK {
		t.Logf("the unacknowledged revoke survived the failover too (%d): the replica caught up after all", res.StatusCode)
	}
}
