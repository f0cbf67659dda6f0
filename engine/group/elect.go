package group

import (
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// The election driver. etcd raft draws each follower's election timeout from
// crypto/rand, which a seeded simulation cannot replay, and gives every member the same
// range, where DESIGN.md wants the BGL to win. So followers and candidates are never
// ticked in raft (their raft election timer never fires); the driver counts their quiet
// ticks itself and:
//   - after ElectionTicks quiet ticks, calls ForgetLeader: the lease is over, and the
//     node grants pre-votes (raft refuses them while it still follows a leader);
//   - after campaignAfter quiet ticks, calls Campaign: ElectionTicks+2 for the BGL (the
//     shortest, so it wins, two ticks after the others stopped honouring the lease), and a
//     seeded draw in [1.5, 2) election timeouts for the others.
// Leaders are ticked in raft as usual: heartbeats and CheckQuorum.

// electionTicks draws this node's jitter for its next campaign deadline. The deadline
// itself (campaignTicks) is judged when it falls due, because the node may be designated
// BGL, or stop being it, while it waits.
func (c *core) electionTicks() int {
	e := c.n.cfg.ElectionTicks
	return e/2 + c.n.rng.IntN(e/2+1)
}

// campaignTicks is how many quiet ticks this node waits before it campaigns.
func (c *core) campaignTicks() int {
	e := c.n.cfg.ElectionTicks
	if c.st.bgl == c.n.id {
		return e + 2
	}
	return e + c.campaignAfter
}

// onTick runs every TickInterval on the loop.
func (c *core) onTick() {
	if c.closed {
		return
	}
	c.n.loop.After(c.n.cfg.TickInterval, c.onTick)
	if c.failed != nil {
		return
	}
	if c.isLeader() {
		c.rn.Tick()
		c.leaderTick()
	} else {
		c.followerTick()
	}
	c.settle()
}

// followerTick advances the election driver and the incarnation report.
func (c *core) followerTick() {
	c.quiet++
	c.report()
	if !c.canCampaign() {
		return
	}
	if c.quiet >= c.n.cfg.ElectionTicks && c.soft.Lead != raft.None {
		c.forgetting = true
		_ = c.rn.ForgetLeader()
	}
	if c.quiet >= c.campaignTicks() {
		_ = c.rn.Campaign()
		c.quiet, c.campaignAfter = 0, c.electionTicks()
	}
}

// canCampaign reports whether this node votes in its group (learners and nodes waiting
// for their first snapshot do not).
func (c *core) canCampaign() bool {
	for _, v := range c.cs.Voters {
		if v == c.n.id {
			return true
		}
	}
	return false
}

// roleChange reacts to raft's SoftState changing.
func (c *core) roleChange(ss raft.SoftState) {
	old := c.soft
	c.soft = ss
	if !(c.forgetting && ss.Lead == raft.None && ss.RaftState == old.RaftState) {
		c.quiet, c.campaignAfter = 0, c.electionTicks()
	}
	c.forgetting = false
	if ss.RaftState == raft.StateLeader && old.RaftState != raft.StateLeader {
		c.becameLeader()
	}
	if ss.RaftState != raft.StateLeader && old.RaftState == raft.StateLeader {
		c.lostLeadership()
	}
	if ss.Lead != old.Lead {
		c.confirmedTerm = 0
		c.reportAt = time.Time{}
		c.n.emit(Event{Kind: EventLeader, Leader: ss.Lead, Term: c.term})
		if ss.Lead != raft.None && ss.Lead != c.n.id {
			c.report()
		}
	}
}

// leaderTerm is what a leader tracks during its term.
type leaderTerm struct {
	term  uint64
	start time.Time
	// caughtUp: an entry of this term is applied, so everything before it is too.
	caughtUp bool
	// The incarnation decision (incarnation.go).
	decision    *proposal
	decided     bool
	decideStart time.Time
	reports     map[uint64]uint64
	// wantTransfer: this leader is not the BGL and must hand leadership to it once it is
	// synchronized (or designate another BGL if it does not answer within an election
	// timeout).
	wantTransfer bool
	transferring bool
	designation  *proposal
	conf         *proposal
	invited      map[uint64]time.Time
}

// becameLeader starts a term.
func (c *core) becameLeader() {
	now := c.n.loop.Now()
	c.lt = &leaderTerm{term: c.term, start: now, reports: map[uint64]uint64{},
		invited: map[uint64]time.Time{}}
	bgl := c.st.bgl
	c.lt.wantTransfer = bgl != 0 && bgl != c.n.id && c.st.isVoter(bgl)
	for _, v := range c.st.voters() {
		c.lastAck[v] = now // they just voted for us
	}
	clear(c.snapSent)
}

// lostLeadership ends a term: queued commands go to the new leader (local ones) or are
// refused (forwarded ones: their origin retries).
func (c *core) lostLeadership() {
	c.lt = nil
	for _, p := range c.props {
		if p.state != propWaiting {
			continue
		}
		if p.local != nil && p.entry == nil {
			c.reroute(p)
			continue
		}
		c.refuse(p, ErrNoLeader)
	}
}

// leaderTick runs the leader's periodic duties.
func (c *core) leaderTick() {
	lt := c.lt
	if lt == nil {
		return
	}
	if lt.transferring && c.rn.BasicStatus().LeadTransferee == raft.None {
		lt.transferring = false
	}
	c.decideIncarnation()
	if !lt.decided {
		return
	}
	c.manageBGL()
	c.manageLearners()
	c.retrySnapshots()
}

// progress returns raft's progress of peer id (leader only).
func (c *core) progress(id uint64) (tracker.Progress, bool) {
	var out tracker.Progress
	found := false
	c.rn.WithProgress(func(pid uint64, _ raft.ProgressType, pr tracker.Progress) {
		if pid == id {
			out, found = pr, true
		}
	})
	return out, found
}

// answeredWithin reports whether peer id answered us within d.
func (c *core) answeredWithin(id uint64, d time.Duration) bool {
	t, ok := c.lastAck[id]
	return ok && c.n.loop.Now().Sub(t) <= d
}

// synced reports whether peer id holds every entry up to need and answered within the
// heartbeat window: DESIGN.md's "synchronized", judged against need.
func (c *core) synced(id uint64, need uint64) bool {
	pr, ok := c.progress(id)
	return ok && pr.Match >= need && c.answeredWithin(id, c.n.cfg.heartbeat())
}

// quorumRecent is the leader lease: a quorum of voters (this node included) answered
// within an election timeout.
func (c *core) quorumRecent() bool {
	voters := c.st.voters()
	n := 0
	for _, v := range voters {
		if v == c.n.id || c.answeredWithin(v, c.n.cfg.election()) {
			n++
		}
	}
	return n > len(voters)/2
}

// syncedCandidate returns the lowest-ID voter other than this node that is
// synchronized with the commit index, or 0.
func (c *core) syncedCandidate(exclude uint64) uint64 {
	for _, v := range c.st.voters() {
		if v != c.n.id && v != exclude && c.synced(v, c.commit) {
			return v
		}
	}
	return 0
}

// manageBGL keeps the group's BGL: a new leader that is not the BGL hands leadership
// to it once synchronized; a leader whose BGL is itself, gone or silent for an election
// timeout designates the lowest-ID synchronized member.
func (c *core) manageBGL() {
	lt := c.lt
	if lt.designation != nil || lt.transferring {
		return
	}
	bgl := c.st.bgl
	valid := bgl != 0 && bgl != c.n.id && c.st.isVoter(bgl)
	if valid && lt.wantTransfer {
		switch {
		case c.synced(bgl, c.commit):
			lt.wantTransfer, lt.transferring = false, true
			c.n.log.Info("handing leadership to the backup group leader", "bgl", bgl)
			c.rn.TransferLeader(bgl)
			return
		case c.n.loop.Now().Sub(lt.start) > c.n.cfg.election():
			lt.wantTransfer, valid = false, false // silent for an election timeout: gone
		default:
			return
		}
	}
	if valid {
		return
	}
	if cand := c.syncedCandidate(bgl); cand != 0 && cand != bgl {
		c.n.log.Info("designating a backup group leader", "bgl", cand, "was", bgl)
		lt.designation = c.proposeInternal(Entry{Kind: EntryDesignate, Node: cand}, nil)
	}
}

// manageLearners promotes learners that caught up and re-invites those that never
// answered.
func (c *core) manageLearners() {
	lt := c.lt
	now := c.n.loop.Now()
	for _, m := range c.st.members {
		if !m.Learner {
			continue
		}
		pr, _ := c.progress(m.ID)
		if lt.conf == nil && pr.Match >= c.commit && c.answeredWithin(m.ID, c.n.cfg.heartbeat()) {
			cc := raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: m.ID}
			lt.conf = c.proposeConf(cc, m.Addr, nil)
			continue
		}
		if pr.Match == 0 && now.Sub(lt.invited[m.ID]) > c.n.cfg.election() {
			c.invite(m.ID)
		}
	}
}

// invite tells a new member to enter the group.
func (c *core) invite(id uint64) {
	if c.lt != nil {
		c.lt.invited[id] = c.n.loop.Now()
	}
	c.send(c.addrOf(id), Envelope{Kind: EnvInvite, To: id, Group: c.st.name})
}

// retrySnapshots reports a snapshot that has not landed within an election timeout as
// failed, so that raft sends it again (a dropped MsgSnap otherwise parks the follower).
func (c *core) retrySnapshots() {
	now := c.n.loop.Now()
	ids := make([]uint64, 0, len(c.snapSent))
	for id := range c.snapSent {
		ids = append(ids, id)
	}
	slices.Sort(ids) // raft's messages must come out in one order: the simulator replays it
	for _, id := range ids {
		t := c.snapSent[id]
		pr, ok := c.progress(id)
		if !ok || pr.State != tracker.StateSnapshot {
			delete(c.snapSent, id)
			continue
		}
		if now.Sub(t) > c.n.cfg.election() {
			delete(c.snapSent, id)
			c.rn.ReportSnapshot(id, raft.SnapshotFailure)
		}
	}
}
