package iscsi

import (
	"slices"
	"strings"

	"sluice/engine/mem"
	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
	"sluice/engine/scsi"
	"sluice/engine/tcpconn"
)

// ctlSlots bounds a connection's control responses in flight (NOP-In, Text, Logout and
// TMF responses, Rejects). An initiator that sends control requests faster than it
// reads the answers finds its input paused until slots come back, so that TCP pushes
// back instead of the target queueing without bound.
const ctlSlots = 16

// ctlEntries is the send queue entries one control PDU takes (header, data, pad,
// digest).
const ctlEntries = 4

// ctlPDU is one preallocated control response.
type ctlPDU struct {
	c     *conn
	inUse bool
	hdr   [proto.BHSLen + proto.DigestLen]byte
	small [proto.BHSLen + 16]byte // a Reject's copy of the refused header
	big   mem.Buf                 // larger data (ping echo, text), from the slab
	dg    [proto.DigestLen]byte
	// after runs once the PDU has gone (or was dropped): a logout closes then.
	closeAfter bool
}

type ctlQueue struct {
	slots [ctlSlots]ctlPDU
	free  int
}

func (q *ctlQueue) init(c *conn) {
	for i := range q.slots {
		q.slots[i].c = c
	}
	q.free = ctlSlots
}

// get returns a free slot, or nil when every slot is in flight.
func (q *ctlQueue) get() *ctlPDU {
	if q.free == 0 {
		return nil
	}
	for i := range q.slots {
		if p := &q.slots[i]; !p.inUse {
			p.inUse = true
			q.free--
			return p
		}
	}
	return nil
}

// Sent returns the slot once its PDU has gone.
func (p *ctlPDU) Sent() {
	c := p.c
	if !p.big.IsZero() {
		c.pg.mem.Free(p.big)
		p.big = mem.Buf{}
	}
	p.inUse = false
	c.ctlq.free++
	if p.closeAfter {
		p.closeAfter = false
		c.closeAfterSend(c.reason)
	}
	if c.held {
		c.pg.markDirty(c)
	}
}

// dataBuf returns room for n bytes of the PDU's data.
func (p *ctlPDU) dataBuf(n int) []byte {
	if n <= len(p.small) {
		return p.small[:n]
	}
	b, err := p.c.pg.mem.Alloc(n)
	if err != nil {
		return nil
	}
	p.big = b
	return b.Bytes()[:n]
}

// send queues the control PDU whose header is in p.hdr, with data.
func (c *conn) sendCtl(p *ctlPDU, data []byte) {
	hdr := c.sealHeader(p.hdr[:])
	c.pg.markDirty(c)
	if len(data) == 0 {
		c.sq.Push(hdr, p)
		return
	}
	pad := proto.PadLen(uint32(len(data)))
	c.sq.Push(hdr, nil)
	var last tcpconn.Releaser = p
	if pad == 0 && !c.params.DataDigest {
		c.sq.Push(data, last)
		return
	}
	c.sq.Push(data, nil)
	if pad > 0 {
		if !c.params.DataDigest {
			c.sq.Push(zeroPad[:pad], last)
			return
		}
		c.sq.Push(zeroPad[:pad], nil)
	}
	proto.PutDigest(p.dg[:], proto.DataDigest(data))
	c.sq.Push(p.dg[:], last)
}

// sealHeader returns the header bytes to send: the BHS, with its CRC32C digest after
// it once header digests were negotiated.
func (c *conn) sealHeader(h []byte) []byte {
	if !c.params.HeaderDigest || c.state == connLogin {
		return h[:proto.BHSLen]
	}
	proto.PutDigest(h[proto.BHSLen:proto.BHSLen+proto.DigestLen], proto.HeaderDigest((*proto.BHS)(h[:proto.BHSLen]), nil))
	return h[:proto.BHSLen+proto.DigestLen]
}

// nextStatSN returns the StatSN for a response and advances it.
func (c *conn) nextStatSN() uint32 {
	n := c.statSN
	c.statSN++
	return n
}

// window returns ExpCmdSN and MaxCmdSN for a response.
func (c *conn) window() (uint32, uint32) {
	if c.sess == nil {
		return c.loginExp, c.loginExp
	}
	return c.sess.expCmdSN, c.sess.maxCmdSN()
}

// reject answers the PDU in c.hdr with a Reject carrying its header (RFC 7143 §11.17).
// Without a free slot the Reject is skipped: the connection is ending or already
// rejecting faster than the initiator reads.
func (c *conn) reject(reason proto.RejectReason) {
	c.pg.t.counters.rejects.Add(1)
	p := c.ctlq.get()
	if p == nil {
		return
	}
	data := p.small[:proto.BHSLen]
	copy(data, c.hdr[:proto.BHSLen])
	exp, max := c.window()
	r := proto.Reject{Reason: reason, DataSegmentLength: proto.BHSLen, StatSN: c.nextStatSN(),
		ExpCmdSN: exp, MaxCmdSN: max, DataSN: 0}
	r.Put((*proto.BHS)(p.hdr[:proto.BHSLen]))
	c.sendCtl(p, data)
}

// needsCtl reports whether a PDU of this opcode is answered with a control PDU.
func needsCtl(op proto.Opcode) bool {
	switch op {
	case proto.OpNOPOut, proto.OpTextRequest, proto.OpLogoutRequest, proto.OpTMFRequest,
		proto.OpSNACKRequest, proto.OpLoginRequest:
		return true
	}
	return false
}

// handleNOPOut answers a ping, or takes the answer to the target's own ping.
func (c *conn) handleNOPOut(data []byte) {
	n, _ := proto.DecodeNOPOut(c.bhs())
	if n.TTT != noTag {
		// The initiator's answer to a target ping.
		if n.TTT == c.pingTTT {
			c.pingTTT = 0
		}
		return
	}
	if !n.Immediate && !c.sess.acceptCmdSN(n.CmdSN, false) {
		c.pg.t.counters.cmdSNDropped.Add(1)
		return
	}
	if !n.Immediate {
		// A NOP-Out takes a CmdSN but no task: its window slot is free at once.
		c.sess.answered()
	}
	if n.ITT == noTag {
		// No answer wanted (RFC 7143 §11.18.2).
		return
	}
	p := c.ctlq.get()
	// The echo obeys the initiator's receive limit (RFC 7143 §11.19.3, §13.12): a
	// ping longer than what it may receive is echoed in part.
	data = data[:min(uint32(len(data)), c.params.MaxXmitDataSegmentLength)]
	out := p.dataBuf(len(data))
	if out == nil {
		out = p.small[:0] // no memory for the echo: answer without the data
	}
	copy(out, data)
	exp, max := c.window()
	r := proto.NOPIn{DataSegmentLength: uint32(len(out)), LUN: n.LUN, ITT: n.ITT, TTT: noTag,
		StatSN: c.nextStatSN(), ExpCmdSN: exp, MaxCmdSN: max}
	r.Put((*proto.BHS)(p.hdr[:proto.BHSLen]))
	c.sendCtl(p, out)
}

// checkPing pings an initiator that has been quiet for the NOP-In interval and drops
// one that leaves a ping unanswered for the NOP timeout (SPDK's nop_in_interval and
// nop_timeout): a dead host's connection must not hold its tasks and reservations.
func (c *conn) checkPing(now int64) {
	o := c.pg.t.options()
	if c.pingTTT != 0 {
		if now-c.pingNs > o.nopTimeout() {
			c.pg.t.counters.nopTimeouts.Add(1)
			c.beginClose("no answer to NOP-In")
		}
		return
	}
	if now-c.lastRecv < o.nopInterval() {
		return
	}
	p := c.ctlq.get()
	if p == nil {
		return
	}
	c.pingTTT, c.pingNs = c.newTTT(), now
	exp, max := c.window()
	// A target ping carries the next StatSN without advancing it (RFC 7143 §11.19).
	r := proto.NOPIn{ITT: noTag, TTT: c.pingTTT, StatSN: c.statSN, ExpCmdSN: exp, MaxCmdSN: max}
	r.Put((*proto.BHS)(p.hdr[:proto.BHSLen]))
	c.sendCtl(p, nil)
}

// handleText answers a Text Request: SendTargets, or keys negotiable in full feature
// phase. A long answer goes in pieces the initiator fetches with the TTT (§11.11).
func (c *conn) handleText(data []byte) {
	r, _ := proto.DecodeTextRequest(c.bhs())
	if !r.Immediate && !c.sess.acceptCmdSN(r.CmdSN, false) {
		c.pg.t.counters.cmdSNDropped.Add(1)
		return
	}
	if !r.Immediate {
		c.sess.answered()
	}
	if r.TTT != noTag {
		// A continuation: the initiator asks for the next piece of our answer, or
		// (TTT of a stale sequence) starts over.
		if r.TTT != c.textTTT || len(c.textPending) == 0 {
			c.textPending, c.textTTT = nil, 0
			c.reject(proto.RejectInvalidPDUField)
			return
		}
		c.sendTextPiece(r)
		return
	}
	c.textPending, c.textTTT = nil, 0
	block, complete, err := c.textAsm.Add(data, r.Continue)
	if err != nil {
		c.reject(proto.RejectProtocolError)
		return
	}
	if !complete {
		// §11.10.2: each piece of a C-bit sequence gets an empty response.
		c.textTTT = c.newTTT()
		c.textPending = []byte{}
		c.sendTextResponse(r, nil, false, true)
		return
	}
	kvs, err := proto.ParseText(block)
	if err != nil {
		c.reject(proto.RejectProtocolError)
		return
	}
	var out []byte
	if v, ok := proto.LookupKey(kvs, "SendTargets"); ok {
		out = c.sendTargets(v, out)
	}
	if c.sess.node != nil || len(kvs) > 1 {
		neg := proto.NewNegotiator(c.cfg, c.sess.id.SessionType, &c.params)
		var rest []proto.KeyValue
		for _, kv := range kvs {
			if kv.Key != "SendTargets" {
				rest = append(rest, kv)
			}
		}
		if out, err = neg.NegotiateText(rest, out); err != nil {
			c.reject(proto.RejectProtocolError)
			return
		}
		np := neg.Params()
		// Only what full feature phase may change takes effect: the initiator's
		// receive limit, which bounds what the target sends.
		c.params.MaxXmitDataSegmentLength = np.MaxXmitDataSegmentLength
	}
	c.textPending = out
	c.sendTextPiece(r)
}

// sendTextPiece sends the next piece of the pending answer.
func (c *conn) sendTextPiece(r proto.TextRequest) {
	max := int(min(c.params.MaxXmitDataSegmentLength, proto.DefaultMaxRecvDataSegmentLength))
	seg, rest := proto.SplitText(c.textPending, max)
	more := len(rest) > 0
	c.textPending = rest
	if more {
		if c.textTTT == 0 {
			c.textTTT = c.newTTT()
		}
	} else {
		c.textTTT = 0
	}
	c.sendTextResponse(r, seg, !more, more)
}

func (c *conn) sendTextResponse(r proto.TextRequest, seg []byte, final, more bool) {
	p := c.ctlq.get()
	out := p.dataBuf(len(seg))
	if out == nil {
		c.beginClose("no memory for a text response")
		return
	}
	copy(out, seg)
	exp, max := c.window()
	ttt := noTag
	if more {
		ttt = c.textTTT
	}
	// C=1 says the text goes on in the next response (SplitText cut it); an empty
	// answer to the initiator's own C=1 piece has neither F nor C.
	resp := proto.TextResponse{Final: final, Continue: more && len(seg) > 0, DataSegmentLength: uint32(len(out)),
		LUN: r.LUN, ITT: r.ITT, TTT: ttt, StatSN: c.nextStatSN(), ExpCmdSN: exp, MaxCmdSN: max}
	resp.Put((*proto.BHS)(p.hdr[:proto.BHSLen]))
	c.sendCtl(p, out)
}

// handleLogout ends the connection or the session once their tasks have finished
// (RFC 7143 §11.14): the Logout Response goes last, then the connection closes.
func (c *conn) handleLogout() {
	r, _ := proto.DecodeLogoutRequest(c.bhs())
	if !r.Immediate && !c.sess.acceptCmdSN(r.CmdSN, false) {
		c.pg.t.counters.cmdSNDropped.Add(1)
		return
	}
	if !r.Immediate {
		c.sess.answered()
	}
	code := proto.LogoutSuccess
	var target *conn
	switch r.Reason {
	case proto.LogoutCloseSession:
		target = c
	case proto.LogoutCloseConnection, proto.LogoutRemoveForRecover:
		for _, x := range c.sess.conns {
			if x.cid == r.CID {
				target = x
			}
		}
		if target == nil {
			code = proto.LogoutCIDNotFound
		} else if r.Reason == proto.LogoutRemoveForRecover {
			// ErrorRecoveryLevel 0 has no connection recovery (§11.15.1).
			code, target = proto.LogoutRecoveryNotSupported, nil
		}
	default:
		c.reject(proto.RejectProtocolError)
		return
	}
	c.logout = &logoutWait{p: c.ctlq.get(), itt: r.ITT, code: code, session: r.Reason == proto.LogoutCloseSession, target: target}
	// No new commands on this connection; the answer waits for what runs.
	if target == c || r.Reason == proto.LogoutCloseSession {
		c.state = connLoggingOut
	}
	if r.Reason == proto.LogoutCloseSession {
		c.sess.closing = true
		for _, x := range c.sess.conns {
			if x != c {
				x.beginClose("session logged out")
			}
		}
	} else if target != nil && target != c {
		target.beginClose("connection logged out")
	}
	c.maybeAnswerLogout()
}

// logoutWait is a Logout Request waiting for the connection's tasks to finish.
type logoutWait struct {
	p       *ctlPDU // the response's slot, taken when the request came
	itt     uint32
	code    proto.LogoutResponseCode
	session bool
	target  *conn
}

// maybeAnswerLogout sends the Logout Response once the connection has no task left.
func (c *conn) maybeAnswerLogout() {
	w := c.logout
	if w == nil || c.liveTasks() > 0 {
		return
	}
	c.logout = nil
	p := w.p
	exp, max := c.window()
	o := c.pg.t.options()
	resp := proto.LogoutResponse{Response: w.code, ITT: w.itt, StatSN: c.nextStatSN(), ExpCmdSN: exp,
		MaxCmdSN: max, Time2Wait: uint16(o.DefaultTime2Wait), Time2Retain: uint16(o.DefaultTime2Retain)}
	resp.Put((*proto.BHS)(p.hdr[:proto.BHSLen]))
	if s := c.sess; s.ss != nil && (w.session || w.target == c && len(s.conns) == 1) {
		// The I_T nexus ends before the initiator hears the session is gone: a
		// SCSI-2 reservation it held is released before any command it sends next
		// (on a new session) can meet it.
		s.ss.Lost()
	}
	if w.target == c {
		p.closeAfter = true
		c.reason = "logged out"
		c.loggedOut = true
	}
	c.sendCtl(p, nil)
	if w.target != c && c.state == connLoggingOut {
		c.state = connFull
	}
}

// liveTasks counts the tasks of the connection not yet answered.
func (c *conn) liveTasks() int {
	n := 0
	for i := range c.tasks {
		tk := &c.tasks[i]
		if tk.phase == taskReceiving && !tk.abandon || tk.phase == taskExecuting {
			n++
		}
	}
	return n
}

// tmfWait is a task management function waiting for the tasks it ended.
type tmfWait struct {
	c        *conn
	p        *ctlPDU // the response's slot, taken when the request came
	answered bool
	itt      uint32
	lun      [8]byte
	waiting  int
	resets   int // LU resets still running
	code     proto.TMFResponseCode
	cold     bool
}

func (w *tmfWait) taskEnded() {
	w.waiting--
	w.maybeAnswer()
}

func (w *tmfWait) maybeAnswer() {
	if w.waiting > 0 || w.resets > 0 || w.answered {
		return
	}
	w.answered = true
	c, p := w.c, w.p
	if !c.serving() {
		// The connection is closing: the slot comes back with the queue.
		p.inUse = false
		c.ctlq.free++
		return
	}
	exp, max := c.window()
	r := proto.TMFResponse{Response: w.code, ITT: w.itt, StatSN: c.nextStatSN(), ExpCmdSN: exp, MaxCmdSN: max}
	r.Put((*proto.BHS)(p.hdr[:proto.BHSLen]))
	c.sendCtl(p, nil)
	if w.cold {
		// TARGET COLD RESET: after the response, the target drops its connections
		// (RFC 7143 §11.5.1).
		p.closeAfter = true
		c.reason = "target cold reset"
		c.sess.t.closeNodeSessions(c.sess.node, c.sess, "target cold reset")
	}
}

// handleTMF performs a task management function (RFC 7143 §11.5, SAM-5 §7): ABORT
// TASK, ABORT TASK SET, LOGICAL UNIT RESET and TARGET WARM/COLD RESET. CLEAR TASK
// SET, CLEAR ACA and TASK REASSIGN are answered "not supported", as SPDK does: the LU
// keeps no ACA and ErrorRecoveryLevel 0 has no reassignment.
func (c *conn) handleTMF() {
	r, _ := proto.DecodeTMFRequest(c.bhs())
	s := c.sess
	if s.node == nil {
		c.reject(proto.RejectProtocolError)
		c.closeAfterSend("task management on a discovery session")
		return
	}
	if !r.Immediate && !s.acceptCmdSN(r.CmdSN, false) {
		c.pg.t.counters.cmdSNDropped.Add(1)
		return
	}
	if !r.Immediate {
		s.answered()
	}
	w := &tmfWait{c: c, p: c.ctlq.get(), itt: r.ITT, lun: r.LUN, code: proto.TMFComplete}
	l := s.lookupLU(r.LUN)
	switch r.Function {
	case proto.TMFAbortTask:
		if l == nil {
			w.code = proto.TMFLUNNotExist
			break
		}
		tk := c.findAbortable(r.ReferencedTaskTag)
		if tk == nil {
			// Already answered, or never received: RFC 7143 §11.5.1 says
			// "function complete" when the RefCmdSN is in the window and the task was
			// not seen, and "task does not exist" for a finished one. Both tell the
			// initiator the task is gone; libiscsi accepts either.
			if proto.SNLess(r.RefCmdSN, s.expCmdSN) {
				w.code = proto.TMFTaskNotExist
			}
			break
		}
		c.abortTask(tk, w)
	case proto.TMFAbortTaskSet:
		if l == nil {
			w.code = proto.TMFLUNNotExist
			break
		}
		c.abortLUNTasks(l, w)
	case proto.TMFLogicalUnitReset:
		if l == nil {
			w.code = proto.TMFLUNNotExist
			break
		}
		lun, _ := pscsi.DecodeLUN(r.LUN)
		c.resetLUN(l, lun, w)
	case proto.TMFTargetWarmReset, proto.TMFTargetColdReset:
		for _, lun := range s.node.luns.LUNs() {
			if lu := s.node.luns.Lookup(lun); lu != nil {
				c.resetLUN(lu, lun, w)
			}
		}
		w.cold = r.Function == proto.TMFTargetColdReset
	case proto.TMFClearTaskSet, proto.TMFClearACA, proto.TMFTaskReassign:
		w.code = proto.TMFNotSupported
	default:
		w.code = proto.TMFRejected
	}
	w.maybeAnswer()
}

// findAbortable finds the session's task with the tag, on any of its connections,
// including one whose Data-In and status are still being sent.
func (c *conn) findAbortable(itt uint32) *task {
	for _, x := range c.sess.conns {
		if tk := x.taskByITT(itt); tk != nil {
			return tk
		}
	}
	return nil
}

// abortTask ends one task on behalf of its own nexus: a write still receiving data is
// dropped (later Data-Out for it is rejected, as in SPDK); one in the SCSI layer is
// aborted there and answered by the TMF response alone. One whose status is known and
// whose Data-In is still going out completes: the response waits until the last of it
// has gone, since nothing of a task may follow its TMF Response (RFC 7143 §11.5.1).
func (c *conn) abortTask(tk *task, w *tmfWait) {
	switch tk.phase {
	case taskReceiving:
		tk.finishAbandoned()
	case taskExecuting:
		c.waitForTask(tk, w)
		c.sess.mc.Abort(&tk.st)
	case taskSending:
		c.waitForTask(tk, w)
	}
}

// waitForTask holds the TMF response until the task's slot is freed. A task already
// held by another TMF holds that one; this one then answers without it, which can only
// happen when an initiator sends overlapping TMFs for one task.
func (c *conn) waitForTask(tk *task, w *tmfWait) {
	if tk.tmfWaiting == nil {
		w.waiting++
		tk.tmfWaiting = w
	}
}

// abortLUNTasks aborts every task of the session on the LU.
func (c *conn) abortLUNTasks(l *scsi.LU, w *tmfWait) {
	for _, x := range c.sess.conns {
		for i := range x.tasks {
			tk := &x.tasks[i]
			if tk.lu == l && (tk.phase == taskReceiving && !tk.abandon || tk.phase == taskExecuting || tk.phase == taskSending) {
				x.abortTask(tk, w)
			}
		}
	}
}

// resetLUN performs a LOGICAL UNIT RESET: the session's own tasks on the LU end
// without status, other nexuses' tasks end with TASK ABORTED, and the LU's reset
// (unit attentions, SCSI-2 reservation) runs in the SCSI layer. The response waits for
// all of it.
func (c *conn) resetLUN(l *scsi.LU, lun uint16, w *tmfWait) {
	for _, x := range c.sess.conns {
		for i := range x.tasks {
			tk := &x.tasks[i]
			if tk.lu == l && tk.phase == taskReceiving && !tk.abandon {
				tk.finishAbandoned()
			}
		}
	}
	for _, x := range c.sess.conns {
		for i := range x.tasks {
			tk := &x.tasks[i]
			if tk.lu == l && (tk.phase == taskExecuting || tk.phase == taskSending) {
				c.waitForTask(tk, w)
			}
		}
	}
	w.resets++
	l.Reset(c.pg.r, c.sess.ss.Nexus(lun), func() {
		w.resets--
		w.maybeAnswer()
	})
}

// sendTargets answers a SendTargets key (RFC 7143 Appendix C): each target node the
// initiator may log in to, with the portals of the groups that admit it. A wildcard
// portal (0.0.0.0, ::) is reported as the address this connection reached.
func (c *conn) sendTargets(v string, out []byte) []byte {
	q, err := proto.ParseSendTargets(v)
	if err != nil {
		return proto.AppendKey(out, "SendTargets", proto.ValueReject)
	}
	if q.Session && c.sess.node == nil {
		// An empty value asks for the session's own target; a discovery session has
		// none, so it means all (as SPDK and LIO read it).
		q = proto.SendTargetsQuery{All: true}
	}
	t := c.pg.t
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.nodes))
	for k := range t.nodes {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		n := t.nodes[k]
		switch {
		case q.Session && n != c.sess.node:
			continue
		case q.Target != "" && !strings.EqualFold(q.Target, n.Name):
			continue
		}
		var addrs []byte
		for _, m := range n.Maps {
			ig := t.igroups[m.IGTag]
			pg := t.portals[m.PGTag]
			if ig == nil || pg == nil || !ig.allows(c.sess.id.InitiatorName, c.peer.Addr()) {
				continue
			}
			for _, l := range pg.ls {
				a := l.Addr()
				host := a.Addr()
				if host.IsUnspecified() {
					host = c.local.Addr()
				}
				addrs = proto.AppendTargetAddress(addrs, host.String(), a.Port(), m.PGTag)
			}
		}
		if len(addrs) == 0 {
			continue
		}
		out = proto.AppendKey(out, "TargetName", n.Name)
		out = append(out, addrs...)
	}
	return out
}
