package reservation

import "testing"

// TestViewAllowsAllocatesNothing: View.Allows runs on every I/O (DESIGN.md "Zero garbage
// on the hot path").
func TestViewAllowsAllocatesNothing(t *testing.T) {
	s := build(t, scRegIgnore(nexA, 1), nvReg(hostA, 2), scRegIgnore(nexB, 3),
		scReserve(nexB, 3, ExclusiveAccessRegistrantsOnly))
	v := s.View()
	empty := (&State{}).View()
	s2 := build(t, scsi2Reserve(nexA))
	scsi2 := s2.View()
	var nilView *View
	var sink int
	for _, c := range []struct {
		name string
		v    *View
	}{{"reserved", v}, {"empty", empty}, {"scsi-2", scsi2}, {"nil", nilView}} {
		n := testing.AllocsPerRun(1000, func() {
			for _, id := range []Identity{nexA, nexA2, hostA, hostB} {
				for _, a := range accesses {
					if c.v.Allows(id, a) {
						sink++
					}
				}
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocs per run", c.name, n)
		}
	}
	_ = sink
}

// TestViewNoReservation: with no reservation everything passes, even an unclassified
// access, and a nil View means the same.
func TestViewNoReservation(t *testing.T) {
	s := build(t, nvReg(hostA, 1), scRegIgnore(nexA, 2))
	var nilView *View
	for _, v := range []*View{s.View(), nilView} {
		for _, a := range accesses {
			if !v.Allows(hostB, a) || !v.Allows(nexB, a) {
				t.Fatalf("%v refused with no reservation", a)
			}
		}
	}
	if nilView.Generation() != 0 || s.View().Generation() != s.Generation {
		t.Fatal("Generation")
	}
}

// TestViewImmutable: a published View does not follow later changes to the State.
func TestViewImmutable(t *testing.T) {
	s := build(t, nvReg(hostA, 1), nvAcquire(hostA, 1, ExclusiveAccess))
	v := s.View()
	mustApply(t, &s, nvRelease(hostA, 1, ExclusiveAccess), StatusOK)
	mustApply(t, &s, nvUnreg(hostA, 1), StatusOK)
	if v.Allows(hostB, AccessRead) || !v.Allows(hostA, AccessWrite) {
		t.Fatal("view changed with the state")
	}
}

// TestCrossProtocol: one reservation per volume, whichever protocol took it (the issue's
// "a SCSI PR reservation held by an iSCSI initiator conflicts NVMe I/O from an
// unregistered host, and the other way round").
func TestCrossProtocol(t *testing.T) {
	t.Run("SCSI holder blocks NVMe non-registrant writes", func(t *testing.T) {
		s := build(t, scRegIgnore(nexA, 1), scReserve(nexA, 1, WriteExclusive))
		v := s.View()
		if v.Allows(hostA, AccessWrite) || !v.Allows(hostA, AccessRead) ||
			!v.Allows(nexA, AccessWrite) {
			t.Fatal("write exclusive")
		}
		// An NVMe host cannot take a reservation another protocol holds.
		mustApply(t, &s, nvReg(hostA, 2), StatusOK)
		mustApply(t, &s, nvAcquire(hostA, 2, WriteExclusive), StatusConflict)
	})
	t.Run("NVMe holder blocks SCSI non-registrant I/O", func(t *testing.T) {
		s := build(t, nvReg(hostA, 1), nvAcquire(hostA, 1, ExclusiveAccess))
		v := s.View()
		if v.Allows(nexA, AccessRead) || v.Allows(nexA, AccessWrite) ||
			!v.Allows(nexA, AccessControl) || !v.Allows(hostA, AccessWrite) {
			t.Fatal("exclusive access")
		}
		mustApply(t, &s, scRegIgnore(nexA, 2), StatusOK)
		mustApply(t, &s, scReserve(nexA, 2, ExclusiveAccess), StatusConflict)
	})
	t.Run("registrants of either protocol pass a registrants-only reservation", func(t *testing.T) {
		s := build(t, scRegIgnore(nexA, 1), nvReg(hostA, 2),
			scReserve(nexA, 1, WriteExclusiveRegistrantsOnly))
		v := s.View()
		if !v.Allows(hostA, AccessWrite) || v.Allows(hostB, AccessWrite) ||
			!v.Allows(hostB, AccessRead) {
			t.Fatal("registrants only")
		}
	})
	t.Run("a SCSI PREEMPT by key removes an NVMe holder and notifies it", func(t *testing.T) {
		s := build(t, nvReg(hostA, 1), nvAcquire(hostA, 1, ExclusiveAccess), scRegIgnore(nexA, 2))
		r := mustApply(t, &s, scPreempt(nexA, 2, 1, WriteExclusive), StatusOK)
		if !s.Holds(nexA) || s.Registered(hostA) ||
			len(noticesTo(r, hostA)) != 1 || noticesTo(r, hostA)[0] != RegistrationPreempted {
			t.Fatalf("%+v %+v", s, r)
		}
		if !s.View().Allows(hostA, AccessRead) || s.View().Allows(hostA, AccessWrite) {
			t.Fatal("NVMe access after preemption")
		}
	})
	t.Run("an NVMe Clear reaches SCSI registrants as RESERVATIONS PREEMPTED", func(t *testing.T) {
		s := build(t, scRegIgnore(nexA, 1), scReserve(nexA, 1, WriteExclusive), nvReg(hostA, 2))
		r := mustApply(t, &s, nvClear(hostA, 2), StatusOK)
		if k := noticesTo(r, nexA); len(k) != 1 || k[0] != ReservationPreempted {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("a SCSI-2 reservation blocks NVMe I/O", func(t *testing.T) {
		s := build(t, scsi2Reserve(nexA))
		v := s.View()
		if v.Allows(hostA, AccessRead) || v.Allows(hostA, AccessControl) ||
			!v.Allows(hostA, AccessAlways) || !v.Allows(nexA, AccessWrite) ||
			v.Allows(nexA, AccessResvIn) || v.Allows(nexB, AccessResvIn) {
			t.Fatal("scsi-2")
		}
	})
	t.Run("reports list registrants of both protocols", func(t *testing.T) {
		s := build(t, scRegIgnore(nexA, 1), nvReg(hostA, 2), nvAcquire(hostA, 2, WriteExclusive))
		_, rs, _ := s.NVMeReport(true)
		if len(rs) != 2 || rs[0].RKEY != 1 || rs[0].HOSTID != [16]byte{} ||
			rs[1].HOSTID != hostA.HostID ||
			rs[1].RCSTS != 1 || rs[0].RCSTS != 0 {
			t.Fatalf("%+v", rs)
		}
		if rr := s.ReadReservation(); !rr.Reserved || rr.Key != 2 || rr.Type != 1 {
			t.Fatalf("%+v", rr)
		}
	})
}

// TestViewAccessTable is the PROTOCOLS.md §2 "I/O gating" table and SPC-4 Table 65, row by
// row, for a holder, a registrant and a stranger (libiscsi ProutReserve.Access* checks the
// same from two initiators).
func TestViewAccessTable(t *testing.T) {
	for _, c := range []struct {
		typ           Type
		reg, stranger [2]bool // read, write
	}{
		{WriteExclusive, [2]bool{true, false}, [2]bool{true, false}},
		{ExclusiveAccess, [2]bool{false, false}, [2]bool{false, false}},
		{WriteExclusiveRegistrantsOnly, [2]bool{true, true}, [2]bool{true, false}},
		{ExclusiveAccessRegistrantsOnly, [2]bool{true, true}, [2]bool{false, false}},
		{WriteExclusiveAllRegistrants, [2]bool{true, true}, [2]bool{true, false}},
		{ExclusiveAccessAllRegistrants, [2]bool{true, true}, [2]bool{false, false}},
	} {
		s := build(t, nvReg(hostA, 1), scRegIgnore(nexA, 2), nvAcquire(hostA, 1, c.typ))
		v := s.View()
		got := func(id Identity) [2]bool {
			return [2]bool{v.Allows(id, AccessRead), v.Allows(id, AccessWrite)}
		}
		if got(hostA) != [2]bool{true, true} || got(nexA) != c.reg || got(nexB) != c.stranger ||
			got(hostB) != c.stranger {
			t.Errorf("%v: holder %v registrant %v stranger %v", c.typ, got(hostA), got(nexA),
				got(nexB))
		}
		for _, id := range []Identity{hostB, nexB} {
			if !v.Allows(id, AccessControl) || !v.Allows(id, AccessResvIn) ||
				!v.Allows(id, AccessAlways) || v.Allows(id, AccessInvalid) {
				t.Errorf("%v: non-media classes for %v", c.typ, id)
			}
		}
	}
}

func BenchmarkViewAllowsNoReservation(b *testing.B) {
	var s State
	v := s.View()
	b.ReportAllocs()
	for b.Loop() {
		if !v.Allows(hostA, AccessWrite) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkViewAllowsRegistrant(b *testing.B) {
	var s State
	for i := range 8 {
		s.Apply(scRegIgnore(SCSINexus(iqnB, uint64(i), 1), 5))
	}
	s.Apply(scRegIgnore(nexA, 1))
	s.Apply(scReserve(nexA, 1, WriteExclusiveRegistrantsOnly))
	v := s.View()
	id := SCSINexus(iqnB, 7, 1)
	b.ReportAllocs()
	for b.Loop() {
		if !v.Allows(id, AccessWrite) {
			b.Fatal("refused")
		}
	}
}
