package nvmf

import (
	"bytes"
	"testing"

	"sluice/engine/proto/nvme"
)

// The Connects, properties and admin commands that SPDK's target and Linux nvmet
// accept must be accepted here (the hardening issue: "exactly as strict as they are, no
// stricter"); /work notes the comparison, each case cites the reference behaviour.

// spdkPerfConnect is spdk_nvme_perf's admin Connect, byte for byte as the issue found
// it: a random 16-byte host identifier, CNTLID FFFFh, SQSIZE 31, KATO 10000, RECFMT 0,
// CATTR 0, the subsystem NQN and an all-zero (empty) host NQN.
func spdkPerfConnect(h *stepHost, qid, sqsize0 uint16, cntlid uint16, hostID [16]byte) nvme.CQE {
	var sqe nvme.SQE
	sqe.SetOpcode(nvme.OpcodeFabrics)
	sqe.SetFCTYPE(nvme.FCTConnect)
	sqe.SetCID(h.nextCID())
	sqe.SetRECFMT(0)
	sqe.SetQID(qid)
	sqe.SetSQSIZE(sqsize0)
	sqe.SetCATTR(0)
	sqe.SetKATO(10000)
	sqe.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: nvme.ConnectDataLen})
	var data [nvme.ConnectDataLen]byte
	copy(data[0:16], hostID[:])
	data[16], data[17] = byte(cntlid), byte(cntlid>>8)
	copy(data[256:], testNQN)
	// data[512:768] stays zero: the empty host NQN.
	return h.call(&sqe, data[:], nil)
}

var spdkHostID = [16]byte{0x9c, 0x1f, 0x42, 0x07, 0xe3, 0x5a, 0x4d, 0x11, 0x8b, 0x60, 0x2d, 0xf4, 0x71, 0x0a, 0xc5, 0x93}

func TestSPDKInitiatorConnectIsAccepted(t *testing.T) {
	st := newStepTarget(t, "malloc")
	admin := st.connect()
	admin.icreq(false, false)
	c := spdkPerfConnect(admin, 0, 31, nvme.CNTLIDDynamic, spdkHostID)
	if !c.Status().Success() {
		t.Fatalf("SPDK's admin Connect: %v (DW0 %#x)", c.Status(), c.DW0())
	}
	admin.cntlid, _ = nvme.ConnectCNTLID(c.DW0())
	// SPDK then writes CC = EN, IOSQES 6, IOCQES 4 (0x00460001).
	if s := propSetCC(admin, nvme.DecodeCC(0x00460001)); !s.Success() {
		t.Fatalf("CC: %v", s)
	}
	io := st.connect()
	io.icreq(false, false)
	if c := spdkPerfConnect(io, 1, 127, admin.cntlid, spdkHostID); !c.Status().Success() {
		t.Fatalf("SPDK's I/O Connect: %v", c.Status())
	}
	checkAlive(t, io, 0x61)

	infos := st.tgt.Subsystems()
	var hosts []ConnectedHost
	for _, in := range infos {
		if in.NQN == testNQN {
			hosts = in.ConnectedHosts
		}
	}
	if len(hosts) != 1 || !hosts[0].Anonymous || hosts[0].HostNQN != "" || len(hosts[0].CNTLIDs) != 1 {
		t.Fatalf("nvmf_get_subsystems connected hosts %+v, want one anonymous host", hosts)
	}
}

func TestAnonymousHostNeedsAllowAnyHost(t *testing.T) {
	st := newStepTarget(t, "malloc")
	if err := st.tgt.SetAllowAnyHost(testNQN, false); err != nil {
		t.Fatal(err)
	}
	if err := st.tgt.AddHost(testNQN, testHostNQN); err != nil {
		t.Fatal(err)
	}
	h := st.connect()
	h.icreq(false, false)
	c := spdkPerfConnect(h, 0, 31, nvme.CNTLIDDynamic, spdkHostID)
	if c.Status() != nvme.StatusConnectInvalidHost.WithDNR() {
		t.Fatalf("anonymous host on an allow-list subsystem: %v, want Connect Invalid Host with DNR", c.Status())
	}
	if ipo, iattr := nvme.ConnectInvalidParam(c.DW0()); ipo != nvme.ConnectDataHostNQNOffset || iattr != nvme.IATTRData {
		t.Fatalf("DW0 IPO %d IATTR %d, want the host NQN field", ipo, iattr)
	}
}

// TestConnectAndInitLikeTheReferences covers the places where the comparison found
// sluice stricter than both SPDK v23.01 and nvmet.
func TestConnectAndInitLikeTheReferences(t *testing.T) {
	st := newStepTarget(t, "malloc")
	admin := st.connect()
	admin.icreq(false, false)
	if c := admin.connectQueue(0, nvme.CNTLIDDynamic, 0); !c.Status().Success() {
		t.Fatal(c.Status())
	}
	// CC.CSS 6 (all supported I/O command sets) on enable: both accept it.
	if s := propSetCC(admin, nvme.CC{EN: false}); !s.Success() {
		t.Fatalf("disable: %v", s)
	}
	for propGetCSTS(admin).RDY {
	}
	if s := propSetCC(admin, nvme.CC{EN: true, CSS: 6, IOSQES: 6, IOCQES: 4}); !s.Success() {
		t.Fatalf("CC.CSS=6: %v", s)
	}
	// Set Features Number of Queues twice before any I/O queue: the grant stands.
	for i := 0; i < 2; i++ {
		var s nvme.SQE
		s.SetOpcode(uint8(nvme.AdminSetFeatures))
		s.SetCID(admin.nextCID())
		s.SetCDW10(uint32(nvme.FeatNumberOfQueues))
		s.SetCDW11(nvme.NumberOfQueues(1, 1))
		if c := admin.call(&s, nil, nil); !c.Status().Success() || c.DW0() != nvme.NumberOfQueues(1, 1) {
			t.Fatalf("Number of Queues #%d: %v DW0 %#x", i+1, c.Status(), c.DW0())
		}
	}
	// An I/O queue above the Set Features grant but within the target's limit: both
	// references bound QIDs by their configured maximum only.
	io := st.connect()
	io.icreq(false, false)
	if c := io.connectQueue(5, admin.cntlid, 0); !c.Status().Success() {
		t.Fatalf("QID 5 with 2 granted: %v", c.Status())
	}
	checkAlive(t, io, 0x62)
	// Identify CNS 05h and 06h with CSI 0 (NVM): served, as zeros.
	for _, tc := range []struct {
		cns  nvme.CNS
		nsid uint32
	}{{nvme.CNSIOCSNamespace, 1}, {nvme.CNSIOCSController, 0}} {
		var s nvme.SQE
		s.SetOpcode(uint8(nvme.AdminIdentify))
		s.SetCID(admin.nextCID())
		s.SetNSID(tc.nsid)
		s.SetIdentify(tc.cns, 0, 0)
		s.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: nvme.IdentifyLen})
		page := bytes.Repeat([]byte{0xEE}, nvme.IdentifyLen)
		if c := admin.call(&s, nil, page); !c.Status().Success() || !bytes.Equal(page, make([]byte, nvme.IdentifyLen)) {
			t.Fatalf("Identify CNS %#x CSI 0: %v", tc.cns, c.Status())
		}
	}
}

// TestIOConnectNeedsEntrySizes: what SPDK refuses at I/O Connect, an I/O queue of a
// controller enabled without IOSQES/IOCQES, is refused here too.
func TestIOConnectNeedsEntrySizes(t *testing.T) {
	st := newStepTarget(t, "malloc")
	admin := st.connect()
	admin.icreq(false, false)
	if c := admin.connectQueue(0, nvme.CNTLIDDynamic, 0); !c.Status().Success() {
		t.Fatal(c.Status())
	}
	propSetCC(admin, nvme.CC{EN: false})
	for propGetCSTS(admin).RDY {
	}
	if s := propSetCC(admin, nvme.CC{EN: true}); !s.Success() {
		t.Fatalf("enable without entry sizes: %v", s)
	}
	io := st.connect()
	io.icreq(false, false)
	if c := io.connectQueue(1, admin.cntlid, 0); c.Status().Code() != nvme.StatusConnectInvalidParameters.Code() {
		t.Fatalf("I/O Connect with IOSQES/IOCQES unset: %v, want Connect Invalid Parameters", c.Status())
	}
}

// TestICReqDigestBitsEchoedExactly: ICResp echoes only the two digest bits; a digest
// flag on a PDU type without digests is ignored, as SPDK and nvmet ignore it.
func TestICReqDigestBitsEchoedExactly(t *testing.T) {
	st := newStepTarget(t, "malloc")
	h := st.connect()
	var b [nvme.ICReqLen]byte
	nvme.CommonHeader{Type: nvme.PDUTypeICReq, Flags: nvme.CHFlagHDGSTF, HLen: nvme.ICReqLen, PLen: nvme.ICReqLen}.Put(b[:])
	(&nvme.ICReq{DGST: nvme.DigestHeader | 0x80}).Put(b[:])
	h.send(b[:])
	ch, pdu := h.recvPDU()
	if ch.Type != nvme.PDUTypeICResp {
		t.Fatalf("got %v", ch.Type)
	}
	resp, _ := nvme.DecodeICResp(pdu)
	if resp.DGST != nvme.DigestHeader {
		t.Fatalf("ICResp DGST %#x, want only the header digest bit", uint8(resp.DGST))
	}
}

// TestConnectKATORoundedAndDiscoveryDefault: the Connect KATO is rounded up to the
// KAS granularity as Set Features rounds it, and a discovery controller that asks for
// no keep-alive gets SPDK's and nvmet's 120 s.
func TestConnectKATORoundedAndDiscoveryDefault(t *testing.T) {
	st := newStepTarget(t, "malloc")
	admin := st.connect()
	admin.kato = 1234
	admin.icreq(false, false)
	if c := admin.connectQueue(0, nvme.CNTLIDDynamic, 0); !c.Status().Success() {
		t.Fatal(c.Status())
	}
	disc := st.connect()
	disc.icreq(false, false)
	cd := nvme.ConnectData{HostID: testHostID, CNTLID: nvme.CNTLIDDynamic, SubNQN: DiscoveryNQN, HostNQN: testHostNQN}
	var b [nvme.ConnectDataLen]byte
	_ = cd.MarshalTo(&b)
	if c := disc.call(connectSQE(disc.nextCID(), 0, 32, 0), b[:], nil); !c.Status().Success() {
		t.Fatal(c.Status())
	}
	got := map[string]uint32{}
	for _, nqn := range []string{testNQN, DiscoveryNQN} {
		cs, err := st.rpcControllers(nqn)
		if err != nil || len(cs) != 1 {
			t.Fatalf("%s controllers %v %v", nqn, cs, err)
		}
		got[nqn] = cs[0].KATOMs
	}
	if got[testNQN] != 1300 || got[DiscoveryNQN] != discoveryKATOMs {
		t.Fatalf("KATO %v, want 1300 (1234 rounded to 100 ms) and %d for discovery", got, discoveryKATOMs)
	}
}

func (st *stepTarget) rpcControllers(nqn string) ([]CtrlrInfo, error) {
	var out []CtrlrInfo
	err := st.rpc(func() error {
		var err error
		out, err = st.tgt.Controllers(nqn)
		return err
	})
	return out, err
}
