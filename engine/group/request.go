package group

import (
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"sluice/engine/reservation"
)

// A proposal is a command at the group leader, from its arrival to its answer: it waits
// for admission (propWaiting), sits in the log (propProposed), then is answered
// (propDone). Local proposals answer a callback; forwarded ones send an EnvReply.
type propState uint8

const (
	propWaiting propState = iota
	propProposed
	propDone
)

type proposal struct {
	req Request
	// entry is set once proposed (and from the start for internal proposals).
	entry *Entry
	local func(Reply)
	state propState

	persist, classified bool
	// notReadyBy bounds the wait for a leader that is still deciding or transferring;
	// admitBy is the catch-up grace a persistent command gives a BGL that is behind.
	notReadyBy, admitBy time.Time

	index, term uint64
	applied     bool
	appliedAt   time.Time
	reply       Reply
}

// accept takes a request at the leader.
func (c *core) accept(q Request, local func(Reply)) {
	if local == nil && q.Term != 0 && q.Term < c.term {
		// Sent to the leader of an earlier term (delayed, or queued through an outage):
		// its origin has moved on. Refused before anything, as by a follower.
		r := replyOf(ErrNoLeader)
		r.ID, r.Try = q.ID, q.Try
		c.answerRemote(q, r)
		return
	}
	if p := c.propByID[q.ID]; p != nil {
		// Delivered twice, or sent again while the first copy is still here: the first
		// copy answers, as the latest attempt.
		if p.local == nil && q.Try > p.req.Try {
			p.req.Try, p.req.Resent = q.Try, p.req.Resent || q.Resent
		}
		return
	}
	p := &proposal{req: q, local: local, notReadyBy: c.n.loop.Now().Add(c.n.cfg.election())}
	c.props = append(c.props, p)
	c.propByID[q.ID] = p
	c.admit(p)
}

// admit decides a waiting proposal: propose it, refuse it, or leave it waiting.
func (c *core) admit(p *proposal) {
	now := c.n.loop.Now()
	if !c.isLeader() || c.lt == nil {
		c.refuse(p, ErrNoLeader)
		return
	}
	q := &p.req
	if q.Op == OpStatus {
		s := c.status()
		c.finish(p, Reply{Status: &s})
		return
	}
	if p.local == nil && q.Op != OpAddMember && c.st.member(q.ReplyTo) == nil {
		c.finish(p, replyOf(errorf("request from node %d, not a member: %w", q.ReplyTo, ErrNotFound)))
		return
	}
	if lt := c.lt; !lt.decided || lt.transferring {
		if now.After(p.notReadyBy) {
			c.refuse(p, ErrNotReady)
		}
		return
	}
	if q.Op.once() && c.admitOnce(p) {
		return
	}
	if !c.quorumRecent() {
		c.refuse(p, ErrNoQuorum)
		return
	}
	switch q.Op {
	case OpReserve, OpClear:
		c.admitReservation(p, now)
	case OpSetOwner:
		c.propose(p, Entry{Kind: EntrySetOwner, Vol: q.Vol, Node: q.Node})
	case OpDesignate:
		if q.Node != 0 && (!c.st.isVoter(q.Node) || q.Node == c.n.id) {
			c.finish(p, replyOf(errorf("designate bgl %d: not a voting member other than the leader: %w", q.Node, ErrInvalid)))
			return
		}
		c.propose(p, Entry{Kind: EntryDesignate, Node: q.Node})
	case OpAddMember:
		c.admitAddMember(p, now)
	case OpRemoveMember:
		c.admitRemoveMember(p, now)
	default:
		c.finish(p, replyOf(errorf("op %v: %w", q.Op, ErrInvalid)))
	}
}

// admitOnce answers a command the replicated state may have applied already: a copy its
// origin sent again after losing the leader it had asked. It runs once this leader has
// applied every entry before its term, so a copy of the command in its log before its
// term has applied and is in the record (AppliedID): then the command is answered with
// that copy's outcome, under the rule for answers (checkProposal: a persistent one once
// the BGL holds the copy's entry), and not proposed again. A copy that is not in the
// record is not in this leader's log, and can never commit once this leader commits
// anything (its incarnation decision did: raft's log matching), so proposing the command
// makes it apply once. If records the command could be among were dropped (more than
// appliedIDsKept commands applied since the origin sent it), the outcome is unknown.
// It reports whether it answered.
func (c *core) admitOnce(p *proposal) bool {
	q := &p.req
	if r, ok := c.st.appliedRecord(q.ID); ok {
		p.state, p.applied, p.appliedAt = propProposed, true, c.n.loop.Now()
		p.index, p.persist, p.reply = r.Index, r.Persist, r.reply(r.Index)
		c.counters.AlreadyApplied++
		return true
	}
	// Since is 0 only from a peer that predates it (and never sends a command twice).
	if q.Since != 0 && q.Since < c.st.horizon {
		c.finish(p, replyOf(errorf("command %v: the record of commands applied since index %d is gone: %w",
			q.ID, q.Since, ErrOutcomeUnknown)))
		return true
	}
	return false
}

// admitReservation is the admission rule (DESIGN.md): a command that asks to persist is
// proposed only while the BGL is synchronized; one that does not is proposed at once and
// never queries the sync state.
func (c *core) admitReservation(p *proposal, now time.Time) {
	q := &p.req
	if !p.classified {
		p.classified = true
		st := c.projected(q.Vol)
		if q.Op == OpReserve {
			p.persist = reservation.AsksToPersist(q.Cmd, &st)
		} else {
			p.persist = st.PTPL && !q.Force
		}
		if p.persist {
			c.counters.SyncQueries++
			p.admitBy = now.Add(c.n.cfg.heartbeat())
		}
	}
	if p.persist && !c.standalone() {
		if err, final := c.syncErr(); err != nil {
			if final || now.After(p.admitBy) {
				c.refuse(p, err)
			}
			return // give the BGL up to one heartbeat to catch up
		}
	}
	e := Entry{Kind: EntryReserve, Vol: q.Vol, Cmd: q.Cmd, Persist: p.persist}
	if q.Op == OpClear {
		e = Entry{Kind: EntryClear, Vol: q.Vol, Force: q.Force, Persist: p.persist}
	}
	c.propose(p, e)
}

// syncErr judges the BGL against the entries that matter: every committed persistent
// entry (lastPersist); the command's own entry is judged when it is answered
// (checkProposal). final says that waiting cannot help: the group has no other voter.
func (c *core) syncErr() (err error, final bool) {
	bgl := c.st.bgl
	if bgl == 0 || bgl == c.n.id || !c.st.isVoter(bgl) {
		return ErrNoBackup, len(c.st.voters()) <= 1
	}
	if !c.synced(bgl, c.st.lastPersist) {
		return ErrNotSynchronized, false
	}
	return nil, false
}

// bglHolds reports whether the BGL has acknowledged the entry at index.
func (c *core) bglHolds(index uint64) bool {
	bgl := c.st.bgl
	if bgl == 0 || bgl == c.n.id || !c.st.isVoter(bgl) {
		return false
	}
	pr, ok := c.progress(bgl)
	return ok && pr.Match >= index
}

// projected is volume v's state as it will be once the proposals in flight apply: the
// admission rule asks AsksToPersist of it, so that a command that follows an unapplied
// "persistence on" is judged persistent too.
func (c *core) projected(v [16]byte) reservation.State {
	var st reservation.State
	if r := c.st.vols[v]; r != nil {
		st = r.state.Clone()
	}
	for _, p := range c.props {
		if p.state != propProposed || p.applied || p.entry == nil || p.entry.Vol != v {
			continue
		}
		switch p.entry.Kind {
		case EntryReserve:
			st.Apply(p.entry.Cmd)
		case EntryClear:
			clearState(&st, p.entry.Force)
		}
	}
	return st
}

// propose appends the proposal's entry to the log.
func (c *core) propose(p *proposal, e Entry) {
	e.ID = p.req.ID
	if err := c.rn.Propose(EncodeEntry(&e)); err != nil {
		c.refuse(p, ErrNotReady) // a leadership transfer is under way
		return
	}
	p.state, p.entry = propProposed, &e
	if e.Kind == EntryReserve || e.Kind == EntryClear {
		if p.persist {
			c.counters.AdmittedPersistent++
		} else {
			c.counters.AdmittedOther++
		}
	}
}

// proposeInternal proposes an entry the leader makes itself (a designation, an
// incarnation decision, a group name).
func (c *core) proposeInternal(e Entry, local func(Reply)) *proposal {
	p := &proposal{req: Request{ID: c.nextID()}, local: local}
	c.props = append(c.props, p)
	c.propByID[p.req.ID] = p
	c.propose(p, e)
	return p
}

// proposeConf proposes a membership change under p (nil: an internal one).
func (c *core) proposeConf(cc raftpb.ConfChange, addr string, p *proposal) *proposal {
	if p == nil {
		p = &proposal{req: Request{ID: c.nextID()}}
		c.props = append(c.props, p)
		c.propByID[p.req.ID] = p
	}
	cc.Context = EncodeConfContext(&ConfContext{ID: p.req.ID, Addr: addr})
	if err := c.rn.ProposeConfChange(cc); err != nil {
		c.refuse(p, ErrNotReady)
		return p
	}
	p.state = propProposed
	return p
}

// admitAddMember adds a node as a learner; it is promoted once caught up
// (manageLearners).
func (c *core) admitAddMember(p *proposal, now time.Time) {
	q := &p.req
	switch m := c.st.member(q.Node); {
	case c.st.name == "":
		c.finish(p, replyOf(errorf("add member %d: %w", q.Node, ErrStandalone)))
	case q.Node == 0 || q.Addr == "" || len(q.Addr) > maxAddrLen:
		c.finish(p, replyOf(errorf("add member %d at %q: %w", q.Node, q.Addr, ErrInvalid)))
	case m != nil && m.Addr == q.Addr:
		c.invite(q.Node) // a retried join: it is in already
		c.finish(p, Reply{Group: c.st.name})
	case m != nil:
		c.finish(p, replyOf(errorf("add member %d: member exists at %s: %w", q.Node, m.Addr, ErrExists)))
	case c.lt.conf != nil:
		if now.After(p.notReadyBy) {
			c.refuse(p, ErrNotReady)
		}
	default:
		c.lt.conf = c.proposeConf(raftpb.ConfChange{Type: raftpb.ConfChangeAddLearnerNode, NodeID: q.Node}, q.Addr, p)
	}
}

// admitRemoveMember removes a member (leave, replace).
func (c *core) admitRemoveMember(p *proposal, now time.Time) {
	q := &p.req
	switch m := c.st.member(q.Node); {
	case c.st.name == "":
		c.finish(p, replyOf(errorf("remove member %d: %w", q.Node, ErrStandalone)))
	case m == nil:
		c.finish(p, replyOf(errorf("remove member %d: %w", q.Node, ErrNotFound)))
	case !m.Learner && len(c.st.voters()) == 1:
		c.finish(p, replyOf(errorf("remove member %d: the last voter: %w", q.Node, ErrInvalid)))
	case c.lt.conf != nil:
		if now.After(p.notReadyBy) {
			c.refuse(p, ErrNotReady)
		}
	default:
		c.lt.conf = c.proposeConf(raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: q.Node}, "", p)
	}
}

// checkProposal answers a proposal in the log once it applied (and, if persistent, once
// the BGL holds it), or refuses it if another entry took its index.
func (c *core) checkProposal(p *proposal, now time.Time) {
	switch {
	case p.applied:
		// A persistent command is answered once the BGL holds its entry. If the BGL stays
		// silent for an election timeout, the entry is committed and applied anyway, so
		// the leader answers with the truth rather than never. A standalone node has no
		// BGL to wait for: its own log is the persistence.
		if p.persist && !c.standalone() && c.isLeader() && !c.bglHolds(p.index) &&
			now.Sub(p.appliedAt) < c.n.cfg.election() {
			return
		}
		c.finish(p, p.reply)
	case p.index != 0 && c.applied >= p.index:
		c.refuse(p, ErrDropped)
	}
}

// finish answers a proposal.
func (c *core) finish(p *proposal, r Reply) {
	if p.state == propDone {
		return
	}
	p.state = propDone
	delete(c.propByID, p.req.ID)
	if lt := c.lt; lt != nil {
		if lt.designation == p {
			lt.designation = nil
		}
		if lt.decision == p {
			lt.decision = nil
		}
		if lt.conf == p {
			lt.conf = nil
		}
	}
	r.ID, r.Try = p.req.ID, p.req.Try
	if p.local != nil {
		if r.Partial { // a local caller has no record of its own to complete it
			r = replyOf(errorf("command %v applied but its result is lost: %w", p.req.ID, ErrOutcomeUnknown))
			r.ID = p.req.ID
		}
		p.local(r)
		return
	}
	c.answerRemote(p.req, r)
}

// answerRemote sends r to the origin of q: a peer, or this node's own forward, taken
// while it leads.
func (c *core) answerRemote(q Request, r Reply) {
	switch {
	case q.ReplyTo == c.n.id:
		c.recvReply(r)
	case q.ReplyAddr != "":
		c.send(q.ReplyAddr, Envelope{Kind: EnvReply, To: q.ReplyTo, Reply: &r})
	}
}

// refuse answers a proposal with a refusal and counts it.
func (c *core) refuse(p *proposal, err error) {
	c.counters.count(err)
	c.finish(p, replyOf(err))
}

// replyOf is the Reply carrying err.
func replyOf(err error) Reply {
	if err == nil {
		return Reply{}
	}
	return Reply{Code: codeOf(err), Msg: err.Error()}
}

// reroute turns a local proposal still waiting at a node that lost leadership into a
// forward to the new leader.
func (c *core) reroute(p *proposal) {
	p.state = propDone
	delete(c.propByID, p.req.ID)
	c.forward(p.req, p.local, "", c.n.loop.Now().Add(2*c.n.cfg.election()))
}

// recvRequest handles a command a peer forwarded.
func (c *core) recvRequest(from uint64, q Request) {
	if c.isLeader() {
		c.accept(q, nil)
		return
	}
	lead := c.soft.Lead
	if lead != raft.None && lead != from && !c.standalone() && c.st.member(from) == nil {
		// A node outside the group (a join) reached a follower: relay to the leader, who
		// answers the origin directly.
		c.send(c.addrOf(lead), Envelope{Kind: EnvRequest, To: lead, Request: &q})
		return
	}
	r := replyOf(ErrNoLeader)
	r.ID, r.Try = q.ID, q.Try
	c.answerRemote(q, r)
}

// sweep re-runs admission and answers what can be answered. It runs after every loop
// function, in one fixed order (proposals, forwards, reads, watches), so that a replayed
// simulation answers in the same order.
func (c *core) sweep() {
	now := c.n.loop.Now()
	for i := 0; i < len(c.props); i++ {
		switch p := c.props[i]; p.state {
		case propWaiting:
			c.admit(p)
		case propProposed:
			c.checkProposal(p, now)
		}
	}
	c.props = compact(c.props, func(p *proposal) bool { return p.state == propDone })
	c.sweepForwards(now)
	c.sweepReads(now)
	c.sweepWatches(now)
}

// compact drops the done elements of s, keeping the order of the rest.
func compact[T any](s []T, done func(T) bool) []T {
	out := s[:0]
	for _, x := range s {
		if !done(x) {
			out = append(out, x)
		}
	}
	clear(s[len(out):])
	return out
}
