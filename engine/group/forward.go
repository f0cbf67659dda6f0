package group

import (
	"encoding/binary"
	"time"

	"go.etcd.io/raft/v3"
)

// A forward is a command this node sent to the group leader (DESIGN.md: the manager of a
// node that is not the GL forwards to the GL). Its caller is answered once the leader
// replied and this node applied the entry, so the local state includes the command
// (the volume's owner serves I/O from it).
//
// When the leader it was sent to is lost before answering and another leads, a command
// the state machine applies at most once (Op.once) is sent again to the new leader at
// once rather than left to its deadline: the new leader, once it has applied everything
// before its term, finds a copy that committed in its record of applied commands
// (AppliedID) and answers that copy's outcome, or proposes the command if no copy
// applied, and then no earlier copy can ever commit (admitOnce). A second copy that
// reached the log anyway would be skipped at apply. So the caller gets the one outcome,
// within moments of the new leader's election. Once sent twice, the command is refused
// to its caller only on the latest attempt's answer (Request.Try) from a leader that
// checked the record; "not leader", "not ready" and "dropped" ask again, and the
// deadline reports the outcome unknown.
type forward struct {
	req  Request
	done func(Reply)
	// addr is a fixed destination (a join sent to a member's address), else "" for the
	// current leader.
	addr     string
	deadline time.Time
	// sentTo is the leader the current attempt (req.Try) went to (0: not sent yet);
	// retryAt holds a resend after a leader refused with "not leader" or "not ready".
	sentTo          uint64
	sent            bool
	sentAt, retryAt time.Time
	// live: a leader the command was sent to may have put it in the log, and no answer
	// has settled that; at the deadline its outcome is unknown, not refused.
	live  bool
	reply *Reply
	// byID is set when this node applied the entry carrying the command.
	byID *Reply
	fin  bool
}

// forward sends q to the leader (or addr) and answers done on the loop.
func (c *core) forward(q Request, done func(Reply), addr string, deadline time.Time) {
	f := &forward{req: q, done: done, addr: addr, deadline: deadline, live: q.Resent}
	c.fwds = append(c.fwds, f)
	c.fwdByID[q.ID] = f
	c.counters.Forwarded++
	c.sendForward(f, c.n.loop.Now())
}

// sendForward sends f if it has somewhere to go. A node that leads takes the command as
// it takes any member's, answering itself through recvReply.
func (c *core) sendForward(f *forward, now time.Time) {
	if f.addr != "" {
		c.send(f.addr, Envelope{Kind: EnvRequest, Request: &f.req})
		f.sent, f.live, f.sentAt = true, true, now
		return
	}
	lead := c.soft.Lead
	if lead == raft.None || now.Before(f.retryAt) {
		return
	}
	f.req.Try, f.req.Term = f.req.Try+1, c.term
	f.sentTo, f.sent, f.live, f.sentAt = lead, true, true, now
	if lead == c.n.id {
		c.accept(f.req, nil)
		return
	}
	c.send(c.addrOf(lead), Envelope{Kind: EnvRequest, To: lead, Request: &f.req})
}

// recvReply records the leader's answer to a forward. A refusal answers one attempt:
// once the command went to another leader (or to the same one again), only the answer
// to the latest attempt counts. That the command applied (CodeOK) is true whoever says
// it.
func (c *core) recvReply(r Reply) {
	f := c.fwdByID[r.ID]
	if f == nil || f.fin || (r.Code != CodeOK && f.addr == "" && r.Try != f.req.Try) {
		return
	}
	f.reply = &r
}

// sweepForwards answers, resends or times out the forwards.
func (c *core) sweepForwards(now time.Time) {
	for i := 0; i < len(c.fwds); i++ {
		if f := c.fwds[i]; !f.fin {
			c.checkForward(f, now)
		}
	}
	c.fwds = compact(c.fwds, func(f *forward) bool { return f.fin })
}

func (c *core) checkForward(f *forward, now time.Time) {
	if r := f.reply; r != nil {
		// "Not leader" and "not ready" come before the leader proposed anything. So does a
		// dropped copy of a command sent more than once, as far as the other copies go:
		// ask the current leader, which knows whether one applied.
		again := (r.Code == CodeNoLeader || r.Code == CodeNotReady ||
			(r.Code == CodeDropped && f.req.Resent)) && f.addr == ""
		// A node that left is removed from the leader's progress as the removal applies, so
		// it may never learn the commit: the leader's answer is enough.
		leaving := f.req.Op == OpRemoveMember && f.req.Node == c.n.id
		switch {
		case r.Code == CodeOK && (c.applied >= r.Index || leaving):
			c.finishForward(f, settled(f, *r))
		case r.Code == CodeOK:
		case again && now.Before(f.deadline):
			// The leader we asked refused before proposing: ask again, once a leader is
			// known and a heartbeat has passed. Copies sent to earlier leaders may still
			// be in the log.
			f.reply, f.sentTo, f.sent, f.retryAt = nil, 0, false, now.Add(c.n.cfg.heartbeat())
			f.live = f.req.Resent
		case again && f.req.Resent:
			c.finishForward(f, replyOf(ErrOutcomeUnknown))
		default:
			c.finishForward(f, *r)
		}
		if f.fin || f.reply != nil {
			return
		}
	}
	// Applied here, and the leader we sent it to is gone: the entry committed, so its
	// result stands even though the old leader never answered.
	if f.byID != nil && f.addr == "" && c.soft.Lead != f.sentTo {
		c.finishForward(f, settled(f, *f.byID))
		return
	}
	switch {
	case now.After(f.deadline):
		err := ErrNoLeader
		if f.live {
			err = ErrOutcomeUnknown
		}
		c.finishForward(f, replyOf(err))
	case !f.sent && !f.live && f.addr == "" && c.isLeader():
		// We lead now and no leader has it: take the command ourselves.
		f.fin = true
		delete(c.fwdByID, f.req.ID)
		c.accept(f.req, f.done)
	case !f.sent:
		c.sendForward(f, now)
	case f.addr != "" && now.Sub(f.sentAt) >= c.n.cfg.election():
		c.sendForward(f, now) // joins are idempotent: ask again
	case f.addr == "" && (f.req.Op.once() || f.req.Op == OpStatus) &&
		c.soft.Lead != raft.None && c.soft.Lead != f.sentTo:
		// The leader we asked was lost before it answered, and another leads: ask it now
		// rather than at the deadline. It answers the outcome of a copy that committed,
		// or proposes the command (forward's comment).
		c.n.log.Info("sending a command again to the new group leader", "id", f.req.ID,
			"op", f.req.Op, "was", f.sentTo, "leader", c.soft.Lead)
		f.req.Resent = true
		c.counters.Resent++
		c.sendForward(f, now)
	}
}

// settled is the answer to a forward whose command applied, r being the leader's reply or
// this node's own apply's. A Partial reply (a copy's outcome, recorded by status only)
// gives way to this node's record of the application; without one, a result that had
// notices or aborts is reported unknown rather than incomplete.
func settled(f *forward, r Reply) Reply {
	if !r.Partial {
		return r
	}
	if b := f.byID; b != nil && !b.Partial {
		return *b
	}
	return replyOf(errorf("command %v applied but its result is lost: %w", f.req.ID, ErrOutcomeUnknown))
}

// finishForward answers a forward's caller.
func (c *core) finishForward(f *forward, r Reply) {
	if f.fin {
		return
	}
	f.fin = true
	delete(c.fwdByID, f.req.ID)
	r.ID = f.req.ID
	f.done(r)
}

// Validation is what Revalidate established: at the time of the call, Leader led the
// group in Term, and this node had applied every entry up to Index, including Leader's
// incarnation decision; Incarnation is the group incarnation.
type Validation struct {
	Leader      uint64
	Term        uint64
	Index       uint64
	Incarnation uint64
}

// readReq is one Revalidate: a raft ReadIndex, then waiting to apply up to it.
type readReq struct {
	id         EntryID
	rctx       []byte
	done       func(Validation, error)
	deadline   time.Time
	issuedLead uint64
	issuedAt   time.Time
	index      uint64
	got, fin   bool
}

// revalidate starts a ReadIndex barrier.
func (c *core) revalidate(id EntryID, done func(Validation, error), deadline time.Time) {
	c.readSeq++
	r := &readReq{id: id, done: done, deadline: deadline,
		rctx: binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, c.boot), c.readSeq)}
	c.reads = append(c.reads, r)
	c.issueRead(r, c.n.loop.Now())
}

func (c *core) issueRead(r *readReq, now time.Time) {
	if c.soft.Lead == raft.None {
		return
	}
	c.rn.ReadIndex(r.rctx)
	r.issuedLead, r.issuedAt = c.soft.Lead, now
}

// readState records raft's answer to a ReadIndex.
func (c *core) readState(rs raft.ReadState) {
	for _, r := range c.reads {
		if !r.fin && !r.got && string(r.rctx) == string(rs.RequestCtx) {
			r.index, r.got = rs.Index, true
		}
	}
}

// sweepReads answers the barriers that are satisfied and reissues lost ones.
func (c *core) sweepReads(now time.Time) {
	for _, r := range c.reads {
		switch {
		case r.fin:
		case r.got && c.applied >= r.index && c.st.decisionTerm == c.term && c.soft.Lead != raft.None:
			r.fin = true
			r.done(Validation{Leader: c.soft.Lead, Term: c.term, Index: r.index,
				Incarnation: c.st.incarnation}, nil)
		case now.After(r.deadline):
			r.fin = true
			r.done(Validation{}, ErrNoLeader)
		case !r.got && c.soft.Lead != raft.None &&
			(r.issuedLead != c.soft.Lead || now.Sub(r.issuedAt) > 2*c.n.cfg.heartbeat()):
			c.issueRead(r, now) // the leader changed or the answer was lost
		}
	}
	c.reads = compact(c.reads, func(r *readReq) bool { return r.fin })
}

// watch waits on the loop for a condition (a join waiting to become a voter).
type watch struct {
	id       EntryID
	cond     func() bool
	done     func(error)
	deadline time.Time
	fin      bool
}

func (c *core) sweepWatches(now time.Time) {
	for _, w := range c.watches {
		switch {
		case w.fin:
		case w.cond():
			w.fin = true
			w.done(nil)
		case !w.deadline.IsZero() && now.After(w.deadline):
			w.fin = true
			w.done(ErrNotReady)
		}
	}
	c.watches = compact(c.watches, func(w *watch) bool { return w.fin })
}

// withdraw abandons the call with ID id after its caller's context ended. It reports
// whether the command may already be in the log (then its outcome is unknown to the
// caller); a command still waiting is dropped and changes nothing.
func (c *core) withdraw(id EntryID) (started bool) {
	// A forward first: this node, leading, may hold the forward's own copy as a proposal.
	if f := c.fwdByID[id]; f != nil {
		if f.live {
			return true
		}
		f.done = func(Reply) {}
		c.finishForward(f, Reply{})
		return false
	}
	if p := c.propByID[id]; p != nil {
		if p.state == propProposed {
			return true
		}
		p.local = nil
		p.req.ReplyAddr = ""
		c.finish(p, Reply{})
		return false
	}
	for _, r := range c.reads {
		if r.id == id && !r.fin {
			r.fin = true
		}
	}
	for _, w := range c.watches {
		if w.id == id && !w.fin {
			w.fin = true
		}
	}
	return false
}
