package reservation

import (
	"reflect"
	"testing"

	"sluice/engine/proto/nvme"
)

// TestAsksToPersist is DESIGN.md's admission question, row by row (PROTOCOLS.md §5 P1..P4:
// only these commands query the group's sync state).
func TestAsksToPersist(t *testing.T) {
	off, on := &State{}, &State{PTPL: true}
	withCPTPL := func(v uint8) Command {
		return Command{Action: NVMeRegister, From: hostA, ServiceKey: 1, CPTPL: v}
	}
	withAPTPL := func(c Command) Command { c.APTPL = true; return c }
	for _, c := range []struct {
		name string
		cmd  Command
		s    *State
		want bool
	}{
		{"nvme register CPTPL=11b asks", withCPTPL(nvme.CPTPLSet), off, true},
		{"nvme register CPTPL=10b does not", withCPTPL(nvme.CPTPLClear), off, false},
		{"nvme register CPTPL=00b does not", withCPTPL(nvme.CPTPLNoChange), off, false},
		{"nvme unregister CPTPL=11b asks",
			Command{Action: NVMeUnregister, From: hostA, CPTPL: nvme.CPTPLSet}, off, true},
		{"set features 83h PTPL=1 asks", NVMeSetPTPLCommand(hostA, 1), off, true},
		{"set features 83h PTPL=0 does not", NVMeSetPTPLCommand(hostA, 0), off, false},
		{"scsi register APTPL=1 asks", withAPTPL(scReg(nexA, 0, 1)), off, true},
		{"scsi register and ignore APTPL=1 asks", withAPTPL(scRegIgnore(nexA, 1)), off, true},
		{"scsi register and move APTPL=1 asks",
			withAPTPL(scMove(nexA, 1, 2, tidOf(nexB), 1)), off, true},
		{"scsi reserve with the APTPL bit asks (conservative)",
			withAPTPL(scReserve(nexA, 1, WriteExclusive)), off, true},
		{"scsi register APTPL=0 does not", scReg(nexA, 0, 1), off, false},
		{"nvme acquire does not", nvAcquire(hostA, 1, WriteExclusive), off, false},
		{"any nvme command on a persistent volume asks", nvAcquire(hostA, 1, WriteExclusive), on, true},
		{"turning persistence off on a persistent volume asks", NVMeSetPTPLCommand(hostA, 0), on, true},
		{"any scsi command on a persistent volume asks", scRelease(nexA, 1, WriteExclusive), on, true},
		{"scsi-2 reserve on a persistent volume asks", scsi2Reserve(nexA), on, true},
		{"scsi-2 reserve otherwise does not", scsi2Reserve(nexA), off, false},
		{"nexus loss never asks", Command{Action: NexusLost, From: nexA}, on, false},
		{"lun reset never asks", Command{Action: ClearSCSI2}, on, false},
		{"an invalid action never asks", Command{Action: 99, APTPL: true}, on, false},
		{"a nil state is a volume with persistence off", withCPTPL(nvme.CPTPLNoChange), nil, false},
	} {
		if got := AsksToPersist(c.cmd, c.s); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}

// TestAfterPowerLoss: with PTPL the registrations and the reservation survive a
// whole-group power loss, without it they are gone; SCSI-2 reservations never survive;
// the generation restarts at 0.
func TestAfterPowerLoss(t *testing.T) {
	// The SCSI registration comes first: its APTPL=0 would turn persistence off again.
	s := build(t, scRegIgnore(nexA, 2),
		Command{Action: NVMeRegister, From: hostA, ServiceKey: 1, CPTPL: nvme.CPTPLSet},
		nvAcquire(hostA, 1, ExclusiveAccess))
	s.IgnoreISID = true
	p := s.AfterPowerLoss()
	if p.Generation != 0 || !p.PTPL || p.Type != ExclusiveAccess || !p.Holds(hostA) ||
		!reflect.DeepEqual(p.Registrants, s.Registrants) || !p.IgnoreISID {
		t.Fatalf("%+v", p)
	}
	// The copy is independent of the original.
	p.Registrants[1].Key = 99
	if s.Registrants[1].Key != 1 {
		t.Fatal("AfterPowerLoss shares registrants")
	}
	// APTPL=0 from the last valid registration turns persistence off: all is lost.
	mustApply(t, &s, scRegIgnore(nexA, 3), StatusOK)
	if p := s.AfterPowerLoss(); !reflect.DeepEqual(p, State{IgnoreISID: true}) {
		t.Fatalf("%+v", p)
	}
	s2 := build(t, scsi2Reserve(nexA))
	s2.PTPL = true
	if p := s2.AfterPowerLoss(); p.SCSI2.Held {
		t.Fatal("SCSI-2 reservation survived")
	}
}

// TestFailedCommandChangesNothing: Apply is all or nothing, even where the failure is
// found after some registrations were made (SPEC_I_PT with a registered port last).
func TestFailedCommandChangesNothing(t *testing.T) {
	s := build(t, scRegIgnore(nexB2, 2))
	c := scReg(nexA, 0, 5)
	c.SpecIPT = true
	c.TransportIDs = []TransportID{tidOf(nexB), {Name: iqnB}}
	c.APTPL = true
	mustApply(t, &s, c, StatusInvalidParameterList)
	if len(s.Registrants) != 1 || s.PTPL || s.Generation != 1 {
		t.Fatalf("%+v", s)
	}
}
