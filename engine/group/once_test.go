package group

import (
	"bytes"
	"context"
	"testing"
	"time"

	"sluice/engine/reservation"
)

// TestApplyOnce: a second log entry carrying a command that applied already changes
// nothing and reports the first copy's outcome; the record survives a snapshot, so a
// replica restored from one skips the same copies; records beyond appliedIDsKept are
// dropped in apply order, moving the horizon, identically on every replica.
func TestApplyOnce(t *testing.T) {
	s := newReplicated()
	vol := [16]byte{7}
	h := reservation.NVMeHost([16]byte{1})
	reg := Entry{Kind: EntryReserve, ID: EntryID{2, 1, 5}, Vol: vol, Persist: true,
		Cmd: reservation.Command{Action: reservation.NVMeRegister, From: h, ServiceKey: 0xAA}}
	if out := s.apply(&reg, 10); out.dup != nil || out.result.Status != reservation.StatusOK {
		t.Fatalf("first copy: %+v", out)
	}
	gen := s.vols[vol].state.Generation
	snap := EncodeSnapshot(s.snapshot())
	out := s.apply(&reg, 12) // the copy a new leader proposed again
	if out.dup == nil || out.dup.Index != 10 || !out.dup.Persist || len(out.changed) != 0 {
		t.Fatalf("second copy applied: %+v", out)
	}
	if g := s.vols[vol].state.Generation; g != gen || s.vols[vol].index != 10 || s.lastPersist != 10 {
		t.Errorf("second copy changed the volume: generation %d (was %d), index %d, last persist %d",
			g, gen, s.vols[vol].index, s.lastPersist)
	}
	if r := out.dup.reply(12); r.Code != CodeOK || r.Result.Status != reservation.StatusOK || r.Index != 12 || r.Partial {
		t.Errorf("copy's reply %+v", r)
	}

	d, err := DecodeSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	r := newReplicated()
	r.restore(&d)
	if out := r.apply(&reg, 12); out.dup == nil {
		t.Errorf("a replica restored from a snapshot applied the copy again")
	}

	// Fill the record past its size on two replicas, one of them restored midway.
	a, b := newReplicated(), newReplicated()
	for i := range uint64(appliedIDsKept + 10) {
		e := Entry{Kind: EntrySetOwner, ID: EntryID{3, 1, i + 1}, Vol: vol, Node: 3}
		a.apply(&e, 100+i)
		b.apply(&e, 100+i)
		if i == appliedIDsKept/2 {
			d, err := DecodeSnapshot(EncodeSnapshot(b.snapshot()))
			if err != nil {
				t.Fatal(err)
			}
			b = newReplicated()
			b.restore(&d)
		}
	}
	if len(a.done) != appliedIDsKept || a.horizon != 100+9 {
		t.Errorf("%d records, horizon %d; want %d and %d", len(a.done), a.horizon, appliedIDsKept, 109)
	}
	if !bytes.Equal(EncodeSnapshot(a.snapshot()), EncodeSnapshot(b.snapshot())) {
		t.Errorf("replicas disagree on the record after a restore")
	}
	if _, ok := a.appliedRecord(EntryID{3, 1, 11}); !ok {
		t.Errorf("the oldest kept record is gone")
	}
	if _, ok := a.appliedRecord(EntryID{3, 1, 10}); ok {
		t.Errorf("a dropped record is still there")
	}
	// A snapshot holding more records than the state keeps is cut to the newest.
	big := a.snapshot()
	for i := range uint64(5) {
		big.AppliedIDs = append(big.AppliedIDs, AppliedID{ID: EntryID{4, 1, i + 1}, Index: 2000 + i})
	}
	c := newReplicated()
	c.restore(big)
	if len(c.done) != appliedIDsKept || c.horizon != 114 || len(c.order)-c.head != appliedIDsKept {
		t.Errorf("restored %d records (order %d), horizon %d", len(c.done), len(c.order)-c.head, c.horizon)
	}
}

// stillLoop is a Loop whose clock stands still, for tests of loop code without a loop.
type stillLoop struct{ now time.Time }

func (l *stillLoop) Now() time.Time                                    { return l.now }
func (l *stillLoop) Post(func())                                       {}
func (l *stillLoop) After(time.Duration, func()) func() bool           { return func() bool { return false } }
func (l *stillLoop) Wait(ctx context.Context, _ <-chan struct{}) error { return ctx.Err() }

// TestAdmitOnce: a leader answers a command it finds in the record with the recorded
// outcome (persistent: under the rule for answers) instead of proposing it; proposes one
// it does not find while it remembers every command applied since the origin sent it;
// and answers ErrOutcomeUnknown when it does not.
func TestAdmitOnce(t *testing.T) {
	c := &core{n: &Node{loop: &stillLoop{}}, st: newReplicated(), propByID: map[EntryID]*proposal{}}
	vol := [16]byte{7}
	for i := range uint64(appliedIDsKept + 1) {
		e := Entry{Kind: EntryReserve, ID: EntryID{2, 1, i + 1}, Vol: vol, Persist: true,
			Cmd: reservation.Command{Action: reservation.NVMeRegister,
				From: reservation.NVMeHost([16]byte{byte(i), byte(i >> 8), 1}), ServiceKey: 0xAA}}
		c.st.apply(&e, 10+i)
	}
	// Seq 1 (index 10) is forgotten: the horizon is 10.
	var got *Reply
	admit := func(id EntryID, since uint64) (*proposal, bool) {
		got = nil
		p := &proposal{req: Request{ID: id, Op: OpReserve, Since: since}, local: func(r Reply) { got = &r }}
		c.propByID[id] = p
		return p, c.admitOnce(p)
	}
	p, done := admit(EntryID{2, 1, 7}, 5)
	if !done || !p.applied || p.index != 16 || !p.persist || p.state != propProposed || got != nil ||
		p.reply.Result.Status != reservation.StatusOK || c.counters.AlreadyApplied != 1 {
		t.Errorf("applied command: done %v, proposal %+v, answered %v", done, p, got)
	}
	if _, done := admit(EntryID{5, 1, 1}, 10); done || got != nil {
		t.Errorf("a command sent after the horizon and never applied was not left to propose")
	}
	if _, done := admit(EntryID{5, 1, 2}, 9); !done || got == nil || got.Code != CodeOutcomeUnknown {
		t.Errorf("a command sent before the horizon: done %v, answer %+v; want outcome unknown", done, got)
	}
}
