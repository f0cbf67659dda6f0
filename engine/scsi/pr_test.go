package scsi

import (
	"testing"

	"sluice/engine/proto/scsi"
	"sluice/engine/reservation"
)

// Persistent reservations end to end: two nexuses, the CDBs and parameter lists as
// libiscsi's Prout*/Prin* tests send them, the reservation manager deciding with an
// in-memory decider, and the conflict checks on the I/O path.

func prout(sa scsi.PROutAction, typ scsi.PRType, p scsi.PROutParams) req {
	b := p.Append(sa, nil)
	return req{cdb: cdb(scsi.CDB{Opcode: scsi.OpPersistentReserveOut, ServiceAction: uint16(sa),
		PRType: typ, ParameterListLength: uint32(len(b))}), out: b}
}

func prin(sa scsi.PRInAction) req {
	return req{cdb: cdb(scsi.CDB{Opcode: scsi.OpPersistentReserveIn, ServiceAction: uint16(sa),
		AllocationLength: 1024}), in: 1024}
}

// register is REGISTER AND IGNORE EXISTING KEY (libiscsi prout_register_and_ignore).
func (h *harness) register(nx *Nexus, key uint64) {
	h.t.Helper()
	wantGood(h.t, h.exec(nx, prout(scsi.PROutRegisterAndIgnore, 0, scsi.PROutParams{ServiceActionKey: key})))
}

func (h *harness) canRead(nx *Nexus) bool {
	return h.exec(nx, req{cdb: read16(0, 1), in: testBS}).Status == scsi.StatusGood
}

func (h *harness) canWrite(nx *Nexus) bool {
	return h.exec(nx, req{cdb: write16(0, 1), out: make([]byte, testBS)}).Status == scsi.StatusGood
}

// TestPRReserveAccess: libiscsi ProutReserve.Access*: for each type, what a registered
// and an unregistered second nexus may read and write; the holder may do everything.
func TestPRReserveAccess(t *testing.T) {
	for _, c := range []struct {
		typ                           scsi.PRType
		regRead, regWrite, unRd, unWr bool
	}{
		{scsi.PRTypeExclusiveAccess, false, false, false, false},
		{scsi.PRTypeWriteExclusive, true, false, true, false},
		{scsi.PRTypeExclusiveAccessRegistrantsOnly, true, true, false, false},
		{scsi.PRTypeWriteExclusiveRegistrantsOnly, true, true, true, false},
		{scsi.PRTypeExclusiveAccessAllRegistrants, true, true, false, false},
		{scsi.PRTypeWriteExclusiveAllRegistrants, true, true, true, false},
	} {
		t.Run(c.typ.String(), func(t *testing.T) {
			h := newHarness(t, hOpts{resv: true})
			sd1, sd2 := h.nexus(init1), h.nexus(init2)
			h.register(sd1, 0x1111)
			h.register(sd2, 0x2222)
			wantGood(t, h.exec(sd1, prout(scsi.PROutReserve, c.typ, scsi.PROutParams{ReservationKey: 0x1111})))
			rr := h.exec(sd1, prin(scsi.PRInReadReservation))
			wantGood(t, rr)
			wantKey := uint64(0x1111)
			if c.typ.AllRegistrants() {
				wantKey = 0
			}
			if rr.Produced != 24 || be.Uint64(rr.Data[8:]) != wantKey || scsi.PRType(rr.Data[21]&0x0F) != c.typ {
				t.Fatalf("read reservation %x", rr.Data[:rr.Produced])
			}
			if !h.canRead(sd1) || !h.canWrite(sd1) {
				t.Fatal("the holder cannot access")
			}
			if h.canRead(sd2) != c.regRead || h.canWrite(sd2) != c.regWrite {
				t.Fatal("registered second nexus")
			}
			wantGood(t, h.exec(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpTestUnitReady})}))
			wantGood(t, h.exec(sd2, prout(scsi.PROutRegister, 0, scsi.PROutParams{ReservationKey: 0x2222})))
			if h.canRead(sd2) != c.unRd || h.canWrite(sd2) != c.unWr {
				t.Fatal("unregistered second nexus")
			}
			wantGood(t, h.exec(sd1, prout(scsi.PROutRelease, c.typ, scsi.PROutParams{ReservationKey: 0x1111})))
			wantGood(t, h.exec(sd1, prout(scsi.PROutRegister, 0, scsi.PROutParams{ReservationKey: 0x1111})))
			if h.lu.vol.View() != nil {
				t.Fatal("a reservation is left")
			}
		})
	}
}

// TestPRReports: READ KEYS, READ RESERVATION, REPORT CAPABILITIES and READ FULL STATUS.
func TestPRReports(t *testing.T) {
	h := newHarness(t, hOpts{resv: true})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	rk := h.exec(sd1, prin(scsi.PRInReadKeys))
	if rk.Produced != 8 || be.Uint32(rk.Data[4:]) != 0 {
		t.Fatalf("empty read keys %x", rk.Data[:rk.Produced])
	}
	h.register(sd1, 0xA)
	h.register(sd2, 0xB)
	wantGood(t, h.exec(sd2, prout(scsi.PROutReserve, scsi.PRTypeWriteExclusive, scsi.PROutParams{ReservationKey: 0xB})))
	rk = h.exec(sd1, prin(scsi.PRInReadKeys))
	if rk.Produced != 24 || be.Uint32(rk.Data) != 2 || be.Uint64(rk.Data[8:]) != 0xA || be.Uint64(rk.Data[16:]) != 0xB {
		t.Fatalf("read keys %x", rk.Data[:rk.Produced])
	}
	// Truncation keeps ADDITIONAL LENGTH (libiscsi PrinReadKeys.Truncate).
	short := h.exec(sd1, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpPersistentReserveIn, AllocationLength: 12}), in: 12})
	if short.Produced != 12 || be.Uint32(short.Data[4:]) != 16 {
		t.Fatalf("truncated read keys %x", short.Data[:short.Produced])
	}
	caps := h.exec(sd1, prin(scsi.PRInReportCapabilities))
	if caps.Produced != 8 || be.Uint16(caps.Data) != 8 || caps.Data[2]&0x11 != 0x11 ||
		caps.Data[3]&0x80 == 0 || caps.Data[3]&0x70 > 0x50 || be.Uint16(caps.Data[4:]) != reservation.MaskAll {
		t.Fatalf("report capabilities %x", caps.Data[:caps.Produced])
	}
	fs := h.exec(sd1, prin(scsi.PRInReadFullStatus))
	wantGood(t, fs)
	d := fs.Data[:fs.Produced]
	if be.Uint32(d) != 2 || int(be.Uint32(d[4:]))+8 != len(d) {
		t.Fatalf("full status header %x", d[:8])
	}
	// First descriptor: key A, not the holder, relative port 1, sd1's TransportID.
	e := d[8:]
	tidLen := int(be.Uint32(e[20:]))
	tid, _, err := scsi.DecodeTransportID(e[24 : 24+tidLen])
	if err != nil || be.Uint64(e) != 0xA || e[12]&1 != 0 || be.Uint16(e[18:]) != 1 ||
		tid.Name != init1.Initiator || tid.ISID != init1.ISID || !tid.HasISID {
		t.Fatalf("full status descriptor %x (%+v %v)", e[:24+tidLen], tid, err)
	}
	e = e[24+tidLen:]
	if be.Uint64(e) != 0xB || e[12]&1 == 0 || scsi.PRType(e[13]&0x0F) != scsi.PRTypeWriteExclusive {
		t.Fatalf("holder descriptor %x", e[:24])
	}
	// APTPL: the last valid value shows as PTPL_A.
	wantGood(t, h.exec(sd1, prout(scsi.PROutRegister, 0, scsi.PROutParams{ReservationKey: 0xA,
		ServiceActionKey: 0xC, APTPL: true})))
	caps = h.exec(sd1, prin(scsi.PRInReportCapabilities))
	if caps.Data[3]&0x01 == 0 {
		t.Fatalf("PTPL_A clear after APTPL=1: %x", caps.Data[:8])
	}
}

// TestPRErrors: the answers the state machine and the decoder give, on the wire.
func TestPRErrors(t *testing.T) {
	h := newHarness(t, hOpts{resv: true})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	// An unregistered nexus may not reserve, nor register with a key.
	wantStatus(t, h.exec(sd1, prout(scsi.PROutReserve, scsi.PRTypeWriteExclusive, scsi.PROutParams{ReservationKey: 1})),
		scsi.StatusReservationConflict)
	wantStatus(t, h.exec(sd1, prout(scsi.PROutRegister, 0, scsi.PROutParams{ReservationKey: 5, ServiceActionKey: 6})),
		scsi.StatusReservationConflict)
	h.register(sd1, 1)
	wantGood(t, h.exec(sd1, prout(scsi.PROutReserve, scsi.PRTypeExclusiveAccess, scsi.PROutParams{ReservationKey: 1})))
	// Release with the wrong type: INVALID RELEASE OF PERSISTENT RESERVATION.
	wantSense(t, h.exec(sd1, prout(scsi.PROutRelease, scsi.PRTypeWriteExclusive, scsi.PROutParams{ReservationKey: 1})),
		scsi.SenseKeyIllegalRequest, scsi.ASCInvalidReleaseOfPR)
	// PREEMPT with a zero key under a one-holder type: INVALID FIELD IN PARAMETER LIST.
	h.register(sd2, 2)
	wantSense(t, h.exec(sd2, prout(scsi.PROutPreempt, scsi.PRTypeExclusiveAccess, scsi.PROutParams{ReservationKey: 2})),
		scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInParameterList)
	// SPEC_I_PT on RESERVE.
	p := scsi.PROutParams{ReservationKey: 1, SpecIPT: true}
	wantSense(t, h.exec(sd1, prout(scsi.PROutReserve, scsi.PRTypeExclusiveAccess, p)),
		scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInParameterList)
	// A parameter list shorter than PARAMETER LIST LENGTH says.
	r := prout(scsi.PROutRegister, 0, scsi.PROutParams{ServiceActionKey: 3})
	r.out = r.out[:10]
	wantSense(t, h.exec(sd1, r), scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInInformationUnit)
	// A wrong PARAMETER LIST LENGTH: PARAMETER LIST LENGTH ERROR.
	r = prout(scsi.PROutRegister, 0, scsi.PROutParams{ServiceActionKey: 3})
	r.cdb[8] = 20
	wantSense(t, h.exec(sd1, r), scsi.SenseKeyIllegalRequest, scsi.ASCParameterListLengthError)
	// PERSISTENT RESERVE IN service action out of range (libiscsi PrinServiceactionRange).
	bad := prin(0)
	bad.cdb[1] = 0x04
	wantSense(t, h.exec(sd1, bad), scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
}

// TestPRPreemptUnitAttentions: PREEMPT removes the other registration and tells it
// (REGISTRATIONS PREEMPTED); CLEAR tells every other registrant (RESERVATIONS
// PREEMPTED); releasing a registrants-only reservation tells the others (RESERVATIONS
// RELEASED).
func TestPRPreemptUnitAttentions(t *testing.T) {
	h := newHarness(t, hOpts{resv: true})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	h.register(sd1, 1)
	h.register(sd2, 2)
	wantGood(t, h.exec(sd1, prout(scsi.PROutReserve, scsi.PRTypeWriteExclusive, scsi.PROutParams{ReservationKey: 1})))
	wantGood(t, h.exec(sd2, prout(scsi.PROutPreempt, scsi.PRTypeExclusiveAccess,
		scsi.PROutParams{ReservationKey: 2, ServiceActionKey: 1})))
	wantSense(t, h.exec(sd1, req{cdb: read16(0, 1), in: testBS}),
		scsi.SenseKeyUnitAttention, scsi.ASCRegistrationsPreempted)
	wantStatus(t, h.exec(sd1, req{cdb: read16(0, 1), in: testBS}), scsi.StatusReservationConflict)
	if !h.canRead(sd2) {
		t.Fatal("the new holder cannot read")
	}

	h.register(sd1, 1)
	wantGood(t, h.exec(sd2, prout(scsi.PROutClear, 0, scsi.PROutParams{ReservationKey: 2})))
	wantSense(t, h.exec(sd1, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpTestUnitReady})}),
		scsi.SenseKeyUnitAttention, scsi.ASCReservationsPreempted)
	wantGood(t, h.exec(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpTestUnitReady})}))

	h.register(sd1, 1)
	h.register(sd2, 2)
	wantGood(t, h.exec(sd1, prout(scsi.PROutReserve, scsi.PRTypeWriteExclusiveRegistrantsOnly,
		scsi.PROutParams{ReservationKey: 1})))
	wantGood(t, h.exec(sd1, prout(scsi.PROutRelease, scsi.PRTypeWriteExclusiveRegistrantsOnly,
		scsi.PROutParams{ReservationKey: 1})))
	wantSense(t, h.exec(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpTestUnitReady})}),
		scsi.SenseKeyUnitAttention, scsi.ASCReservationsReleased)
}

// TestPRRegisterAndMove: the holder hands its reservation to the other nexus's port.
func TestPRRegisterAndMove(t *testing.T) {
	h := newHarness(t, hOpts{resv: true})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	h.register(sd1, 1)
	wantGood(t, h.exec(sd1, prout(scsi.PROutReserve, scsi.PRTypeExclusiveAccess, scsi.PROutParams{ReservationKey: 1})))
	to := scsi.TransportID{Name: init2.Initiator, ISID: init2.ISID, HasISID: true}
	bad := scsi.PROutParams{ReservationKey: 1, ServiceActionKey: 9, RelativeTargetPort: 7,
		TransportIDs: []scsi.TransportID{to}}
	wantSense(t, h.exec(sd1, prout(scsi.PROutRegisterAndMove, scsi.PRTypeExclusiveAccess, bad)),
		scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInParameterList)
	bad.RelativeTargetPort = 1
	wantGood(t, h.exec(sd1, prout(scsi.PROutRegisterAndMove, scsi.PRTypeExclusiveAccess, bad)))
	if !h.canWrite(sd2) || h.canRead(sd1) {
		t.Fatal("the reservation did not move")
	}
}

// TestPRRetryable: a group that refuses persistent commands for now: BUSY, and
// nothing changed.
func TestPRRetryable(t *testing.T) {
	h := newHarness(t, hOpts{resv: true})
	sd1 := h.nexus(init1)
	h.dec.SetRefusePersistent(true)
	wantStatus(t, h.exec(sd1, prout(scsi.PROutRegisterAndIgnore, 0,
		scsi.PROutParams{ServiceActionKey: 1, APTPL: true})), scsi.StatusBusy)
	if st := h.lu.vol.State(); len(st.Registrants) != 0 {
		t.Fatalf("refused command changed the state: %+v", st)
	}
	h.register(sd1, 1) // APTPL=0 is admitted
}

// TestReserve6: libiscsi Reserve6.2Initiators.
func TestReserve6(t *testing.T) {
	h := newHarness(t, hOpts{resv: true})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	reserve := req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReserve6})}
	release := req{cdb: cdb(scsi.CDB{Opcode: scsi.OpRelease6})}
	modeSense := in(scsi.CDB{Opcode: scsi.OpModeSense6, PageCode: scsi.ModePageAll, AllocationLength: 255}, 255)
	wantGood(t, h.exec(sd1, reserve))
	wantGood(t, h.exec(sd1, reserve))
	wantStatus(t, h.exec(sd2, reserve), scsi.StatusReservationConflict)
	wantGood(t, h.exec(sd2, release))
	wantGood(t, h.exec(sd1, modeSense))
	wantStatus(t, h.exec(sd2, modeSense), scsi.StatusReservationConflict)
	wantStatus(t, h.exec(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpTestUnitReady})}), scsi.StatusReservationConflict)
	wantGood(t, h.exec(sd2, req{cdb: inquiryCDB(false, 0, 96), in: 96}))
	wantStatus(t, h.exec(sd2, reserve), scsi.StatusReservationConflict)
	wantGood(t, h.exec(sd1, release))
	wantGood(t, h.exec(sd2, reserve))
	wantGood(t, h.exec(sd2, release))
	// RESERVE(10) third-party is not offered.
	wantSense(t, h.exec(sd1, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReserve10, ThirdParty: true})}),
		scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
}

// TestReserve6LUNReset: libiscsi Reserve6.LUNReset: a LUN reset ends the SCSI-2
// reservation and raises 29h/00h on every nexus, the requester's included.
func TestReserve6LUNReset(t *testing.T) {
	h := newHarness(t, hOpts{resv: true})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	wantGood(t, h.exec(sd1, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReserve6})}))
	done := false
	h.lu.Reset(h.rs[0], sd1, func() { done = true })
	h.until("reset", func() bool { return done })
	for _, nx := range []*Nexus{sd1, sd2} {
		wantSense(t, h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpTestUnitReady})}),
			scsi.SenseKeyUnitAttention, scsi.ASCPowerOnResetOrBusDeviceReset)
	}
	wantGood(t, h.exec(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReserve6})}))
	wantStatus(t, h.exec(sd1, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReserve6})}), scsi.StatusReservationConflict)
}

// TestReserve6NexusLoss: libiscsi Reserve6.Logout/ITNexusLoss: the holder's nexus ends,
// its reservation with it.
func TestReserve6NexusLoss(t *testing.T) {
	h := newHarness(t, hOpts{resv: true})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	wantGood(t, h.exec(sd1, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReserve6})}))
	sd1.Lost()
	sd1.Lost() // idempotent
	wantGood(t, h.exec(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReserve6})}))
	// The same I_T nexus coming back is a new nexus, with a POWER ON unit attention.
	again := h.lu.Nexus(init1)
	if again == sd1 {
		t.Fatal("a lost nexus was handed out again")
	}
	wantSense(t, h.exec(again, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpTestUnitReady})}),
		scsi.SenseKeyUnitAttention, scsi.ASCPowerOnResetOrBusDeviceReset)
}

// TestNexusLossOrdersCommands: a command that arrives after a nexus loss, while the
// manager has not yet answered it, waits for the answer instead of being refused by the
// SCSI-2 reservation the loss ends (libiscsi Sanitize.Reservations, then the next
// suite's TEST UNIT READY); commands no reservation refuses do not wait, an aborted
// waiter ends at once, and with no loss pending nothing waits.
func TestNexusLossOrdersCommands(t *testing.T) {
	gate := make(chan struct{})
	h := newHarness(t, hOpts{resv: true, reactors: 2, lossGate: gate})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	wantGood(t, h.exec(sd1, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReserve6})}))
	wantStatus(t, h.exec(sd2, tur()), scsi.StatusReservationConflict)
	sd1.Lost() // decided once the gate opens
	tu := h.start(sd2, req{cdb: tur().cdb, ch: 1})
	rd := h.start(sd2, req{cdb: read16(0, 1), in: testBS})
	inq := h.start(sd2, req{cdb: inquiryCDB(false, 0, 96), in: 96, ch: 1})
	if tu.x.state != taskStateLossWait || rd.x.state != taskStateLossWait || h.doneCount(inq) != 1 {
		t.Fatalf("states %v %v, inquiry done %d", tu.x.state, rd.x.state, h.doneCount(inq))
	}
	if !h.chs[0].Abort(rd) || h.doneCount(rd) != 1 || rd.Aborted != AbortedByNexus {
		t.Fatal("a command waiting for a nexus loss was not aborted at once")
	}
	h.pollN(20)
	if h.doneCount(tu) != 0 {
		t.Fatal("a command ran before the nexus loss was decided")
	}
	close(gate)
	h.until("the waiting command", func() bool { return h.doneCount(tu) == 1 })
	wantGood(t, tu)
	if h.lu.lossPending.Load() != 0 || len(h.chs[0].lossWaiters)+len(h.chs[1].lossWaiters) != 0 {
		t.Fatal("nexus loss bookkeeping left behind")
	}
	wantGood(t, h.exec(sd2, req{cdb: read16(0, 1), in: testBS}))
}

// TestPreemptAndAbort: the preempted nexus's write in flight is waited out and ends
// TASK ABORTED (TAS=1); its queued commands end at once; the PREEMPT AND ABORT itself
// completes GOOD after them.
func TestPreemptAndAbort(t *testing.T) {
	h := newHarness(t, hOpts{resv: true, module: "rec"})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	h.register(sd1, 1)
	h.register(sd2, 2)
	wantGood(t, h.exec(sd2, prout(scsi.PROutReserve, scsi.PRTypeWriteExclusive, scsi.PROutParams{ReservationKey: 2})))
	h.rec.hold = true
	w := h.start(sd2, req{cdb: write16(0, 8), out: make([]byte, 8*testBS)})
	pa := h.start(sd1, prout(scsi.PROutPreemptAndAbort, scsi.PRTypeExclusiveAccess,
		scsi.PROutParams{ReservationKey: 1, ServiceActionKey: 2}))
	// Queued behind the PREEMPT AND ABORT in the manager: waiting it out would deadlock
	// the drain, so it ends at once.
	r6 := h.start(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpRelease6})})
	h.until("the drain to mark the write", func() bool { return w.x.abort != NotAborted })
	h.until("the queued command to end", func() bool { return h.doneCount(r6) == 1 })
	if r6.Aborted != AbortedByOther || r6.Status != scsi.StatusTaskAborted {
		t.Fatalf("queued command of the preempted nexus: %v %v", r6.Aborted, r6.Status)
	}
	h.pollN(50)
	if h.doneCount(pa) != 0 || h.doneCount(w) != 0 {
		t.Fatal("preempt and abort answered before the preempted write left the bdev")
	}
	h.rec.release()
	h.until("preempt and abort", func() bool { return h.doneCount(pa) == 1 })
	wantGood(t, pa)
	if h.doneCount(w) != 1 || w.Aborted != AbortedByOther || w.Status != scsi.StatusTaskAborted {
		t.Fatalf("preempted write: done %d, %v, %v", h.doneCount(w), w.Aborted, w.Status)
	}
	wantSense(t, h.exec(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpTestUnitReady})}),
		scsi.SenseKeyUnitAttention, scsi.ASCRegistrationsPreempted)
	if h.canRead(sd2) {
		t.Fatal("preempted nexus reads through EXCLUSIVE ACCESS")
	}
}
