package apptest

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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

// RedisVars are the configuration variables that point a Gatehouse at
// the test Redis, whatever its shape: for a test that runs the web
// command or its binary itself rather than through New. The map is the
// caller's.
func RedisVars() map[string]string { return maps.Clone(redisVars()) }

// redisVars are the settings that point an app at the test Redis.
func redisVars() map[string]string {
	switch RedisMode() {
	case "single":
		return map[string]string{"REDIS_URL": redisURL()}
	}
	topoOnce.Do(func() {
		if RedisMode() == "cluster" {
			var c *Cluster
			if c, topoErr = startCluster(); topoErr == nil {
				topo = c.vars()
			}
		} else {
			var g *SentinelGroup
			if g, topoErr = startSentinel(); topoErr == nil {
				topo = g.vars()
			}
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

// procs are the processes of a private group, for its owner to kill.
type procs struct {
	mu   sync.Mutex
	cmds map[int]*exec.Cmd // by port
}

func (p *procs) add(port int, cmd *exec.Cmd) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmds == nil {
		p.cmds = map[int]*exec.Cmd{}
	}
	p.cmds[port] = cmd
}

// kill sends SIGKILL to the process on port and reaps it: a crash, not a
// shutdown (nothing is saved, connections are cut at once).
func (p *procs) kill(port int) error {
	p.mu.Lock()
	cmd := p.cmds[port]
	delete(p.cmds, port)
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return fmt.Errorf("no process of this group on port %d", port)
	}
	if err := cmd.Process.Kill(); err != nil {
		return err
	}
	cmd.Wait()
	return nil
}

func (p *procs) killAll() {
	p.mu.Lock()
	ports := slices.Collect(maps.Keys(p.cmds))
	p.mu.Unlock()
	for _, port := range ports {
		p.kill(port)
	}
}

func startServer(ps *procs, dir string, port int, extra ...string) error {
	args := append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, fmt.Sprintf("redis-%d.log", port))}, extra...)
	cmd, err := startChild("redis-server", args...)
	if err != nil {
		return err
	}
	ps.add(port, cmd)
	c := nodeClient(port)
	defer c.Close()
	return waitFor(5*time.Second, fmt.Sprintf("redis-server on %d", port), func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// needBinaries fails (never skips) when a server the private groups are
// started from is not installed: a test that did not run proves nothing.
func needBinaries(names ...string) error {
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%s is not on the PATH: install Redis (Debian/Ubuntu: apt-get install redis-server redis-sentinel)", name)
		}
	}
	return nil
}

// Cluster is a private Redis Cluster: three primaries with a replica
// each, on free loopback ports.
type Cluster struct {
	Addrs []string // every node, primaries and replicas
	group
}

// group is the processes of a private Cluster or Sentinel group, and
// the directory they write to.
type group struct {
	dir   string
	procs procs
}

func (g *group) stop() {
	g.procs.killAll()
	os.RemoveAll(g.dir)
}

// options turns configuration variables into Options.
func options(vars map[string]string) []Option {
	var out []Option
	for k, v := range vars {
		out = append(out, With(k, v))
	}
	return out
}

// StartCluster starts a Redis Cluster of t's own, which it may reshard or
// break without disturbing other tests; it is killed when t ends. It
// fails t when redis-server or redis-cli is not installed.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := startCluster()
	if c != nil {
		t.Cleanup(c.stop)
	}
	if err != nil {
		t.Fatalf("private Redis Cluster: %v", err)
	}
	return c
}

// Options point an app at the cluster.
func (c *Cluster) Options() []Option { return options(c.vars()) }

func (c *Cluster) vars() map[string]string {
	return map[string]string{"REDIS_CLUSTER_ADDRS": strings.Join(c.Addrs, ",")}
}

// startCluster starts six nodes and makes them a cluster of three
// primaries with a replica each.
func startCluster() (*Cluster, error) {
	if err := needBinaries("redis-server", "redis-cli"); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatehouse-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{group: group{dir: dir}}
	ports, err := freePorts(6)
	if err != nil {
		return c, err
	}
	for _, p := range ports {
		if err := startServer(&c.procs, dir, p, "--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", p),
			"--cluster-node-timeout", "2000"); err != nil {
			return c, err
		}
		c.Addrs = append(c.Addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, c.Addrs...),
		"--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		return c, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	for _, p := range ports {
		n := nodeClient(p)
		err := waitFor(20*time.Second, fmt.Sprintf("cluster node %d", p), func() bool {
			info, err := n.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		n.Close()
		if err != nil {
			return c, err
		}
	}
	// Every node must agree on the slots before the first test routes by
	// them: a client that asks a node still learning gets MOVED loops.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, Protocol: 2, DisableIdentity: true})
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
	return c, err
}

// SentinelGroup is a private Sentinel group: a primary, a replica and
// three sentinels watching them (quorum 2), on free loopback ports.
type SentinelGroup struct {
	Master    string   // the name the sentinels give the primary
	Primary   int      // the port of the first primary
	Replica   int      // the port of its replica
	Sentinels []string // the sentinels' addresses
	// DownAfter and FailoverTimeout are the sentinels' settings
	// (down-after-milliseconds, failover-timeout).
	DownAfter, FailoverTimeout time.Duration
	group
}

// StartSentinelGroup starts a Sentinel group of t's own, whose primary t
// may kill (KillPrimary); it is killed when t ends. It fails t when
// redis-server or redis-sentinel is not installed.
func StartSentinelGroup(t testing.TB) *SentinelGroup {
	t.Helper()
	g, err := startSentinel()
	if g != nil {
		t.Cleanup(g.stop)
	}
	if err != nil {
		t.Fatalf("private Sentinel group: %v", err)
	}
	return g
}

// Options point an app at the group.
func (g *SentinelGroup) Options() []Option { return options(g.vars()) }

func (g *SentinelGroup) vars() map[string]string {
	return map[string]string{"REDIS_SENTINEL_ADDRS": strings.Join(g.Sentinels, ","), "REDIS_SENTINEL_MASTER": g.Master}
}

// Client returns a client of the redis-server on port (the test's own
// view of one node, around the app's back); the caller closes it.
func (g *SentinelGroup) Client(port int) *redis.Client { return nodeClient(port) }

// KillPrimary kills the first primary's process (SIGKILL): a crash.
func (g *SentinelGroup) KillPrimary() error { return g.procs.kill(g.Primary) }

// MasterAddrs are the primary's address as each sentinel names it now
// ("" for one that does not answer). Sentinels learn of a promotion one
// after another: the one that led the failover first, the others from
// its hello messages.
func (g *SentinelGroup) MasterAddrs(ctx context.Context) []string {
	out := make([]string, len(g.Sentinels))
	for i, a := range g.Sentinels {
		s := redis.NewSentinelClient(&redis.Options{Addr: a, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
		if hp, err := s.GetMasterAddrByName(ctx, g.Master).Result(); err == nil && len(hp) == 2 {
			out[i] = net.JoinHostPort(hp[0], hp[1])
		}
		s.Close()
	}
	return out
}

// startSentinel starts a primary, a replica and three sentinels watching
// them.
func startSentinel() (*SentinelGroup, error) {
	if err := needBinaries("redis-server", "redis-sentinel"); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatehouse-sentinel-")
	if err != nil {
		return nil, err
	}
	g := &SentinelGroup{Master: SentinelMaster, DownAfter: time.Second, FailoverTimeout: 5 * time.Second, group: group{dir: dir}}
	ports, err := freePorts(5)
	if err != nil {
		return g, err
	}
	g.Primary, g.Replica = ports[0], ports[1]
	if err := startServer(&g.procs, dir, g.Primary); err != nil {
		return g, err
	}
	if err := startServer(&g.procs, dir, g.Replica, "--replicaof", "127.0.0.1", fmt.Sprint(g.Primary)); err != nil {
		return g, err
	}
	p := nodeClient(g.Primary)
	defer p.Close()
	err = waitFor(10*time.Second, "replica in sync", func() bool {
		info, err := p.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	})
	if err != nil {
		return g, err
	}
	for _, port := range ports[2:] {
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s %d\nsentinel parallel-syncs %s 1\n",
			port, dir, filepath.Join(dir, fmt.Sprintf("sentinel-%d.log", port)),
			g.Master, g.Primary, g.Master, g.DownAfter.Milliseconds(), g.Master, g.FailoverTimeout.Milliseconds(), g.Master)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return g, err
		}
		cmd, err := startChild("redis-sentinel", conf)
		if err != nil {
			return g, err
		}
		g.procs.add(port, cmd)
		g.Sentinels = append(g.Sentinels, fmt.Sprintf("127.0.0.1:%d", port))
	}
	for _, a := range g.Sentinels {
		s := redis.NewSentinelClient(&redis.Options{Addr: a, Protocol: 2, DisableIdentity: true})
		err := waitFor(10*time.Second, "sentinel "+a, func() bool {
			replicas, err := s.Replicas(context.Background(), g.Master).Result()
			return err == nil && len(replicas) == 1
		})
		s.Close()
		if err != nil {
			return g, err
		}
	}
	return g, nil
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
