package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/redisconn"
)

// Revocation and failover. Redis replicates asynchronously: a revoke that
// the primary applied, and that died with it before reaching a replica,
// would be undone when that replica is promoted. So every revoke (and
// disable) is followed, on the same connection and in the same round trip,
// by WAIT for revokeReplicas replicas, at most revokeWait:
//
//   - acknowledged: the revoke is on that many replicas too; a failover
//     that promotes one of them (Sentinel and Cluster promote the most
//     up-to-date replica) keeps it.
//   - not acknowledged in time: the revoke still stands on the primary and
//     the caller is answered as usual; the miss is logged and counted
//     (RevokeReplicationMisses). Only a failover before the replica
//     catches up can lose it.
//
// WAIT counts the writes of its own connection, which is why it is
// pipelined behind the script rather than sent on its own.

// revokeWait bounds the wait for replicas: a revoke answers within it
// even when a replica is down.
const revokeWait = 250 * time.Millisecond

// runRevoke runs a revoke or disable script on the user hash key and
// waits for the replicas (durable.go's rules above). It returns the
// public ids the script ended.
func (s *Store) runRevoke(ctx context.Context, script *redis.Script, key string, args ...any) ([]string, error) {
	want := int(s.revokeReplicas.Load())
	if want <= 0 {
		return script.Run(ctx, s.rdb, []string{key}, args...).StringSlice()
	}
	node, err := s.nodeOf(ctx, key)
	if err != nil {
		return nil, redisconn.Classify(err)
	}
	ended, acked, err := revokeAndWait(ctx, node, script, key, want, args)
	if redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK") {
		// The slot is moving between primaries: the cluster client
		// follows the redirect; the acknowledgement is then unknown.
		ended, err = script.Run(ctx, s.rdb, []string{key}, args...).StringSlice()
		acked = -1
	}
	if err != nil {
		return nil, redisconn.Classify(err)
	}
	if acked < want && len(ended) > 0 {
		s.revokeMisses.Add(1)
		s.log.WarnContext(ctx, "revoke not acknowledged by replicas in time; it stands on the primary, "+
			"and a failover before they catch up could undo it", "acked", acked, "want", want, "waited", revokeWait)
	}
	return ended, nil
}

// revokeAndWait sends the script and WAIT in one pipeline on node's
// connection; acked is how many replicas acknowledged.
func revokeAndWait(ctx context.Context, node *redis.Client, script *redis.Script, key string, want int, args []any) ([]string, int, error) {
	run := func(eval func(redis.Pipeliner) *redis.Cmd) ([]string, int, error) {
		pipe := node.Pipeline()
		res := eval(pipe)
		wait := pipe.Do(ctx, "WAIT", want, revokeWait.Milliseconds())
		pipe.Exec(ctx)
		ended, err := res.StringSlice()
		if err != nil {
			return nil, 0, err
		}
		acked, err := wait.Int()
		return ended, acked, err
	}
	ended, acked, err := run(func(p redis.Pipeliner) *redis.Cmd { return script.EvalSha(ctx, p, []string{key}, args...) })
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		ended, acked, err = run(func(p redis.Pipeliner) *redis.Cmd { return script.Eval(ctx, p, []string{key}, args...) })
	}
	return ended, acked, err
}

// nodeOf returns the client of the primary that holds key.
func (s *Store) nodeOf(ctx context.Context, key string) (*redis.Client, error) {
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, key)
	case *redis.Client:
		return c, nil
	}
	return nil, fmt.Errorf("redis client %T", s.rdb)
}

// RevokeReplicationMisses is how many revokes the replicas did not
// acknowledge in time since start-up.
func (s *Store) RevokeReplicationMisses() int64 { return s.revokeMisses.Load() }

// RevokeReplicas is how many replicas a revoke waits for.
func (s *Store) RevokeReplicas() int { return int(s.revokeReplicas.Load()) }

// DetectReplicas sets how many replicas a revoke waits for: want when it
// is 0 or more (REDIS_REVOKE_REPLICAS), otherwise 1 when every primary
// has a replica and 0 when one has none (a single Redis without replicas
// would make every revoke wait in vain).
func (s *Store) DetectReplicas(ctx context.Context, want int) error {
	if want >= 0 {
		s.revokeReplicas.Store(int32(want))
		return nil
	}
	least := -1
	count := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		n := 0
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "connected_slaves:"); ok {
				n, _ = strconv.Atoi(v)
			}
		}
		if least < 0 || n < least {
			least = n
		}
		return nil
	}
	var err error
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		// ForEachMaster runs in parallel; count one at a time.
		var mu sync.Mutex
		var masters []*redis.Client
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu.Lock()
			masters = append(masters, n)
			mu.Unlock()
			return nil
		})
		for _, n := range masters {
			if err == nil {
				err = count(ctx, n)
			}
		}
	case *redis.Client:
		err = count(ctx, c)
	default:
		err = errors.New("unknown redis client")
	}
	if err != nil {
		return fmt.Errorf("count redis replicas: %w", err)
	}
	s.revokeReplicas.Store(int32(min(max(least, 0), 1)))
	return nil
}
