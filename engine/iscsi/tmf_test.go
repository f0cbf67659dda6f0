package iscsi

import (
	"testing"
	"time"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

var lun0 [8]byte

// expectTMF receives the TMF Response for itt and checks its code.
func (in *ini) expectTMF(itt uint32, want proto.TMFResponseCode) {
	in.t.Helper()
	p := in.recvOp(proto.OpTMFResponse)
	r, _ := proto.DecodeTMFResponse(&p.bhs)
	if r.ITT != itt || r.Response != want {
		in.t.Fatalf("TMF Response itt %#x %v, want itt %#x %v", r.ITT, r.Response, itt, want)
	}
}

// TestAbortTaskAwaitingData: ABORT TASK on a write that waits for the data its R2T
// asked for ends it at once: Function Complete, no SCSI Response for the write, its
// window slot back, its late Data-Out rejected (the connection goes on), nothing
// written. Aborting a task that is not there answers per RFC 7143 §11.5.1.
func TestAbortTaskAwaitingData(t *testing.T) {
	e := newEnv(t, envOpts{queueDepth: 4})
	in := connect(t, e.addr, loginOpts{})
	d := pattern(8192, 61)
	s := cmdSpec{cdb: write16(40, 16), write: true, edtl: 8192, out: d, noImmediate: true}
	itt, cmdSN := in.startCmd(&s)
	p := in.recvOp(proto.OpR2T)
	r2t, _ := proto.DecodeR2T(&p.bhs)
	if r2t.MaxCmdSN != in.cmdSN+2 {
		t.Fatalf("R2T MaxCmdSN %#x with one task in a depth-4 window from %#x", r2t.MaxCmdSN, in.cmdSN)
	}
	tmf := in.sendTMF(proto.TMFAbortTask, lun0, itt, cmdSN)
	in.expectTMF(tmf, proto.TMFComplete)
	// The window slot came back.
	in.ping(nil)
	if in.maxCmdSN != in.expCmdSN+3 {
		t.Fatalf("window [%#x, %#x] after the abort, want 4 slots", in.expCmdSN, in.maxCmdSN)
	}
	// Its data arrives late: rejected, dropped.
	do := proto.DataOut{Final: true, DataSegmentLength: 8192, LUN: r2t.LUN, ITT: itt, TTT: r2t.TTT, ExpStatSN: in.expStatSN}
	var b proto.BHS
	do.Put(&b)
	in.sendPDU(&b, d)
	in.expectReject(proto.RejectInvalidPDUField, proto.OpDataOut)
	in.ping([]byte("no SCSI Response for the aborted write"))
	in.readBack(40, make([]byte, 8192), "aborted write")

	// A task already answered (RefCmdSN below ExpCmdSN): task does not exist.
	in.expectTMF(in.sendTMF(proto.TMFAbortTask, lun0, itt, cmdSN), proto.TMFTaskNotExist)
	// A LUN with no LU.
	in.expectTMF(in.sendTMF(proto.TMFAbortTask, [8]byte{0, 5}, 12345, in.cmdSN), proto.TMFLUNNotExist)
}

// TestLUNResetWaitsForWrites: LOGICAL UNIT RESET with writes inside a slow bdev is
// answered only once those writes have finished (none is left executing), the writes
// get no SCSI Response after it (their own nexus reset them), and the next command
// meets the reset's unit attention (29h/00h).
func TestLUNResetWaitsForWrites(t *testing.T) {
	const delay = 400 * time.Millisecond
	e := newEnv(t, envOpts{module: "delay", writeDelay: delay})
	in := connect(t, e.addr, loginOpts{})
	d := pattern(4096, 71)
	sent := time.Now()
	writes := map[uint32]bool{}
	for i := range 3 {
		s := cmdSpec{cdb: write16(uint64(300+8*i), 8), write: true, edtl: 4096, out: d}
		itt, _ := in.startCmd(&s)
		writes[itt] = true
	}
	// Let the writes reach the bdev before the reset.
	waitFor(t, 5*time.Second, "three writes executing", func() bool {
		n := 0
		e.tgt.onConns(func(c *conn) { n += c.busyTasks() })
		return n == 3
	})
	tmf := in.sendTMF(proto.TMFLogicalUnitReset, lun0, proto.ReservedTag, 0)
	for {
		p := in.recv()
		if p.op() == proto.OpSCSIResponse && writes[p.bhs.ITT()] {
			// Allowed before the TMF Response (the write completed first), never after.
			delete(writes, p.bhs.ITT())
			continue
		}
		if p.op() != proto.OpTMFResponse {
			t.Fatalf("waiting for the TMF Response: %v", p)
		}
		r, _ := proto.DecodeTMFResponse(&p.bhs)
		if r.ITT != tmf || r.Response != proto.TMFComplete {
			t.Fatalf("TMF Response %+v", r)
		}
		break
	}
	if el := time.Since(sent); el < delay-50*time.Millisecond {
		t.Fatalf("LUN RESET answered %v after the writes, before their %v in the bdev ended", el, delay)
	}
	busy := -1
	e.tgt.onConns(func(c *conn) { busy = c.busyTasks() })
	if busy != 0 {
		t.Fatalf("%d tasks still executing after the LUN RESET response", busy)
	}
	// Nothing more for the reset writes.
	in.expectNothing(200*time.Millisecond, "after the TMF Response")
	r := in.exec(cmdSpec{cdb: tur()})
	if r.status != uint8(pscsi.StatusCheckCondition) || r.sense.Key != pscsi.SenseKeyUnitAttention ||
		r.sense.Code != pscsi.ASCPowerOnResetOrBusDeviceReset {
		t.Fatalf("command after LUN RESET: status %#x sense %v %v, want UNIT ATTENTION 29h/00h",
			r.status, r.sense.Key, r.sense.Code)
	}
	in.exec(cmdSpec{cdb: tur()}).good(t, "second command after LUN RESET")
}
