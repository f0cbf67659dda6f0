package reservation

import (
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"testing"

	"sluice/engine/proto/nvme"
)

// checkInvariants checks what State's doc promises.
func checkInvariants(t *testing.T, s *State) {
	t.Helper()
	if err := invariantError(s); err != "" {
		t.Fatalf("invariant: %s\nstate %+v", err, s)
	}
}

func invariantError(s *State) string {
	holders := 0
	for i, r := range s.Registrants {
		if r.Key == 0 {
			return "zero key"
		}
		if r.Holder {
			holders++
		}
		for j := range i {
			if s.Registrants[j].Subject.overlaps(r.Subject, s.IgnoreISID) {
				return "overlapping registrants " + strconv.Itoa(j) + ", " + strconv.Itoa(i)
			}
		}
	}
	if len(s.Registrants) > MaxRegistrants {
		return "too many registrants"
	}
	switch {
	case !s.Type.Valid() && s.Type != TypeNone:
		return "invalid type"
	case s.Type == TypeNone && holders != 0:
		return "holder without a reservation"
	case s.Type.AllRegistrants() && (holders != 0 || len(s.Registrants) == 0):
		return "all-registrants reservation with a holder flag or no registrants"
	case s.Type.Valid() && !s.Type.AllRegistrants() && holders != 1:
		return "one-holder reservation without exactly one holder"
	case s.SCSI2.Held && (len(s.Registrants) > 0 || s.Type != TypeNone):
		return "SCSI-2 reservation beside persistent reservation state"
	}
	return ""
}

// bumps is the documented generation rule of State.Apply, written independently of it.
func bumps(c Command, before *State) bool {
	switch c.Action {
	case NVMeRegister, NVMeUnregister, NVMeReplace, NVMePreempt, NVMePreemptAbort, NVMeClear,
		SCSIClear, SCSIPreempt, SCSIPreemptAbort, SCSIRegisterMove:
		return true
	case SCSIRegister, SCSIRegisterIgnore:
		// The "do nothing" row of Tables 67/68: unregistered nexus, zero service key.
		return before.Registered(c.From) || c.ServiceKey != 0
	}
	return false
}

// refAllows is a slow reference of the access rules, written from the tables (NVMe
// PROTOCOLS.md §2 "I/O gating", SPC-4 Table 65, SPC-2 reservations), not from View.
func refAllows(s *State, id Identity, a Access) bool {
	if s.Type == TypeNone && !s.SCSI2.Held {
		return true
	}
	if a == AccessAlways {
		return true
	}
	if s.SCSI2.Held {
		mine := s.SCSI2.Holder.Matches(id, s.IgnoreISID)
		return mine && (a == AccessRead || a == AccessWrite || a == AccessControl)
	}
	if a == AccessControl || a == AccessResvIn {
		return true
	}
	if a != AccessRead && a != AccessWrite {
		return false
	}
	// [relation][read, write]; relation 0 holder, 1 registrant, 2 anyone else.
	table := map[Type][3][2]bool{
		WriteExclusive:                 {{true, true}, {true, false}, {true, false}},
		ExclusiveAccess:                {{true, true}, {false, false}, {false, false}},
		WriteExclusiveRegistrantsOnly:  {{true, true}, {true, true}, {true, false}},
		ExclusiveAccessRegistrantsOnly: {{true, true}, {true, true}, {false, false}},
		WriteExclusiveAllRegistrants:   {{true, true}, {true, true}, {true, false}},
		ExclusiveAccessAllRegistrants:  {{true, true}, {true, true}, {false, false}},
	}
	rel := 2
	if s.Registered(id) {
		rel = 1
	}
	if s.Holds(id) {
		rel = 0
	}
	return table[s.Type][rel][map[Access]int{AccessRead: 0, AccessWrite: 1}[a]]
}

// propertySeeds returns SEED from the environment, or a fixed set, so that runs are
// reproducible: a failure prints the seed to pass back.
func propertySeeds(t *testing.T) []uint64 {
	if v := os.Getenv("SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: %v", v, err)
		}
		return []uint64{seed}
	}
	return []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
}

// gen draws random commands from a small world of identities and keys, so that
// registrations, key collisions and conflicts are frequent.
type gen struct {
	r   *rand.Rand
	ids []Identity
}

func newGen(seed uint64) *gen {
	ids := []Identity{hostA, hostB, hostC, nexA, nexA2, nexAre, nexB, nexB2}
	return &gen{r: rand.New(rand.NewPCG(seed, 0x5EED)), ids: ids}
}

func (g *gen) id() Identity { return g.ids[g.r.IntN(len(g.ids))] }

func (g *gen) key() uint64 { return []uint64{0, 1, 2, 3, 3, 0xDEAD}[g.r.IntN(6)] }

func (g *gen) typ() Type { return Type(g.r.IntN(typeCount + 1)) } // TypeNone and 7 invalid

func (g *gen) tid() TransportID {
	id := g.ids[3+g.r.IntN(5)]
	return TransportID{Name: id.Initiator, ISID: id.ISID, HasISID: g.r.IntN(4) != 0}
}

// command draws a command; most come from the protocol the identity speaks.
func (g *gen) command(s *State) Command {
	c := Command{From: g.id(), Key: g.key(), ServiceKey: g.key(), Type: g.typ()}
	c.IEKEY = g.r.IntN(5) == 0
	c.CPTPL = uint8(g.r.IntN(4))
	c.PTPL, c.APTPL, c.Unreg = g.r.IntN(2) == 0, g.r.IntN(4) == 0, g.r.IntN(2) == 0
	c.AllTargetPorts = g.r.IntN(6) == 0
	if g.r.IntN(10) == 0 {
		c.Scope = 1
	}
	if g.r.IntN(8) == 0 {
		c.SpecIPT = true
		c.TransportIDs = []TransportID{g.tid(), g.tid()}[:1+g.r.IntN(2)]
	}
	c.MoveTo, c.MoveTargetPort = g.tid(), uint16(1+g.r.IntN(2))
	switch {
	case g.r.IntN(50) == 0:
		c.Action = Action(g.r.IntN(int(actionCount) + 2)) // anything, even nonsense
	case c.From.Protocol == ProtocolNVMe:
		c.Action = NVMeRegister + Action(g.r.IntN(int(NVMeSetPTPL-NVMeRegister)+1))
	default:
		c.Action = SCSIRegister + Action(g.r.IntN(int(ClearSCSI2-SCSIRegister)+1))
	}
	// Keep keys the requester knows most of the time, or nothing would ever succeed.
	if i := s.find(c.From.normalized()); i >= 0 && g.r.IntN(3) != 0 {
		c.Key = s.Registrants[i].Key
	}
	return c
}

// TestPropertyRandomSequences drives random command sequences from NVMe hosts and SCSI
// nexuses and checks, after every command: the invariants; that a failed command changed
// nothing and notified nobody; that the generation moved by exactly one on exactly the
// documented actions; that no notice reaches the requester; that View.Allows agrees with
// the reference tables; and that AfterPowerLoss keeps exactly what PTPL promises. At the
// end the whole sequence is replayed and must give the same state.
func TestPropertyRandomSequences(t *testing.T) {
	var ok [actionCount]int
	seeds := propertySeeds(t)
	for _, seed := range seeds {
		for _, ignoreISID := range []bool{false, true} {
			runSequence(t, seed, ignoreISID, 1500, &ok)
		}
	}
	// The generator must not be vacuous: with the default seeds every action succeeds
	// somewhere (a single SEED may be too short to reach them all).
	for a := NVMeRegister; a < actionCount && len(seeds) > 1; a++ {
		if ok[a] == 0 {
			t.Errorf("no successful %v in any sequence", a)
		}
	}
	t.Logf("successes per action: %v", ok)
}

func runSequence(t *testing.T, seed uint64, ignoreISID bool, steps int, ok *[actionCount]int) {
	g := newGen(seed)
	s := State{IgnoreISID: ignoreISID}
	var log []Command
	for step := range steps {
		c := g.command(&s)
		log = append(log, c)
		before := s.Clone()
		r := s.Apply(c)
		if r.Status == StatusOK && c.Action < actionCount {
			ok[c.Action]++
		}
		fail := func(msg string) {
			t.Fatalf("SEED=%d ignoreISID=%v step %d: %v from %v (%+v): %v: %s\nbefore %+v\nafter  %+v",
				seed, ignoreISID, step, c.Action, c.From, c, r.Status, msg, before, s)
		}
		if e := invariantError(&s); e != "" {
			fail("invariant: " + e)
		}
		checkStep(fail, &before, &s, c, r)
		checkViews(fail, &s, g.ids)
		checkPowerLoss(fail, &s)
	}
	replay := State{IgnoreISID: ignoreISID}
	for _, c := range log {
		replay.Apply(c)
	}
	if !reflect.DeepEqual(replay, s) {
		t.Fatalf("SEED=%d: replay differs:\n%+v\n%+v", seed, replay, s)
	}
}

func checkStep(fail func(string), before, s *State, c Command, r Result) {
	if r.Status != StatusOK {
		if !reflect.DeepEqual(*before, *s) || len(r.Notices)+len(r.Aborts) != 0 {
			fail("failed command changed the state or notified")
		}
		return
	}
	want := before.Generation
	if bumps(c, before) {
		want++
	}
	if s.Generation != want {
		fail("generation " + strconv.Itoa(int(s.Generation)) + ", want " + strconv.Itoa(int(want)))
	}
	from := c.From.normalized()
	for _, n := range r.Notices {
		if n.To.Covers(from, s.IgnoreISID) {
			fail("notice to the requester")
		}
	}
	if len(r.Aborts) > 0 && c.Action != NVMePreemptAbort && c.Action != SCSIPreemptAbort {
		fail("aborts from a command that does not abort")
	}
}

var accesses = []Access{AccessInvalid, AccessRead, AccessWrite, AccessControl, AccessResvIn,
	AccessAlways}

func checkViews(fail func(string), s *State, ids []Identity) {
	v := s.View()
	for _, id := range ids {
		for _, a := range accesses {
			if got, want := v.Allows(id, a), refAllows(s, id, a); got != want {
				fail("View.Allows(" + id.String() + ", " + a.String() + ") = " +
					strconv.FormatBool(got))
			}
		}
	}
}

func checkPowerLoss(fail func(string), s *State) {
	p := s.AfterPowerLoss()
	if e := invariantError(&p); e != "" {
		fail("after power loss: " + e)
	}
	if p.Generation != 0 || p.SCSI2.Held || p.IgnoreISID != s.IgnoreISID {
		fail("after power loss: generation, SCSI-2 or configuration kept wrongly")
	}
	if s.PTPL != (p.Type == s.Type && reflect.DeepEqual(p.Registrants, s.Registrants) && p.PTPL) {
		fail("after power loss: PTPL did not decide what survived")
	}
	if !s.PTPL && (len(p.Registrants) != 0 || p.Type != TypeNone || p.PTPL) {
		fail("after power loss without PTPL: something survived")
	}
}

// TestApplyInvalidCommands: Apply answers nonsense with Invalid Field and changes nothing.
func TestApplyInvalidCommands(t *testing.T) {
	s := build(t, nvReg(hostA, 1), scRegIgnore(nexB, 2))
	for _, c := range []Command{
		{},
		{Action: actionCount, From: hostA},
		{Action: 200, From: hostA},
		nvReg(nexA, 1),        // NVMe action from a SCSI identity
		scRegIgnore(hostC, 1), // SCSI action from an NVMe identity
		{Action: SCSI2Reserve, From: hostA},
		nvReg(Identity{}, 1),
		NVMeRegisterCommand(hostC, nvme.ResvRegister{RREGA: 3}, nvme.ResvRegisterData{NRKEY: 1}),
		NVMeReleaseCommand(hostA, nvme.ResvRelease{RRELA: 2}, nvme.ResvReleaseData{CRKEY: 1}),
	} {
		mustApply(t, &s, c, StatusInvalidField)
	}
}

// TestGenerationWraps: the generation is a wrapping 32-bit counter in both protocols.
func TestGenerationWraps(t *testing.T) {
	s := State{Generation: 0xFFFFFFFF}
	mustApply(t, &s, nvReg(hostA, 1), StatusOK)
	if s.Generation != 0 {
		t.Fatalf("generation %d", s.Generation)
	}
}

// TestRegistrantLimit: past MaxRegistrants, registration answers INSUFFICIENT
// REGISTRATION RESOURCES (SPC-4 §5.13.7) and nothing changes, SPEC_I_PT all or nothing.
func TestRegistrantLimit(t *testing.T) {
	var s State
	for i := range MaxRegistrants - 1 {
		mustApply(t, &s, nvReg(NVMeHost([16]byte{byte(i), byte(i >> 8), 0xEE}), 1), StatusOK)
	}
	spec := scReg(nexA, 0, 5)
	spec.SpecIPT, spec.TransportIDs = true, []TransportID{tidOf(nexB)}
	mustApply(t, &s, spec, StatusInsufficientResources)
	mustApply(t, &s, scRegIgnore(nexA, 5), StatusOK)
	mustApply(t, &s, nvReg(hostA, 1), StatusInsufficientResources)
	mustApply(t, &s, Command{Action: NVMeReplace, From: hostA, ServiceKey: 1, IEKEY: true},
		StatusInsufficientResources)
	mustApply(t, &s, scRegIgnore(nexB, 5), StatusInsufficientResources)
	if len(s.Registrants) != MaxRegistrants {
		t.Fatal(len(s.Registrants))
	}
}
