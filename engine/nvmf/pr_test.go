package nvmf

import (
	"bytes"
	"testing"

	"sluice/engine/proto/nvme"
)

// NVMe reservations end to end on the step harness: two hosts (two host identifiers)
// share a namespace; commands go through the reservation manager; I/O is checked
// against the published snapshot.

var otherHostID = [16]byte{0xB0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xB1}

const otherHostNQN = "nqn.2014-08.org.nvmexpress:uuid:b0020304-0506-0708-090a-0b0c0d0e0fb1"

// hostPair connects an admin and an I/O queue for each of two hosts.
func (st *stepTarget) hostPair() (adminA, ioA, adminB, ioB *stepHost) {
	st.t.Helper()
	adminA, ioA = st.ioPair(false, false, 0)
	adminB = st.connect()
	adminB.hostID, adminB.hostNQN = otherHostID, otherHostNQN
	adminB.icreq(false, false)
	if c := adminB.connectQueue(0, nvme.CNTLIDDynamic, 0); !c.Status().Success() {
		st.t.Fatalf("host B admin connect: %v", c.Status())
	}
	ioB = st.connect()
	ioB.hostID, ioB.hostNQN = otherHostID, otherHostNQN
	ioB.icreq(false, false)
	if c := ioB.connectQueue(1, adminB.cntlid, 0); !c.Status().Success() {
		st.t.Fatalf("host B I/O connect: %v", c.Status())
	}
	return
}

func resvSQE(h *stepHost, op nvme.NVMOpcode, cdw10 uint32, dataLen uint32) *nvme.SQE {
	var s nvme.SQE
	s.SetOpcode(uint8(op))
	s.SetCID(h.nextCID())
	s.SetNSID(1)
	s.SetCDW10(cdw10)
	s.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: dataLen})
	return &s
}

func register(h *stepHost, f nvme.ResvRegister, d nvme.ResvRegisterData) nvme.Status {
	var s nvme.SQE
	f.Put(&s)
	b := make([]byte, 16)
	d.Put(b)
	c := h.call(resvSQE(h, nvme.NVMReservationRegister, s.CDW10(), 16), b, nil)
	return c.Status()
}

func acquire(h *stepHost, f nvme.ResvAcquire, d nvme.ResvAcquireData) nvme.Status {
	var s nvme.SQE
	f.Put(&s)
	b := make([]byte, 16)
	d.Put(b)
	c := h.call(resvSQE(h, nvme.NVMReservationAcquire, s.CDW10(), 16), b, nil)
	return c.Status()
}

func release(h *stepHost, f nvme.ResvRelease, d nvme.ResvReleaseData) nvme.Status {
	var s nvme.SQE
	f.Put(&s)
	b := make([]byte, 8)
	d.Put(b)
	c := h.call(resvSQE(h, nvme.NVMReservationRelease, s.CDW10(), 8), b, nil)
	return c.Status()
}

func report(t *testing.T, h *stepHost, eds bool) (nvme.ResvStatus, []nvme.ResvRegistrantExt, nvme.Status) {
	t.Helper()
	var s nvme.SQE
	s.SetOpcode(uint8(nvme.NVMReservationReport))
	s.SetCID(h.nextCID())
	s.SetNSID(1)
	f := nvme.ResvReport{NUMD: 4096/4 - 1, EDS: eds}
	f.Put(&s)
	s.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 4096})
	buf := make([]byte, 4096)
	c := h.call(&s, nil, buf)
	if !c.Status().Success() {
		return nvme.ResvStatus{}, nil, c.Status()
	}
	hd, regs, err := nvme.DecodeResvStatusExt(buf)
	if err != nil {
		t.Fatal(err)
	}
	return hd, regs, c.Status()
}

func write4K(h *stepHost, slba uint64) nvme.Status {
	w := rwSQE(nvme.NVMWrite, h.nextCID(), slba, 8, nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: 4096})
	c := h.call(w, bytes.Repeat([]byte{9}, 4096), nil)
	return c.Status()
}

func read4K(h *stepHost, slba uint64) nvme.Status {
	r := rwSQE(nvme.NVMRead, h.nextCID(), slba, 8, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 4096})
	c := h.call(r, nil, make([]byte, 4096))
	return c.Status()
}

func TestNVMeReservationsTwoHosts(t *testing.T) {
	st := newStepTargetOpts(t, stepOpts{module: "malloc", resv: true})
	adminA, ioA, adminB, ioB := st.hostPair()
	_ = adminB
	if s := register(ioA, nvme.ResvRegister{RREGA: nvme.RREGARegister}, nvme.ResvRegisterData{NRKEY: 0xA}); !s.Success() {
		t.Fatalf("A register: %v", s)
	}
	if s := register(ioB, nvme.ResvRegister{RREGA: nvme.RREGARegister}, nvme.ResvRegisterData{NRKEY: 0xB}); !s.Success() {
		t.Fatalf("B register: %v", s)
	}
	if s := acquire(ioA, nvme.ResvAcquire{RACQA: nvme.RACQAAcquire, RTYPE: nvme.RTypeWriteExclusive},
		nvme.ResvAcquireData{CRKEY: 0xA}); !s.Success() {
		t.Fatalf("A acquire write exclusive: %v", s)
	}
	if s := write4K(ioB, 0); s != nvme.StatusReservationConflict.WithDNR() {
		t.Fatalf("B's write under A's write-exclusive reservation: %v, want Reservation Conflict", s)
	}
	if s := read4K(ioB, 0); !s.Success() {
		t.Fatalf("B's read under write exclusive: %v", s)
	}
	if s := write4K(ioA, 0); !s.Success() {
		t.Fatalf("the holder's write: %v", s)
	}
	if _, _, s := report(t, ioB, false); s != nvme.StatusHostIdentifierInconsistentFormat.WithDNR() {
		t.Fatalf("report without EDS: %v", s)
	}
	h, regs, s := report(t, ioB, true)
	if !s.Success() || h.RTYPE != nvme.RTypeWriteExclusive || len(regs) != 2 {
		t.Fatalf("report: %v %+v %d registrants", s, h, len(regs))
	}
	for _, r := range regs {
		holder := r.RCSTS&nvme.ResvRCSTSHolder != 0
		if (r.HOSTID == testHostID) != holder || (r.HOSTID != testHostID && r.HOSTID != otherHostID) {
			t.Fatalf("registrant %+v", r)
		}
	}
	// B preempts A: A's registration goes, A gets a Registration Preempted notice.
	if s := acquire(ioB, nvme.ResvAcquire{RACQA: nvme.RACQAPreempt, RTYPE: nvme.RTypeExclusiveAccess},
		nvme.ResvAcquireData{CRKEY: 0xB, PRKEY: 0xA}); !s.Success() {
		t.Fatalf("B preempt: %v", s)
	}
	if s := read4K(ioA, 0); s != nvme.StatusReservationConflict.WithDNR() {
		t.Fatalf("A's read under B's exclusive access: %v", s)
	}
	var lp [nvme.ResvNotifLogLen]byte
	readLog(t, adminA, nvme.LogReservationNotification, lp[:])
	var nl nvme.ResvNotifLog
	nl.Unmarshal(&lp)
	if nl.Type != nvme.ResvNotifRegistrationPreempt || nl.NSID != 1 || nl.Count != 1 {
		t.Fatalf("A's notification log %+v, want registration preempted on nsid 1", nl)
	}
	readLog(t, adminA, nvme.LogReservationNotification, lp[:])
	if nl.Unmarshal(&lp); nl.Type != nvme.ResvNotifEmpty {
		t.Fatalf("second read of the log %+v, want empty", nl)
	}
	if s := release(ioB, nvme.ResvRelease{RRELA: nvme.RRELARelease, RTYPE: nvme.RTypeExclusiveAccess},
		nvme.ResvReleaseData{CRKEY: 0xB}); !s.Success() {
		t.Fatalf("B release: %v", s)
	}
	if s := write4K(ioA, 0); !s.Success() {
		t.Fatalf("A's write after release: %v", s)
	}
	// Persistence through power loss: CPTPL 11b, then the report says PTPL on.
	if s := register(ioB, nvme.ResvRegister{RREGA: nvme.RREGAReplace, CPTPL: nvme.CPTPLSet},
		nvme.ResvRegisterData{CRKEY: 0xB, NRKEY: 0xBB}); !s.Success() {
		t.Fatalf("B replace with CPTPL=11b: %v", s)
	}
	if h, _, _ := report(t, ioA, true); h.PTPLS != 1 {
		t.Fatalf("report PTPLS %d after CPTPL=11b", h.PTPLS)
	}
	if s := release(ioB, nvme.ResvRelease{RRELA: nvme.RRELAClear}, nvme.ResvReleaseData{CRKEY: 0xBB}); !s.Success() {
		t.Fatalf("clear: %v", s)
	}
	if h, regs, _ := report(t, ioA, true); h.REGCTL != 0 || len(regs) != 0 {
		t.Fatalf("report after clear: %+v", h)
	}
}

func readLog(t *testing.T, admin *stepHost, lid nvme.LogPageID, buf []byte) {
	t.Helper()
	var s nvme.SQE
	s.SetOpcode(uint8(nvme.AdminGetLogPage))
	s.SetCID(admin.nextCID())
	s.SetNSID(0xFFFFFFFF)
	s.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: uint32(len(buf))})
	nvme.GetLogPage{LID: lid, NUMD: nvme.NUMDFor(uint64(len(buf)))}.Put(&s)
	if c := admin.call(&s, nil, buf); !c.Status().Success() {
		t.Fatalf("log %#x: %v", lid, c.Status())
	}
}

// TestPersistentCommandRefusedRetryably: while the group cannot admit commands that ask
// to persist, they get Command Interrupted with DNR clear, nothing changes, and other
// commands are admitted.
func TestPersistentCommandRefusedRetryably(t *testing.T) {
	st := newStepTargetOpts(t, stepOpts{module: "malloc", resv: true})
	_, io := st.ioPair(false, false, 0)
	st.decider.SetRefusePersistent(true)
	if s := register(io, nvme.ResvRegister{RREGA: nvme.RREGARegister, CPTPL: nvme.CPTPLSet},
		nvme.ResvRegisterData{NRKEY: 7}); s != nvme.StatusCommandInterrupted {
		t.Fatalf("persistent register while refused: %v, want Command Interrupted without DNR", s)
	}
	if h, regs, _ := report(t, io, true); h.GEN != 0 || len(regs) != 0 {
		t.Fatalf("a refused command changed the state: %+v", h)
	}
	if s := register(io, nvme.ResvRegister{RREGA: nvme.RREGARegister}, nvme.ResvRegisterData{NRKEY: 7}); !s.Success() {
		t.Fatalf("non-persistent register: %v", s)
	}
	st.decider.SetRefusePersistent(false)
	if s := register(io, nvme.ResvRegister{RREGA: nvme.RREGAReplace, CPTPL: nvme.CPTPLSet},
		nvme.ResvRegisterData{CRKEY: 7, NRKEY: 8}); !s.Success() {
		t.Fatalf("persistent register once admitted: %v", s)
	}
}

func TestReservationFeaturesAndIdentify(t *testing.T) {
	st := newStepTargetOpts(t, stepOpts{module: "malloc", resv: true})
	admin, io := st.ioPair(false, false, 0)
	var s nvme.SQE
	s.SetOpcode(uint8(nvme.AdminIdentify))
	s.SetCID(admin.nextCID())
	s.SetIdentify(nvme.CNSController, 0, 0)
	s.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: nvme.IdentifyLen})
	page := make([]byte, nvme.IdentifyLen)
	admin.call(&s, nil, page)
	var idc nvme.IdentifyController
	idc.Unmarshal((*[nvme.IdentifyLen]byte)(page))
	if idc.ONCS&nvme.ONCSReservations == 0 {
		t.Fatal("ONCS does not advertise reservations")
	}
	s.SetCID(admin.nextCID())
	s.SetNSID(1)
	s.SetIdentify(nvme.CNSNamespace, 0, 0)
	admin.call(&s, nil, page)
	var idn nvme.IdentifyNamespace
	idn.Unmarshal((*[nvme.IdentifyLen]byte)(page))
	if idn.RESCAP != nvme.RESCAPAll {
		t.Fatalf("RESCAP %#x", idn.RESCAP)
	}
	// Feature 83h: set PTPL, read it back; feature 82h: mask a notice kind.
	feat := func(op nvme.AdminOpcode, fid nvme.FeatureID, cdw11 uint32) nvme.CQE {
		var f nvme.SQE
		f.SetOpcode(uint8(op))
		f.SetCID(admin.nextCID())
		f.SetNSID(1)
		f.SetCDW10(uint32(fid))
		f.SetCDW11(cdw11)
		return admin.call(&f, nil, nil)
	}
	if c := feat(nvme.AdminSetFeatures, nvme.FeatReservationPersistence, nvme.ResvPersistencePTPL); !c.Status().Success() {
		t.Fatalf("set 83h: %v", c.Status())
	}
	if c := feat(nvme.AdminGetFeatures, nvme.FeatReservationPersistence, 0); c.DW0() != nvme.ResvPersistencePTPL {
		t.Fatalf("get 83h: %#x", c.DW0())
	}
	if c := feat(nvme.AdminSetFeatures, nvme.FeatReservationNotificationMask, nvme.ResvMaskRegistrationPreempted); !c.Status().Success() {
		t.Fatalf("set 82h: %v", c.Status())
	}
	if c := feat(nvme.AdminGetFeatures, nvme.FeatReservationNotificationMask, 0); c.DW0() != nvme.ResvMaskRegistrationPreempted {
		t.Fatalf("get 82h: %#x", c.DW0())
	}
	_ = io
}

// TestPreemptAndAbortDrainsTheFencedHost: Preempt and Abort is answered only once the
// preempted host's commands in flight on the volume have finished, and the preempted
// host's later I/O is refused.
func TestPreemptAndAbortDrainsTheFencedHost(t *testing.T) {
	st := newStepTargetOpts(t, stepOpts{module: "delay", delayPolls: 200000, resv: true})
	_, ioA, _, ioB := st.hostPair()
	register(ioA, nvme.ResvRegister{RREGA: nvme.RREGARegister}, nvme.ResvRegisterData{NRKEY: 0xA})
	register(ioB, nvme.ResvRegister{RREGA: nvme.RREGARegister}, nvme.ResvRegisterData{NRKEY: 0xB})
	if s := acquire(ioA, nvme.ResvAcquire{RACQA: nvme.RACQAAcquire, RTYPE: nvme.RTypeWriteExclusive},
		nvme.ResvAcquireData{CRKEY: 0xA}); !s.Success() {
		t.Fatal(s)
	}
	b, _ := st.bdevs.Get("b0")
	before := b.IOStat().NumWriteOps
	data := bytes.Repeat([]byte{3}, 4096)
	for i := 0; i < 20; i++ {
		w := rwSQE(nvme.NVMWrite, ioA.nextCID(), uint64(i)*8, 8, nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: 4096})
		ioA.send(ioA.capsule(w, data))
	}
	st.poll(3)
	if s := acquire(ioB, nvme.ResvAcquire{RACQA: nvme.RACQAPreemptAndAbort, RTYPE: nvme.RTypeWriteExclusive},
		nvme.ResvAcquireData{CRKEY: 0xB, PRKEY: 0xA}); !s.Success() {
		t.Fatalf("preempt and abort: %v", s)
	}
	if done := b.IOStat().NumWriteOps - before; done != 20 {
		t.Fatalf("preempt and abort answered with %d of the preempted host's 20 writes still in flight", 20-done)
	}
	ioA.drainPending()
	if s := write4K(ioA, 0); s != nvme.StatusReservationConflict.WithDNR() {
		t.Fatalf("the preempted host's write: %v", s)
	}
}

// TestReservationNoticeRaisesAnEventUnlessMasked: a notice completes a parked
// Asynchronous Event Request with Reservation Log Page Available; a host that masked the
// kind (feature 82h) gets no log entry.
func TestReservationNoticeRaisesAnEventUnlessMasked(t *testing.T) {
	st := newStepTargetOpts(t, stepOpts{module: "malloc", resv: true})
	adminA, ioA, _, ioB := st.hostPair()
	register(ioA, nvme.ResvRegister{RREGA: nvme.RREGARegister}, nvme.ResvRegisterData{NRKEY: 0xA})
	register(ioB, nvme.ResvRegister{RREGA: nvme.RREGARegister}, nvme.ResvRegisterData{NRKEY: 0xB})
	acquire(ioA, nvme.ResvAcquire{RACQA: nvme.RACQAAcquire, RTYPE: nvme.RTypeWriteExclusive}, nvme.ResvAcquireData{CRKEY: 0xA})
	var aer nvme.SQE
	aer.SetOpcode(uint8(nvme.AdminAsyncEventRequest))
	aer.SetCID(adminA.nextCID())
	adminA.send(adminA.capsule(&aer, nil))
	st.poll(5)
	if s := acquire(ioB, nvme.ResvAcquire{RACQA: nvme.RACQAPreempt, RTYPE: nvme.RTypeWriteExclusive},
		nvme.ResvAcquireData{CRKEY: 0xB, PRKEY: 0xA}); !s.Success() {
		t.Fatal(s)
	}
	ch, pdu := adminA.recvPDU()
	if ch.Type != nvme.PDUTypeCapsuleResp {
		t.Fatalf("got %v", ch.Type)
	}
	if c := nvme.CapsuleCQE(pdu); c.DW0() != nvme.AENReservationLogAvailable.DW0() {
		t.Fatalf("AER completed with DW0 %#x, want reservation log available", c.DW0())
	}
	var lp [nvme.ResvNotifLogLen]byte
	readLog(t, adminA, nvme.LogReservationNotification, lp[:])
	// A registers again and masks Registration Preempted; B preempts it again.
	register(ioA, nvme.ResvRegister{RREGA: nvme.RREGARegister}, nvme.ResvRegisterData{NRKEY: 0xAA})
	var f nvme.SQE
	f.SetOpcode(uint8(nvme.AdminSetFeatures))
	f.SetCID(adminA.nextCID())
	f.SetNSID(0xFFFFFFFF)
	f.SetCDW10(uint32(nvme.FeatReservationNotificationMask))
	f.SetCDW11(nvme.ResvMaskRegistrationPreempted)
	if c := adminA.call(&f, nil, nil); !c.Status().Success() {
		t.Fatal(c.Status())
	}
	if s := acquire(ioB, nvme.ResvAcquire{RACQA: nvme.RACQAPreempt, RTYPE: nvme.RTypeWriteExclusive},
		nvme.ResvAcquireData{CRKEY: 0xB, PRKEY: 0xAA}); !s.Success() {
		t.Fatal(s)
	}
	readLog(t, adminA, nvme.LogReservationNotification, lp[:])
	var nl nvme.ResvNotifLog
	if nl.Unmarshal(&lp); nl.Type != nvme.ResvNotifEmpty {
		t.Fatalf("a masked notice was logged: %+v", nl)
	}
}
