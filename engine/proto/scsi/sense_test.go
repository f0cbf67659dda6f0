package scsi

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// field is one expected byte run at an offset of encoded data.
type field struct {
	off  int
	want []byte
}

func checkFields(t *testing.T, name string, b []byte, fields []field) {
	t.Helper()
	for _, f := range fields {
		if f.off+len(f.want) > len(b) {
			t.Errorf("%s: @%d past the end (%d bytes)", name, f.off, len(b))
			continue
		}
		if got := b[f.off : f.off+len(f.want)]; !bytes.Equal(got, f.want) {
			t.Errorf("%s: @%d = % x, want % x", name, f.off, got, f.want)
		}
	}
}

func TestSenseFixedOffsets(t *testing.T) {
	// SPC-4 §4.5.3: a COMPARE AND WRITE miscompare at byte 27 of the verify data.
	s := Sense{Key: SenseKeyMiscompare, Code: ASCMiscompareDuringVerify, InfoValid: true, Info: 27}
	b := make([]byte, SenseMaxLen)
	if n := s.PutFixed(b); n != SenseFixedLen {
		t.Fatalf("length %d", n)
	}
	checkFields(t, "miscompare", b, []field{
		{0, []byte{0xF0, 0x00, 0x0E}},          // VALID | 70h, obsolete, MISCOMPARE
		{3, []byte{0, 0, 0, 27}},               // INFORMATION
		{7, []byte{10}},                        // ADDITIONAL SENSE LENGTH
		{8, []byte{0, 0, 0, 0, 0x1D, 0x00, 0}}, // CSI, ASC, ASCQ, FRU
		{15, []byte{0, 0, 0}},                  // no SKSV
	})

	// INVALID FIELD IN CDB pointing at CDB byte 1 bit 4 (a MAINTENANCE IN service action).
	s = InvalidFieldInCDB(1, 4).Sense
	s.PutFixed(b)
	checkFields(t, "field pointer", b, []field{
		{0, []byte{0x70, 0, 0x05}},
		{12, []byte{0x24, 0x00, 0x00, 0xCC, 0x00, 0x01}}, // SKSV|C/D|BPV|bit 4, byte 1
	})

	// An INFORMATION value wider than 32 bits cannot be carried: VALID=0.
	s = Sense{Key: SenseKeyMediumError, Code: ASCUnrecoveredReadError, InfoValid: true,
		Info: 1 << 40, Deferred: true}
	s.PutFixed(b)
	checkFields(t, "wide info", b, []field{{0, []byte{0x71, 0, 0x03, 0, 0, 0, 0}}})
}

func TestSenseDescriptorOffsets(t *testing.T) {
	s := Sense{Key: SenseKeyIllegalRequest, Code: ASCInvalidFieldInParameterList,
		InfoValid: true, Info: 0x0102030405060708, Specific: FieldPointer(false, 300, -1)}
	b := make([]byte, SenseMaxLen)
	n := s.Put(b, true)
	if n != SenseMaxLen {
		t.Fatalf("length %d, want %d", n, SenseMaxLen)
	}
	checkFields(t, "descriptor", b, []field{
		{0, []byte{0x72, 0x05, 0x26, 0x00, 0, 0, 0, 20}},
		{8, []byte{0x00, 0x0A, 0x80, 0x00, 1, 2, 3, 4, 5, 6, 7, 8}}, // information
		{20, []byte{0x02, 0x06, 0, 0, 0x80, 0x01, 0x2C, 0}},         // SKS, C/D=0
	})
	// No information and no SKS: the header alone.
	s = Sense{Key: SenseKeyUnitAttention, Code: ASCPowerOnResetOrBusDeviceReset}
	if n := s.Put(b, true); n != 8 || b[7] != 0 || b[1] != 0x06 || b[2] != 0x29 {
		t.Fatalf("bare descriptor sense: %d % x", n, b[:n])
	}
}

func TestSenseRoundTrip(t *testing.T) {
	for i, s := range []Sense{
		{Key: SenseKeyIllegalRequest, Code: ASCLBAOutOfRange},
		{Key: SenseKeyMiscompare, Code: ASCMiscompareDuringVerify, InfoValid: true, Info: 511},
		{Key: SenseKeyNotReady, Code: ASCLUBecomingReady, Specific: ProgressIndication(0x8000)},
		{Key: SenseKeyIllegalRequest, Code: ASCInvalidFieldInCDB, Deferred: true,
			Specific: FieldPointer(true, 9, 2)},
	} {
		for _, desc := range []bool{false, true} {
			b := make([]byte, SenseMaxLen)
			n := s.Put(b, desc)
			got, err := DecodeSense(b[:n])
			if err != nil || got != s {
				t.Errorf("%d desc=%v: %+v, %v; want %+v", i, desc, got, err, s)
			}
		}
	}
	// A short fixed-format buffer (what some devices return) still decodes.
	got, err := DecodeSense([]byte{0x70, 0, 0x06, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0x29, 0x07})
	if err != nil || got.Key != SenseKeyUnitAttention || got.Code != ASCITNexusLossOccurred {
		t.Fatalf("short fixed: %+v %v", got, err)
	}
}

func TestSenseDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want error
	}{
		{[]byte{0x70, 0, 5}, ErrSenseShort},
		{[]byte{0x7F, 0, 0, 0, 0, 0, 0, 0}, ErrSenseResponseCode},
		{[]byte{0x72, 5, 0x24, 0, 0, 0, 0, 4, 0x02, 0x06, 0, 0}, ErrSenseDescriptor},
		{[]byte{0x72, 5, 0x24, 0, 0, 0, 0, 1, 0x02}, ErrSenseDescriptor},
	} {
		got, err := DecodeSense(tc.b)
		if err != tc.want || got != (Sense{}) {
			t.Errorf("% x: %+v %v, want %v", tc.b, got, err, tc.want)
		}
	}
	// Unknown descriptors are skipped.
	b := []byte{0x72, 5, 0x24, 0, 0, 0, 0, 12, 0x05, 0x02, 0, 0, 0x02, 0x06, 0, 0, 0xC0, 0, 3, 0}
	got, err := DecodeSense(b)
	if _, off, _, ok := got.Specific.Field(); err != nil || !ok || off != 3 {
		t.Fatalf("skip unknown: %+v %v", got, err)
	}
}

func TestFieldPointer(t *testing.T) {
	fp := FieldPointer(true, 0x1234, 5)
	if fp != (SenseSpecific{0xCD, 0x12, 0x34}) {
		t.Fatalf("% x", fp)
	}
	cd, off, b, ok := fp.Field()
	if !cd || off != 0x1234 || b != 5 || !ok {
		t.Fatal(cd, off, b, ok)
	}
	if _, _, b, ok := FieldPointer(false, 1, 8).Field(); b != -1 || !ok {
		t.Fatal("bit 8 must leave BPV clear")
	}
	if _, _, _, ok := (SenseSpecific{}).Field(); ok {
		t.Fatal("zero value is not valid")
	}
}

func TestSenseErrors(t *testing.T) {
	e := InvalidFieldInCDB(2, 7)
	if e != InvalidFieldInCDB(2, 7) {
		t.Fatal("table entries must be shared")
	}
	if got := e.Error(); got != "scsi: ILLEGAL REQUEST: INVALID FIELD IN CDB (cdb byte 2 bit 7)" {
		t.Fatal(got)
	}
	wrapped := fmt.Errorf("inquiry: %w", e)
	s, ok := AsSense(wrapped)
	if !ok || s.Code != ASCInvalidFieldInCDB {
		t.Fatal("AsSense")
	}
	if _, ok := AsSense(errors.New("x")); ok {
		t.Fatal("plain error has no sense")
	}
	p := InvalidFieldInParameterList(70000, -1)
	if _, off, _, _ := p.Sense.Specific.Field(); off != 0xFFFF ||
		!strings.Contains(p.Error(), "parameter byte 65535") {
		t.Fatal(p.Error())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("offset 32 must panic")
		}
	}()
	InvalidFieldInCDB(32, 0)
}

func TestSenseStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{SenseKeyMiscompare.String(), "MISCOMPARE"},
		{SenseCode(0x2A03).String(), "RESERVATIONS PREEMPTED"},
		{SenseCode(0x0102).String(), "asc/ascq 0x0102"},
		{StatusReservationConflict.String(), "RESERVATION CONFLICT"},
		{Status(0x22).String(), "status 0x22"},
		{ASCInvalidFieldInCDB.String(), "INVALID FIELD IN CDB"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
	if SenseCode(0x2604).ASC() != 0x26 || SenseCode(0x2604).ASCQ() != 0x04 {
		t.Fatal("ASC/ASCQ split")
	}
	if !StatusConditionMet.Good() || StatusBusy.Good() {
		t.Fatal("Good")
	}
}
