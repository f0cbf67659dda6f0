package scsi

import (
	"bytes"
	"testing"
)

func TestCheckSanitizeLength(t *testing.T) {
	const bs = 512
	for _, tc := range []struct {
		sa  uint16
		pll uint32
		ok  bool
	}{
		// libiscsi Sanitize.Overwrite: 0-4 and blocksize+5 are errors.
		{SASanitizeOverwrite, 0, false},
		{SASanitizeOverwrite, 4, false},
		{SASanitizeOverwrite, 5, true},
		{SASanitizeOverwrite, bs + 4, true},
		{SASanitizeOverwrite, bs + 5, false},
		{SASanitizeBlockErase, 0, true},
		{SASanitizeBlockErase, 8, false}, // libiscsi Sanitize.BlockErase
		{SASanitizeCryptoErase, 8, false},
		{SASanitizeExitFailureMode, 8, false}, // libiscsi Sanitize.ExitFailureMode
		{SASanitizeExitFailureMode, 0, true},
	} {
		c := CDB{Opcode: OpSanitize, ServiceAction: tc.sa, ParameterListLength: tc.pll}
		err := CheckSanitizeLength(&c, bs)
		if tc.ok && err != nil || !tc.ok && err != error(InvalidFieldInCDB(7, -1)) {
			t.Errorf("sa %02x pll %d: %v", tc.sa, tc.pll, err)
		}
	}
}

func TestDecodeSanitizeOverwrite(t *testing.T) {
	const bs = 512
	block := bytes.Repeat([]byte{0xAA}, bs)
	full := append([]byte{0x01, 0, bs >> 8, bs & 0xFF}, block...)
	o, err := DecodeSanitizeOverwrite(full, bs)
	if err != nil || o.Count != 1 || o.Invert || !bytes.Equal(o.Pattern, block) {
		t.Fatalf("%+v %v", o, err)
	}
	if !bytes.Equal(o.Append(nil), full) {
		t.Fatal("Append")
	}
	for _, tc := range []struct {
		name string
		b    []byte
		at   uint16
	}{
		// libiscsi Sanitize.Overwrite: OVERWRITE COUNT 0, PATTERN LENGTH 0 and > block.
		{"count 0", append([]byte{0x00, 0, bs >> 8, bs & 0xFF}, block...), 0},
		{"test field", append([]byte{0x21, 0, 0, 4}, 1, 2, 3, 4), 0},
		{"pattern length 0", append([]byte{0x01, 0, 0, 0}, block...), 2},
		{"pattern longer than a block", append([]byte{0x01, 0, (bs + 4) >> 8, (bs + 4) & 0xFF},
			append(block, 1, 2, 3, 4)...), 2},
		{"pattern longer than the list", []byte{0x01, 0, 0, 8, 1, 2, 3, 4}, 2},
	} {
		o, err := DecodeSanitizeOverwrite(tc.b, bs)
		s, ok := AsSense(err)
		if o.Pattern != nil || !ok || s.Code != ASCInvalidFieldInParameterList {
			t.Errorf("%s: %+v %v", tc.name, o, err)
			continue
		}
		if inCDB, off, _, _ := s.Specific.Field(); inCDB || off != tc.at {
			t.Errorf("%s: field pointer %v %d", tc.name, inCDB, off)
		}
	}
	if _, err := DecodeSanitizeOverwrite([]byte{1, 0}, bs); err != error(ErrParameterListLength) {
		t.Fatal(err)
	}
}

func TestSanitizeOverwritePattern(t *testing.T) {
	o := SanitizeOverwrite{Count: 1, Pattern: []byte{1, 2, 3}}
	buf := make([]byte, 16)
	o.FillPattern(buf, 8, false)
	// Each block restarts the pattern at its first byte.
	want := []byte{1, 2, 3, 1, 2, 3, 1, 2, 1, 2, 3, 1, 2, 3, 1, 2}
	if !bytes.Equal(buf, want) {
		t.Fatalf("% x", buf)
	}
	o.FillPattern(buf, 8, true)
	if buf[0] != 0xFE || buf[8] != 0xFE || buf[15] != 0xFD {
		t.Fatalf("inverted % x", buf)
	}
	// SBC-4: with INVERT the last pass writes the pattern itself.
	for _, tc := range []struct {
		count uint8
		want  []bool
	}{
		{1, []bool{false}},
		{2, []bool{true, false}},
		{3, []bool{false, true, false}},
	} {
		o := SanitizeOverwrite{Invert: true, Count: tc.count}
		for p, w := range tc.want {
			if o.PassInverted(p) != w {
				t.Errorf("count %d pass %d: inverted %v", tc.count, p, !w)
			}
		}
	}
	if (&SanitizeOverwrite{Count: 2}).PassInverted(0) {
		t.Fatal("no INVERT, no inversion")
	}
}

func TestAppendReadDefectData(t *testing.T) {
	c := CDB{Opcode: OpReadDefectData10, ReqPList: true, DefectListFormat: DefectFormatLongBlock}
	if b := AppendReadDefectData(nil, &c); !bytes.Equal(b, []byte{0, 0x13, 0, 0}) {
		t.Fatalf("(10): % x", b)
	}
	c = CDB{Opcode: OpReadDefectData12, ReqGList: true, DefectListFormat: DefectFormatPhysicalSector}
	if b := AppendReadDefectData(nil, &c); !bytes.Equal(b, []byte{0, 0x0D, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("(12): % x", b)
	}
}
