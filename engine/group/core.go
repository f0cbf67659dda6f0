package group

import (
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// core is everything the node's loop owns. No other goroutine touches it; the public
// methods reach it by posting functions to the loop.
type core struct {
	n  *Node
	rn *raft.RawNode
	st *replicated
	cs raftpb.ConfState

	boot, seq uint64
	applied   uint64
	snapIndex uint64
	term      uint64
	commit    uint64
	soft      raft.SoftState
	closed    bool
	failed    error

	// Election driver (elect.go): ticks since we last heard from a leader, and this
	// node's election jitter.
	quiet, campaignAfter int
	forgetting           bool

	// lastAck is when each peer last answered us while we led (MsgAppResp,
	// MsgHeartbeatResp of our term). addrHints are peer addresses learned from envelopes,
	// for nodes our configuration does not list yet.
	lastAck   map[uint64]time.Time
	addrHints map[uint64]string
	snapSent  map[uint64]time.Time

	// Incarnation (incarnation.go).
	held          uint64
	confirmedTerm uint64
	reportAt      time.Time
	lt            *leaderTerm

	// invited is the group this node accepted an invite into, until its snapshot names it.
	invited string
	// removedSelf: an applied conf change removed this node; it turns standalone once the
	// Ready is done.
	removedSelf bool
	// snapNow asks for a snapshot at the next chance: the configuration changed, and a
	// joining node can only start from a snapshot whose ConfState names it (raft refuses
	// any other).
	snapNow bool

	props    []*proposal
	propByID map[EntryID]*proposal
	fwds     []*forward
	fwdByID  map[EntryID]*forward
	reads    []*readReq
	watches  []*watch
	readSeq  uint64

	counters Counters
	// dirty lists volumes whose published copy is stale; dirtyAll means all of them.
	dirty    map[[16]byte]struct{}
	dirtyAll bool
}

// init loads the storage, bootstrapping an empty one.
func (c *core) init(n *Node) error {
	c.n = n
	c.lastAck, c.addrHints, c.snapSent = map[uint64]time.Time{}, map[uint64]string{}, map[uint64]time.Time{}
	c.propByID, c.fwdByID, c.dirty = map[EntryID]*proposal{}, map[EntryID]*forward{}, map[[16]byte]struct{}{}
	boot, err := n.store.NextBoot()
	if err != nil {
		return err
	}
	c.boot = boot
	snap, err := n.store.Snapshot()
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if raft.IsEmptySnap(snap) {
		snap = n.bootstrapSnapshot()
		if err := n.store.Save(raftpb.HardState{Term: 1, Commit: 1}, nil, snap); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	return c.start(snap)
}

// start builds the RawNode and the replicated state from snap and the log after it.
func (c *core) start(snap raftpb.Snapshot) error {
	c.st = newReplicated()
	if len(snap.Data) > 0 {
		d, err := DecodeSnapshot(snap.Data)
		if err != nil {
			return err
		}
		c.st.restore(&d)
	}
	c.cs = snap.Metadata.ConfState
	c.applied, c.snapIndex = snap.Metadata.Index, snap.Metadata.Index
	hs, _, err := c.n.store.InitialState()
	if err != nil {
		return fmt.Errorf("read hard state: %w", err)
	}
	c.term, c.commit = hs.Term, hs.Commit
	rn, err := raft.NewRawNode(c.n.raftConfig(c.n.store, c.applied))
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	c.rn, c.soft, c.held, c.confirmedTerm, c.lt = rn, raft.SoftState{}, 0, 0, nil
	c.quiet, c.campaignAfter = 0, c.electionTicks()
	c.dirtyAll = true
	if len(c.cs.Voters) == 1 && c.cs.Voters[0] == c.n.id && len(c.cs.VotersOutgoing) == 0 {
		// A group of one need not wait out an election timeout to lead itself.
		_ = c.rn.Campaign()
	}
	return nil
}

// shutdown ends the node on its loop: waiting calls get ErrClosed.
func (c *core) shutdown() {
	if c.closed {
		return
	}
	c.failAll(ErrClosed)
	c.closed = true
}

// fail stops the node after a storage error: raft cannot go on without its log.
func (c *core) fail(err error) {
	c.n.log.Error("group node stopped: storage failed", "err", err)
	c.failed = fmt.Errorf("%w: %w", ErrStorage, err)
	c.failAll(c.failed)
}

// failAll answers every waiter with err.
func (c *core) failAll(err error) {
	r := Reply{Code: codeOf(err), Msg: err.Error()}
	for _, p := range c.props {
		if p.state != propDone {
			c.finish(p, r)
		}
	}
	for _, f := range c.fwds {
		if !f.fin {
			c.finishForward(f, r)
		}
	}
	for _, rr := range c.reads {
		if !rr.fin {
			rr.fin = true
			rr.done(Validation{}, err)
		}
	}
	for _, w := range c.watches {
		if !w.fin {
			w.fin = true
			w.done(err)
		}
	}
	c.props, c.fwds, c.reads, c.watches = nil, nil, nil, nil
	clear(c.propByID)
	clear(c.fwdByID)
}

// usable reports whether the loop may act: not closed, storage healthy.
func (c *core) usable() bool { return !c.closed && c.failed == nil }

// settle processes raft's Ready until there is none, then runs the sweeps that
// depend on what changed: admission, completions, snapshots. Every loop function ends
// with it.
func (c *core) settle() {
	if !c.usable() {
		c.n.publish()
		return
	}
	for i := 0; i < 64 && c.rn.HasReady(); i++ {
		rd := c.rn.Ready()
		if err := c.handleReady(&rd); err != nil {
			c.fail(err)
			c.n.publish()
			return
		}
		c.rn.Advance(rd)
		if c.removedSelf {
			c.removedSelf = false
			c.becomeStandalone()
			break
		}
	}
	// Publish before the sweep answers anyone: a caller woken by its answer reads Volume
	// at once and must find what its command (or barrier) applied.
	c.n.publish()
	c.sweep()
	c.maybeSnapshot()
	c.n.publish()
}

// handleReady does one Ready in raft's order: persist, send, apply.
func (c *core) handleReady(rd *raft.Ready) error {
	if !raft.IsEmptyHardState(rd.HardState) {
		if rd.HardState.Term != c.term {
			c.term, c.quiet = rd.HardState.Term, 0
		}
		c.commit = rd.HardState.Commit
	}
	if rd.SoftState != nil {
		c.roleChange(*rd.SoftState)
	}
	if err := c.n.store.Save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
		return err
	}
	c.noteAppended(rd.Entries)
	c.sendRaft(rd.Messages)
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := c.restoreSnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if err := c.applyEntries(rd.CommittedEntries); err != nil {
		return err
	}
	for _, rs := range rd.ReadStates {
		c.readState(rs)
	}
	return nil
}

// sendRaft sends raft's messages to their peers.
func (c *core) sendRaft(msgs []raftpb.Message) {
	now := c.n.loop.Now()
	for i := range msgs {
		m := &msgs[i]
		addr := c.addrOf(m.To)
		if addr == "" {
			c.rn.ReportUnreachable(m.To)
			continue
		}
		if m.Type == raftpb.MsgSnap {
			c.snapSent[m.To] = now
		}
		b, err := m.Marshal()
		if err != nil {
			panic(fmt.Sprintf("group: marshal raft message: %v", err))
		}
		c.n.tr.Send(addr, Envelope{Kind: EnvRaft, From: c.n.id, To: m.To, FromAddr: c.n.cfg.PeerAddr, Raft: b})
	}
}

// addrOf returns the peer address of node id: from the configuration, else from what
// its envelopes said.
func (c *core) addrOf(id uint64) string {
	if m := c.st.member(id); m != nil && m.Addr != "" {
		return m.Addr
	}
	return c.addrHints[id]
}

// send sends one non-raft envelope.
func (c *core) send(addr string, env Envelope) {
	if addr == "" {
		return
	}
	env.From, env.FromAddr = c.n.id, c.n.cfg.PeerAddr
	c.n.tr.Send(addr, env)
}

// receive handles one envelope from a peer.
func (c *core) receive(env Envelope) {
	if !c.usable() || (env.To != 0 && env.To != c.n.id) {
		return
	}
	if env.From != 0 && env.FromAddr != "" && env.From != c.n.id {
		c.addrHints[env.From] = env.FromAddr
	}
	switch env.Kind {
	case EnvRaft:
		c.recvRaft(env)
	case EnvRequest:
		if env.Request != nil {
			c.recvRequest(env.From, *env.Request)
		}
	case EnvReply:
		if env.Reply != nil {
			c.recvReply(*env.Reply)
		}
	case EnvReport:
		c.recvReport(env)
	case EnvConfirm:
		c.recvConfirm(env)
	case EnvInvite:
		c.recvInvite(env)
	}
	c.settle()
}

// recvRaft steps a peer's raft message. A standalone node takes none (stale traffic
// from a group it left); a member takes them from members, or from anyone while it
// waits for its first snapshot after joining.
func (c *core) recvRaft(env Envelope) {
	if c.standalone() {
		return
	}
	if len(c.st.members) > 0 && c.st.member(env.From) == nil {
		return
	}
	var m raftpb.Message
	if err := m.Unmarshal(env.Raft); err != nil || m.To != c.n.id || m.From != env.From ||
		raft.IsLocalMsg(m.Type) {
		return
	}
	if (m.Type == raftpb.MsgAppResp || m.Type == raftpb.MsgHeartbeatResp) && m.Term == c.term &&
		c.soft.RaftState == raft.StateLeader {
		c.lastAck[m.From] = c.n.loop.Now()
	}
	_ = c.rn.Step(m)
	switch m.Type {
	case raftpb.MsgApp, raftpb.MsgHeartbeat, raftpb.MsgSnap:
		// raft resets its follower election timer on these; so does our driver.
		if bs := c.rn.BasicStatus(); bs.RaftState == raft.StateFollower && bs.Lead == m.From && m.Term == bs.Term {
			c.quiet = 0
		}
	}
}

// standalone reports whether this node is in no group: a group of one with no name.
func (c *core) standalone() bool { return c.st.name == "" && c.invited == "" }

// isLeader reports whether this node leads its group now.
func (c *core) isLeader() bool { return c.soft.RaftState == raft.StateLeader }

// nextID returns a fresh proposal ID.
func (c *core) nextID() EntryID {
	c.seq++
	return EntryID{Node: c.n.id, Boot: c.boot, Seq: c.seq}
}

// noteAppended learns the log index of our own proposals from the entries raft appended.
func (c *core) noteAppended(ents []raftpb.Entry) {
	if len(c.propByID) == 0 {
		return
	}
	for i := range ents {
		id, ok := entryIDOf(&ents[i])
		if !ok {
			continue
		}
		if p := c.propByID[id]; p != nil && p.state == propProposed {
			p.index, p.term = ents[i].Index, ents[i].Term
		}
	}
}

// entryIDOf returns the proposal ID inside a log entry.
func entryIDOf(e *raftpb.Entry) (EntryID, bool) {
	switch e.Type {
	case raftpb.EntryNormal:
		if len(e.Data) == 0 {
			return EntryID{}, false
		}
		d, err := DecodeEntry(e.Data)
		return d.ID, err == nil
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if cc.Unmarshal(e.Data) != nil || len(cc.Context) == 0 {
			return EntryID{}, false
		}
		ctx, err := DecodeConfContext(cc.Context)
		return ctx.ID, err == nil
	}
	return EntryID{}, false
}

// restoreSnapshot replaces the replicated state with a snapshot from the leader.
func (c *core) restoreSnapshot(snap raftpb.Snapshot) error {
	d, err := DecodeSnapshot(snap.Data)
	if err != nil {
		return err
	}
	c.st.restore(&d)
	if c.st.name != "" {
		c.invited = ""
	}
	c.cs = snap.Metadata.ConfState
	c.applied, c.snapIndex = snap.Metadata.Index, snap.Metadata.Index
	c.dirtyAll = true
	c.n.emit(Event{Kind: EventResync})
	return nil
}

// maybeSnapshot takes a snapshot of the applied state and compacts the log once
// SnapshotEntries entries were applied since the last one.
func (c *core) maybeSnapshot() {
	cfg := &c.n.cfg
	if c.applied <= c.snapIndex || (!c.snapNow && c.applied < c.snapIndex+cfg.SnapshotEntries) {
		return
	}
	c.snapNow = false
	term, err := c.n.store.Term(c.applied)
	if err != nil {
		return // compacted meanwhile: a newer snapshot exists
	}
	snap := raftpb.Snapshot{Data: EncodeSnapshot(c.st.snapshot()),
		Metadata: raftpb.SnapshotMetadata{Index: c.applied, Term: term, ConfState: c.cs}}
	compactTo := uint64(0)
	if c.applied > cfg.SnapshotKeep {
		compactTo = c.applied - cfg.SnapshotKeep
	}
	if err := c.n.store.Compact(snap, compactTo); err != nil {
		c.fail(err)
		return
	}
	c.snapIndex = c.applied
}
