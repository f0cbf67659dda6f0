package reservation

import (
	"slices"
	"testing"
)

// Setups shared by the SCSI rule tables.
var (
	scRegAB  = []Command{scRegIgnore(nexA, 1), scRegIgnore(nexB, 2)}
	scRegABC = []Command{scRegIgnore(nexA, 1), scRegIgnore(nexB, 2), scRegIgnore(nexA2, 3)}
	scHeldEA = scHeld(scRegAB, ExclusiveAccess)
	res6A    = []Command{scsi2Reserve(nexA)}
)

// scHeld is setup, then nexus A (key 1) reserving type typ.
func scHeld(setup []Command, typ Type) []Command {
	return append(slices.Clone(setup), scReserve(nexA, 1, typ))
}

func withAPTPL(c Command, on bool) Command { c.APTPL = on; return c }

// withSpecIPT sets SPEC_I_PT with the initiator ports of ids.
func withSpecIPT(c Command, ids ...Identity) Command {
	c.SpecIPT = true
	for _, id := range ids {
		c.TransportIDs = append(c.TransportIDs, tidOf(id))
	}
	return c
}

// TestSCSIRegisterRules: PROTOCOLS.md §3 "REGISTER", "REGISTER AND IGNORE", APTPL, and SPC-4
// Tables 67..69.
func TestSCSIRegisterRules(t *testing.T) { runRules(t, scsiRegisterRules) }

var scsiRegisterRules = []ruleCase{
	{rule: "register: unregistered nexus with a nonzero key conflicts",
		cmd: scReg(nexA, 5, 6), want: StatusConflict},
	{rule: "register: unregistered nexus with SARK 0 does nothing, GOOD",
		cmd: withAPTPL(scReg(nexA, 0, 0), true), check: func(t *testing.T, s *State, _ Result) {
			if len(s.Registrants) != 0 || s.PTPL {
				t.Fatalf("%+v", s)
			}
		}},
	{rule: "register: unregistered nexus registers SARK", cmd: scReg(nexA, 0, 6),
		bump: true, check: wantKeys(6)},
	{rule: "register: registered nexus with a wrong key conflicts (libiscsi reregister)",
		setup: scRegAB, cmd: scReg(nexA, 0, 9), want: StatusConflict},
	{rule: "register: registered nexus changes its key", setup: scRegAB,
		cmd: scReg(nexA, 1, 9), bump: true, check: wantKeys(9, 2)},
	{rule: "register: SARK 0 unregisters", setup: scRegAB, cmd: scReg(nexA, 1, 0),
		bump: true, check: wantKeys(2)},
	{rule: "register: SARK 0 from the holder of a one-holder type releases it",
		setup: scHeld(scRegAB, WriteExclusive),
		cmd:   scReg(nexA, 1, 0), bump: true, check: all(wantNoReservation, wantNotices())},
	{rule: "register: SARK 0 from a registrants-only holder sends RESERVATIONS RELEASED",
		setup: scHeld(scRegAB, WriteExclusiveRegistrantsOnly),
		cmd:   scReg(nexA, 1, 0), bump: true,
		check: all(wantNoReservation, wantNotices(note(ReservationReleased, nexB)))},
	{rule: "register: under all-registrants the reservation stays while any remain",
		setup: scHeld(scRegAB, ExclusiveAccessAllRegistrants),
		cmd:   scReg(nexA, 1, 0), bump: true,
		check: wantReservation(nexB, ExclusiveAccessAllRegistrants)},
	{rule: "register: the last all-registrants registrant leaving ends it",
		setup: []Command{scRegIgnore(nexA, 1), scReserve(nexA, 1, WriteExclusiveAllRegistrants)},
		cmd:   scReg(nexA, 1, 0), bump: true, check: wantNoReservation},
	{rule: "register and ignore: ignores the reservation key", setup: scRegAB,
		cmd:  Command{Action: SCSIRegisterIgnore, From: nexA, Key: 77, ServiceKey: 8},
		bump: true, check: wantKeys(8, 2)},
	{rule: "register and ignore: SARK 0 unregisters", setup: scRegAB,
		cmd: scRegIgnore(nexB, 0), bump: true, check: wantKeys(1)},
	{rule: "register and ignore: unregistered with SARK 0 does nothing",
		cmd: scRegIgnore(nexA, 0)},
	{rule: "register and ignore: SPEC_I_PT is INVALID FIELD IN PARAMETER LIST",
		cmd: withSpecIPT(scRegIgnore(nexA, 1), nexB), want: StatusInvalidParameterList},
	{rule: "APTPL: the last valid value wins (on)", cmd: withAPTPL(scRegIgnore(nexA, 1), true),
		bump: true, check: func(t *testing.T, s *State, _ Result) {
			if !s.PTPL || !s.ReportCapabilities().PTPLA {
				t.Fatal("PTPL off")
			}
		}},
	{rule: "APTPL: the last valid value wins (off again)",
		setup: []Command{withAPTPL(scRegIgnore(nexA, 1), true)},
		cmd:   scRegIgnore(nexB, 2), bump: true,
		check: func(t *testing.T, s *State, _ Result) {
			if s.PTPL {
				t.Fatal("PTPL on")
			}
		}},
	{rule: "APTPL: ignored by RESERVE", setup: scRegAB,
		cmd: withAPTPL(scReserve(nexA, 1, WriteExclusive), true),
		check: func(t *testing.T, s *State, _ Result) {
			if s.PTPL {
				t.Fatal("RESERVE set PTPL")
			}
		}},
	{rule: "ALL_TG_PT: the registration covers every target port",
		cmd:  Command{Action: SCSIRegister, From: nexA, ServiceKey: 4, AllTargetPorts: true},
		bump: true, check: func(t *testing.T, s *State, _ Result) {
			if !s.Registered(nexA2) || s.Registered(nexB) || len(s.Registrants) != 1 {
				t.Fatalf("%+v", s.Registrants)
			}
		}},
	{rule: "ALL_TG_PT: a port's own registration makes it INVALID FIELD IN PARAMETER LIST",
		setup: []Command{scRegIgnore(nexA2, 3)},
		cmd:   Command{Action: SCSIRegister, From: nexA, ServiceKey: 4, AllTargetPorts: true},
		want:  StatusInvalidParameterList},
	{rule: "SPEC_I_PT: registers the requester and each specified port",
		cmd: withSpecIPT(scReg(nexA, 0, 5), nexB, nexB), bump: true,
		check: func(t *testing.T, s *State, _ Result) {
			if !s.Registered(nexB) || s.Registered(nexB2) || !slices.Equal(keysOf(s), []uint64{5, 5}) {
				t.Fatalf("%+v", s.Registrants)
			}
		}},
	{rule: "SPEC_I_PT: format 00b covers every ISID of the initiator",
		cmd: Command{Action: SCSIRegister, From: nexB, ServiceKey: 5, SpecIPT: true,
			TransportIDs: []TransportID{{Name: iqnA}}}, bump: true,
		check: func(t *testing.T, s *State, _ Result) {
			if !s.Registered(nexAre) || s.Registered(nexA2) {
				t.Fatalf("%+v", s.Registrants)
			}
		}},
	{rule: "SPEC_I_PT: a registered specified port is INVALID FIELD IN PARAMETER LIST",
		setup: []Command{scRegIgnore(nexB, 2)}, cmd: withSpecIPT(scReg(nexA, 0, 5), nexB),
		want: StatusInvalidParameterList},
	{rule: "SPEC_I_PT: from a registered nexus is INVALID FIELD IN PARAMETER LIST",
		setup: scRegAB, cmd: withSpecIPT(scReg(nexA, 1, 5), nexB2), want: StatusInvalidParameterList},
	{rule: "SPEC_I_PT: with another service action is INVALID FIELD IN PARAMETER LIST",
		setup: scRegAB, cmd: withSpecIPT(scReserve(nexA, 1, WriteExclusive), nexB2),
		want: StatusInvalidParameterList},
	{rule: "IgnoreISID: a re-login with a new ISID keeps the registration",
		config: func(s *State) { s.IgnoreISID = true }, setup: scRegAB,
		cmd: scReserve(nexAre, 1, ExclusiveAccess), check: wantReservation(nexA, ExclusiveAccess)},
	{rule: "ISIDs enforced: a re-login with a new ISID is a stranger", setup: scRegAB,
		cmd: scReserve(nexAre, 1, ExclusiveAccess), want: StatusConflict},
}

// TestSCSIReserveRules: PROTOCOLS.md §3 "RESERVE", "RELEASE", "CLEAR", "PREEMPT",
// "PREEMPT AND ABORT", "PRgeneration", SPC-4 §5.13.9..5.13.11.
func TestSCSIReserveRules(t *testing.T) { runRules(t, scsiReserveRules) }

var scsiReserveRules = []ruleCase{
	{rule: "reserve: needs a registered nexus", cmd: scReserve(nexA, 0, WriteExclusive),
		want: StatusConflict},
	{rule: "reserve: needs the registered key", setup: scRegABC,
		cmd: scReserve(nexA, 2, WriteExclusive), want: StatusConflict},
	{rule: "reserve: SCOPE other than LU_SCOPE is INVALID FIELD IN CDB", setup: scRegABC,
		cmd:  Command{Action: SCSIReserve, From: nexA, Key: 1, Type: WriteExclusive, Scope: 1},
		want: StatusInvalidField},
	{rule: "reserve: an invalid TYPE is INVALID FIELD IN CDB", setup: scRegABC,
		cmd: scReserve(nexA, 1, TypeNone), want: StatusInvalidField},
	{rule: "reserve: does not bump the generation", setup: scRegABC,
		cmd: scReserve(nexA, 1, ExclusiveAccess), check: wantReservation(nexA, ExclusiveAccess)},
	{rule: "reserve: another holder conflicts", setup: scHeld(scRegABC, WriteExclusive),
		cmd: scReserve(nexB, 2, WriteExclusive), want: StatusConflict},
	{rule: "reserve: the same holder and type is GOOD", setup: scHeld(scRegABC, WriteExclusive),
		cmd: scReserve(nexA, 1, WriteExclusive)},
	{rule: "reserve: the same holder with another type conflicts",
		setup: scHeld(scRegABC, WriteExclusive),
		cmd:   scReserve(nexA, 1, ExclusiveAccess), want: StatusConflict},
	{rule: "reserve: registrations are per I_T nexus (other target port conflicts)",
		setup: scHeld(scRegABC, WriteExclusive), cmd: scReserve(nexA2, 3, WriteExclusive),
		want: StatusConflict},
	{rule: "release: from a registered non-holder is GOOD and releases nothing",
		setup: scHeld(scRegABC, WriteExclusive), cmd: scRelease(nexB, 2, WriteExclusive),
		check: wantReservation(nexA, WriteExclusive)},
	{rule: "release: from an unregistered nexus conflicts", setup: scHeld(scRegABC, WriteExclusive),
		cmd: scRelease(nexB2, 0, WriteExclusive), want: StatusConflict},
	{rule: "release: a type mismatch is INVALID RELEASE OF PERSISTENT RESERVATION",
		setup: scHeld(scRegABC, WriteExclusive), cmd: scRelease(nexA, 1, ExclusiveAccess),
		want: StatusInvalidRelease},
	{rule: "release: a scope mismatch is INVALID RELEASE OF PERSISTENT RESERVATION",
		setup: scHeld(scRegABC, WriteExclusive),
		cmd:   Command{Action: SCSIRelease, From: nexA, Key: 1, Type: WriteExclusive, Scope: 2},
		want:  StatusInvalidRelease},
	{rule: "release: Exclusive Access sends no unit attention",
		setup: scHeld(scRegABC, ExclusiveAccess),
		cmd:   scRelease(nexA, 1, ExclusiveAccess), check: all(wantNoReservation, wantNotices())},
	{rule: "release: registrants-only sends RESERVATIONS RELEASED to the others",
		setup: scHeld(scRegABC, ExclusiveAccessRegistrantsOnly),
		cmd:   scRelease(nexA, 1, ExclusiveAccessRegistrantsOnly),
		check: all(wantNoReservation,
			wantNotices(note(ReservationReleased, nexB), note(ReservationReleased, nexA2)))},
	{rule: "release: all-registrants, by any registrant, tells the others",
		setup: scHeld(scRegABC, WriteExclusiveAllRegistrants),
		cmd:   scRelease(nexB, 2, WriteExclusiveAllRegistrants),
		check: all(wantNoReservation,
			wantNotices(note(ReservationReleased, nexA), note(ReservationReleased, nexA2)))},
	{rule: "clear: needs a registered nexus", setup: scHeld(scRegABC, WriteExclusive),
		cmd: scClear(nexB2, 0), want: StatusConflict},
	{rule: "clear: removes everything with RESERVATIONS PREEMPTED to the others",
		setup: scHeld(scRegABC, WriteExclusive), cmd: scClear(nexB, 2), bump: true,
		check: all(wantNoReservation, wantKeys(),
			wantNotices(note(ReservationPreempted, nexA), note(ReservationPreempted, nexA2)))},
	{rule: "preempt: SARK = holder key moves it, REGISTRATIONS PREEMPTED",
		setup: scHeld(scRegABC, WriteExclusive), cmd: scPreempt(nexB, 2, 1, ExclusiveAccess), bump: true,
		check: all(wantKeys(2, 3), wantReservation(nexB, ExclusiveAccess),
			wantNotices(note(RegistrationPreempted, nexA), note(ReservationReleased, nexA2)))},
	{rule: "preempt: taking over validates TYPE", setup: scHeld(scRegABC, WriteExclusive),
		cmd: scPreempt(nexB, 2, 1, TypeNone), want: StatusInvalidField},
	{rule: "preempt: removing registrations ignores TYPE and SCOPE",
		setup: scHeld(scRegABC, WriteExclusive),
		cmd:   Command{Action: SCSIPreempt, From: nexB, Key: 2, ServiceKey: 3, Scope: 5},
		bump:  true, check: all(wantKeys(1, 2), wantNotices(note(RegistrationPreempted, nexA2)))},
	{rule: "preempt: SARK matching no registration conflicts", setup: scHeld(scRegABC, WriteExclusive),
		cmd: scPreempt(nexB, 2, 99, WriteExclusive), want: StatusConflict},
	{rule: "preempt: all-registrants with SARK 0 removes all others",
		setup: scHeld(scRegABC, ExclusiveAccessAllRegistrants),
		cmd:   scPreempt(nexA2, 3, 0, WriteExclusive),
		bump:  true, check: all(wantKeys(3), wantReservation(nexA2, WriteExclusive))},
	{rule: "preempt: SARK 0 under a one-holder type is INVALID FIELD IN PARAMETER LIST",
		setup: scHeld(scRegABC, WriteExclusive), cmd: scPreempt(nexB, 2, 0, WriteExclusive),
		want: StatusInvalidParameterList},
	{rule: "preempt: SARK = own key without a reservation removes the requester too",
		setup: scRegABC, cmd: scPreempt(nexB, 2, 2, WriteExclusive), bump: true,
		check: all(wantKeys(1, 3), wantNotices())},
	{rule: "preempt and abort: aborts the preempted nexuses' task sets",
		setup: scHeld(scRegABC, ExclusiveAccess),
		cmd: Command{Action: SCSIPreemptAbort, From: nexB, Key: 2, ServiceKey: 1,
			Type: ExclusiveAccess}, bump: true,
		check: func(t *testing.T, s *State, r Result) {
			if len(r.Aborts) != 1 || !r.Aborts[0].Covers(nexA, false) || !s.Holds(nexB) {
				t.Fatalf("%+v", r)
			}
		}},
	{rule: "PRgeneration: RESERVE and RELEASE leave it", setup: scHeld(scRegABC, WriteExclusive),
		cmd: scRelease(nexA, 1, WriteExclusive)},
}

// TestSCSIRegisterMoveRules: SPC-4 §5.13.8 and Table 70.
func TestSCSIRegisterMoveRules(t *testing.T) { runRules(t, scsiRegisterMoveRules) }

var scsiRegisterMoveRules = []ruleCase{
	{rule: "move: from an unregistered nexus conflicts", setup: scHeldEA,
		cmd: scMove(nexB2, 0, 5, tidOf(nexB), 1), want: StatusConflict},
	{rule: "move: with a wrong key conflicts", setup: scHeldEA,
		cmd: scMove(nexA, 2, 5, tidOf(nexB), 1), want: StatusConflict},
	{rule: "move: with no reservation is INVALID FIELD IN CDB", setup: scRegAB,
		cmd: scMove(nexA, 1, 5, tidOf(nexB), 1), want: StatusInvalidField},
	{rule: "move: from a non-holder conflicts", setup: scHeldEA,
		cmd: scMove(nexB, 2, 5, tidOf(nexA), 2), want: StatusConflict},
	{rule: "move: under an all-registrants type conflicts",
		setup: scHeld(scRegAB, WriteExclusiveAllRegistrants),
		cmd:   scMove(nexA, 1, 5, tidOf(nexB), 2), want: StatusConflict},
	{rule: "move: SARK 0 is INVALID FIELD IN PARAMETER LIST", setup: scHeldEA,
		cmd: scMove(nexA, 1, 0, tidOf(nexB), 2), want: StatusInvalidParameterList},
	{rule: "move: to the requester's own initiator port is INVALID FIELD IN PARAMETER LIST",
		setup: scHeldEA, cmd: scMove(nexA, 1, 5, tidOf(nexA), 2), want: StatusInvalidParameterList},
	{rule: "move: registers the destination and hands it the reservation",
		setup: scHeldEA, cmd: scMove(nexA, 1, 5, tidOf(nexB), 2), bump: true,
		check: all(wantKeys(1, 2, 5), wantReservation(nexB2, ExclusiveAccess), wantNotices())},
	{rule: "move: an already registered destination takes the new key", setup: scHeldEA,
		cmd: scMove(nexA, 1, 5, tidOf(nexB), 1), bump: true,
		check: all(wantKeys(1, 5), wantReservation(nexB, ExclusiveAccess))},
	{rule: "move: UNREG unregisters the source",
		setup: scHeldEA, bump: true,
		cmd: Command{Action: SCSIRegisterMove, From: nexA, Key: 1, ServiceKey: 5,
			MoveTo: tidOf(nexB), MoveTargetPort: 1, Unreg: true, APTPL: true},
		check: func(t *testing.T, s *State, r Result) {
			if s.Registered(nexA) || !s.Holds(nexB) || !s.PTPL || len(r.Notices) != 0 {
				t.Fatalf("%+v", s)
			}
		}},
}

// TestSCSI2Rules: SCSI-2 RESERVE/RELEASE and SPC-4 §5.13.3 (CRH), PROTOCOLS.md §3 "A LUN
// reset does not clear PRs", libiscsi SCSI.Reserve6.*.
func TestSCSI2Rules(t *testing.T) { runRules(t, scsi2Rules) }

var scsi2Rules = []ruleCase{
	{rule: "reserve(6): establishes a SCSI-2 reservation", cmd: scsi2Reserve(nexA),
		check: func(t *testing.T, s *State, _ Result) {
			if !s.SCSI2.Held || s.SCSI2.Holder != nexA {
				t.Fatalf("%+v", s.SCSI2)
			}
		}},
	{rule: "reserve(6): again from the holder is GOOD", setup: res6A, cmd: scsi2Reserve(nexA)},
	{rule: "reserve(6): from another nexus conflicts", setup: res6A, cmd: scsi2Reserve(nexB),
		want: StatusConflict},
	{rule: "reserve(6): from the same initiator on another port conflicts", setup: res6A,
		cmd: scsi2Reserve(nexA2), want: StatusConflict},
	{rule: "release(6): from a non-holder is GOOD and releases nothing", setup: res6A,
		cmd: scsi2Release(nexB), check: func(t *testing.T, s *State, _ Result) {
			if !s.SCSI2.Held {
				t.Fatal("released")
			}
		}},
	{rule: "release(6): from the holder releases", setup: res6A, cmd: scsi2Release(nexA),
		check: func(t *testing.T, s *State, _ Result) {
			if s.SCSI2.Held {
				t.Fatal("still held")
			}
		}},
	{rule: "reserve(6): while another nexus is registered conflicts (SPC-2 5.5.1)",
		setup: []Command{scRegIgnore(nexB, 2)}, cmd: scsi2Reserve(nexA), want: StatusConflict},
	{rule: "reserve(6): from a registered non-holder without RO/AR conflicts",
		setup: []Command{scRegIgnore(nexA, 1), scRegIgnore(nexB, 2),
			scReserve(nexB, 2, WriteExclusive)},
		cmd: scsi2Reserve(nexA), want: StatusConflict},
	{rule: "reserve(6): from the PR holder is GOOD and changes nothing (CRH)",
		setup: []Command{scRegIgnore(nexA, 1), scReserve(nexA, 1, WriteExclusive)},
		cmd:   scsi2Reserve(nexA), check: func(t *testing.T, s *State, _ Result) {
			if s.SCSI2.Held || !s.Holds(nexA) {
				t.Fatalf("%+v", s)
			}
		}},
	{rule: "release(6): from a registrant under registrants-only is GOOD, PR kept (CRH)",
		setup: []Command{scRegIgnore(nexA, 1), scRegIgnore(nexB, 2),
			scReserve(nexB, 2, ExclusiveAccessRegistrantsOnly)},
		cmd: scsi2Release(nexA), check: wantReservation(nexB, ExclusiveAccessRegistrantsOnly)},
	{rule: "PR OUT while a SCSI-2 reservation exists conflicts, even from its holder",
		setup: res6A, cmd: scRegIgnore(nexA, 1), want: StatusConflict},
	{rule: "NVMe reservation commands conflict with a SCSI-2 reservation",
		setup: res6A, cmd: nvReg(hostA, 1), want: StatusConflict},
	{rule: "LUN reset clears the SCSI-2 reservation", setup: res6A,
		cmd: Command{Action: ClearSCSI2}, check: func(t *testing.T, s *State, _ Result) {
			if s.SCSI2.Held {
				t.Fatal("held")
			}
		}},
	{rule: "LUN reset keeps persistent reservations",
		setup: []Command{scRegIgnore(nexA, 1), scReserve(nexA, 1, ExclusiveAccess)},
		cmd:   Command{Action: ClearSCSI2}, check: wantReservation(nexA, ExclusiveAccess)},
	{rule: "I_T nexus loss of the holder ends the SCSI-2 reservation", setup: res6A,
		cmd: Command{Action: NexusLost, From: nexA}, check: func(t *testing.T, s *State, _ Result) {
			if s.SCSI2.Held {
				t.Fatal("held")
			}
		}},
	{rule: "I_T nexus loss of another nexus keeps it", setup: res6A,
		cmd: Command{Action: NexusLost, From: nexA2}, check: func(t *testing.T, s *State, _ Result) {
			if !s.SCSI2.Held {
				t.Fatal("released")
			}
		}},
	{rule: "I_T nexus loss keeps persistent reservations",
		setup: []Command{scRegIgnore(nexA, 1), scReserve(nexA, 1, ExclusiveAccess)},
		cmd:   Command{Action: NexusLost, From: nexA}, check: wantReservation(nexA, ExclusiveAccess)},
}
