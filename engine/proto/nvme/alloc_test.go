package nvme

import "testing"

// The data path decodes and encodes every PDU header, SQE and CQE with these calls; a
// 4 KiB read or write must allocate nothing (DESIGN.md "Zero garbage on the hot path").

func assertNoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(100, f); n != 0 {
		t.Errorf("%s: %v allocs per run, want 0", name, n)
	}
}

func TestAllocsPDU(t *testing.T) {
	hdr := make([]byte, 128)
	data := make([]byte, 4096)
	p := LayoutParams{Receiver: RoleController, HDGST: true, DDGST: true}
	bad := CommonHeader{Type: PDUTypeCapsuleCmd, Flags: CHFlagHDGSTF, HLen: 71, PLen: 76}
	var sink uint32
	var serr error
	assertNoAllocs(t, "frame+put+layout", func() {
		ch := FrameHeader(PDUTypeH2CData, CHFlagLastPDU, 4096, p)
		ch.Put(hdr)
		d := H2CData{CCCID: 1, TTAG: 2, DATAO: 0, DATAL: 4096}
		d.Put(hdr)
		got, err := DecodeCommonHeader(hdr)
		if err != nil {
			t.Fatal(err)
		}
		l, err := got.Layout(p)
		if err != nil {
			t.Fatal(err)
		}
		dd, _ := DecodeH2CData(hdr)
		serr = l.CheckDATAL(dd.DATAL)
	})
	assertNoAllocs(t, "layout error", func() {
		_, serr = bad.Layout(p)
	})
	assertNoAllocs(t, "c2h+r2t", func() {
		c := C2HData{CCCID: 1, DATAO: 4096, DATAL: 4096}
		c.Put(hdr)
		c, _ = DecodeC2HData(hdr)
		r := R2T{CCCID: 1, TTAG: 1, R2TL: 4096}
		r.Put(hdr)
		r, _ = DecodeR2T(hdr)
		sink += c.DATAL + r.R2TL
	})
	assertNoAllocs(t, "icreq/icresp", func() {
		r := ICReq{DGST: DigestHeader}
		r.Put(hdr)
		r, _ = DecodeICReq(hdr)
		s := ICResp{MAXH2CDATA: 131072}
		s.Put(hdr)
		s, _ = DecodeICResp(hdr)
		serr = s.Validate()
		serr = r.Validate()
	})
	assertNoAllocs(t, "digests", func() {
		SetHeaderDigest(hdr, 24)
		serr = CheckHeaderDigest(hdr, 24)
		hdr[0] ^= 1
		serr = CheckHeaderDigest(hdr, 24)
		crc := CRC32CUpdate(CRC32CUpdate(0, data[:100]), data[100:])
		PutDigest(hdr[100:], crc)
		sink += Digest(hdr[100:]) + CRC32C(data)
	})
	_, _ = sink, serr
}

func TestAllocsSQECQE(t *testing.T) {
	hdr := make([]byte, CapsuleCmdHLen)
	rsp := make([]byte, CapsuleRespHLen)
	var sink uint64
	assertNoAllocs(t, "sqe", func() {
		s := CapsuleSQE(hdr)
		s.SetOpcode(uint8(NVMWrite))
		s.SetCID(7)
		s.SetNSID(1)
		s.SetPSDT(PSDTSGLMPTR)
		s.SetSGL1(SGLDescriptor{Length: 4096, ID: SGLIDTransport})
		s.SetSLBA(100)
		s.SetNLB(7)
		s.SetFUA(true)
		d := s.SGL1()
		sink += uint64(s.Opcode()) + uint64(s.CID()) + uint64(s.NSID()) + s.SLBA() +
			uint64(s.Blocks()) + uint64(d.Length) + uint64(s.FUSE()) + uint64(s.PSDT()) +
			uint64(s.CDW10()) + uint64(s.KATO()) + uint64(s.FCTYPE()) + s.MPTR()
		g := DecodeGetLogPage(s)
		sink += g.Len()
	})
	assertNoAllocs(t, "cqe", func() {
		c := CapsuleCQE(rsp)
		c.Fill(7, 1, 3, 0, 0, StatusLBAOutOfRange.WithDNR())
		st := c.Status()
		sink += uint64(c.CID()) + uint64(st.SC()) + uint64(st.SCT())
		if st.DNR() && !st.Success() {
			sink++
		}
	})
	_ = sink
}
