package group

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Whole-group restart detection (the rule and its reasoning are in doc.go).
//
// Every node keeps, in memory only, the incarnation it holds (held): 0 after the process
// starts, set when a live leader confirms the current incarnation to it (or when it is
// the leader whose decision entry applied). A new leader, once it has applied everything
// before its term, decides before it admits anything:
//   - it holds the applied incarnation itself, or a member reports holding it: the group
//     survived; it proposes EntryConfirm;
//   - every voter reported not holding it, or, after an election timeout of waiting, a
//     quorum did and nobody reported holding it: the whole group restarted; it proposes
//     EntryPowerCycle, which moves the incarnation on and takes every volume through
//     reservation.State.AfterPowerLoss.

// decideIncarnation runs the new leader's decision.
func (c *core) decideIncarnation() {
	lt := c.lt
	if lt == nil || lt.decided || lt.decision != nil || !lt.caughtUp {
		return
	}
	now := c.n.loop.Now()
	if lt.decideStart.IsZero() {
		lt.decideStart = now
	}
	inc := c.st.incarnation
	voters := c.st.voters()
	holding := c.held == inc && inc != 0
	notHolding := 0
	for _, v := range voters {
		h, ok := lt.reports[v]
		switch {
		case v == c.n.id:
			if !holding {
				notHolding++
			}
		case ok && h == inc:
			holding = true
		case ok:
			notHolding++
		}
	}
	kind := entryNone
	switch {
	case holding:
		kind = EntryConfirm
	case notHolding == len(voters),
		now.Sub(lt.decideStart) >= c.n.cfg.election() && notHolding > len(voters)/2:
		kind = EntryPowerCycle
	default:
		return // wait for reports
	}
	if kind == EntryPowerCycle {
		c.n.log.Info("whole group restarted: reservation state without persistence is dropped",
			"incarnation", inc, "reports", notHolding, "voters", len(voters))
	}
	lt.decision = c.proposeInternal(Entry{Kind: kind, Term: lt.term}, nil)
}

// applyDecision notes an applied incarnation decision: the leader that made it now holds
// the (possibly new) incarnation and may admit commands.
func (c *core) applyDecision(e *Entry) {
	if lt := c.lt; lt != nil && e.Term == lt.term {
		lt.decided = true
		c.held = c.st.incarnation
		c.confirmedTerm = c.term
	}
	c.dirtyAll = true
}

// report sends the leader which incarnation this node holds, until the leader
// confirmed it in this term. It repeats every heartbeat: a lost report of a survivor
// could make the leader declare a power cycle that did not happen.
func (c *core) report() {
	lead := c.soft.Lead
	if lead == raft.None || lead == c.n.id || (c.confirmedTerm == c.term && c.held == c.st.incarnation) {
		return
	}
	now := c.n.loop.Now()
	if !c.reportAt.IsZero() && now.Sub(c.reportAt) < c.n.cfg.heartbeat() {
		return
	}
	c.reportAt = now
	c.send(c.addrOf(lead), Envelope{Kind: EnvReport, To: lead, Term: c.term, Held: c.held,
		Incarnation: c.st.incarnation})
}

// recvReport records a member's report at the leader; once decided, the leader
// confirms the incarnation to it.
func (c *core) recvReport(env Envelope) {
	lt := c.lt
	if lt == nil || env.Term != lt.term {
		return
	}
	if !lt.decided {
		lt.reports[env.From] = env.Held
		return
	}
	c.send(c.addrOf(env.From), Envelope{Kind: EnvConfirm, To: env.From, Term: lt.term,
		Incarnation: c.st.incarnation})
}

// recvConfirm takes the leader's confirmation: this node now holds the incarnation in
// memory, having applied it.
func (c *core) recvConfirm(env Envelope) {
	if env.Term != c.term || env.From != c.soft.Lead {
		return
	}
	if env.Incarnation == c.st.incarnation {
		c.held = env.Incarnation
		c.confirmedTerm = c.term
	}
}

// recvInvite enters the group a leader added this node to, if it is standalone and holds
// no reservation state.
func (c *core) recvInvite(env Envelope) {
	if env.Group == "" || !c.standalone() || c.hasReservations() {
		return
	}
	c.enterGroup(env.Group)
}

// enterGroup wipes the standalone raft state and waits, as an empty member of group
// name, for the leader's snapshot.
func (c *core) enterGroup(name string) {
	c.n.log.Info("entering group", "group", name)
	if err := c.n.store.Reset(); err != nil {
		c.fail(err)
		return
	}
	c.failWaiting(ErrNoLeader)
	if err := c.start(raftpb.Snapshot{}); err != nil {
		c.fail(err)
		return
	}
	c.invited = name
	c.n.emit(Event{Kind: EventResync})
}

// becomeStandalone wipes the group's raft state after this node left its group and
// starts again as a standalone node with no reservation state.
func (c *core) becomeStandalone() {
	c.n.log.Info("left the group; standalone now", "group", c.st.name)
	if err := c.n.store.Reset(); err != nil {
		c.fail(err)
		return
	}
	c.failWaiting(ErrNoLeader)
	c.invited = ""
	snap := c.n.bootstrapStandalone()
	if err := c.n.store.Save(raftpb.HardState{Term: 1, Commit: 1}, nil, snap); err != nil {
		c.fail(err)
		return
	}
	if err := c.start(snap); err != nil {
		c.fail(err)
		return
	}
	c.n.emit(Event{Kind: EventResync})
}

// failWaiting answers every proposal and forward with err, before the raft state is
// replaced; reads and watches carry on.
func (c *core) failWaiting(err error) {
	r := replyOf(err)
	for _, p := range c.props {
		if p.applied {
			c.finish(p, p.reply) // its outcome is known: it applied
			continue
		}
		c.finish(p, r)
	}
	keep := c.fwds[:0]
	for _, f := range c.fwds {
		switch {
		case f.addr != "" && !f.fin:
			keep = append(keep, f) // a join in flight: its answer is still wanted
			continue
		case f.reply != nil && f.reply.Code == CodeOK:
			c.finishForward(f, settled(f, *f.reply))
		case f.byID != nil:
			c.finishForward(f, settled(f, *f.byID))
		case f.live:
			c.finishForward(f, replyOf(ErrOutcomeUnknown)) // a leader may have it in the log
		default:
			c.finishForward(f, r)
		}
	}
	c.props, c.fwds = nil, keep
	clear(c.propByID)
	for id, f := range c.fwdByID {
		if f.fin {
			delete(c.fwdByID, id)
		}
	}
}
