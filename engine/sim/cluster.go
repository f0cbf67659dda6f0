package sim

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"sluice/engine/group"
)

// Options configure a Cluster.
type Options struct {
	// Nodes is the number of nodes, IDs 1..Nodes.
	Nodes int
	// Group bootstraps every node into one group of this name (Config.Bootstrap) with BGL
	// as its backup group leader; "" starts them standalone.
	Group string
	BGL   uint64
	// Timings; zero means the production defaults (100 ms ticks, 500 ms heartbeat, 5 s
	// election timeout), which cost nothing in virtual time.
	TickInterval    time.Duration
	HeartbeatTicks  int
	ElectionTicks   int
	SnapshotEntries uint64
	SnapshotKeep    uint64
}

// Cluster is a set of simulated group nodes.
type Cluster struct {
	T   testing.TB
	W   *World
	Net *Network
	// IDs lists the node IDs.
	IDs   []uint64
	opts  Options
	nodes map[uint64]*group.Node
	hosts map[uint64]*Host
	disks map[uint64]*group.MemStorage
	log   *slog.Logger
}

// NewCluster starts a cluster: every node is opened, none has run yet.
func NewCluster(t testing.TB, seed uint64, o Options) *Cluster {
	t.Helper()
	w := NewWorld(seed)
	c := &Cluster{T: t, W: w, Net: NewNetwork(w), opts: o, nodes: map[uint64]*group.Node{},
		hosts: map[uint64]*Host{}, disks: map[uint64]*group.MemStorage{},
		log: slog.New(slog.DiscardHandler)}
	if os.Getenv("SIMLOG") != "" {
		c.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for i := 1; i <= o.Nodes; i++ {
		id := uint64(i)
		c.IDs = append(c.IDs, id)
		c.disks[id] = group.NewMemStorage()
	}
	for _, id := range c.IDs {
		c.Start(id)
	}
	t.Cleanup(c.closeAll)
	return c
}

// Addr is node id's peer address in the simulation.
func Addr(id uint64) string { return fmt.Sprintf("sim-%d:7000", id) }

// AddNode adds a new, standalone node (not a member yet) and starts it.
func (c *Cluster) AddNode(id uint64) *group.Node {
	c.IDs = append(c.IDs, id)
	c.disks[id] = group.NewMemStorage()
	return c.startWith(id, false)
}

// Start opens node id on its disk.
func (c *Cluster) Start(id uint64) *group.Node { return c.startWith(id, c.opts.Group != "") }

func (c *Cluster) startWith(id uint64, boot bool) *group.Node {
	c.T.Helper()
	if c.nodes[id] != nil {
		c.T.Fatalf("sim: node %d already running", id)
	}
	h := c.W.NewHost(id)
	cfg := group.Config{NodeID: id, PeerAddr: Addr(id), Logger: c.log.With("sim_node", id),
		TickInterval: c.opts.TickInterval, HeartbeatTicks: c.opts.HeartbeatTicks,
		ElectionTicks: c.opts.ElectionTicks, SnapshotEntries: c.opts.SnapshotEntries,
		SnapshotKeep: c.opts.SnapshotKeep, RandSeed: c.W.rng.Uint64() | 1, Loop: h,
		Transport: c.Net.Transport(id, Addr(id), h), Storage: c.disks[id]}
	if boot {
		b := &group.Bootstrap{Name: c.opts.Group, BGL: c.opts.BGL}
		for _, m := range c.IDs {
			if m <= uint64(c.opts.Nodes) {
				b.Members = append(b.Members, group.Member{ID: m, Addr: Addr(m)})
			}
		}
		cfg.Bootstrap = b
	}
	n, err := group.Open(cfg)
	if err != nil {
		c.T.Fatalf("sim: open node %d: %v", id, err)
	}
	c.nodes[id], c.hosts[id] = n, h
	return n
}

// Node returns running node id, or nil.
func (c *Cluster) Node(id uint64) *group.Node { return c.nodes[id] }

// Crash kills node id: it loses its memory (pending events, waiters), keeps its disk.
func (c *Cluster) Crash(id uint64) {
	if h := c.hosts[id]; h != nil {
		h.kill()
	}
	delete(c.nodes, id)
	delete(c.hosts, id)
}

// Restart crashes node id if it runs, then starts it again on its disk.
func (c *Cluster) Restart(id uint64) *group.Node {
	c.Crash(id)
	return c.Start(id)
}

// Pause stops node id's loop as SIGSTOP would: its timers and deliveries wait.
func (c *Cluster) Pause(id uint64) { c.hosts[id].pause() }

// Resume continues a paused node.
func (c *Cluster) Resume(id uint64) { c.hosts[id].resume() }

// Run runs the simulation for d of virtual time.
func (c *Cluster) Run(d time.Duration) { c.W.RunFor(d) }

// RunUntil runs until cond holds or limit of virtual time passes, failing the test then.
func (c *Cluster) RunUntil(what string, limit time.Duration, cond func() bool) {
	c.T.Helper()
	if !c.W.RunUntil(cond, c.W.Now().Add(limit)) {
		c.T.Fatalf("sim: %s: not within %v (virtual time %v)", what, limit, c.W.Elapsed())
	}
}

// Leader returns the running node that leads with the highest term, or 0.
func (c *Cluster) Leader() uint64 {
	var best, term uint64
	for _, id := range c.running() {
		s := c.nodes[id].Status()
		if s.RaftState == "leader" && s.Term >= term {
			best, term = id, s.Term
		}
	}
	return best
}

// ReadyLeader waits until a leader has decided its incarnation and returns it.
func (c *Cluster) ReadyLeader(limit time.Duration) uint64 {
	c.T.Helper()
	var l uint64
	c.RunUntil("a ready leader", limit, func() bool {
		l = c.Leader()
		return l != 0 && c.nodes[l].Status().Decided
	})
	return l
}

// running lists the running nodes in ID order.
func (c *Cluster) running() []uint64 {
	var out []uint64
	for id := range c.nodes {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// closeAll closes every running node at the end of the test.
func (c *Cluster) closeAll() {
	for _, id := range c.running() {
		_ = c.nodes[id].Close()
	}
}
