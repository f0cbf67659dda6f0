package group

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Node is one member of a storage group (or a standalone node, a group of one with no
// name). Its public methods are safe for concurrent use from any goroutine except the
// node's own loop; the blocking ones wait for the loop, so they must never run on it nor
// on a reactor.
type Node struct {
	cfg   Config
	id    uint64
	log   *slog.Logger
	loop  Loop
	tr    Transport
	store Storage
	// stopLoop, closeTr and closeStore are set for what Open created itself.
	stopLoop   func()
	closeTr    bool
	closeStore bool
	rng        *rand.Rand

	closeOnce sync.Once
	closed    chan struct{}

	pubMu sync.Mutex
	// +checklocks:pubMu
	pubStatus Status
	// +checklocks:pubMu
	pubVols map[[16]byte]VolumeState

	subMu sync.Mutex
	// +checklocks:subMu
	subs []*subscriber

	c core // loop-owned
}

// Open starts a node: it loads the storage (creating a standalone node, or the Bootstrap
// group, on an empty one), starts the transport and the tick, and returns. The node is
// usable at once; reservation state is current once Revalidate returns.
//
// Postconditions: the caller calls Close.
func Open(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open group node: %w", err)
	}
	n := &Node{cfg: cfg, id: cfg.NodeID, log: cfg.Logger.With("node", cfg.NodeID),
		closed: make(chan struct{}), pubVols: map[[16]byte]VolumeState{}}
	seed := cfg.RandSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	n.rng = rand.New(rand.NewPCG(seed, cfg.NodeID))
	if err := n.openParts(); err != nil {
		n.release()
		return nil, fmt.Errorf("open group node %d: %w", cfg.NodeID, err)
	}
	if err := n.c.init(n); err != nil {
		n.release()
		return nil, fmt.Errorf("open group node %d: %w", cfg.NodeID, err)
	}
	n.publish()
	if err := n.tr.Start(n.receive); err != nil {
		n.release()
		return nil, fmt.Errorf("open group node %d: %w", cfg.NodeID, err)
	}
	n.loop.Post(func() { n.c.settle() })
	n.loop.After(cfg.TickInterval, n.c.onTick)
	return n, nil
}

// openParts sets up the loop, storage and transport, defaulting what was not injected.
func (n *Node) openParts() error {
	n.loop = n.cfg.Loop
	if n.loop == nil {
		n.loop, n.stopLoop = NewLoop()
	}
	n.store = n.cfg.Storage
	if n.store == nil {
		s, err := OpenBolt(n.cfg.DataDir, BoltOptions{NoSync: n.cfg.NoSync})
		if err != nil {
			return err
		}
		n.store, n.closeStore = s, true
	}
	n.tr = n.cfg.Transport
	if n.tr == nil {
		n.tr, n.closeTr = NewTCPTransport(n.cfg.PeerAddr, n.log), true
	}
	return nil
}

// release closes what Open created.
func (n *Node) release() {
	if n.closeTr && n.tr != nil {
		_ = n.tr.Close()
	}
	if n.stopLoop != nil {
		n.stopLoop()
	}
	if n.closeStore && n.store != nil {
		_ = n.store.Close()
	}
}

// ID returns the node's ID.
func (n *Node) ID() uint64 { return n.id }

// Close stops the node: waiting calls return ErrClosed, the transport and the loop stop
// and the storage is closed (each only if Open created it). The raft state stays on disk:
// Open on the same data directory resumes the node in its group.
//
// Preconditions: not called on the node's loop.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		done := make(chan struct{})
		n.loop.Post(func() {
			n.c.shutdown()
			close(done)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = n.loop.Wait(ctx, done)
		cancel()
		close(n.closed)
		n.release()
		n.subMu.Lock()
		for _, s := range n.subs {
			s.close()
		}
		n.subs = nil
		n.subMu.Unlock()
	})
	return nil
}

// receive is the transport's delivery function: it posts the envelope to the loop.
func (n *Node) receive(env Envelope) {
	n.loop.Post(func() { n.c.receive(env) })
}

// raftConfig is the raft configuration: CheckQuorum and PreVote on (a leader cut off from
// the majority steps down; a partitioned node cannot disrupt the group when it returns),
// StepDownOnRemoval on (a removed leader stops leading).
func (n *Node) raftConfig(s raft.Storage, applied uint64) *raft.Config {
	return &raft.Config{
		ID:                n.id,
		ElectionTick:      n.cfg.ElectionTicks,
		HeartbeatTick:     n.cfg.HeartbeatTicks,
		Storage:           s,
		Applied:           applied,
		MaxSizePerMsg:     1 << 20,
		MaxInflightMsgs:   256,
		CheckQuorum:       true,
		PreVote:           true,
		StepDownOnRemoval: true,
		ReadOnlyOption:    raft.ReadOnlySafe,
		Logger:            raftLogger{n.log},
	}
}

// bootstrapSnapshot is the snapshot at index 1 that an empty storage starts from: the
// Bootstrap group if configured, else a standalone node (one voter, no name). Every
// initial member of a Bootstrap group writes the same bytes, so their logs agree from
// index 1.
func (n *Node) bootstrapSnapshot() raftpb.Snapshot { return n.bootSnapshot(n.cfg.Bootstrap) }

// bootstrapStandalone is the snapshot a node that left its group starts again from.
func (n *Node) bootstrapStandalone() raftpb.Snapshot { return n.bootSnapshot(nil) }

func (n *Node) bootSnapshot(b *Bootstrap) raftpb.Snapshot {
	d := &SnapshotData{Version: snapshotVersion, Incarnation: 1,
		Members: []Member{{ID: n.id, Addr: n.cfg.PeerAddr}}}
	if b != nil {
		d.Name, d.BGL, d.Members = b.Name, b.BGL, append([]Member(nil), b.Members...)
	}
	st := newReplicated()
	st.restore(d)
	var cs raftpb.ConfState
	for _, m := range st.members {
		if m.Learner {
			cs.Learners = append(cs.Learners, m.ID)
		} else {
			cs.Voters = append(cs.Voters, m.ID)
		}
	}
	return raftpb.Snapshot{Data: EncodeSnapshot(st.snapshot()),
		Metadata: raftpb.SnapshotMetadata{Index: 1, Term: 1, ConfState: cs}}
}

// raftLogger sends raft's log to slog: its Info (elections, every vote) is our Debug.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)               { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any)    { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
func (r raftLogger) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }

// subscriber is one Subscribe channel. The loop never blocks on it: when the channel is
// full, events are dropped and one EventResync is delivered once there is room.
type subscriber struct {
	mu sync.Mutex
	// +checklocks:mu
	ch chan Event
	// +checklocks:mu
	lost bool
	// +checklocks:mu
	done bool
}

func (s *subscriber) send(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	if s.lost {
		select {
		case s.ch <- Event{Kind: EventResync}:
			s.lost = false
		default:
			return
		}
	}
	select {
	case s.ch <- ev:
	default:
		s.lost = true
	}
}

func (s *subscriber) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.done = true
		close(s.ch)
	}
}

// subscriberBuffer is each subscription's channel capacity.
const subscriberBuffer = 1024

// Subscribe returns a channel of events in apply order and a cancel function. Events are
// never blocked on: a subscriber that falls behind by more than the buffer gets an
// EventResync and must re-read the volumes it caches. The channel is closed by cancel or
// Close.
func (n *Node) Subscribe() (<-chan Event, func()) {
	s := &subscriber{ch: make(chan Event, subscriberBuffer)}
	n.subMu.Lock()
	n.subs = append(n.subs, s)
	n.subMu.Unlock()
	return s.ch, func() {
		n.subMu.Lock()
		for i, x := range n.subs {
			if x == s {
				n.subs = append(n.subs[:i], n.subs[i+1:]...)
				break
			}
		}
		n.subMu.Unlock()
		s.close()
	}
}

// emit sends ev to every subscriber. Called by the loop.
func (n *Node) emit(ev Event) {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	for _, s := range n.subs {
		s.send(ev)
	}
}
