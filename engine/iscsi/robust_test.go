package iscsi

import (
	"testing"
	"time"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
	"sluice/engine/tcpconn"
)

// TestPeerResetWithOutputQueued: an initiator that resets its connection (closes the
// socket with data unread) while the target still has Data-In queued for it must cost
// the target that connection only. The reset arrives as one epoll event with EPOLLOUT
// and EPOLLERR|EPOLLHUP: conn.OnEvents flushes first, the write fails, beginClose closes
// the connection (socket closed, receive buffer released), and OnEvents then calls
// readSocket on the closed connection, which read fd -1 into a zero-length buffer and
// panicked on the reactor, taking the whole process down (fixed: OnEvents stops once the
// connection is gone).
func TestPeerResetWithOutputQueued(t *testing.T) {
	e := newEnv(t, envOpts{opts: Options{MaxBurstLength: 1 << 20}})
	for round := range 10 {
		in := dialSmallWindow(t, e.addr)
		in.mustLogin(loginOpts{maxRecvDSL: 65536, mbl: 1 << 20})
		// Megabytes of Data-In the initiator never reads: the target's send queue
		// backs up and waits for EPOLLOUT.
		for i := range 16 {
			s := cmdSpec{cdb: read16(uint64(2048*(i%8)), 2048), read: true, edtl: 1 << 20}
			in.startCmd(&s)
		}
		waitFor(t, 5*time.Second, "output queued on the target", func() bool {
			q := false
			e.tgt.onConns(func(c *conn) { q = q || c.sq.Len() > 0 })
			return q
		})
		in.c.SetLinger(0) // close with RST
		in.c.Close()
		// The target lives on and serves others.
		c := connect(t, e.addr, loginOpts{})
		c.ping([]byte{byte(round)})
		c.c.Close()
	}
}

// TestDuplicateITTKeepsWindow: a command with the tag of a task in progress is
// rejected (reason 0x07); an immediate one takes no place in the CmdSN window, so
// rejecting it must not give one back: with a queue depth of 1 and a write in
// progress the window stays closed (MaxCmdSN = ExpCmdSN - 1).
func TestDuplicateITTKeepsWindow(t *testing.T) {
	e := newEnv(t, envOpts{queueDepth: 1})
	in := connect(t, e.addr, loginOpts{})
	d := pattern(4096, 111)
	s := cmdSpec{cdb: write16(900, 8), write: true, edtl: 4096, out: d, noImmediate: true}
	itt, _ := in.startCmd(&s)
	p := in.recvOp(proto.OpR2T)
	r2t, _ := proto.DecodeR2T(&p.bhs)
	if r2t.MaxCmdSN != r2t.ExpCmdSN-1 {
		t.Fatalf("R2T window [%#x, %#x]: want it closed with the only slot taken", r2t.ExpCmdSN, r2t.MaxCmdSN)
	}
	// The same ITT again, as an immediate TEST UNIT READY.
	cmd := proto.SCSICommand{Immediate: true, Final: true, Attr: proto.TaskSimple, ITT: itt, CmdSN: in.cmdSN,
		ExpStatSN: in.expStatSN}
	var b proto.BHS
	cmd.Put(&b)
	in.sendPDU(&b, nil)
	p = in.recvOp(proto.OpReject)
	rj, _ := proto.DecodeReject(&p.bhs)
	if rj.Reason != proto.RejectTaskInProgress {
		t.Fatalf("Reject reason %v, want task in progress", rj.Reason)
	}
	if rj.MaxCmdSN != rj.ExpCmdSN-1 {
		t.Fatalf("window [%#x, %#x] after rejecting an immediate duplicate: it opened while the write "+
			"still holds the only slot", rj.ExpCmdSN, rj.MaxCmdSN)
	}
	in.dataOut(itt, r2t.TTT, r2t.LUN, d, 0, 4096)
	p = in.recvOp(proto.OpSCSIResponse)
	if rsp, _ := proto.DecodeSCSIResponse(&p.bhs); rsp.ITT != itt || rsp.Status != 0 {
		t.Fatalf("write: %+v", rsp)
	}
}

// TestMultiConnectionSession: a second connection joins a session (TSIH, new CID),
// moving to the session's reactor when it arrived on the other one; both carry
// commands in one CmdSN space; a third is refused (0206, MaxConnections 2); logging
// out one connection leaves the other serving. A join that arrives on the other reactor
// was once migrated twice (OnEvents, then the poll group's flush queue), leaving a
// connection nobody read or panicking a reactor; the old reactor now forgets it at once.
func TestMultiConnectionSession(t *testing.T) {
	e := newEnv(t, envOpts{opts: Options{MaxConnectionsPerSession: 2}})
	a := connect(t, e.addr, loginOpts{maxConns: 4})
	a.timeout = 3 * time.Second
	if a.p.keys["MaxConnections"] != "2" {
		t.Fatalf("MaxConnections=%q negotiated, want 2", a.p.keys["MaxConnections"])
	}
	for round := range 2 {
		if round == 1 {
			// Shift the listener's round robin: this time the join lands on the
			// session's own reactor (the first round it moved from the other one).
			dial(t, e.addr).c.Close()
		}
		b := dial(t, e.addr)
		b.isid = a.isid
		b.mustLogin(loginOpts{tsih: a.tsih, cid: 1, cmdSN: a.cmdSN})
		b.timeout = 3 * time.Second
		if b.tsih != a.tsih {
			t.Fatalf("joined TSIH %d, want %d", b.tsih, a.tsih)
		}
		b.sendNOP(b.nextITT(), true, []byte("joined"))
		if p, err := b.tryRecv(3 * time.Second); err != nil || p.op() != proto.OpNOPIn {
			t.Fatalf("round %d: the joined connection does not answer a ping (%v, %v); target's view: %+v",
				round, p, err, e.tgt.Connections())
		}
		c := dial(t, e.addr)
		c.isid = a.isid
		if st := c.login(loginOpts{tsih: a.tsih, cid: 2, cmdSN: a.cmdSN}); st != proto.StatusTooManyConnections {
			t.Fatalf("third connection: status %v, want 0206", st)
		}
		// One CmdSN space: alternate the connections.
		d := pattern(4096, uint32(round))
		for i := range 4 {
			x := a
			if i%2 == 1 {
				x = b
			}
			x.cmdSN = max(a.cmdSN, b.cmdSN)
			x.writeBlocks(uint64(1000+8*i), d).good(t, "write")
			x.readBack(uint64(1000+8*i), d, "read")
		}
		var reactors []int
		for _, ci := range e.tgt.Connections() {
			reactors = append(reactors, ci.Reactor)
		}
		if len(reactors) != 2 || reactors[0] != reactors[1] {
			t.Fatalf("session connections on reactors %v, want both on the session's", reactors)
		}
		// Log out b alone.
		b.cmdSN = max(a.cmdSN, b.cmdSN)
		itt := b.nextITT()
		r := proto.LogoutRequest{Immediate: true, Reason: proto.LogoutCloseConnection, ITT: itt, CID: 1,
			CmdSN: b.cmdSN, ExpStatSN: b.expStatSN}
		var bh proto.BHS
		r.Put(&bh)
		b.sendPDU(&bh, nil)
		p := b.recvOp(proto.OpLogoutResponse)
		if rsp, _ := proto.DecodeLogoutResponse(&p.bhs); rsp.Response != proto.LogoutSuccess {
			t.Fatalf("logout of CID 1: %v", rsp.Response)
		}
		b.expectEOF("after logging out its connection")
		a.cmdSN = max(a.cmdSN, b.cmdSN)
		a.ping([]byte("the session goes on"))
		e.waitConns(1)
	}
}

// TestTextRenegotiatesMaxRecvDSL: in full feature phase a Text Request may declare a
// new MaxRecvDataSegmentLength; the target's Data-In then keeps to it.
func TestTextRenegotiatesMaxRecvDSL(t *testing.T) {
	e := newEnv(t, envOpts{})
	in := connect(t, e.addr, loginOpts{maxRecvDSL: 65536})
	in.text(proto.AppendKey(nil, "MaxRecvDataSegmentLength", "4096"))
	in.p.maxRecvDSL = 4096
	back := make([]byte, 32768)
	in.readBlocks(0, back).good(t, "read")
	if len(in.dins) != 8 {
		t.Fatalf("32 KiB in %d Data-In PDUs after declaring 4096, want 8", len(in.dins))
	}
	for _, d := range in.dins {
		if d.DataSegmentLength > 4096 {
			t.Fatalf("Data-In of %d bytes after declaring 4096", d.DataSegmentLength)
		}
	}
}

// TestTimeouts: a connection that does not finish its login within the setup timeout,
// and one that does not send the data its R2T asked for within the data timeout, are
// closed.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{opts: Options{Limits: tcpconn.Limits{SetupTimeoutMs: 300, DataTimeoutMs: 300}}})
	idle := dial(t, e.addr)
	in := connect(t, e.addr, loginOpts{})
	s := cmdSpec{cdb: write16(0, 8), write: true, edtl: 4096, out: make([]byte, 4096), noImmediate: true}
	in.startCmd(&s)
	in.recvOp(proto.OpR2T)
	start := time.Now()
	idle.expectEOF("login never started")
	in.expectEOF("R2T never answered")
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("closed after %v, timeouts 300 ms", el)
	}
	st := e.tgt.Stats()
	if st.SetupTimeouts != 1 || st.DataTimeouts != 1 {
		t.Fatalf("stats %+v", st.LimitStats)
	}
}

// TestDeleteTargetNodeEndsSessions: deleting a node ends its sessions (their
// connections close) and returns once they have ended.
func TestDeleteTargetNodeEndsSessions(t *testing.T) {
	e := newEnv(t, envOpts{module: "delay", writeDelay: 200 * time.Millisecond})
	a := connect(t, e.addr, loginOpts{})
	b := connect(t, e.addr, loginOpts{})
	s := cmdSpec{cdb: write16(0, 8), write: true, edtl: 4096, out: make([]byte, 4096)}
	a.startCmd(&s) // in the bdev while the node goes
	done := make(chan error, 1)
	go func() { done <- e.tgt.DeleteTargetNode(testNode) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DeleteTargetNode did not return")
	}
	for _, in := range []*ini{a, b} {
		for {
			p, err := in.tryRecv(5 * time.Second)
			if err != nil {
				if !closedErr(err) {
					t.Fatalf("want the connection closed: %v", err)
				}
				break
			}
			if p.op() != proto.OpSCSIResponse && p.op() != proto.OpAsyncMessage {
				t.Fatalf("got %v while the node went", p)
			}
		}
	}
	if st := e.tgt.Stats(); st.Sessions != 0 || st.Connections != 0 {
		t.Fatalf("after DeleteTargetNode: %d sessions, %d connections", st.Sessions, st.Connections)
	}
	in := dial(t, e.addr)
	if st := in.login(loginOpts{}); st != proto.StatusNotFound {
		t.Fatalf("login to the deleted node: %v", st)
	}
}

// TestMalformedCommands: immediate data on a READ and unsolicited data beyond
// FirstBurstLength are protocol errors: Reject, then the connection closes.
func TestMalformedCommands(t *testing.T) {
	e := newEnv(t, envOpts{opts: Options{InitialR2T: boolp(false), FirstBurstLength: 8192}})
	in := connect(t, e.addr, loginOpts{initR2T: boolp(false), fbl: 8192})
	cmd := proto.SCSICommand{Final: true, Read: true, Attr: proto.TaskSimple, DataSegmentLength: 512,
		ITT: in.nextITT(), ExpectedDataTransferLength: 4096, CmdSN: in.cmdSN, ExpStatSN: in.expStatSN,
		CDB: read16(0, 8)}
	var b proto.BHS
	cmd.Put(&b)
	in.sendPDU(&b, make([]byte, 512))
	in.expectReject(proto.RejectProtocolError, proto.OpSCSICommand)
	in.expectEOF("after immediate data on a READ")

	in = connect(t, e.addr, loginOpts{initR2T: boolp(false), fbl: 8192})
	d := pattern(32768, 5)
	itt := in.nextITT()
	cmd = proto.SCSICommand{Write: true, Attr: proto.TaskSimple, ITT: itt, ExpectedDataTransferLength: 32768,
		CmdSN: in.cmdSN, ExpStatSN: in.expStatSN, CDB: write16(0, 64)}
	cmd.Put(&b)
	in.sendPDU(&b, nil)
	in.dataOut(itt, proto.ReservedTag, lun0, d, 0, 16384) // FirstBurstLength is 8192
	// The target may ask for what lies beyond the first burst before it sees the data.
	for {
		p := in.recv()
		if p.op() == proto.OpR2T {
			continue
		}
		rj, _ := proto.DecodeReject(&p.bhs)
		if p.op() != proto.OpReject || rj.Reason != proto.RejectProtocolError || proto.Opcode(p.data[0]&0x3f) != proto.OpDataOut {
			t.Fatalf("got %v (reason %v), want a Reject of the Data-Out", p, rj.Reason)
		}
		break
	}
	in.expectEOF("after unsolicited data beyond FirstBurstLength")
}

// TestControlPDURejects: PDUs a full feature phase connection at ErrorRecoveryLevel 0
// does not take are rejected and the connection goes on: a SNACK (protocol error), a
// Login Request (protocol error), a Logout with an unknown reason.
func TestControlPDURejects(t *testing.T) {
	e := newEnv(t, envOpts{})
	in := connect(t, e.addr, loginOpts{})
	var b proto.BHS
	(&proto.SNACKRequest{ITT: 1, TTT: proto.ReservedTag, ExpStatSN: in.expStatSN}).Put(&b)
	in.sendPDU(&b, nil)
	in.expectReject(proto.RejectProtocolError, proto.OpSNACKRequest)
	(&proto.LoginRequest{Transit: true, CSG: proto.StageOperational, NSG: proto.StageFullFeature, ISID: in.isid,
		TSIH: in.tsih, ITT: in.nextITT(), CmdSN: in.cmdSN, ExpStatSN: in.expStatSN}).Put(&b)
	in.sendPDU(&b, nil)
	in.expectReject(proto.RejectProtocolError, proto.OpLoginRequest)
	(&proto.LogoutRequest{Immediate: true, Reason: 9, ITT: in.nextITT(), CmdSN: in.cmdSN,
		ExpStatSN: in.expStatSN}).Put(&b)
	in.sendPDU(&b, nil)
	in.expectReject(proto.RejectProtocolError, proto.OpLogoutRequest)
	in.exec(cmdSpec{cdb: tur()}).good(t, "command after the rejects")
}

// TestImmediateSlotsExhausted: immediate commands bypass the CmdSN window, but not the
// task slots: beyond the queue depth and the spare immediate slots, one is rejected
// (reason 0x06, immediate command reject) and the connection goes on.
func TestImmediateSlotsExhausted(t *testing.T) {
	e := newEnv(t, envOpts{queueDepth: 1, module: "delay", writeDelay: 300 * time.Millisecond})
	in := connect(t, e.addr, loginOpts{})
	d := pattern(512, 121)
	slots := 1 + immediateSlots
	itts := map[uint32]bool{}
	for i := range slots {
		s := cmdSpec{cdb: write16(uint64(i), 1), write: true, edtl: 512, out: d, immediate: true}
		itt, _ := in.startCmd(&s)
		itts[itt] = true
	}
	s := cmdSpec{cdb: write16(100, 1), write: true, edtl: 512, out: d, immediate: true}
	in.startCmd(&s)
	in.expectReject(proto.RejectImmediateCommand, proto.OpSCSICommand)
	for range slots {
		p := in.recvOp(proto.OpSCSIResponse)
		if !itts[p.bhs.ITT()] {
			t.Fatalf("response for itt %#x", p.bhs.ITT())
		}
		delete(itts, p.bhs.ITT())
	}
	in.exec(cmdSpec{cdb: tur(), immediate: true}).good(t, "immediate command with slots free again")
}

// TestMaxSessions: a login beyond MaxSessions is refused with 0302 (out of resources);
// once a session ends there is room again.
func TestMaxSessions(t *testing.T) {
	e := newEnv(t, envOpts{opts: Options{MaxSessions: 1}})
	a := connect(t, e.addr, loginOpts{})
	in := dial(t, e.addr)
	if st := in.login(loginOpts{}); st != proto.StatusOutOfResources {
		t.Fatalf("second session: status %v, want 0302", st)
	}
	a.logoutOK()
	waitFor(t, 5*time.Second, "the session ended", func() bool { return e.tgt.Stats().Sessions == 0 })
	connect(t, e.addr, loginOpts{}).ping(nil)
}

// TestTargetColdReset: TARGET COLD RESET is answered, then the target drops every
// connection of the node, the requester's included (RFC 7143 §11.5.1).
func TestTargetColdReset(t *testing.T) {
	e := newEnv(t, envOpts{})
	a := connect(t, e.addr, loginOpts{})
	b := connect(t, e.addr, loginOpts{})
	a.expectTMF(a.sendTMF(proto.TMFTargetColdReset, lun0, proto.ReservedTag, 0), proto.TMFComplete)
	a.expectEOF("requester after TARGET COLD RESET")
	b.expectEOF("other session after TARGET COLD RESET")
	waitFor(t, 5*time.Second, "no session left", func() bool { return e.tgt.Stats().Sessions == 0 })
}

// TestSendTargetsContinuation: a SendTargets answer longer than the initiator's
// MaxRecvDataSegmentLength comes in pieces (C bit, a TTT the initiator continues with),
// none longer than the limit, that join into every node.
func TestSendTargetsContinuation(t *testing.T) {
	e := newEnv(t, envOpts{})
	const nodes = 12
	for i := range nodes {
		name := "node" + string(rune('a'+i))
		mustMalloc(t, e, "m"+name)
		if err := e.tgt.CreateTargetNode(NodeParams{Name: name, LUNs: []LUNInfo{{BdevName: "m" + name}},
			PGIGMaps: []PGIGMap{{PGTag: testTPGT, IGTag: testIG}}}); err != nil {
			t.Fatal(err)
		}
	}
	in := dial(t, e.addr)
	in.mustLogin(loginOpts{discovery: true, maxRecvDSL: 512})
	itt := in.nextITT()
	kv := proto.AppendKey(nil, "SendTargets", "All")
	ttt := proto.ReservedTag
	var all []byte
	pieces := 0
	for {
		r := proto.TextRequest{Immediate: true, Final: true, DataSegmentLength: uint32(len(kv)), ITT: itt,
			TTT: ttt, CmdSN: in.cmdSN, ExpStatSN: in.expStatSN}
		var b proto.BHS
		r.Put(&b)
		in.sendPDU(&b, kv)
		p := in.recvOp(proto.OpTextResponse)
		resp, _ := proto.DecodeTextResponse(&p.bhs)
		if len(p.data) > 512 {
			t.Fatalf("Text Response of %d bytes, the initiator declared 512", len(p.data))
		}
		pieces++
		all = append(all, p.data...)
		if resp.Final {
			if resp.Continue || resp.TTT != proto.ReservedTag {
				t.Fatalf("final piece C=%v TTT %#x", resp.Continue, resp.TTT)
			}
			break
		}
		if !resp.Continue || resp.TTT == proto.ReservedTag {
			t.Fatalf("non-final piece C=%v TTT %#x", resp.Continue, resp.TTT)
		}
		kv, ttt = nil, resp.TTT
	}
	kvs := splitText(t, all)
	names := 0
	for _, x := range kvs {
		if x.Key == "TargetName" {
			names++
		}
	}
	if names != nodes+1 || pieces < 2 {
		t.Fatalf("%d targets in %d pieces, want %d in several", names, pieces, nodes+1)
	}
}

// TestReinstatementNewNexus: a session reinstated while the old one still has a write
// in the bdev gets an I_T nexus of its own. The old session's nexus ends (Lost) only
// when its write completes; the new session must not be bound to it meanwhile, or,
// once the old one is gone, the LU no longer lists the nexus the new session uses and
// a LOGICAL UNIT RESET from another session raises no unit attention for it (SAM-5:
// every I_T nexus of the LU gets one). The new nexus also starts with a unit attention
// of its own, as every new nexus does.
func TestReinstatementNewNexus(t *testing.T) {
	const delay = 400 * time.Millisecond
	e := newEnv(t, envOpts{module: "delay", writeDelay: delay})
	old := connect(t, e.addr, loginOpts{})
	s := cmdSpec{cdb: write16(0, 8), write: true, edtl: 4096, out: make([]byte, 4096)}
	old.startCmd(&s) // holds the old session for the delay
	waitFor(t, 5*time.Second, "the write executing", func() bool {
		n := 0
		e.tgt.onConns(func(c *conn) { n += c.busyTasks() })
		return n == 1
	})
	in := dial(t, e.addr)
	in.isid = old.isid
	in.mustLogin(loginOpts{})
	r := in.exec(cmdSpec{cdb: tur()})
	if r.status == 0 {
		t.Errorf("first command of the reinstated session: GOOD, no unit attention: it uses the old session's nexus")
	}
	in.clearUA()
	// The old session ends once its write is done.
	for {
		p, err := old.tryRecv(5 * time.Second)
		if err != nil {
			break
		}
		if p.op() != proto.OpSCSIResponse {
			t.Fatalf("old session: %v", p)
		}
	}
	waitFor(t, 5*time.Second, "the old session gone", func() bool { return e.tgt.Stats().Sessions == 1 })
	other := connect(t, e.addr, loginOpts{})
	other.expectTMF(other.sendTMF(proto.TMFLogicalUnitReset, lun0, proto.ReservedTag, 0), proto.TMFComplete)
	r = in.exec(cmdSpec{cdb: tur()})
	if r.status != uint8(pscsi.StatusCheckCondition) || r.sense.Key != pscsi.SenseKeyUnitAttention {
		t.Fatalf("reinstated session after another's LUN RESET: status %#x sense %v %v, want UNIT ATTENTION",
			r.status, r.sense.Key, r.sense.Code)
	}
}
