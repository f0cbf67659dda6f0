package scsi

import (
	"bytes"
	"reflect"
	"testing"
)

func sluiceModePages() ModePages {
	return BlockModePages(CachingPage{WCE: true, DRA: true},
		ControlPage{QAM: 1, TAS: true, GLTSD: true, BusyTimeout: 0xFFFF, ExtSelfTest: 30})
}

var sluiceHeader = ModeHeader{DPOFUA: true, Blocks: 0x1_0000_0001, BlockSize: 512}

func modeSense(t *testing.T, m ModePages, cdb []byte, h *ModeHeader) []byte {
	t.Helper()
	c, err := DecodeCDB(bhs(cdb...))
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.AppendModeSense(nil, &c, h)
	if err != nil {
		t.Fatalf("% x: %v", cdb, err)
	}
	return b
}

func TestModeSense6AllPages(t *testing.T) {
	b := modeSense(t, sluiceModePages(), []byte{0x1A, 0, 0x3F, 0, 255, 0}, &sluiceHeader)
	if len(b) != 4+8+12+20+12+12 {
		t.Fatalf("length %d", len(b))
	}
	checkFields(t, "mode sense(6)", b, []field{
		// SPC-4 "Mode parameter header(6)": MODE DATA LENGTH, MEDIUM TYPE, DPOFUA, BD LENGTH.
		{0, []byte{67, 0, 0x10, 8}},
		// SBC-3 short LBA block descriptor: NUMBER OF BLOCKS saturated, LENGTH @5-7.
		{4, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x02, 0x00}},
		{12, []byte{0x01, 0x0A, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0}},                // AWRE
		{24, []byte{0x08, 0x12, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0}}, // WCE, DRA
		{44, []byte{0x0A, 0x0A, 0x02, 0x10, 0x00, 0x40, 0, 0, 0xFF, 0xFF, 0, 30}},
		{56, []byte{0x1C, 0x0A, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0}}, // DEXCPT
	})
	// libiscsi ModeSense6.Residuals: a 4-byte allocation gets 4 bytes.
	if got := Truncate(b, 4); len(got) != 4 || got[0] != 67 {
		t.Fatal("truncation")
	}
}

func TestModeSenseControlPage(t *testing.T) {
	m := sluiceModePages()
	all := modeSense(t, m, []byte{0x1A, 0, 0x3F, 0, 255, 0}, &sluiceHeader)
	one := modeSense(t, m, []byte{0x1A, 0, 0x0A, 0, 255, 0}, &sluiceHeader)
	// libiscsi ModeSense6.Control: the page alone equals the page among all pages.
	if !bytes.Equal(one[12:], all[44:56]) || one[0] != byte(len(one)-1) {
		t.Fatalf("direct % x, from all % x", one[12:], all[44:56])
	}
	p := ParseControlPage(one[14:])
	if p.TST > 1 || p.QErr == 2 || p.UAIntlckCtrl == 1 || p.BusyTimeout == 0 {
		t.Fatalf("control page values libiscsi refuses: %+v", p)
	}
	// libiscsi set_swp: changeable values with DBD=1 show SWP (and D_SENSE).
	ch := modeSense(t, m, []byte{0x1A, 0x08, 0x4A, 0, 255, 0}, &sluiceHeader)
	checkFields(t, "changeable", ch, []field{{0, []byte{15, 0, 0x10, 0, 0x0A, 0x0A, 0x04, 0,
		0x08, 0, 0, 0, 0, 0, 0, 0}}})
	if !ParseControlPage(ch[6:]).SWP {
		t.Fatal("SWP must read as changeable")
	}
	def := modeSense(t, m, []byte{0x1A, 0x08, 0x8A, 0xFF, 255, 0}, &sluiceHeader)
	if !bytes.Equal(def[4:], one[12:]) {
		t.Fatal("defaults equal the initial current values")
	}
}

func TestModeSense10(t *testing.T) {
	m := sluiceModePages()
	h := sluiceHeader
	h.WriteProtect = true
	b := modeSense(t, m, []byte{0x5A, 0x10, 0x08, 0, 0, 0, 0, 0x10, 0, 0}, &h)
	checkFields(t, "mode sense(10) llbaa", b, []field{
		// SPC-4 "Mode parameter header(10)": LENGTH, MEDIUM, WP|DPOFUA, LONGLBA, BD LENGTH.
		{0, []byte{0, byte(len(b) - 2), 0, 0x90, 0x01, 0, 0, 16}},
		// SBC-3 long LBA block descriptor.
		{8, []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 0}},
		{24, []byte{0x08, 0x12}},
	})
	if len(b) != 8+16+20 {
		t.Fatalf("length %d", len(b))
	}
	short := modeSense(t, m, []byte{0x5A, 0x00, 0x08, 0, 0, 0, 0, 0x10, 0, 0}, &h)
	checkFields(t, "mode sense(10)", short, []field{{4, []byte{0, 0, 0, 8, 0xFF, 0xFF, 0xFF,
		0xFF, 0, 0, 2, 0, 0x08}}})
	dbd := modeSense(t, m, []byte{0x5A, 0x18, 0x1C, 0, 0, 0, 0, 0x10, 0, 0}, &h)
	checkFields(t, "dbd", dbd, []field{{0, []byte{0, 18, 0, 0x90, 0, 0, 0, 0, 0x1C, 0x0A}}})
}

func TestModeSenseSubpagesAndErrors(t *testing.T) {
	m := append(sluiceModePages(), NewModePage(ModePageControl, 0x01, []byte{1, 2, 3, 4},
		[]byte{0, 0, 0, 0}))
	all := modeSense(t, m, []byte{0x1A, 0x08, 0x3F, 0xFF, 255, 0}, &sluiceHeader)
	// The sub_page format header: SPF @0 bit 6, SUBPAGE @1, PAGE LENGTH @2-3.
	if !bytes.HasSuffix(all, []byte{0x4A, 0x01, 0x00, 0x04, 1, 2, 3, 4}) {
		t.Fatalf("subpage missing: % x", all)
	}
	page0 := modeSense(t, m, []byte{0x1A, 0x08, 0x3F, 0x00, 255, 0}, &sluiceHeader)
	if len(page0) != len(all)-8 {
		t.Fatal("3Fh/00h must leave subpages out")
	}
	both := modeSense(t, m, []byte{0x1A, 0x08, 0x0A, 0xFF, 255, 0}, &sluiceHeader)
	if len(both) != 4+12+8 {
		t.Fatalf("0Ah/FFh: % x", both)
	}
	for _, tc := range []struct {
		cdb  []byte
		want *SenseError
	}{
		{[]byte{0x1A, 0, 0xCA, 0, 255, 0}, errSavingNotSupported},
		{[]byte{0x1A, 0, 0x05, 0, 255, 0}, InvalidFieldInCDB(2, 5)},
		{[]byte{0x1A, 0, 0x0A, 0x02, 255, 0}, InvalidFieldInCDB(3, 7)},
		{[]byte{0x1A, 0, 0x3F, 0x05, 255, 0}, InvalidFieldInCDB(3, 7)},
	} {
		c, _ := DecodeCDB(bhs(tc.cdb...))
		if _, err := m.AppendModeSense(nil, &c, &sluiceHeader); err != error(tc.want) {
			t.Errorf("% x: %v, want %v", tc.cdb, err, tc.want)
		}
	}
	if errSavingNotSupported.Sense.Code != ASCSavingParametersNotSupported {
		t.Fatal("PC=11b answers SAVING PARAMETERS NOT SUPPORTED")
	}
}

func TestModeSense6Cap(t *testing.T) {
	var m ModePages
	for code := uint8(0x20); code < 0x24; code++ {
		m = append(m, NewModePage(code, 0, make([]byte, 100), make([]byte, 100)))
	}
	b := modeSense(t, m, []byte{0x1A, 0x08, 0x3F, 0, 255, 0}, &sluiceHeader)
	if len(b) != 4+2*102 || int(b[0]) != len(b)-1 {
		t.Fatalf("MODE SENSE(6) returned %d bytes", len(b))
	}
}

// modeSelect6 builds a MODE SELECT(6) list carrying one page_0 page.
func modeSelect6(code uint8, params []byte) []byte {
	l := ModeSelectList{Pages: []ModeSelectPage{{Code: code, Params: params}}}
	return l.Append(nil)
}

func TestModeSelectSWP(t *testing.T) {
	m := sluiceModePages()
	// libiscsi set_swp: read the current Control page, clear PS, flip SWP, write it back
	// with a zeroed header and no block descriptor.
	cur := modeSense(t, m, []byte{0x1A, 0x08, 0x0A, 0, 255, 0}, &sluiceHeader)
	params := append([]byte(nil), cur[6:]...)
	params[2] |= 0x08
	list, err := DecodeModeSelect(modeSelect6(ModePageControl, params), false)
	if err != nil {
		t.Fatal(err)
	}
	sel := CDB{Opcode: OpModeSelect6, PF: true}
	changed, err := m.Select(&list, &sel, &sluiceHeader)
	if err != nil || !changed || !m.Control().SWP {
		t.Fatalf("select: %v changed=%v swp=%v", err, changed, m.Control().SWP)
	}
	// The same values again change nothing.
	if changed, err := m.Select(&list, &sel, &sluiceHeader); err != nil || changed {
		t.Fatalf("reselect: %v %v", changed, err)
	}
	if m.Find(ModePageControl, 0).Default[2]&0x08 != 0 {
		t.Fatal("defaults must not change")
	}
	if clone := m.Clone(); !reflect.DeepEqual(clone, m) || &clone[2].Current[0] == &m[2].Current[0] {
		t.Fatal("Clone must copy the values")
	}
	params[2] &^= 0x08
	params[0] |= 0x04 // D_SENSE on as well
	list, _ = DecodeModeSelect(modeSelect6(ModePageControl, params), false)
	if _, err := m.Select(&list, &sel, &sluiceHeader); err != nil || m.Control().SWP ||
		!m.Control().DSense {
		t.Fatalf("clear SWP: %v %+v", err, m.Control())
	}
	wce := sluiceModePages()
	cache := CachingPage{WCE: false, DRA: true}.Bytes()
	list, _ = DecodeModeSelect(modeSelect6(ModePageCaching, cache), false)
	if _, err := wce.Select(&list, &sel, &sluiceHeader); err != nil || wce.Caching().WCE {
		t.Fatalf("WCE: %v", err)
	}
}

func TestModeSelectErrors(t *testing.T) {
	ctl := sluiceModePages().Find(ModePageControl, 0).Current
	tst := append([]byte(nil), ctl...)
	tst[0] |= 0x20 // TST is not changeable
	pf := CDB{Opcode: OpModeSelect6, PF: true}
	for _, tc := range []struct {
		name string
		list []byte
		c    CDB
		want error
	}{
		{"sp", modeSelect6(ModePageControl, ctl), CDB{PF: true, SP: true}, InvalidFieldInCDB(1, 0)},
		{"pf=0", modeSelect6(ModePageControl, ctl), CDB{}, InvalidFieldInCDB(1, 4)},
		{"unknown page", modeSelect6(0x02, make([]byte, 14)), pf,
			InvalidFieldInParameterList(4, 5)},
		{"page length", modeSelect6(ModePageControl, ctl[:8]), pf,
			InvalidFieldInParameterList(5, -1)},
		{"not changeable", modeSelect6(ModePageControl, tst), pf,
			InvalidFieldInParameterList(6, 5)},
		{"block length", []byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x10, 0}, pf,
			InvalidFieldInParameterList(9, -1)},
		{"blocks", []byte{0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0x02, 0}, pf,
			InvalidFieldInParameterList(4, 7)},
		{"sub_page for a page_0 page", []byte{0, 0, 0, 0, 0x4A, 0, 0, 10, 0, 0, 0, 0, 0, 0,
			0, 0, 0, 0}, pf, InvalidFieldInParameterList(4, 5)},
	} {
		m := sluiceModePages()
		list, err := DecodeModeSelect(tc.list, false)
		if err != nil {
			t.Fatalf("%s: decode %v", tc.name, err)
		}
		changed, err := m.Select(&list, &tc.c, &sluiceHeader)
		if changed || !reflect.DeepEqual(err, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, changed, err, tc.want)
		}
		if !reflect.DeepEqual(m, sluiceModePages()) {
			t.Errorf("%s: a refused MODE SELECT changed the pages", tc.name)
		}
	}
	// A block descriptor that restates the capacity, or says 0, is accepted.
	for _, blocks := range []uint64{0, 0xFFFFFFFF} {
		l := ModeSelectList{HasBlockDescriptor: true, Blocks: blocks, BlockLength: 512}
		list, _ := DecodeModeSelect(l.Append(nil), false)
		m := sluiceModePages()
		if _, err := m.Select(&list, &pf, &sluiceHeader); err != nil {
			t.Errorf("blocks %d: %v", blocks, err)
		}
	}
}

func TestDecodeModeSelect(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		ten  bool
		want error
	}{
		{"header cut", []byte{0, 0, 0}, false, ErrParameterListLength},
		{"header10 cut", []byte{0, 0, 0, 0, 0, 0, 0}, true, ErrParameterListLength},
		{"descriptor length 4", []byte{0, 0, 0, 4, 0, 0, 0, 0}, false,
			InvalidFieldInParameterList(3, -1)},
		{"long descriptor without LONGLBA", append([]byte{0, 0, 0, 0, 0, 0, 0, 16},
			make([]byte, 16)...), true, InvalidFieldInParameterList(6, -1)},
		{"descriptor cut", []byte{0, 0, 0, 8, 0, 0, 0, 0}, false, ErrParameterListLength},
		{"page header cut", []byte{0, 0, 0, 0, 0x0A}, false, ErrParameterListLength},
		{"sub_page header cut", []byte{0, 0, 0, 0, 0x4A, 1, 0}, false, ErrParameterListLength},
		{"page cut", []byte{0, 0, 0, 0, 0x0A, 0x0A, 0}, false, ErrParameterListLength},
	} {
		got, err := DecodeModeSelect(tc.b, tc.ten)
		if !reflect.DeepEqual(err, tc.want) || !reflect.DeepEqual(got, ModeSelectList{}) {
			t.Errorf("%s: %+v %v, want %v", tc.name, got, err, tc.want)
		}
	}
	if l, err := DecodeModeSelect(nil, true); err != nil || !l.Ten || len(l.Pages) != 0 {
		t.Fatal("an empty list is valid")
	}
	l := ModeSelectList{Ten: true, MediumType: 1, DeviceSpecific: 0x10, LongLBA: true,
		HasBlockDescriptor: true, Blocks: 1 << 40, BlockLength: 4096, Pages: []ModeSelectPage{
			{Code: 0x08, PS: true, Params: make([]byte, 18), Offset: 24},
			{Code: 0x0A, SPF: true, Subpage: 1, Params: []byte{9}, Offset: 44}}}
	got, err := DecodeModeSelect(l.Append(nil), true)
	if err != nil || !reflect.DeepEqual(got, l) {
		t.Fatalf("round trip\n%+v\n%+v %v", got, l, err)
	}
}
