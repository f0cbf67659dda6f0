package nvme

import (
	"bytes"
	"testing"
)

// TestSQEOffsets sets every field and checks the bytes land at the spec offsets.
func TestSQEOffsets(t *testing.T) {
	var s SQE
	s.SetOpcode(uint8(NVMWrite))
	s.SetFUSE(FuseSecond)
	s.SetPSDT(PSDTSGLMPTR)
	s.SetCID(0x0102)
	s.SetNSID(0x03040506)
	s.SetCDW2(0x11111111)
	s.SetCDW3(0x22222222)
	s.SetMPTR(0x0807060504030201)
	s.SetSGL1(SGLDescriptor{Address: 0x1122334455667788, Length: 0x2000, ID: SGLIDTransport})
	s.SetSLBA(0xA1A2A3A4A5A6A7A8)
	s.SetNLB(7)
	s.SetFUA(true)
	s.SetCDW13(0xD13)
	s.SetCDW14(0xD14)
	s.SetCDW15(0xD15)
	want := []byte{
		0x01, 0x42, 0x02, 0x01, 0x06, 0x05, 0x04, 0x03, // opc, fuse|psdt, cid, nsid
		0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // cdw2, cdw3
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // mptr
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // sgl address
		0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5A, // sgl length, id
		0xA8, 0xA7, 0xA6, 0xA5, 0xA4, 0xA3, 0xA2, 0xA1, // slba (cdw10-11)
		0x07, 0x00, 0x00, 0x40, 0x13, 0x0D, 0x00, 0x00, // nlb + fua (cdw12), cdw13
		0x14, 0x0D, 0x00, 0x00, 0x15, 0x0D, 0x00, 0x00, // cdw14, cdw15
	}
	if !bytes.Equal(s[:], want) {
		t.Fatalf("SQE\n%x\nwant\n%x", s[:], want)
	}
	if s.Opcode() != 1 || s.NVMOpcode() != NVMWrite || s.AdminOpcode() != AdminCreateIOSQ ||
		s.FUSE() != FuseSecond || s.PSDT() != PSDTSGLMPTR || s.CID() != 0x0102 ||
		s.NSID() != 0x03040506 || s.CDW2() != 0x11111111 || s.CDW3() != 0x22222222 ||
		s.MPTR() != 0x0807060504030201 || s.SLBA() != 0xA1A2A3A4A5A6A7A8 ||
		s.NLB() != 7 || s.Blocks() != 8 || !s.FUA() || s.LR() || s.DEAC() ||
		s.CDW13() != 0xD13 || s.CDW(14) != 0xD14 || s.CDW15() != 0xD15 {
		t.Fatal("accessor mismatch")
	}
	if d := s.SGL1(); d.Type() != SGLTypeTransportDataBlock ||
		d.Subtype() != SGLSubtypeTransport || d.Length != 0x2000 {
		t.Fatalf("SGL1 = %+v", d)
	}
	s.SetFUA(false)
	s.SetDEAC(true)
	if s.FUA() || !s.DEAC() || s.NLB() != 7 {
		t.Fatal("cdw12 bits")
	}
	s.SetCDW(12, 0)
	s.Reset()
	if s != (SQE{}) {
		t.Fatal("Reset")
	}
}

func TestSQEFabrics(t *testing.T) {
	var s SQE
	s.SetOpcode(OpcodeFabrics)
	s.SetCID(9)
	s.SetFCTYPE(FCTConnect)
	s.SetSGL1(SGLDescriptor{Length: ConnectDataLen, ID: SGLIDInCapsule})
	s.SetRECFMT(0)
	s.SetQID(3)
	s.SetSQSIZE(127)
	s.SetCATTR(CATTRDisableSQFlowCtrl)
	s.SetKATO(120000)
	if s[4] != 0x01 || s[42] != 3 || s[44] != 127 || s[46] != 4 ||
		!bytes.Equal(s[48:52], []byte{0xC0, 0xD4, 0x01, 0x00}) || s[39] != 0x01 {
		t.Fatalf("connect SQE %x", s[:])
	}
	if s.FCTYPE() != FCTConnect || s.QID() != 3 || s.SQSIZE() != 127 ||
		s.CATTR() != CATTRDisableSQFlowCtrl || s.KATO() != 120000 || s.RECFMT() != 0 {
		t.Fatal("connect accessors")
	}
	var p SQE
	p.SetOpcode(OpcodeFabrics)
	p.SetFCTYPE(FCTPropertySet)
	p.SetPropAttrib(PropSize4)
	p.SetPropOffset(PropCC)
	p.SetPropValue(0x460001)
	if p[40] != 0 || p[44] != 0x14 || le.Uint64(p[48:]) != 0x460001 {
		t.Fatalf("property SQE %x", p[:])
	}
	if p.PropAttrib() != 0 || p.PropOffset() != PropCC || p.PropValue() != 0x460001 {
		t.Fatal("property accessors")
	}
	if DataDirection(uint8(FCTConnect)) != DirHostToCtrl ||
		DataDirection(uint8(FCTPropertyGet)) != DirNone ||
		DataDirection(uint8(NVMRead)) != DirCtrlToHost ||
		DataDirection(uint8(NVMCompare)) != DirHostToCtrl {
		t.Fatal("DataDirection")
	}
}

func TestSQEIdentifyFeaturesDSM(t *testing.T) {
	var s SQE
	s.SetIdentify(CNSNSIDDescriptorList, 0x1234, CSIZNS)
	if s.IdentifyCNS() != CNSNSIDDescriptorList || s.IdentifyCNTID() != 0x1234 ||
		s.IdentifyCSI() != CSIZNS || s.CDW10() != 0x12340003 || s.CDW11() != 0x02000000 {
		t.Fatalf("identify %x", s[40:48])
	}
	s.SetCDW10(FeatureSaveBit | uint32(SELSaved)<<8 | uint32(FeatKeepAliveTimer))
	if s.FeatureID() != FeatKeepAliveTimer || s.FeatureSEL() != SELSaved || !s.FeatureSV() {
		t.Fatal("features")
	}
	s.SetDSMRanges(256)
	s.SetCDW11(DSMDeallocate)
	if s.DSMRanges() != 256 || s[40] != 0xFF || s.DSMAttributes() != DSMDeallocate {
		t.Fatal("dsm")
	}
	r := DSMRange{Attributes: 1, NLB: 2048, SLBA: 1 << 40}
	var b [16]byte
	r.Put(b[:])
	want := []byte{1, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("range %x", b)
	}
	if got, err := DecodeDSMRange(b[:]); err != nil || got != r {
		t.Fatalf("DecodeDSMRange = %+v %v", got, err)
	}
	if _, err := DecodeDSMRange(b[:15]); err != ErrShortBuffer {
		t.Fatal("short range")
	}
}

func TestSGLKeyed(t *testing.T) {
	d := SGLDescriptor{Address: 0x1000, Length: 0xABCDEF, Key: 0x11223344,
		ID: SGLTypeKeyedDataBlock<<4 | 0xF}
	var b [16]byte
	d.Put(b[:])
	want := []byte{0, 0x10, 0, 0, 0, 0, 0, 0, 0xEF, 0xCD, 0xAB, 0x44, 0x33, 0x22, 0x11, 0x4F}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("keyed %x", b)
	}
	if got, err := DecodeSGL(b[:]); err != nil || got != d {
		t.Fatalf("DecodeSGL = %+v %v", got, err)
	}
	if _, err := DecodeSGL(b[:15]); err != ErrShortBuffer {
		t.Fatal("short")
	}
}

func TestOpcodeStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{AdminIdentify.String(), "Identify"},
		{AdminKeepAlive.String(), "Keep Alive"},
		{AdminOpcode(0x42).String(), "admin opcode 0x42"},
		{NVMReservationAcquire.String(), "Reservation Acquire"},
		{NVMOpcode(3).String(), "nvm opcode 0x03"},
		{FCTDisconnect.String(), "Disconnect"},
		{FCTYPE(0x0F).String(), "fctype 0x0f"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
}
