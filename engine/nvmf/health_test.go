package nvmf

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/bdev"
	"sluice/engine/proto/nvme"
)

// The hardening issue's honest health data: Controller Busy Time is time with at least
// one command outstanding, command counters count successes, and Get Features SEL 3
// answers only for features that exist.

func healthOf(t *testing.T, st *stepTarget) nvme.SMARTLog {
	t.Helper()
	s := st.tgt.subsystem(testNQN)
	for c := range st.pg.ctrlrs {
		if c.subsys == s {
			return c.healthLog()
		}
	}
	t.Fatal("no controller")
	return nvme.SMARTLog{}
}

func TestControllerBusyTimeCountsSecondsWithCommandsOutstanding(t *testing.T) {
	st := newStepTargetOpts(t, stepOpts{module: "delay", delayPolls: 500, fakeClock: true})
	_, io := st.ioPair(false, false, 0)
	if got := st.tgt.subsystem(testNQN).busy.secs.Load(); got != 0 {
		t.Fatalf("busy seconds %d before any I/O", got)
	}
	// Writes held by the delay bdev stay outstanding while the clock moves 3.5 s:
	// every second they span is busy, however few commands arrive in it.
	io.inflightWrites(4)
	for i := 0; i < 35; i++ {
		st.advance(100 * time.Millisecond)
		st.poll(2)
	}
	busy := st.tgt.subsystem(testNQN).busy.secs.Load()
	if busy < 3 || busy > 5 {
		t.Fatalf("busy seconds %d after 3.5 s with commands outstanding, want 3 to 5", busy)
	}
	// Idle time is not busy time: the sum of latencies used to be reported instead.
	unixClose(io)
	st.settleWithClock(1)
	before := st.tgt.subsystem(testNQN).busy.secs.Load()
	for i := 0; i < 100; i++ {
		st.advance(100 * time.Millisecond)
		st.poll(2)
	}
	if after := st.tgt.subsystem(testNQN).busy.secs.Load(); after != before {
		t.Fatalf("10 idle seconds counted %d busy seconds", after-before)
	}
	if m := healthOf(t, st).ControllerBusyTime.Lo; m != 1 {
		t.Fatalf("Controller Busy Time %d minutes, want 1 (a started minute)", m)
	}
}

// settleWithClock is settle for a target on the fake clock: the delay bdev's held
// writes complete only when polled, whatever the clock says.
func (st *stepTarget) settleWithClock(keep int) {
	st.t.Helper()
	for i := 0; len(st.pg.conns) > keep && i < 1e6; i++ {
		st.poll(1)
	}
}

func unixClose(h *stepHost) { _ = unix.Close(h.fd) }

func TestHealthCountsOnlySuccessfulCommands(t *testing.T) {
	st := newStepTarget(t, "malloc")
	if _, err := bdev.CreateError(st.bdevs, bdev.ErrorParams{BaseName: "b0"}); err == nil {
		t.Fatal("b0 is exported; a layer over it must be refused")
	}
	if _, err := bdev.CreateMalloc(st.bdevs, bdev.MallocParams{Name: "m1", NumBlocks: 1024, BlockSize: 512}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bdev.CreateError(st.bdevs, bdev.ErrorParams{BaseName: "m1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.tgt.AddNamespace(testNQN, NamespaceParams{NSID: 2, BdevName: "EE_m1"}); err != nil {
		t.Fatal(err)
	}
	_, io := st.ioPair(false, false, 0)
	if err := bdev.InjectError(st.bdevs, bdev.InjectParams{Name: "EE_m1", IOType: "write", ErrorType: "failure", Num: 3}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{1}, 4096)
	for i := 0; i < 5; i++ {
		w := rwSQE(nvme.NVMWrite, io.nextCID(), uint64(i)*8, 8, nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: 4096})
		w.SetNSID(2)
		c := io.call(w, data, nil)
		if want := i >= 3; c.Status().Success() != want {
			t.Fatalf("write %d: %v", i, c.Status())
		}
	}
	h := healthOf(t, st)
	if h.HostWriteCommands.Lo != 2 || h.MediaErrors.Lo != 3 {
		t.Fatalf("host write commands %d media errors %d, want 2 (the successes) and 3",
			h.HostWriteCommands.Lo, h.MediaErrors.Lo)
	}
	if units := h.DataUnitsWritten; units != nvme.DataUnits(2*4096) {
		t.Fatalf("data units written %v, want those of the 2 successful writes", units)
	}
}

func TestGetFeaturesSupportedCapabilities(t *testing.T) {
	st := newStepTarget(t, "malloc")
	admin, _ := st.ioPair(false, false, 0)
	get := func(fid nvme.FeatureID) nvme.CQE {
		var s nvme.SQE
		s.SetOpcode(uint8(nvme.AdminGetFeatures))
		s.SetCID(admin.nextCID())
		s.SetCDW10(uint32(fid) | 3<<8) // SEL 011b
		return admin.call(&s, nil, nil)
	}
	if c := get(nvme.FeatVolatileWriteCache); !c.Status().Success() || c.DW0() != featChangeable {
		t.Fatalf("VWC capabilities: %v DW0 %#x, want changeable", c.Status(), c.DW0())
	}
	for _, fid := range []nvme.FeatureID{0x7F, 0x0C, 0x80} {
		if c := get(fid); c.Status() != nvme.StatusInvalidField.WithDNR() {
			t.Fatalf("SEL 3 for feature %#x that does not exist: %v, want Invalid Field", fid, c.Status())
		}
	}
}

// TestWriteZeroesAndDeallocateHonourTheWriteCacheSetting: with the host's volatile
// write cache off, Write Zeroes (with and without DEAC) and Dataset Management
// deallocate reach stable storage before they complete, like writes; with FUA too.
func TestWriteZeroesAndDeallocateHonourTheWriteCacheSetting(t *testing.T) {
	st := newStepTarget(t, "file")
	admin, io := st.ioPair(false, false, 0)
	b, _ := st.bdevs.Get("b0")
	syncs := func() uint64 { return b.IOStat().NumSyncOps }
	wz := func(deac, fua bool) {
		var s nvme.SQE
		s.SetOpcode(uint8(nvme.NVMWriteZeroes))
		s.SetCID(io.nextCID())
		s.SetNSID(1)
		s.SetSLBA(64)
		s.SetNLB(7)
		s.SetDEAC(deac)
		s.SetFUA(fua)
		if c := io.call(&s, nil, nil); !c.Status().Success() {
			t.Fatalf("write zeroes: %v", c.Status())
		}
	}
	dsm := func() {
		var s nvme.SQE
		s.SetOpcode(uint8(nvme.NVMDatasetManagement))
		s.SetCID(io.nextCID())
		s.SetNSID(1)
		s.SetDSMRanges(1)
		s.SetCDW11(nvme.DSMDeallocate)
		s.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: nvme.DSMRangeLen})
		var rg [nvme.DSMRangeLen]byte
		nvme.DSMRange{SLBA: 128, NLB: 8}.Put(rg[:])
		if c := io.call(&s, rg[:], nil); !c.Status().Success() {
			t.Fatalf("deallocate: %v", c.Status())
		}
	}
	n := syncs()
	wz(false, false)
	wz(true, false)
	dsm()
	if syncs() != n {
		t.Fatal("write zeroes and deallocate synced with the write cache on and no FUA")
	}
	wz(true, true)
	if syncs() != n+1 {
		t.Fatalf("Write Zeroes with DEAC and FUA: %d fdatasync, want 1", syncs()-n)
	}
	var s nvme.SQE
	s.SetOpcode(uint8(nvme.AdminSetFeatures))
	s.SetCID(admin.nextCID())
	s.SetCDW10(uint32(nvme.FeatVolatileWriteCache))
	s.SetCDW11(0)
	if c := admin.call(&s, nil, nil); !c.Status().Success() {
		t.Fatalf("VWC off: %v", c.Status())
	}
	n = syncs()
	wz(false, false)
	wz(true, false)
	dsm()
	if got := syncs() - n; got != 3 {
		t.Fatalf("with the write cache off: %d fdatasync for write zeroes, write zeroes DEAC and deallocate, want 3", got)
	}
}
