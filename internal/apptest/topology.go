package apptest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The suite runs against one of three Redis shapes, chosen by
// GATEHOUSE_TEST_REDIS:
//
//	single    (default) the shared Redis on 127.0.0.1:6379 (TEST_REDIS_URL)
//	cluster   a private Redis Cluster: three primaries with a replica each
//	sentinel  a private Sentinel group: a primary, a replica, three sentinels
//
// The private shapes are started once per test process, from redis-server
// and redis-sentinel on free loopback ports, and die with it. Each Env
// still gets its own key prefix on them.

// RedisMode is the shape the suite runs against.
func RedisMode() string {
	switch m := os.Getenv("GATEHOUSE_TEST_REDIS"); m {
	case "", "single":
		return "single"
	case "cluster", "sentinel":
		return m
	default:
		panic(fmt.Sprintf("GATEHOUSE_TEST_REDIS=%q: want single, cluster or sentinel", m))
	}
}

// SentinelMaster is the name the test Sentinel group gives its primary.
const SentinelMaster = "gatehouse"

var (
	topoOnce sync.Once
	topo     map[string]string // the configuration variables of the shape
	topoErr  error
	// spawn runs commands from one goroutine locked to its OS thread, so
	// that Pdeathsig (tied to the thread that started a process) kills
	// them when the test process ends, and at no other time.
	spawn = make(chan spawnReq)
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func init() {
	go func() {
		runtime.LockOSThread()
		for r := range spawn {
			r.done <- r.cmd.Start()
		}
	}()
}

// startChild starts a server that dies with the test process.
func startChild(name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = childAttr()
	r := spawnReq{cmd, make(chan error)}
	spawn <- r
	return cmd, <-r.done
}

// redisVars are the settings that point an app at the test Redis.
func redisVars() map[string]string {
	switch RedisMode() {
	case "single":
		return map[string]string{"REDIS_URL": redisURL()}
	}
	topoOnce.Do(func() {
		if RedisMode() == "cluster" {
			topo, topoErr = startCluster()
		} else {
			topo, topoErr = startSentinel()
		}
	})
	if topoErr != nil {
		panic(fmt.Sprintf("private Redis %s: %v", RedisMode(), topoErr))
	}
	return topo
}

// freePorts returns n free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func nodeClient(port int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Protocol: 2, DisableIdentity: true, MaxRetries: -1})
}

// waitFor polls ok every 50 ms for up to d.
func waitFor(d time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func startServer(dir string, port int, extra ...string) error {
	args := append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, fmt.Sprintf("redis-%d.log", port))}, extra...)
	if _, err := startChild("redis-server", args...); err != nil {
		return err
	}
	c := nodeClient(port)
	defer c.Close()
	return waitFor(5*time.Second, fmt.Sprintf("redis-server on %d", port), func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// startCluster starts six nodes and makes them a cluster of three
// primaries with a replica each.
func startCluster() (map[string]string, error) {
	dir, err := os.MkdirTemp("", "gatehouse-cluster-")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, p := range ports {
		if err := startServer(dir, p, "--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", p),
			"--cluster-node-timeout", "2000"); err != nil {
			return nil, err
		}
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	for _, p := range ports {
		c := nodeClient(p)
		err := waitFor(20*time.Second, fmt.Sprintf("cluster node %d", p), func() bool {
			info, err := c.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		c.Close()
		if err != nil {
			return nil, err
		}
	}
	// Every node must agree on the slots before the first test routes by
	// them: a client that asks a node still learning gets MOVED loops.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Protocol: 2, DisableIdentity: true})
	defer cc.Close()
	err = waitFor(20*time.Second, "cluster replicas", func() bool {
		shards, err := cc.ClusterShards(context.Background()).Result()
		if err != nil || len(shards) != 3 {
			return false
		}
		for _, s := range shards {
			if len(s.Nodes) != 2 {
				return false
			}
		}
		return cc.Set(context.Background(), "apptest:cluster-ready", "1", time.Second).Err() == nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"REDIS_CLUSTER_ADDRS": strings.Join(addrs, ",")}, nil
}

// startSentinel starts a primary, a replica and three sentinels watching
// them.
func startSentinel() (map[string]string, error) {
	dir, err := os.MkdirTemp("", "gatehouse-sentinel-")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	primary, replica := ports[0], ports[1]
	if err := startServer(dir, primary); err != nil {
		return nil, err
	}
	if err := startServer(dir, replica, "--replicaof", "127.0.0.1", fmt.Sprint(primary)); err != nil {
		return nil, err
	}
	p := nodeClient(primary)
	defer p.Close()
	err = waitFor(10*time.Second, "replica in sync", func() bool {
		info, err := p.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	})
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, port := range ports[2:] {
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
			port, dir, filepath.Join(dir, fmt.Sprintf("sentinel-%d.log", port)),
			SentinelMaster, primary, SentinelMaster, SentinelMaster, SentinelMaster)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, err
		}
		if _, err := startChild("redis-sentinel", conf); err != nil {
			return nil, err
		}
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	for _, a := range addrs {
		s := redis.NewSentinelClient(&redis.Options{Addr: a, Protocol: 2, DisableIdentity: true})
		err := waitFor(10*time.Second, "sentinel "+a, func() bool {
			replicas, err := s.Replicas(context.Background(), SentinelMaster).Result()
			return err == nil && len(replicas) == 1
		})
		s.Close()
		if err != nil {
			return nil, err
		}
	}
	return map[string]string{"REDIS_SENTINEL_ADDRS": strings.Join(addrs, ","), "REDIS_SENTINEL_MASTER": SentinelMaster}, nil
}

// Keys returns the keys matching pattern on every primary behind rdb (a
// Cluster spreads them over its primaries): for tests, never a request.
func Keys(t testing.TB, rdb redis.UniversalClient, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var out []string
	scan := func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, pattern).Result()
		mu.Lock()
		out = append(out, keys...)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, scan)
	} else {
		err = scan(ctx, rdb.(*redis.Client))
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SingleRedisOnly skips t unless the suite runs against a single Redis:
// for tests that watch one server (MONITOR) or build keys of two users'
// slots in one step.
func SingleRedisOnly(t testing.TB, why string) {
	t.Helper()
	if RedisMode() != "single" {
		t.Skipf("GATEHOUSE_TEST_REDIS=%s: %s", RedisMode(), why)
	}
}
