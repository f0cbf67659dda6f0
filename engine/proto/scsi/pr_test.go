package scsi

import (
	"reflect"
	"strings"
	"testing"
)

func TestTransportID(t *testing.T) {
	port := TransportID{Name: "iqn.2007-10.com.example:host1", ISID: 0x23d000001, HasISID: true}
	b := port.Append(nil)
	// SPC-4 §7.6.4.6: FORMAT CODE 01b | iSCSI (5h), ADDITIONAL LENGTH @2, the
	// null-terminated "name,i,0xISID" padded to a multiple of 4.
	name := "iqn.2007-10.com.example:host1,i,0x00023d000001"
	if port.String() != name {
		t.Fatalf("String %q", port.String())
	}
	wantLen := (4 + len(name) + 1 + 3) &^ 3
	checkFields(t, "port tid", b, []field{{0, []byte{0x45, 0, 0, byte(wantLen - 4)}},
		{4, append([]byte(name), 0)}})
	if len(b) != wantLen || port.Len() != wantLen {
		t.Fatalf("length %d, want %d", len(b), wantLen)
	}
	short := TransportID{Name: "iqn.x"}
	sb := short.Append(nil)
	checkFields(t, "name tid", sb, []field{{0, []byte{0x05, 0, 0, 20, 'i', 'q', 'n', '.', 'x', 0}}})
	if len(sb) != tidMinLen {
		t.Fatalf("short TransportID must be padded to 24, got %d", len(sb))
	}
	for _, tid := range []TransportID{port, short} {
		got, n, err := DecodeTransportID(append(tid.Append(nil), 0xEE))
		if err != nil || got != tid || n != tid.Len() {
			t.Errorf("round trip %+v: %+v %d %v", tid, got, n, err)
		}
	}
	// Upper-case separators and hex, and short ISIDs, as some initiators send them.
	raw := []byte("\x45\x00\x00\x14iqn.a,I,0X1aB\x00\x00\x00\x00\x00\x00\x00")
	got, n, err := DecodeTransportID(raw)
	if err != nil || n != 24 || got != (TransportID{Name: "iqn.a", ISID: 0x1ab, HasISID: true}) {
		t.Fatalf("%+v %d %v", got, n, err)
	}
}

func TestTransportIDErrors(t *testing.T) {
	long := strings.Repeat("a", 224)
	for _, tc := range []struct {
		name string
		b    []byte
		off  int
	}{
		{"header", []byte{0x05, 0, 0}, 0},
		{"fibre channel", []byte{0x00, 0, 0, 20, 'x', 0}, 0},
		{"format 10b", []byte{0x85, 0, 0, 4, 'x', 0, 0, 0}, 0},
		{"length past data", []byte{0x05, 0, 0, 20, 'x', 0}, 2},
		{"no terminator", []byte{0x05, 0, 0, 4, 'a', 'b', 'c', 'd'}, 4},
		{"empty name", []byte{0x05, 0, 0, 4, 0, 0, 0, 0}, 4},
		{"name too long", append(append([]byte{0x05, 0, 0, 228}, long...), 0, 0, 0, 0), 4},
		{"no separator", []byte{0x45, 0, 0, 8, 'i', 'q', 'n', 0, 0, 0, 0, 0}, 4},
		{"isid not hex", append([]byte{0x45, 0, 0, 12}, "iqn,i,0xzz\x00\x00"...), 7},
		{"isid too long", append([]byte{0x45, 0, 0, 24}, "iqn,i,0x1234567890123\x00\x00\x00"...), 7},
	} {
		got, n, err := DecodeTransportID(tc.b)
		te, ok := err.(*TransportIDError)
		if !ok || te.Offset != tc.off || got != (TransportID{}) || n != 0 {
			t.Errorf("%s: %+v %d %v", tc.name, got, n, err)
		}
	}
}

func TestDecodePROut(t *testing.T) {
	basic := make([]byte, 24)
	copy(basic, []byte{0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0x56, 0x78})
	basic[20] = 0x05 // ALL_TG_PT | APTPL
	p, err := DecodePROut(PROutRegisterAndIgnore, basic)
	want := PROutParams{ReservationKey: 0x1234, ServiceActionKey: 0x5678, AllTgPt: true,
		APTPL: true}
	if err != nil || !reflect.DeepEqual(p, want) {
		t.Fatalf("%+v %v", p, err)
	}
	enc := want.Append(PROutRegisterAndIgnore, nil)
	if string(enc) != string(basic) {
		t.Fatalf("Append % x", enc)
	}
	// SPEC_I_PT with two TransportIDs (REGISTER only).
	spec := PROutParams{ServiceActionKey: 9, SpecIPT: true, TransportIDs: []TransportID{
		{Name: "iqn.a", ISID: 1, HasISID: true}, {Name: "iqn.b"}}}
	enc = spec.Append(PROutRegister, nil)
	checkFields(t, "spec_i_pt", enc, []field{{20, []byte{0x08, 0, 0, 0, 0, 0, 0, 28 + 24}}})
	if p, err := DecodePROut(PROutRegister, enc); err != nil || !reflect.DeepEqual(p, spec) {
		t.Fatalf("spec_i_pt round trip %+v %v", p, err)
	}
	move := PROutParams{ReservationKey: 1, ServiceActionKey: 2, Unreg: true, APTPL: true,
		RelativeTargetPort: 7, TransportIDs: []TransportID{{Name: "iqn.c", ISID: 2, HasISID: true}}}
	enc = move.Append(PROutRegisterAndMove, nil)
	checkFields(t, "register and move", enc, []field{{16, []byte{0, 0x03, 0, 7, 0, 0, 0, 28}}})
	if p, err := DecodePROut(PROutRegisterAndMove, enc); err != nil || !reflect.DeepEqual(p, move) {
		t.Fatalf("move round trip %+v %v", p, err)
	}

	bad := append([]byte(nil), enc...)
	bad[0+24] = 0x01 // not iSCSI
	specBad := spec.Append(PROutRegister, nil)
	specBad[28+28+4] = 0 // empty name in the second TransportID
	for _, tc := range []struct {
		name string
		sa   PROutAction
		b    []byte
		want error
	}{
		{"23 bytes", PROutRegister, basic[:23], ErrParameterListLength},
		{"25 bytes", PROutReserve, append(basic, 0), ErrParameterListLength},
		{"empty", PROutClear, nil, ErrParameterListLength},
		{"spec_i_pt on reserve", PROutReserve, enc24(0x08), InvalidFieldInParameterList(20, 3)},
		{"spec_i_pt on register and ignore", PROutRegisterAndIgnore, enc24(0x08),
			InvalidFieldInParameterList(20, 3)},
		{"spec_i_pt without length", PROutRegister, enc24(0x08), ErrParameterListLength},
		{"spec_i_pt length mismatch", PROutRegister, spec.Append(PROutRegister, nil)[:70],
			ErrParameterListLength},
		{"spec_i_pt bad tid", PROutRegister, specBad, InvalidFieldInParameterList(60, -1)},
		{"move short", PROutRegisterAndMove, enc[:23], ErrParameterListLength},
		{"move cut", PROutRegisterAndMove, enc[:40], ErrParameterListLength},
		{"move bad tid", PROutRegisterAndMove, bad, InvalidFieldInParameterList(20, -1)},
	} {
		p, err := DecodePROut(tc.sa, tc.b)
		if !reflect.DeepEqual(err, tc.want) || !reflect.DeepEqual(p, PROutParams{}) {
			t.Errorf("%s: %+v %v, want %v", tc.name, p, err, tc.want)
		}
	}
}

// enc24 returns a basic parameter list with byte 20 set to flags.
func enc24(flags byte) []byte {
	b := make([]byte, 24)
	b[20] = flags
	return b
}

func TestPRInData(t *testing.T) {
	rk := AppendPRInReadKeys(nil, 7, []uint64{0xAA, 0xBB})
	// SPC-4 §6.14.2: PRGENERATION, ADDITIONAL LENGTH, keys. libiscsi
	// PrinReadKeys.Simple: ADDITIONAL LENGTH == data size - 8.
	checkFields(t, "read keys", rk, []field{{0, []byte{0, 0, 0, 7, 0, 0, 0, 16}},
		{8, []byte{0, 0, 0, 0, 0, 0, 0, 0xAA, 0, 0, 0, 0, 0, 0, 0, 0xBB}}})
	if cut := Truncate(rk, 8); be.Uint32(cut[4:]) != 16 {
		t.Fatal("PrinReadKeys.Truncate: ADDITIONAL LENGTH must survive truncation")
	}
	none := AppendPRInReadReservation(nil, 3, nil)
	checkFields(t, "no reservation", none, []field{{0, []byte{0, 0, 0, 3, 0, 0, 0, 0}}})
	if len(none) != 8 {
		t.Fatal("no descriptor without a reservation")
	}
	rr := AppendPRInReadReservation(nil, 3, &PRReservation{Key: 0x1122,
		Type: PRTypeWriteExclusiveRegistrantsOnly})
	// SPC-4 §6.14.3: RESERVATION KEY @8, SCOPE/TYPE @21.
	checkFields(t, "reservation", rr, []field{{0, []byte{0, 0, 0, 3, 0, 0, 0, 16}},
		{8, []byte{0, 0, 0, 0, 0, 0, 0x11, 0x22, 0, 0, 0, 0, 0, 0x05, 0, 0}}})
	if len(rr) != 24 {
		t.Fatalf("length %d", len(rr))
	}
}

func TestPRCapabilities(t *testing.T) {
	var mask uint16
	for _, ty := range []PRType{PRTypeWriteExclusive, PRTypeExclusiveAccess,
		PRTypeWriteExclusiveRegistrantsOnly, PRTypeExclusiveAccessRegistrantsOnly,
		PRTypeWriteExclusiveAllRegistrants, PRTypeExclusiveAccessAllRegistrants} {
		mask |= ty.MaskBit()
	}
	// libiscsi PrinReportCapabilities: only the six known mask bits.
	if mask != 0xEA01 {
		t.Fatalf("type mask %04x", mask)
	}
	c := PRCapabilities{CRH: true, ATPC: true, PTPLC: true, TMV: true, AllowCommands: 1,
		TypeMask: mask}
	b := c.Append(nil)
	checkFields(t, "report capabilities", b, []field{{0, []byte{0, 8, 0x15, 0x90, 0xEA, 0x01,
		0, 0}}})
	all := PRCapabilities{RLRC: true, SIPC: true, PTPLA: true, AllowCommands: 7}
	checkFields(t, "flags", all.Append(nil), []field{{2, []byte{0x88, 0x71}}})
}

func TestPRInFullStatus(t *testing.T) {
	a := TransportID{Name: "iqn.a", ISID: 1, HasISID: true}
	b := AppendPRInFullStatus(nil, 9, []PRFullStatus{
		{Key: 1, Holder: true, Type: PRTypeExclusiveAccess, RelativeTargetPort: 2, TransportID: a},
		{Key: 2, AllTgPt: true, Scope: 1, Type: PRTypeWriteExclusive,
			TransportID: TransportID{Name: "iqn.b"}},
	})
	// SPC-4 §6.14.5: 24-byte descriptor header then the TransportID.
	checkFields(t, "full status", b, []field{
		{0, []byte{0, 0, 0, 9, 0, 0, 0, 100}},
		{8, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0x03, 0, 0, 0, 0, 0, 2, 0, 0, 0, 28}},
		{32, a.Append(nil)},
		// "iqn.a,i,0x000000000001" and its NUL fill a 28-byte TransportID. Not the
		// holder: SCOPE/TYPE stay zero.
		{60, []byte{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24}},
	})
	if len(b) != 8+100 {
		t.Fatalf("length %d", len(b))
	}
}

func TestPRTypes(t *testing.T) {
	for ty := PRType(0); ty < 16; ty++ {
		valid := ty == 1 || ty == 3 || (ty >= 5 && ty <= 8)
		if ty.Valid() != valid || (ty.MaskBit() != 0) != valid {
			t.Errorf("type %d", ty)
		}
		if ty.AllRegistrants() != (ty == 7 || ty == 8) {
			t.Errorf("AllRegistrants %d", ty)
		}
	}
	if PRTypeExclusiveAccess.String() != "EXCLUSIVE ACCESS" || PRType(2).String() != "pr type 0x2" {
		t.Fatal("String")
	}
}
