package reservation

import (
	"reflect"
	"slices"
	"testing"

	"sluice/engine/proto/nvme"
)

// Setups shared by the NVMe rule tables.
var (
	nvRegAB    = []Command{nvReg(hostA, 1), nvReg(hostB, 2)}
	nvRegABC   = []Command{nvReg(hostA, 1), nvReg(hostB, 2), nvReg(hostC, 3)}
	nvHeldWE   = nvHeld(nvRegAB, WriteExclusive)
	nvHeldWERO = nvHeld(nvRegAB, WriteExclusiveRegistrantsOnly)
)

// nvHeld is setup, then host A (key 1) acquiring a reservation of type typ.
func nvHeld(setup []Command, typ Type) []Command {
	return append(slices.Clone(setup), nvAcquire(hostA, 1, typ))
}

// ruleCase is one rule of PROTOCOLS.md §2 or §3 (or of the spec text behind them): a
// setup that must succeed, one command, the expected outcome and generation move, and an
// optional check of the resulting state and notices.
type ruleCase struct {
	rule   string
	setup  []Command
	cmd    Command
	want   Status
	bump   bool // the generation moves by one
	config func(*State)
	check  func(t *testing.T, s *State, r Result)
}

func runRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			var s State
			if c.config != nil {
				c.config(&s)
			}
			for _, sc := range c.setup {
				if r := s.Apply(sc); r.Status != StatusOK {
					t.Fatalf("setup %v from %v: %v", sc.Action, sc.From, r.Status)
				}
			}
			gen := s.Generation
			r := mustApply(t, &s, c.cmd, c.want)
			if moved := s.Generation != gen; moved != c.bump || moved && s.Generation != gen+1 {
				t.Fatalf("generation %d -> %d, want bump=%v", gen, s.Generation, c.bump)
			}
			checkInvariants(t, &s)
			if c.check != nil {
				c.check(t, &s, r)
			}
		})
	}
}

func wantKeys(keys ...uint64) func(*testing.T, *State, Result) {
	return func(t *testing.T, s *State, _ Result) {
		t.Helper()
		if got := keysOf(s); !slices.Equal(got, keys) {
			t.Fatalf("keys %v, want %v", got, keys)
		}
	}
}

func wantReservation(holder Identity, typ Type) func(*testing.T, *State, Result) {
	return func(t *testing.T, s *State, _ Result) {
		t.Helper()
		if s.Type != typ || !s.Holds(holder) {
			t.Fatalf("reservation %v held by %v? state %+v", typ, holder, s)
		}
	}
}

func wantNoReservation(t *testing.T, s *State, _ Result) {
	t.Helper()
	if s.Type != TypeNone {
		t.Fatalf("still reserved: %+v", s)
	}
}

// wantNotices checks the notices exactly, in order.
func wantNotices(ns ...Notice) func(*testing.T, *State, Result) {
	return func(t *testing.T, _ *State, r Result) {
		t.Helper()
		if !reflect.DeepEqual(r.Notices, ns) && len(r.Notices)+len(ns) > 0 {
			t.Fatalf("notices %+v, want %+v", r.Notices, ns)
		}
	}
}

func note(k NoticeKind, id Identity) Notice { return Notice{Kind: k, To: Subject{ID: id}} }

func all(checks ...func(*testing.T, *State, Result)) func(*testing.T, *State, Result) {
	return func(t *testing.T, s *State, r Result) {
		t.Helper()
		for _, c := range checks {
			c(t, s, r)
		}
	}
}

// TestNVMeRegisterRules: PROTOCOLS.md §2 "Register", "Unregister", "Replace".
func TestNVMeRegisterRules(t *testing.T) { runRules(t, nvmeRegisterRules) }

var nvmeRegisterRules = []ruleCase{
	{rule: "register: a new registrant needs NRKEY != 0", cmd: nvReg(hostA, 0),
		want: StatusInvalidField},
	{rule: "register: a new registrant is added", cmd: nvReg(hostA, 7), bump: true,
		check: wantKeys(7)},
	{rule: "register: again with the same key succeeds and bumps (spec)",
		setup: nvRegAB, cmd: nvReg(hostA, 1), bump: true, check: wantKeys(1, 2)},
	{rule: "register: again with a different key conflicts", setup: nvRegAB,
		cmd: nvReg(hostA, 9), want: StatusConflict},
	{rule: "register: CPTPL 01b is reserved",
		cmd:  Command{Action: NVMeRegister, From: hostA, ServiceKey: 1, CPTPL: 1},
		want: StatusInvalidField},
	{rule: "register: CPTPL 11b turns persistence on",
		cmd:  Command{Action: NVMeRegister, From: hostA, ServiceKey: 1, CPTPL: nvme.CPTPLSet},
		bump: true, check: func(t *testing.T, s *State, _ Result) {
			if !s.PTPL {
				t.Fatal("PTPL off")
			}
		}},
	{rule: "register: CPTPL 10b turns persistence off",
		setup: []Command{{Action: NVMeSetPTPL, From: hostB, PTPL: true}},
		cmd:   Command{Action: NVMeRegister, From: hostA, ServiceKey: 1, CPTPL: nvme.CPTPLClear},
		bump:  true, check: func(t *testing.T, s *State, _ Result) {
			if s.PTPL {
				t.Fatal("PTPL on")
			}
		}},
	{rule: "register: a failed register leaves CPTPL unapplied", setup: nvRegAB,
		cmd:  Command{Action: NVMeRegister, From: hostA, ServiceKey: 9, CPTPL: nvme.CPTPLSet},
		want: StatusConflict},
	{rule: "identity is the host ID: another controller of the host shares it",
		setup: nvRegAB, cmd: nvUnreg(NVMeHost(hostA.HostID), 1), bump: true,
		check: wantKeys(2)},
	{rule: "unregister: CRKEY must match", setup: nvRegAB, cmd: nvUnreg(hostA, 2),
		want: StatusConflict},
	{rule: "unregister: IEKEY skips the CRKEY check", setup: nvRegAB,
		cmd:  Command{Action: NVMeUnregister, From: hostA, Key: 99, IEKEY: true},
		bump: true, check: wantKeys(2)},
	{rule: "unregister: an unregistered host conflicts", setup: nvRegAB,
		cmd: nvUnreg(hostC, 0), want: StatusConflict},
	{rule: "unregister: the holder leaving an all-registrants type keeps it for the rest",
		setup: nvHeld(nvRegAB, WriteExclusiveAllRegistrants),
		cmd:   nvUnreg(hostA, 1), bump: true,
		check: all(wantReservation(hostB, WriteExclusiveAllRegistrants), wantNotices())},
	{rule: "unregister: the holder leaving Write Exclusive releases it silently",
		setup: nvHeld(nvRegAB, WriteExclusive),
		cmd:   nvUnreg(hostA, 1), bump: true, check: all(wantNoReservation, wantNotices())},
	{rule: "unregister: the holder leaving a registrants-only type tells the others",
		setup: nvHeld(nvRegAB, ExclusiveAccessRegistrantsOnly),
		cmd:   nvUnreg(hostA, 1), bump: true,
		check: all(wantNoReservation, wantNotices(note(ReservationReleased, hostB)))},
	{rule: "replace: CRKEY must match", setup: nvRegAB, cmd: nvReplace(hostA, 5, 6),
		want: StatusConflict},
	{rule: "replace: with a matching CRKEY", setup: nvRegAB, cmd: nvReplace(hostA, 1, 6),
		bump: true, check: wantKeys(6, 2)},
	{rule: "replace: IEKEY skips the CRKEY check", setup: nvRegAB,
		cmd:  Command{Action: NVMeReplace, From: hostA, Key: 5, ServiceKey: 6, IEKEY: true},
		bump: true, check: wantKeys(6, 2)},
	{rule: "replace: IEKEY registers an unregistered host (SPDK)", setup: nvRegAB,
		cmd:  Command{Action: NVMeReplace, From: hostC, ServiceKey: 3, IEKEY: true},
		bump: true, check: wantKeys(1, 2, 3)},
	{rule: "replace: an unregistered host without IEKEY conflicts",
		cmd: nvReplace(hostC, 0, 3), want: StatusConflict},
	{rule: "replace: NRKEY 0 is invalid", setup: nvRegAB, cmd: nvReplace(hostA, 1, 0),
		want: StatusInvalidField},
	{rule: "replace: the holder keeps the reservation under its new key",
		setup: nvHeld(nvRegAB, WriteExclusive),
		cmd:   nvReplace(hostA, 1, 11), bump: true,
		check: func(t *testing.T, s *State, _ Result) {
			if rr := s.ReadReservation(); rr.Key != 11 || !s.Holds(hostA) {
				t.Fatalf("%+v", rr)
			}
		}},
}

// TestNVMeAcquireReleaseRules: PROTOCOLS.md §2 "Acquire", "Release", "Clear".
func TestNVMeAcquireReleaseRules(t *testing.T) { runRules(t, nvmeAcquireReleaseRules) }

var nvmeAcquireReleaseRules = []ruleCase{
	{rule: "acquire: IEKEY is invalid", setup: nvRegAB,
		cmd:  Command{Action: NVMeAcquire, From: hostA, Key: 1, Type: WriteExclusive, IEKEY: true},
		want: StatusInvalidField},
	{rule: "acquire: RTYPE outside 1..6 is invalid", setup: nvRegAB,
		cmd:  NVMeAcquireCommand(hostA, nvme.ResvAcquire{RTYPE: 7}, nvme.ResvAcquireData{CRKEY: 1}),
		want: StatusInvalidField},
	{rule: "acquire: RACQA 3 is invalid", setup: nvRegAB,
		cmd: NVMeAcquireCommand(hostA, nvme.ResvAcquire{RACQA: 3, RTYPE: 1},
			nvme.ResvAcquireData{CRKEY: 1}),
		want: StatusInvalidField},
	{rule: "acquire: from a non-registrant conflicts", setup: nvRegAB,
		cmd: nvAcquire(hostC, 0, WriteExclusive), want: StatusConflict},
	{rule: "acquire: with a wrong CRKEY conflicts", setup: nvRegAB,
		cmd: nvAcquire(hostA, 2, WriteExclusive), want: StatusConflict},
	{rule: "acquire: creates the reservation without a generation bump", setup: nvRegAB,
		cmd: nvAcquire(hostA, 1, ExclusiveAccess), check: wantReservation(hostA, ExclusiveAccess)},
	{rule: "acquire: the holder re-acquiring the same type succeeds", setup: nvHeldWE,
		cmd: nvAcquire(hostA, 1, WriteExclusive)},
	{rule: "acquire: the holder asking for another type conflicts", setup: nvHeldWE,
		cmd: nvAcquire(hostA, 1, ExclusiveAccess), want: StatusConflict},
	{rule: "acquire: another holder conflicts", setup: nvHeldWE,
		cmd: nvAcquire(hostB, 2, WriteExclusive), want: StatusConflict},
	{rule: "acquire: every registrant holds an all-registrants type",
		setup: nvHeld(nvRegAB, ExclusiveAccessAllRegistrants),
		cmd:   nvAcquire(hostB, 2, ExclusiveAccessAllRegistrants)},
	{rule: "release: IEKEY is invalid", setup: nvHeldWE,
		cmd:  Command{Action: NVMeRelease, From: hostA, Key: 1, Type: WriteExclusive, IEKEY: true},
		want: StatusInvalidField},
	{rule: "clear: IEKEY is invalid", setup: nvHeldWE,
		cmd: Command{Action: NVMeClear, From: hostA, Key: 1, IEKEY: true}, want: StatusInvalidField},
	{rule: "release: from a non-registrant conflicts", setup: nvHeldWE,
		cmd: nvRelease(hostC, 0, WriteExclusive), want: StatusConflict},
	{rule: "release: from a registrant that does not hold is a no-op", setup: nvHeldWE,
		cmd: nvRelease(hostB, 2, WriteExclusive), check: wantReservation(hostA, WriteExclusive)},
	{rule: "release: with no reservation is a no-op", setup: nvRegAB,
		cmd: nvRelease(hostA, 1, WriteExclusive)},
	{rule: "release: a type mismatch is Invalid Field (spec, SPDK; nvmet: Conflict)",
		setup: nvHeldWE, cmd: nvRelease(hostA, 1, ExclusiveAccess), want: StatusInvalidRelease},
	{rule: "release: Write Exclusive releases without notices", setup: nvHeldWE,
		cmd: nvRelease(hostA, 1, WriteExclusive), check: all(wantNoReservation, wantNotices())},
	{rule: "release: a registrants-only type tells the others", setup: nvHeldWERO,
		cmd:   nvRelease(hostA, 1, WriteExclusiveRegistrantsOnly),
		check: all(wantNoReservation, wantNotices(note(ReservationReleased, hostB)))},
	{rule: "clear: drops everything, tells the others, bumps", setup: nvHeldWERO,
		cmd: nvClear(hostB, 2), bump: true,
		check: all(wantNoReservation, wantKeys(),
			wantNotices(note(ReservationPreempted, hostA)))},
	{rule: "clear: needs a matching key", setup: nvHeldWERO, cmd: nvClear(hostB, 1),
		want: StatusConflict},
}

// TestNVMePreemptRules: PROTOCOLS.md §2 "Preempt", "Preempt-and-Abort".
func TestNVMePreemptRules(t *testing.T) { runRules(t, nvmePreemptRules) }

var nvmePreemptRules = []ruleCase{
	{rule: "preempt: with no holder unregisters the PRKEY registrants", setup: nvRegABC,
		cmd: nvPreempt(hostB, 2, 3, WriteExclusive), bump: true,
		check: all(wantKeys(1, 2), wantNoReservation,
			wantNotices(note(RegistrationPreempted, hostC)))},
	{rule: "preempt: with no holder and no PRKEY match conflicts (nvmet)", setup: nvRegABC,
		cmd: nvPreempt(hostB, 2, 9, WriteExclusive), want: StatusConflict},
	{rule: "preempt: RTYPE is checked even when only removing registrations",
		setup: nvRegABC, cmd: nvPreempt(hostB, 2, 3, TypeNone), want: StatusInvalidField},
	{rule: "preempt: all-registrants with PRKEY 0 removes all others, new holder and type",
		setup: nvHeld(nvRegABC, WriteExclusiveAllRegistrants),
		cmd:   nvPreempt(hostB, 2, 0, ExclusiveAccess),
		bump:  true,
		check: all(wantKeys(2), wantReservation(hostB, ExclusiveAccess),
			wantNotices(note(RegistrationPreempted, hostA), note(RegistrationPreempted, hostC)))},
	{rule: "preempt: all-registrants with PRKEY != 0 removes those keys, keeps it",
		setup: nvHeld(nvRegABC, ExclusiveAccessAllRegistrants),
		cmd:   nvPreempt(hostB, 2, 1, WriteExclusive), bump: true,
		check: all(wantKeys(2, 3), wantReservation(hostB, ExclusiveAccessAllRegistrants),
			wantNotices(note(RegistrationPreempted, hostA)))},
	{rule: "preempt: the holder's key moves the reservation with the new type",
		setup: nvHeld(nvRegABC, WriteExclusive), cmd: nvPreempt(hostB, 2, 1, ExclusiveAccess), bump: true,
		check: all(wantKeys(2, 3), wantReservation(hostB, ExclusiveAccess),
			wantNotices(note(RegistrationPreempted, hostA), note(ReservationReleased, hostC)))},
	{rule: "preempt: the holder's key, same type: no release notice",
		setup: nvHeld(nvRegABC, WriteExclusive), cmd: nvPreempt(hostB, 2, 1, WriteExclusive), bump: true,
		check: all(wantReservation(hostB, WriteExclusive),
			wantNotices(note(RegistrationPreempted, hostA)))},
	{rule: "preempt: another nonzero key unregisters that key only",
		setup: nvHeld(nvRegABC, WriteExclusive), cmd: nvPreempt(hostB, 2, 3, WriteExclusive), bump: true,
		check: all(wantKeys(1, 2), wantReservation(hostA, WriteExclusive),
			wantNotices(note(RegistrationPreempted, hostC)))},
	{rule: "preempt: PRKEY 0 under a one-holder type is Invalid Field (spec, nvmet)",
		setup: nvHeld(nvRegABC, WriteExclusive), cmd: nvPreempt(hostB, 2, 0, WriteExclusive),
		want: StatusInvalidParameterList},
	{rule: "preempt: self-preempt changing type tells the others it was released",
		setup: nvHeld(nvRegABC, WriteExclusiveRegistrantsOnly),
		cmd:   nvPreempt(hostA, 1, 1, ExclusiveAccessRegistrantsOnly), bump: true,
		check: all(wantKeys(1, 2, 3), wantReservation(hostA, ExclusiveAccessRegistrantsOnly),
			wantNotices(note(ReservationReleased, hostB), note(ReservationReleased, hostC)))},
	{rule: "preempt: from a non-registrant conflicts", setup: nvHeld(nvRegABC, WriteExclusive),
		cmd: nvPreempt(NVMeHost([16]byte{9}), 0, 1, WriteExclusive), want: StatusConflict},
	{rule: "preempt and abort: aborts the preempted hosts",
		setup: nvHeld(nvRegABC, ExclusiveAccess),
		cmd: Command{Action: NVMePreemptAbort, From: hostC, Key: 3, ServiceKey: 1,
			Type: ExclusiveAccess},
		bump: true,
		check: func(t *testing.T, s *State, r Result) {
			if len(r.Aborts) != 1 || !r.Aborts[0].Covers(hostA, false) || !s.Holds(hostC) {
				t.Fatalf("aborts %+v", r.Aborts)
			}
		}},
	{rule: "preempt: only a takeover or preempt-and-abort reports aborts",
		setup: nvHeld(nvRegABC, ExclusiveAccess), cmd: nvPreempt(hostC, 3, 1, ExclusiveAccess),
		bump: true,
		check: func(t *testing.T, _ *State, r Result) {
			if len(r.Aborts) != 0 {
				t.Fatalf("aborts %+v", r.Aborts)
			}
		}},
}
