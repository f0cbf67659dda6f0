package scsi

import (
	"slices"
	"testing"

	"sluice/engine/proto/scsi"
)

// Unit attentions, ABORT TASK and LOGICAL UNIT RESET.

func tur() req { return req{cdb: cdb(scsi.CDB{Opcode: scsi.OpTestUnitReady})} }

// TestUnitAttentions: SAM-5 §5.14 on a new nexus: INQUIRY and REPORT LUNS pass without
// touching the unit attention, REQUEST SENSE reports and clears it, any other command
// reports it once as CHECK CONDITION; queued ones come one per command, oldest first.
func TestUnitAttentions(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.lu.Nexus(init1)
	if h.lu.Nexus(init1) != nx {
		t.Fatal("the same identity got two nexuses")
	}
	wantGood(t, h.exec(nx, req{cdb: inquiryCDB(false, 0, 96), in: 96}))
	wantGood(t, h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReportLUNs, AllocationLength: 16}), in: 16}))
	rs := h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpRequestSense, Desc: true, AllocationLength: 64}), in: 64})
	wantGood(t, rs)
	if s, err := scsi.DecodeSense(rs.Data[:rs.Produced]); err != nil || rs.Data[0] != 0x72 ||
		s.Key != scsi.SenseKeyUnitAttention || s.Code != scsi.ASCPowerOnResetOrBusDeviceReset {
		t.Fatalf("request sense %x", rs.Data[:rs.Produced])
	}
	wantGood(t, h.exec(nx, tur()))

	nx.raise(scsi.ASCModeParametersChanged)
	nx.raise(scsi.ASCReportedLUNsDataChanged)
	nx.raise(scsi.ASCModeParametersChanged) // already queued: once is enough
	wantSense(t, h.exec(nx, req{cdb: read16(0, 1), in: testBS}), scsi.SenseKeyUnitAttention, scsi.ASCModeParametersChanged)
	wantSense(t, h.exec(nx, tur()), scsi.SenseKeyUnitAttention, scsi.ASCReportedLUNsDataChanged)
	wantGood(t, h.exec(nx, tur()))
	// A reset replaces what is pending.
	nx.raise(scsi.ASCModeParametersChanged)
	nx.raiseReset()
	if got := nx.UnitAttentions(); !slices.Equal(got, []scsi.SenseCode{scsi.ASCPowerOnResetOrBusDeviceReset}) {
		t.Fatalf("after a reset: %v", got)
	}
}

// TestModeSelectUnitAttention: a mode change tells the other nexuses, not its sender.
func TestModeSelectUnitAttention(t *testing.T) {
	h := newHarness(t, hOpts{})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	wantGood(t, h.exec(sd1, modeSelectPage(scsi.ModePageControl, controlPage(true, false))))
	wantGood(t, h.exec(sd1, tur()))
	wantSense(t, h.exec(sd2, tur()), scsi.SenseKeyUnitAttention, scsi.ASCModeParametersChanged)
	// Unchanged values raise nothing.
	wantGood(t, h.exec(sd1, modeSelectPage(scsi.ModePageControl, controlPage(true, false))))
	wantGood(t, h.exec(sd2, tur()))
}

// TestAbortTask: a write inside the bdev is waited out and ends aborted; a write
// blocked behind a range lock ends at once.
func TestAbortTask(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec"})
	nx := h.nexus(init1)
	h.rec.hold = true
	w := h.start(nx, req{cdb: write16(0, 8), out: make([]byte, 8*testBS)})
	if h.chs[0].Abort(w) {
		t.Fatal("a write inside the bdev was ended at once")
	}
	h.pollN(4)
	if h.doneCount(w) != 0 {
		t.Fatal("aborted write completed before the bdev gave it back")
	}
	h.rec.release()
	h.until("aborted write", func() bool { return h.doneCount(w) == 1 })
	if w.Aborted != AbortedByNexus || w.Status != scsi.StatusTaskAborted {
		t.Fatalf("aborted write: %v %v", w.Aborted, w.Status)
	}
	if h.chs[0].Abort(w) {
		t.Fatal("a finished task was aborted")
	}

	// A COMPARE AND WRITE holds [0,8) while its write is held in the bdev; an
	// overlapping write waits behind it, and is ended at once by ABORT TASK.
	h.writeBlocks(nx, 0, make([]byte, 8*testBS))
	h.rec.hold = true
	caw := h.start(nx, req{cdb: cawCDB(0, 8), out: make([]byte, 16*testBS)})
	h.until("compare and write to reach its write", func() bool { return caw.x.state == taskStateCAWWrite })
	blocked := h.start(nx, req{cdb: write16(4, 1), out: make([]byte, testBS)})
	if blocked.x.state != taskStateBlocked {
		t.Fatalf("overlapping write in state %v", blocked.x.state)
	}
	if !h.chs[0].Abort(blocked) || h.doneCount(blocked) != 1 || blocked.Aborted != AbortedByNexus {
		t.Fatal("a blocked write was not ended at once")
	}
	h.rec.release()
	h.until("compare and write", func() bool { return h.doneCount(caw) == 1 })
	wantGood(t, caw)
}

// TestLUNResetWaitsForTasks: LOGICAL UNIT RESET ends every task of the LU: the
// requester's silently, the others' with TASK ABORTED; done comes after the bdev gave
// back the writes it held.
func TestLUNResetWaitsForTasks(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec", reactors: 2})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	h.rec.hold = true
	w1 := h.start(sd1, req{cdb: write16(0, 1), out: make([]byte, testBS)})
	w2 := h.start(sd2, req{cdb: write16(8, 1), out: make([]byte, testBS), ch: 1})
	done := false
	h.lu.Reset(h.rs[0], sd1, func() { done = true })
	h.pollN(20)
	if done {
		t.Fatal("reset done with writes still in the bdev")
	}
	h.rec.release()
	h.until("reset", func() bool { return done })
	if w1.Aborted != AbortedByNexus || w2.Aborted != AbortedByOther || w2.Status != scsi.StatusTaskAborted {
		t.Fatalf("aborted %v and %v", w1.Aborted, w2.Aborted)
	}
	for _, nx := range []*Nexus{sd1, sd2} {
		wantSense(t, h.exec(nx, tur()), scsi.SenseKeyUnitAttention, scsi.ASCPowerOnResetOrBusDeviceReset)
		wantGood(t, h.exec(nx, tur()))
	}
	// The channels are usable after the reset.
	h.writeBlocks(sd2, 0, pattern(testBS, 4))
	h.wantBlocks(sd1, 0, pattern(testBS, 4))
}

// TestAbortWaitingForManager: a reservation command waiting for the manager ends at
// once; the manager's late answer is dropped, even though the transport reset the task
// and runs another reservation command on it meanwhile.
func TestAbortWaitingForManager(t *testing.T) {
	h := newHarness(t, hOpts{resv: true})
	nx := h.nexus(init1)
	tk := h.start(nx, prout(scsi.PROutRegisterAndIgnore, 0, scsi.PROutParams{ServiceActionKey: 9}))
	if !h.chs[0].Abort(tk) || h.doneCount(tk) != 1 || tk.Aborted != AbortedByNexus {
		t.Fatal("a command waiting for the manager was not ended at once")
	}
	n := 0
	done := func(*Task) { n++ }
	*tk = Task{Nexus: nx, Done: done}
	tk.SetCDB(cdb(scsi.CDB{Opcode: scsi.OpReserve6}))
	h.chs[0].Execute(tk)
	h.until("the second command", func() bool { return n > 0 })
	h.pollN(20)
	if n != 1 {
		t.Fatalf("Done ran %d times: the first command's answer completed the second", n)
	}
	wantStatus(t, tk, scsi.StatusReservationConflict) // the aborted REGISTER took effect
}
