package scsi

import (
	"bytes"
	"testing"
)

func TestSupportedVPDPages(t *testing.T) {
	pages := []uint8{0x00, 0x80, 0x83, 0x86, 0xB0, 0xB1, 0xB2}
	b := AppendSupportedVPDPages(nil, PeripheralDisk, pages)
	// SPC-4 §7.8.13: header, then the page list; libiscsi reads the count from byte 3.
	checkFields(t, "00h", b, []field{{0, []byte{0, 0, 0, 7, 0x00, 0x80, 0x83, 0x86, 0xB0,
		0xB1, 0xB2}}})
	defer func() {
		if recover() == nil {
			t.Fatal("unsorted pages must panic")
		}
	}()
	AppendSupportedVPDPages(nil, PeripheralDisk, []uint8{0x00, 0xB0, 0x83})
}

func TestUnitSerialNumber(t *testing.T) {
	b := AppendUnitSerialNumber(nil, PeripheralDisk, "SLU-0001\n")
	checkFields(t, "80h", b, []field{{0, []byte("\x00\x80\x00\x09SLU-0001_")}})
	long := AppendUnitSerialNumber(nil, PeripheralDisk, string(make([]byte, 300)))
	if len(long) != 4+255 || long[3] != 255 {
		t.Fatal("serial not capped at 255")
	}
}

// designator is one parsed designation descriptor, as libiscsi's unmarshaller sees it.
type designator struct {
	proto, codeSet, assoc, typ byte
	piv                        bool
	v                          []byte
}

func parseDesignators(t *testing.T, b []byte) []designator {
	t.Helper()
	if int(be.Uint16(b[2:4])) != len(b)-4 {
		t.Fatalf("PAGE LENGTH %d for %d bytes", be.Uint16(b[2:4]), len(b))
	}
	var out []designator
	for p := b[4:]; len(p) > 0; {
		n := int(p[3])
		out = append(out, designator{proto: p[0] >> 4, codeSet: p[0] & 0x0F,
			piv: p[1]&0x80 != 0, assoc: p[1] >> 4 & 3, typ: p[1] & 0x0F, v: p[4 : 4+n]})
		p = p[4+n:]
	}
	return out
}

func TestDeviceIdentification(t *testing.T) {
	nguid := [16]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC,
		0xDD, 0xEE, 0xFF, 0x01}
	naa := NAARegisteredExtended(0x001405, nguid)
	// NAA 6h, OUI 001405h (bits 123:100), then the low 100 bits of the identity.
	if want := [16]byte{0x60, 0x01, 0x40, 0x54, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB,
		0xCC, 0xDD, 0xEE, 0xFF, 0x01}; naa != want {
		t.Fatalf("NAA % x", naa)
	}
	d := DeviceIdentification{
		NAA: naa, EUI64: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, T10VendorID: "SLUICE",
		T10VendorSpecific: "vol0", RelativeTargetPort: 1, TargetPortGroup: 3,
		HasTargetPortGroup: true, TargetPortName: "iqn.2024-01.dev.sluice:t,t,0x0001",
		TargetName: "iqn.2024-01.dev.sluice:t",
	}
	b := d.Append(nil, PeripheralDisk)
	if b[0] != 0 || b[1] != 0x83 {
		t.Fatalf("header % x", b[:4])
	}
	got := parseDesignators(t, b)
	want := []designator{
		{0, codeSetBinary, 0, desigNAA, false, naa[:]},
		{0, codeSetBinary, 0, desigEUI64, false, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{0, codeSetASCII, 0, desigT10Vendor, false, []byte("SLUICE  vol0")},
		{5, codeSetBinary, 1, desigRelTgtPort, true, []byte{0, 0, 0, 1}},
		{5, codeSetBinary, 1, desigTgtPortGrp, true, []byte{0, 0, 0, 3}},
		// SCSI name strings: null-terminated, padded to a multiple of 4.
		{5, codeSetUTF8, 1, desigSCSINameStr, true,
			[]byte("iqn.2024-01.dev.sluice:t,t,0x0001\x00\x00\x00")},
		{5, codeSetUTF8, 2, desigSCSINameStr, true, []byte("iqn.2024-01.dev.sluice:t\x00\x00\x00\x00")},
	}
	if len(got) != len(want) {
		t.Fatalf("%d designators, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.proto != w.proto || g.codeSet != w.codeSet || g.assoc != w.assoc ||
			g.typ != w.typ || g.piv != w.piv || !bytes.Equal(g.v, w.v) {
			t.Errorf("designator %d: %+v, want %+v", i, g, w)
		}
		if g.typ == desigSCSINameStr && len(g.v)%4 != 0 {
			t.Errorf("designator %d: length %d not a multiple of 4", i, len(g.v))
		}
	}
	if e := (&DeviceIdentification{}).Append(nil, PeripheralDisk); len(e) != 4 {
		t.Fatal("empty identification must be a bare header")
	}
}

func TestExtendedInquiry(t *testing.T) {
	e := ExtendedInquiry{HeadSup: true, OrdSup: true, SimpSup: true, VSup: true, LUICLR: true,
		MaxSense: SenseMaxLen}
	b := e.Append(nil, PeripheralDisk)
	if len(b) != 64 {
		t.Fatalf("length %d", len(b))
	}
	checkFields(t, "86h", b, []field{{0, []byte{0, 0x86, 0, 0x3C, 0, 0x07, 0x01, 0x01, 0, 0, 0,
		0, 0, SenseMaxLen}}})
}

func TestBlockLimits(t *testing.T) {
	l := BlockLimits{WSNZ: true, MaxCompareAndWriteLength: 1, OptimalTransferGranularity: 8,
		MaxTransferLength: 0x800, OptimalTransferLength: 0x100, MaxPrefetchLength: 0x20,
		MaxUnmapLBACount: 0x40000, MaxUnmapDescriptors: 256, OptimalUnmapGranularity: 8,
		UGAValid: true, UnmapGranularityAlignment: 3, MaxWriteSameLength: 0x1_0000_0000,
		MaxAtomicTransferLength: 0x800, AtomicAlignment: 8, AtomicTransferLengthGranularity: 4,
		MaxAtomicTransferLengthWithBoundary: 0x400, MaxAtomicBoundarySize: 0x10}
	b := l.Append(nil, PeripheralDisk)
	// libiscsi Inquiry.BlockLimits: data size == PAGE LENGTH + 4, PAGE LENGTH 3Ch.
	if len(b) != 64 || int(b[3])+4 != len(b) {
		t.Fatalf("length %d, page length %d", len(b), b[3])
	}
	checkFields(t, "b0h", b, []field{
		{0, []byte{0, 0xB0, 0, 0x3C, 0x01, 0x01, 0, 8}},
		{8, []byte{0, 0, 0x08, 0, 0, 0, 0x01, 0, 0, 0, 0, 0x20}},
		{20, []byte{0, 0x04, 0, 0, 0, 0, 1, 0, 0, 0, 0, 8, 0x80, 0, 0, 3}},
		{36, []byte{0, 0, 0, 1, 0, 0, 0, 0}},
		// SBC-4 atomic fields, where libiscsi's unmarshaller reads them.
		{44, []byte{0, 0, 0x08, 0, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0x04, 0, 0, 0, 0, 0x10}},
	})
	if b := (&BlockLimits{}).Append(nil, PeripheralDisk); !bytes.Equal(b[44:], make([]byte, 20)) {
		t.Fatalf("no WRITE ATOMIC: atomic fields % x", b[44:])
	}
}

func TestBlockDeviceCharacteristics(t *testing.T) {
	c := BlockDeviceCharacteristics{RotationRate: RotationNonRotating, FormFactor: 5,
		WACEREQ: 1, FUAB: true}
	b := c.Append(nil, PeripheralDisk)
	if len(b) != 64 {
		t.Fatalf("length %d", len(b))
	}
	checkFields(t, "b1h", b, []field{{0, []byte{0, 0xB1, 0, 0x3C, 0, 1, 0, 0x15, 0x02}}})
	// libiscsi Sanitize.BlockErase reads WABEREQ @7 bits 7:6.
	c = BlockDeviceCharacteristics{WABEREQ: 1}
	if b := c.Append(nil, PeripheralDisk); b[7] != 0x40 {
		t.Fatalf("wabereq: %02x", b[7])
	}
}

func TestLogicalBlockProvisioning(t *testing.T) {
	l := LogicalBlockProvisioning{LBPU: true, LBPWS: true, LBPWS10: true, LBPRZ: true,
		ProvisioningType: ProvisioningThin, ThresholdExponent: 4}
	b := l.Append(nil, PeripheralDisk)
	// SBC-3 §6.5.4: LBPU @5 bit 7, LBPWS bit 6, LBPWS10 bit 5, LBPRZ bit 2 (libiscsi
	// reads 04h), ANC_SUP bit 1; PROVISIONING TYPE @6 bits 2:0.
	checkFields(t, "b2h", b, []field{{0, []byte{0, 0xB2, 0, 4, 4, 0xE4, 0x02, 0}}})
	l = LogicalBlockProvisioning{ANCSup: true, MinimumPercentage: 3, ThresholdPercentage: 9}
	checkFields(t, "b2h anc", l.Append(nil, PeripheralDisk), []field{{4, []byte{0, 0x02,
		0x18, 9}}})
}
