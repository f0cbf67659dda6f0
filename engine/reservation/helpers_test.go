package reservation

import (
	"reflect"
	"testing"
)

// Identities used across the tests: three NVMe hosts and SCSI nexuses of two initiators,
// the first on two target ports and (for ISID tests) with a second session.
var (
	hostA = NVMeHost([16]byte{0xAA, 15: 1})
	hostB = NVMeHost([16]byte{0xBB, 15: 2})
	hostC = NVMeHost([16]byte{0xCC, 15: 3})

	iqnA   = "iqn.1994-05.com.redhat:node-a"
	iqnB   = "iqn.1994-05.com.redhat:node-b"
	nexA   = SCSINexus(iqnA, 0x23D000000001, 1)
	nexA2  = SCSINexus(iqnA, 0x23D000000001, 2) // same initiator port, other target port
	nexAre = SCSINexus(iqnA, 0x23D000000077, 1) // re-login with a new ISID
	nexB   = SCSINexus(iqnB, 0x23D000000002, 1)
	nexB2  = SCSINexus(iqnB, 0x23D000000002, 2)
)

// NVMe command builders.

func nvReg(id Identity, nrkey uint64) Command {
	return Command{Action: NVMeRegister, From: id, ServiceKey: nrkey}
}

func nvUnreg(id Identity, crkey uint64) Command {
	return Command{Action: NVMeUnregister, From: id, Key: crkey}
}

func nvReplace(id Identity, crkey, nrkey uint64) Command {
	return Command{Action: NVMeReplace, From: id, Key: crkey, ServiceKey: nrkey}
}

func nvAcquire(id Identity, crkey uint64, t Type) Command {
	return Command{Action: NVMeAcquire, From: id, Key: crkey, Type: t}
}

func nvPreempt(id Identity, crkey, prkey uint64, t Type) Command {
	return Command{Action: NVMePreempt, From: id, Key: crkey, ServiceKey: prkey, Type: t}
}

func nvRelease(id Identity, crkey uint64, t Type) Command {
	return Command{Action: NVMeRelease, From: id, Key: crkey, Type: t}
}

func nvClear(id Identity, crkey uint64) Command {
	return Command{Action: NVMeClear, From: id, Key: crkey}
}

// SCSI command builders.

func scReg(id Identity, rk, sark uint64) Command {
	return Command{Action: SCSIRegister, From: id, Key: rk, ServiceKey: sark}
}

func scRegIgnore(id Identity, sark uint64) Command {
	return Command{Action: SCSIRegisterIgnore, From: id, ServiceKey: sark}
}

func scReserve(id Identity, rk uint64, t Type) Command {
	return Command{Action: SCSIReserve, From: id, Key: rk, Type: t}
}

func scRelease(id Identity, rk uint64, t Type) Command {
	return Command{Action: SCSIRelease, From: id, Key: rk, Type: t}
}

func scClear(id Identity, rk uint64) Command {
	return Command{Action: SCSIClear, From: id, Key: rk}
}

func scPreempt(id Identity, rk, sark uint64, t Type) Command {
	return Command{Action: SCSIPreempt, From: id, Key: rk, ServiceKey: sark, Type: t}
}

func scMove(id Identity, rk, sark uint64, to TransportID, port uint16) Command {
	return Command{Action: SCSIRegisterMove, From: id, Key: rk, ServiceKey: sark, MoveTo: to,
		MoveTargetPort: port}
}

func scsi2Reserve(id Identity) Command { return Command{Action: SCSI2Reserve, From: id} }
func scsi2Release(id Identity) Command { return Command{Action: SCSI2Release, From: id} }

func tidOf(id Identity) TransportID {
	return TransportID{Name: id.Initiator, ISID: id.ISID, HasISID: true}
}

// build applies cmds to a fresh state and fails the test unless each succeeds.
func build(t *testing.T, cmds ...Command) State {
	t.Helper()
	var s State
	for _, c := range cmds {
		if r := s.Apply(c); r.Status != StatusOK {
			t.Fatalf("setup %v from %v: %v", c.Action, c.From, r.Status)
		}
	}
	return s
}

// mustApply applies c and fails the test unless the outcome is want.
func mustApply(t *testing.T, s *State, c Command, want Status) Result {
	t.Helper()
	before := s.Clone()
	r := s.Apply(c)
	if r.Status != want {
		t.Fatalf("%v from %v: %v, want %v", c.Action, c.From, r.Status, want)
	}
	if want != StatusOK && !reflect.DeepEqual(before, *s) {
		t.Fatalf("%v failed but changed the state:\n%+v\n%+v", c.Action, before, *s)
	}
	return r
}

func keysOf(s *State) []uint64 { return s.ReadKeys().Keys }

// noticesTo returns the kinds of the notices whose subject covers id.
func noticesTo(r Result, id Identity) []NoticeKind {
	var ks []NoticeKind
	for _, n := range r.Notices {
		if n.To.Covers(id, false) {
			ks = append(ks, n.Kind)
		}
	}
	return ks
}
