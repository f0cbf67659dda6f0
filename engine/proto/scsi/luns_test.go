package scsi

import "testing"

func TestLUNEncoding(t *testing.T) {
	for _, tc := range []struct {
		lun  uint16
		want [LUNLen]byte
	}{
		{0, [8]byte{}},
		{1, [8]byte{0x00, 0x01}},
		{255, [8]byte{0x00, 0xFF}},    // SAM-5 peripheral device addressing
		{256, [8]byte{0x41, 0x00}},    // flat space addressing
		{0x3FFF, [8]byte{0x7F, 0xFF}}, // the top of flat space
		{0x1234, [8]byte{0x52, 0x34}},
	} {
		if got := EncodeLUN(tc.lun); got != tc.want {
			t.Errorf("EncodeLUN(%d) = % x, want % x", tc.lun, got, tc.want)
		}
		if got, err := DecodeLUN(tc.want); err != nil || got != tc.lun {
			t.Errorf("DecodeLUN(% x) = %d, %v", tc.want, got, err)
		}
	}
	// A flat-space encoding of a small LUN is the same LUN.
	if got, err := DecodeLUN([8]byte{0x40, 0x05}); err != nil || got != 5 {
		t.Fatal(got, err)
	}
	for _, b := range [][LUNLen]byte{
		{0x01, 0x00},                   // peripheral, bus 1
		{0x80, 0x01},                   // logical unit addressing
		{0xC0, 0x01},                   // extended addressing
		{0x00, 0x01, 0x00, 0x02},       // second level
		{0x00, 0x00, 0, 0, 0, 0, 0, 1}, // trailing garbage
	} {
		if got, err := DecodeLUN(b); err != ErrLUNFormat || got != 0 {
			t.Errorf("DecodeLUN(% x) = %d, %v", b, got, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("LUN 16384 must panic")
		}
	}()
	EncodeLUN(MaxLUN + 1)
}

func TestReportLUNs(t *testing.T) {
	b := AppendReportLUNs(nil, []uint16{0, 1, 300})
	// SPC-4 §6.33: LUN LIST LENGTH, 4 reserved bytes, then the LUNs.
	checkFields(t, "report luns", b, []field{
		{0, []byte{0, 0, 0, 24, 0, 0, 0, 0}},
		{8, []byte{0, 0, 0, 0, 0, 0, 0, 0}},
		{16, []byte{0, 1, 0, 0, 0, 0, 0, 0}},
		{24, []byte{0x41, 0x2C, 0, 0, 0, 0, 0, 0}},
	})
	if len(b) != 32 {
		t.Fatalf("length %d", len(b))
	}
	// Truncated to 16 bytes, LUN LIST LENGTH still describes all three.
	if cut := Truncate(b, 16); be.Uint32(cut) != 24 {
		t.Fatal("length must not shrink with the allocation length")
	}
}
