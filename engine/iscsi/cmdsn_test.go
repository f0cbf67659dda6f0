package iscsi

import (
	"testing"
	"time"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// sendTURAt sends a TEST UNIT READY with an explicit CmdSN (in.cmdSN is left alone)
// and returns its ITT.
func (in *ini) sendTURAt(cmdSN uint32) uint32 {
	in.t.Helper()
	itt := in.nextITT()
	cmd := proto.SCSICommand{Final: true, Attr: proto.TaskSimple, ITT: itt, CmdSN: cmdSN, ExpStatSN: in.expStatSN}
	var b proto.BHS
	cmd.Put(&b)
	in.sendPDU(&b, nil)
	return itt
}

// TestCmdSNWindow: the window the login opens is the node's queue depth; a command
// outside [ExpCmdSN, MaxCmdSN] (above it, or already used) is dropped without a word
// while the connection goes on; with the queue full the window is closed (MaxCmdSN =
// ExpCmdSN - 1) and a command sent anyway is dropped; each completion opens it by one.
// The CmdSNs wrap through 2^32 on the way (serial arithmetic, RFC 1982).
func TestCmdSNWindow(t *testing.T) {
	const depth = 4
	e := newEnv(t, envOpts{queueDepth: depth, module: "delay", writeDelay: 300 * time.Millisecond})
	in := dial(t, e.addr)
	c0 := uint32(0xfffffffe)
	in.mustLogin(loginOpts{cmdSN: c0})
	if in.expCmdSN != c0 || in.maxCmdSN != c0+(depth-1) {
		t.Fatalf("login window [%#x, %#x], want [%#x, %#x]", in.expCmdSN, in.maxCmdSN, c0, c0+(depth-1))
	}
	in.clearUA()
	exp := in.cmdSN
	if in.expCmdSN != exp || in.maxCmdSN != exp+depth-1 {
		t.Fatalf("window [%#x, %#x] after %d commands, want [%#x, %#x]", in.expCmdSN, in.maxCmdSN,
			exp-c0, exp, exp+depth-1)
	}

	// Above MaxCmdSN, and below ExpCmdSN: dropped, nothing answered.
	in.sendTURAt(in.maxCmdSN + 1)
	in.sendTURAt(exp - 1)
	in.expectNothing(300*time.Millisecond, "commands outside the window")
	in.ping([]byte("after the dropped commands"))
	if n := e.tgt.Stats().CmdSNDropped; n != 2 {
		t.Fatalf("%d commands counted as dropped, want 2", n)
	}
	// The window did not move: the next in-window command runs.
	in.exec(cmdSpec{cdb: tur()}).good(t, "TEST UNIT READY at ExpCmdSN")

	// Fill the queue with slow writes: the window closes.
	data := pattern(4096, 7)
	var itts []uint32
	for i := range depth {
		s := cmdSpec{cdb: write16(uint64(8*i), 8), write: true, edtl: 4096, out: data}
		itt, _ := in.startCmd(&s)
		itts = append(itts, itt)
	}
	full := in.cmdSN
	// Sent anyway at the first CmdSN past the closed window: dropped.
	in.sendTURAt(full)
	in.expectNothing(100*time.Millisecond, "a command into a closed window")
	for k := range depth {
		p := in.recvOp(proto.OpSCSIResponse)
		r, _ := proto.DecodeSCSIResponse(&p.bhs)
		if r.ITT != itts[k] || r.Status != uint8(pscsi.StatusGood) {
			t.Fatalf("response %d: itt %#x status %#x, want itt %#x GOOD", k, r.ITT, r.Status, itts[k])
		}
		// Each completion frees one slot: MaxCmdSN = ExpCmdSN - 1 + completed.
		if r.ExpCmdSN != full || r.MaxCmdSN != full+uint32(k) {
			t.Fatalf("response %d: window [%#x, %#x], want [%#x, %#x]", k, r.ExpCmdSN, r.MaxCmdSN, full, full+uint32(k))
		}
	}
	if n := e.tgt.Stats().CmdSNDropped; n != 3 {
		t.Fatalf("%d commands counted as dropped, want 3", n)
	}
	// The dropped command's CmdSN is free: sent again, it runs.
	in.exec(cmdSpec{cdb: tur()}).good(t, "TEST UNIT READY at the reopened window")
	if in.expCmdSN != full+1 || in.maxCmdSN != full+depth {
		t.Fatalf("final window [%#x, %#x], want [%#x, %#x]", in.expCmdSN, in.maxCmdSN, full+1, full+depth)
	}
}

// TestImmediateCommandsBypassWindow: immediate commands run whatever their CmdSN and
// do not move the window.
func TestImmediateCommandsBypassWindow(t *testing.T) {
	e := newEnv(t, envOpts{queueDepth: 2})
	in := connect(t, e.addr, loginOpts{})
	exp, max := in.expCmdSN, in.maxCmdSN
	for range 5 {
		r := in.exec(cmdSpec{cdb: tur(), immediate: true})
		r.good(t, "immediate TEST UNIT READY")
		if r.expCmdSN != exp || r.maxCmdSN != max {
			t.Fatalf("immediate command moved the window to [%#x, %#x] from [%#x, %#x]", r.expCmdSN, r.maxCmdSN, exp, max)
		}
	}
}
