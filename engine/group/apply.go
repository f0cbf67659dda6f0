package group

import (
	"go.etcd.io/raft/v3/raftpb"

	"sluice/engine/reservation"
)

// applyEntries applies committed entries in log order.
func (c *core) applyEntries(ents []raftpb.Entry) error {
	for i := range ents {
		e := &ents[i]
		if e.Index <= c.applied {
			continue // inside a snapshot we restored
		}
		switch e.Type {
		case raftpb.EntryNormal:
			c.applyNormal(e)
		case raftpb.EntryConfChange:
			c.applyConfChange(e)
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if cc.Unmarshal(e.Data) == nil {
				c.cs = *c.rn.ApplyConfChange(cc)
			}
		}
		c.applied = e.Index
	}
	return nil
}

// applyNormal applies one normal entry: the replicated state changes, subscribers hear
// of it, and the proposal or forwarded command waiting for it learns its result.
func (c *core) applyNormal(e *raftpb.Entry) {
	if lt := c.lt; lt != nil && e.Term == lt.term {
		lt.caughtUp = true // everything before our term is applied now
	}
	if len(e.Data) == 0 {
		return // a new leader's empty entry
	}
	d, err := DecodeEntry(e.Data)
	if err != nil {
		// Every replica skips the same bad bytes, so they stay in agreement.
		c.n.log.Error("skipping undecodable log entry", "index", e.Index, "err", err)
		return
	}
	out := c.st.apply(&d, e.Index)
	if out.dup != nil {
		// A second copy of a command (sent again to a new leader) whose first copy
		// applied at out.dup.Index: it changes nothing, and its waiters get the first
		// copy's outcome.
		c.counters.Duplicates++
		c.n.log.Warn("skipping a command applied already", "id", d.ID, "index", e.Index,
			"applied_at", out.dup.Index)
		c.appliedID(d.ID, out.dup.reply(e.Index))
		return
	}
	for _, v := range out.changed {
		c.dirty[v] = struct{}{}
		c.n.emit(Event{Kind: EventVolume, Volume: c.volumeState(v), Result: out.result,
			Cause: out.cause})
	}
	if d.Kind == EntryConfirm || d.Kind == EntryPowerCycle {
		c.applyDecision(&d)
	}
	rep := Reply{Code: codeOf(out.err), Result: out.result, Index: e.Index}
	if out.err != nil {
		rep.Msg = out.err.Error()
	}
	c.appliedID(d.ID, rep)
}

// appliedID hands an applied entry's reply to whoever waits for its ID here. A forward
// keeps the first one: that is the application that took effect.
func (c *core) appliedID(id EntryID, rep Reply) {
	if p := c.propByID[id]; p != nil && p.state == propProposed && !p.applied {
		p.applied, p.reply = true, rep
		p.appliedAt = c.n.loop.Now()
	}
	if f := c.fwdByID[id]; f != nil && !f.fin && f.byID == nil {
		f.byID = &rep
	}
}

// applyConfChange applies a membership change: raft's configuration, then ours (the
// member's address comes from the context).
func (c *core) applyConfChange(e *raftpb.Entry) {
	var cc raftpb.ConfChange
	if err := cc.Unmarshal(e.Data); err != nil {
		c.n.log.Error("skipping undecodable conf change", "index", e.Index, "err", err)
		return
	}
	var ctx ConfContext
	if len(cc.Context) > 0 {
		ctx, _ = DecodeConfContext(cc.Context)
	}
	c.cs = *c.rn.ApplyConfChange(cc)
	c.snapNow = true
	switch cc.Type {
	case raftpb.ConfChangeAddNode:
		c.st.setMember(cc.NodeID, ctx.Addr, false)
	case raftpb.ConfChangeAddLearnerNode:
		c.st.setMember(cc.NodeID, ctx.Addr, true)
		if c.isLeader() {
			c.invite(cc.NodeID)
		}
	case raftpb.ConfChangeRemoveNode:
		c.st.removeMember(cc.NodeID)
		delete(c.lastAck, cc.NodeID)
	case raftpb.ConfChangeUpdateNode:
		c.st.setMember(cc.NodeID, ctx.Addr, !c.st.isVoter(cc.NodeID))
	}
	if c.lt != nil && c.lt.conf != nil && c.lt.conf.req.ID == ctx.ID {
		c.lt.conf = nil
	}
	c.appliedID(ctx.ID, Reply{Index: e.Index, Group: c.st.name})
	if cc.Type == raftpb.ConfChangeRemoveNode && cc.NodeID == c.n.id {
		c.removedSelf = true
	}
}

// volumeState returns the published form of volume v.
func (c *core) volumeState(v [16]byte) VolumeState {
	r := c.st.vols[v]
	if r == nil {
		return VolumeState{NGUID: v, Incarnation: c.st.incarnation}
	}
	return VolumeState{NGUID: v, State: r.state.Clone(), Owner: r.owner, Index: r.index,
		Incarnation: c.st.incarnation}
}

// hasReservations reports whether any volume holds registrations or a reservation: a
// node that does cannot join another group (its state would be lost).
func (c *core) hasReservations() bool {
	for _, r := range c.st.vols {
		if len(r.state.Registrants) > 0 || r.state.SCSI2.Held || r.state.Type != reservation.TypeNone {
			return true
		}
	}
	return false
}
