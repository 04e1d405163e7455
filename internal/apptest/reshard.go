package apptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Resharding a private Cluster the way `redis-cli --cluster reshard` does,
// one step at a time, so that a test can act between the steps:
//
//	target: CLUSTER SETSLOT s IMPORTING <source id>
//	source: CLUSTER SETSLOT s MIGRATING <target id>
//	source: CLUSTER GETKEYSINSLOT s n, then MIGRATE … KEYS k1…kn, until none are left
//	every primary, the target first: CLUSTER SETSLOT s NODE <target id>
//
// While a slot migrates, its keys are split between the two primaries:
// the source answers ASK for a key it no longer has, and a command naming
// several keys that are not all on one side gets TRYAGAIN.

// A SlotMove is one slot on its way from one primary to another.
type SlotMove struct {
	Slot     int
	From, To string // the primaries' addresses
	// Moved counts the keys migrated so far.
	Moved          int
	fromID, toID   string
	from, to       *redis.Client
	otherPrimaries []*redis.Client
}

type clusterNode struct {
	id, addr string
	primary  bool
	slots    [][2]int
}

// nodes reads CLUSTER NODES from the first node that answers.
func (c *Cluster) nodes(ctx context.Context) ([]clusterNode, error) {
	var lastErr error
	for _, a := range c.Addrs {
		n := redis.NewClient(&redis.Options{Addr: a, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
		text, err := n.ClusterNodes(ctx).Result()
		n.Close()
		if err != nil {
			lastErr = err
			continue
		}
		var out []clusterNode
		for line := range strings.SplitSeq(strings.TrimSpace(text), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 {
				continue
			}
			cn := clusterNode{id: f[0], addr: strings.SplitN(f[1], "@", 2)[0], primary: strings.Contains(f[2], "master")}
			for _, r := range f[8:] {
				if strings.HasPrefix(r, "[") {
					continue // a slot being migrated or imported, not owned
				}
				lo, hi, _ := strings.Cut(r, "-")
				a, err1 := strconv.Atoi(lo)
				b, err2 := strconv.Atoi(hi)
				if hi == "" {
					b, err2 = a, nil
				}
				if err1 == nil && err2 == nil {
					cn.slots = append(cn.slots, [2]int{a, b})
				}
			}
			out = append(out, cn)
		}
		return out, nil
	}
	return nil, fmt.Errorf("no cluster node answers CLUSTER NODES: %w", lastErr)
}

// Owner is the address of the primary that owns slot, as the nodes say.
func (c *Cluster) Owner(ctx context.Context, slot int) (string, error) {
	nodes, err := c.nodes(ctx)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		for _, r := range n.slots {
			if n.primary && r[0] <= slot && slot <= r[1] {
				return n.addr, nil
			}
		}
	}
	return "", fmt.Errorf("no primary owns slot %d", slot)
}

// Primaries are the primaries' addresses.
func (c *Cluster) Primaries(ctx context.Context) ([]string, error) {
	nodes, err := c.nodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes {
		if n.primary {
			out = append(out, n.addr)
		}
	}
	return out, nil
}

// KeySlot is the hash slot of key.
func (c *Cluster) KeySlot(ctx context.Context, key string) (int, error) {
	n := redis.NewClient(&redis.Options{Addr: c.Addrs[0], Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer n.Close()
	s, err := n.ClusterKeySlot(ctx, key).Result()
	return int(s), err
}

// BeginMove marks slot as migrating from its owner to the primary at to
// (to "" picks another primary), and returns the move for the caller to
// migrate its keys (Migrate) and finish (Finish).
func (c *Cluster) BeginMove(ctx context.Context, slot int, to string) (*SlotMove, error) {
	nodes, err := c.nodes(ctx)
	if err != nil {
		return nil, err
	}
	m := &SlotMove{Slot: slot, To: to}
	for _, n := range nodes {
		for _, r := range n.slots {
			if n.primary && r[0] <= slot && slot <= r[1] {
				m.From, m.fromID = n.addr, n.id
			}
		}
	}
	if m.From == "" {
		return nil, fmt.Errorf("no primary owns slot %d", slot)
	}
	for _, n := range nodes {
		if !n.primary || n.addr == m.From {
			continue
		}
		if m.To == "" {
			m.To = n.addr
		}
		if n.addr == m.To {
			m.toID = n.id
		}
	}
	if m.toID == "" {
		return nil, fmt.Errorf("%s is not another primary", to)
	}
	client := func(addr string) *redis.Client {
		return redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	}
	m.from, m.to = client(m.From), client(m.To)
	for _, n := range nodes {
		if n.primary && n.addr != m.From && n.addr != m.To {
			m.otherPrimaries = append(m.otherPrimaries, client(n.addr))
		}
	}
	if err := m.to.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", m.fromID).Err(); err != nil {
		m.close()
		return nil, fmt.Errorf("SETSLOT IMPORTING on %s: %w", m.To, err)
	}
	if err := m.from.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", m.toID).Err(); err != nil {
		m.close()
		return nil, fmt.Errorf("SETSLOT MIGRATING on %s: %w", m.From, err)
	}
	return m, nil
}

// Migrate moves up to n of the slot's keys still on the source to the
// target, in one MIGRATE, and says how many it moved (0: none are left).
func (m *SlotMove) Migrate(ctx context.Context, n int) (int, error) {
	keys, err := m.from.ClusterGetKeysInSlot(ctx, m.Slot, n).Result()
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	host, port, _ := net.SplitHostPort(m.To)
	args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	err = m.from.Do(ctx, args...).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "NOKEY") { // NOKEY: they expired meanwhile
		return 0, fmt.Errorf("MIGRATE from %s to %s: %w", m.From, m.To, err)
	}
	m.Moved += len(keys)
	return len(keys), nil
}

// Finish hands the slot to the target on every primary, the target first
// (as redis-cli does), so that the source answers MOVED from then on. All
// its keys must have been migrated.
func (m *SlotMove) Finish(ctx context.Context) error {
	defer m.close()
	if left, err := m.from.ClusterCountKeysInSlot(ctx, m.Slot).Result(); err != nil || left != 0 {
		return errors.Join(err, fmt.Errorf("%d keys of slot %d are still on %s", left, m.Slot, m.From))
	}
	for _, c := range append([]*redis.Client{m.to, m.from}, m.otherPrimaries...) {
		if err := c.Do(ctx, "CLUSTER", "SETSLOT", m.Slot, "NODE", m.toID).Err(); err != nil {
			return fmt.Errorf("SETSLOT NODE on %s: %w", c.Options().Addr, err)
		}
	}
	return nil
}

func (m *SlotMove) close() {
	for _, c := range append([]*redis.Client{m.to, m.from}, m.otherPrimaries...) {
		if c != nil {
			c.Close()
		}
	}
}
