package nvme

import (
	"bytes"
	"errors"
	"testing"
)

// sluiceController is the Identify Controller a fabrics I/O controller reports,
// following the nvmet template (PROTOCOLS.md §1.5).
func sluiceController() IdentifyController {
	c := IdentifyController{
		VID: 0, SSVID: 0, RAB: 6, CMIC: CMICMultiPort | CMICMultiCtrl, MDTS: 5,
		CNTLID: 0x0001, VER: VS14, OAES: OAESNSAttribute, CTRATT: CTRATTHostID128,
		CNTRLTYPE: CntrlTypeIO, ACL: 3, AERL: 3, FRMW: 0x3, LPA: LPACommandEffects |
			LPAExtendedData | LPASMARTPerNS, ELPE: 127, WCTEMP: 0x157, CCTEMP: 0x175,
		KAS: 10, SQES: 0x66, CQES: 0x44, MAXCMD: 128, NN: 32,
		ONCS: ONCSDSM | ONCSWriteZeroes | ONCSReservations, FUSES: FUSESCompareWrite,
		VWC: VWCPresent, SGLS: SGLSSupported | SGLSOffset | SGLSTransportDBlock,
		IOCCSZ: (64 + 8192) / 16, IORCSZ: 1, MSDBD: 1, OFCS: OFCSDisconnect,
		TNVMCAP: Uint128{Lo: 1 << 40, Hi: 1},
	}
	PutASCII(c.SN[:], "SLUICE0000000001")
	PutASCII(c.MN[:], "sluice")
	PutASCII(c.FR[:], "0.1")
	PutNQN(c.SUBNQN[:], "nqn.2024-01.dev.sluice:vol0")
	c.IEEE = [3]byte{0x00, 0x25, 0x38}
	c.FGUID[15] = 0x42
	c.PSD[0] = PowerState{MP: 2500, ENLAT: 16, EXLAT: 4, IDLP: 1, IPS: 0x40, ACTP: 9,
		APWS: 0x42}
	c.PSD[31].Flags = 0x3
	return c
}

func TestIdentifyControllerOffsets(t *testing.T) {
	c := sluiceController()
	var b [IdentifyLen]byte
	for i := range b {
		b[i] = 0xEE
	}
	c.MarshalTo(&b)
	for _, tc := range []struct {
		off  int
		want []byte
	}{
		{4, []byte("SLUICE0000000001    ")},
		{24, []byte("sluice" + string(bytes.Repeat([]byte{' '}, 34)))},
		{64, []byte("0.1     ")},
		{72, []byte{6, 0x00, 0x25, 0x38, 0x03, 5, 0x01, 0x00, 0x00, 0x04, 0x01, 0x00}},
		{92, []byte{0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00}},
		{110, []byte{0, 1}},
		{127, []byte{0x42}},
		{256, []byte{0, 0, 3, 3, 3, 0x07, 127, 0}},
		{266, []byte{0x57, 0x01, 0x75, 0x01}},
		{280, []byte{0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}},
		{320, []byte{10, 0}},
		{512, []byte{0x66, 0x44, 128, 0, 32, 0, 0, 0, 0x2C, 0, 1, 0, 0, 1}},
		{536, []byte{0x01, 0x00, 0x30, 0x00}},
		{768, []byte("nqn.2024-01.dev.sluice:vol0\x00")},
		{1792, []byte{0x04, 0x02, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0}},
		{2048, []byte{0xC4, 0x09, 0, 0, 16, 0, 0, 0, 4, 0, 0, 0}},
		{2048 + 16, []byte{1, 0, 0x40, 0, 9, 0, 0x42, 0}},
		{2048 + 31*32 + 3, []byte{3}},
	} {
		if got := b[tc.off : tc.off+len(tc.want)]; !bytes.Equal(got, tc.want) {
			t.Errorf("@%d = %x, want %x", tc.off, got, tc.want)
		}
	}
	if b[100+3] != 0 || b[700] != 0 || b[1100] != 0 || b[4095] != 0 {
		t.Error("reserved bytes not zeroed")
	}
	var got IdentifyController
	got.Unmarshal(&b)
	if got != c {
		t.Fatalf("round trip\n%+v\nwant\n%+v", got, c)
	}
	if ASCIIString(got.SN[:]) != "SLUICE0000000001" || NQNString(got.SUBNQN[:]) !=
		"nqn.2024-01.dev.sluice:vol0" || ASCIIString(got.FR[:]) != "0.1" {
		t.Fatal("strings")
	}
}

func TestIdentifyNamespace(t *testing.T) {
	n := IdentifyNamespace{
		NSZE: 2097152, NCAP: 2097152, NUSE: 2097152, NSFEAT: NSFEATOptPerf | NSFEATDAE,
		NLBAF: 1, FLBAS: 1, NMIC: NMICShared, RESCAP: 0x7F, DLFEAT: DLFEATReadZeroes,
		NAWUN: 7, NAWUPF: 7, NACWU: 0, NOIOB: 256, NVMCAP: Uint128{Lo: 1 << 30},
		NPWG: 7, NPWA: 7, NPDG: 7, NPDA: 7, NOWS: 255, ANAGRPID: 1, NSATTR: 0,
		EUI64: [8]byte{1, 2, 3, 4, 5, 6, 7, 8},
	}
	n.NGUID[0], n.NGUID[15] = 0xAB, 0xCD
	n.LBAF[0] = LBAFormat{LBADS: 9}
	n.LBAF[1] = LBAFormat{LBADS: 12, RP: 1}
	n.LBAF[63] = LBAFormat{MS: 8, LBADS: 12}
	var b [IdentifyLen]byte
	n.MarshalTo(&b)
	for _, tc := range []struct {
		off  int
		want []byte
	}{
		{0, []byte{0, 0, 0x20, 0, 0, 0, 0, 0}},
		{24, []byte{0x14, 1, 1, 0, 0, 0, 1, 0x7F, 0, 1, 7, 0, 7, 0}},
		{46, []byte{0, 1}},
		{48, []byte{0, 0, 0, 0x40}},
		{64, []byte{7, 0, 7, 0, 7, 0, 7, 0, 255, 0}},
		{92, []byte{1, 0, 0, 0}},
		{104, []byte{0xAB}},
		{119, []byte{0xCD, 1, 2, 3, 4, 5, 6, 7, 8}},
		{128, []byte{0, 0, 9, 0, 0, 0, 12, 1}},
		{128 + 63*4, []byte{8, 0, 12, 0}},
	} {
		if got := b[tc.off : tc.off+len(tc.want)]; !bytes.Equal(got, tc.want) {
			t.Errorf("@%d = %x, want %x", tc.off, got, tc.want)
		}
	}
	var got IdentifyNamespace
	got.Unmarshal(&b)
	if got != n {
		t.Fatalf("round trip\n%+v\nwant\n%+v", got, n)
	}
	if got.FormatIndex() != 1 || got.BlockSize() != 4096 {
		t.Fatal(got.FormatIndex(), got.BlockSize())
	}
	got.NLBAF, got.FLBAS = 63, 0x2F // index 0x2F: 4 bits low + bits 6:5 = 01b
	got.LBAF[0x1F] = LBAFormat{LBADS: 13}
	if got.FormatIndex() != 0x1F || got.BlockSize() != 8192 {
		t.Fatal(got.FormatIndex(), got.BlockSize())
	}
	got.LBAF[0x1F].LBADS = 40
	if got.BlockSize() != 0 {
		t.Fatal("bad lbads accepted")
	}
}

func TestASCII(t *testing.T) {
	var b [8]byte
	PutASCII(b[:], "abcdefghij")
	if string(b[:]) != "abcdefgh" {
		t.Fatal(string(b[:]))
	}
	PutASCII(b[:], "ab")
	if string(b[:]) != "ab      " || ASCIIString(b[:]) != "ab" {
		t.Fatal(string(b[:]))
	}
	if ASCIIString([]byte("x \x00\x00")) != "x" {
		t.Fatal("NUL padding")
	}
}

func TestNSList(t *testing.T) {
	var l NSList
	ActiveNSList(&l, []uint32{1, 2, 5, 9, 0xFFFFFFFF}, 2)
	if l.N != 2 || l.IDs[0] != 5 || l.IDs[1] != 9 {
		t.Fatalf("%v", l.List())
	}
	var b [IdentifyLen]byte
	l.MarshalTo(&b)
	if !bytes.Equal(b[:12], []byte{5, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("%x", b[:12])
	}
	var got NSList
	got.Unmarshal(&b)
	if got != l {
		t.Fatal(got.List())
	}
	many := make([]uint32, 2000)
	for i := range many {
		many[i] = uint32(i + 1)
	}
	ActiveNSList(&l, many, 0)
	if l.N != NSListLen || l.IDs[1023] != 1024 {
		t.Fatal(l.N)
	}
	l.MarshalTo(&b)
	got.Unmarshal(&b)
	if got != l {
		t.Fatal("full list")
	}
	// Changed Namespace List overflow: entry 0 is FFFFFFFFh.
	l = NSList{N: 1}
	l.IDs[0] = ChangedNSListOverflow
	l.MarshalTo(&b)
	if !bytes.Equal(b[:8], []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}) {
		t.Fatal("overflow")
	}
}

func TestNSIDDescriptors(t *testing.T) {
	ds := []NSIDDescriptor{
		{NIDT: NIDTEUI64, NID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{NIDT: NIDTNGUID, NID: [16]byte{0xA, 15: 0xB}},
		{NIDT: NIDTUUID, NID: [16]byte{0xC, 15: 0xD}},
		{NIDT: NIDTCSI, NID: [16]byte{CSINVM}},
	}
	var b [IdentifyLen]byte
	if err := MarshalNSIDDescriptors(&b, ds); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:14], []byte{1, 8, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 2, 16}) ||
		b[12+4+16] != 3 || b[12+20+20] != 4 || b[12+20+20+1] != 1 || b[12+20+20+5] != 0 {
		t.Fatalf("%x", b[:64])
	}
	got, err := DecodeNSIDDescriptors(b[:])
	if err != nil || len(got) != 4 {
		t.Fatal(got, err)
	}
	for i := range ds {
		if got[i] != ds[i] {
			t.Fatalf("%d: %+v", i, got[i])
		}
	}
	// Unknown types are skipped by NIDL.
	unk := []byte{9, 3, 0, 0, 1, 2, 3, 4, 1, 0, 0, 0}
	if got, err := DecodeNSIDDescriptors(unk); err != nil || len(got) != 1 ||
		got[0].NIDT != NIDTCSI {
		t.Fatal(got, err)
	}
	for name, bad := range map[string][]byte{
		"wrong nidl": {1, 7, 0, 0, 1, 2, 3, 4, 5, 6, 7},
		"overrun":    {2, 16, 0, 0, 1, 2},
	} {
		if got, err := DecodeNSIDDescriptors(bad); !errors.Is(err, ErrNSIDDescriptor) ||
			got != nil {
			t.Errorf("%s: %v %v", name, got, err)
		}
	}
	if err := MarshalNSIDDescriptors(&b, []NSIDDescriptor{{NIDT: 9}}); err == nil {
		t.Error("unknown type marshalled")
	}
	if err := MarshalNSIDDescriptors(&b, make([]NSIDDescriptor, 300)); err == nil {
		t.Error("zero type marshalled")
	}
	big := make([]NSIDDescriptor, 250)
	for i := range big {
		big[i].NIDT = NIDTUUID
	}
	if err := MarshalNSIDDescriptors(&b, big); err == nil {
		t.Error("overflow marshalled")
	}
}
