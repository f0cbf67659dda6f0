package group

import (
	"fmt"
	"log/slog"
	"time"
)

// Default timings: a heartbeat every 500 ms and an election timeout of 5 s, as the
// real-process tests require; the BGL campaigns two ticks after its lease lapses, so a
// failover takes about 5.2 s.
const (
	DefaultTickInterval    = 100 * time.Millisecond
	DefaultHeartbeatTicks  = 5
	DefaultElectionTicks   = 50
	DefaultSnapshotEntries = 1024
	DefaultSnapshotKeep    = 256
)

// Config configures Open.
type Config struct {
	// NodeID is this node's raft ID, unique in any group it joins; nonzero.
	NodeID uint64
	// DataDir holds the bbolt file (BoltFile) unless Storage is set.
	DataDir string
	// PeerAddr is the address peers reach this node at (host:port); the TCP transport
	// listens on it unless Transport is set.
	PeerAddr string
	Logger   *slog.Logger

	// TickInterval is one raft tick; HeartbeatTicks and ElectionTicks count them. The
	// heartbeat window of the admission rule is HeartbeatTicks ticks; the lease and the
	// election timeout are ElectionTicks ticks.
	TickInterval   time.Duration
	HeartbeatTicks int
	ElectionTicks  int

	// SnapshotEntries is how many applied entries trigger a snapshot and log compaction;
	// SnapshotKeep how many entries before the snapshot stay for followers that lag.
	SnapshotEntries uint64
	SnapshotKeep    uint64

	// RandSeed seeds the non-BGL members' election jitter; 0 picks one at random. The
	// simulator sets it so that a seed replays a run.
	RandSeed uint64

	// Loop, Transport and Storage are the injection points; nil means the production
	// one (NewLoop, NewTCPTransport(PeerAddr), OpenBolt(DataDir)). Injected ones belong
	// to the caller: Close does not close them.
	Loop      Loop
	Transport Transport
	Storage   Storage
	// NoSync skips fsync in the default storage: tests only.
	NoSync bool

	// Bootstrap, on an empty storage, starts the node as a member of a group with these
	// initial members (every initial member passes the same Bootstrap). Without it an
	// empty storage starts a standalone node. Ignored when the storage holds a group.
	Bootstrap *Bootstrap
}

// Bootstrap describes a group created with its initial members at once.
type Bootstrap struct {
	Name    string
	Members []Member
	// BGL is the initial backup group leader (0: the leader designates one).
	BGL uint64
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.NodeID == 0 {
		return c, fmt.Errorf("node ID 0: %w", ErrInvalid)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TickInterval <= 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.ElectionTicks <= 2*c.HeartbeatTicks {
		return c, fmt.Errorf("election ticks %d must exceed twice the heartbeat ticks %d: %w",
			c.ElectionTicks, c.HeartbeatTicks, ErrInvalid)
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = DefaultSnapshotEntries
	}
	if c.SnapshotKeep == 0 {
		c.SnapshotKeep = DefaultSnapshotKeep
	}
	if c.Storage == nil && c.DataDir == "" {
		return c, fmt.Errorf("no data directory and no storage: %w", ErrInvalid)
	}
	if c.Transport == nil && c.PeerAddr == "" {
		return c, fmt.Errorf("no peer address and no transport: %w", ErrInvalid)
	}
	if b := c.Bootstrap; b != nil {
		if b.Name == "" || len(b.Name) > maxNameLen {
			return c, fmt.Errorf("bootstrap group name %q: %w", b.Name, ErrInvalid)
		}
		found := false
		for _, m := range b.Members {
			found = found || m.ID == c.NodeID
		}
		if !found {
			return c, fmt.Errorf("bootstrap members do not include node %d: %w", c.NodeID, ErrInvalid)
		}
	}
	return c, nil
}

// heartbeat is the heartbeat window of the admission rule.
func (c *Config) heartbeat() time.Duration {
	return time.Duration(c.HeartbeatTicks) * c.TickInterval
}

// election is the election timeout, the lease.
func (c *Config) election() time.Duration {
	return time.Duration(c.ElectionTicks) * c.TickInterval
}
