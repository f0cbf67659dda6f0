package nvme

import (
	"errors"
	"testing"
)

var (
	atCtrl     = LayoutParams{Receiver: RoleController}
	atCtrlHD   = LayoutParams{Receiver: RoleController, HDGST: true}
	atCtrlDD   = LayoutParams{Receiver: RoleController, DDGST: true}
	atCtrlBoth = LayoutParams{Receiver: RoleController, HDGST: true, DDGST: true}
	atHost     = LayoutParams{Receiver: RoleHost}
)

type layoutErrorCase struct {
	name string
	ch   CommonHeader
	p    LayoutParams
	fei  uint32
}

const (
	capCmd                 = PDUTypeCapsuleCmd
	fHD, fDD, fLast, fSucc = CHFlagHDGSTF, CHFlagDDGSTF, CHFlagLastPDU, CHFlagSuccess
)

var layoutErrorCases = []layoutErrorCase{
	{"reserved type 08h", CommonHeader{Type: 8, HLen: 24, PLen: 24}, atCtrl, 0},
	{"reserved type 0Ah", CommonHeader{Type: 0x0A, HLen: 24, PLen: 24}, atHost, 0},
	{"C2HData at controller", CommonHeader{Type: PDUTypeC2HData, HLen: 24, PDO: 24,
		PLen: 28}, atCtrl, 0},
	{"H2CData at host", CommonHeader{Type: PDUTypeH2CData, HLen: 24, PDO: 24,
		PLen: 28}, atHost, 0},
	{"ICResp at controller", CommonHeader{Type: PDUTypeICResp, HLen: 128, PLen: 128},
		atCtrl, 0},
	{"HDGSTF missing", CommonHeader{Type: capCmd, HLen: 72, PLen: 72}, atCtrlHD, 1},
	{"DDGSTF missing with data", CommonHeader{Type: capCmd, HLen: 72, PDO: 72,
		PLen: 72 + 512}, atCtrlDD, 1},
	{"SUCCESS without LAST", CommonHeader{Type: PDUTypeC2HData, Flags: fSucc, HLen: 24,
		PDO: 24, PLen: 28}, atHost, 1},
	{"CapsuleCmd hlen 71", CommonHeader{Type: capCmd, HLen: 71, PLen: 71}, atCtrl, 2},
	{"ICReq hlen 24", CommonHeader{Type: PDUTypeICReq, HLen: 24, PLen: 128}, atCtrl, 2},
	{"hlen before plen", CommonHeader{Type: PDUTypeR2T, HLen: 8, PLen: 3}, atHost, 2},
	{"data but pdo 0", CommonHeader{Type: capCmd, HLen: 72, PLen: 72 + 512}, atCtrl, 3},
	{"pdo inside header", CommonHeader{Type: capCmd, HLen: 72, PDO: 40, PLen: 72 + 512},
		atCtrl, 3},
	{"pdo inside hdgst", CommonHeader{Type: capCmd, Flags: fHD, HLen: 72, PDO: 72,
		PLen: 76 + 512}, atCtrlHD, 3},
	{"pdo unaligned", CommonHeader{Type: capCmd, HLen: 72, PDO: 72, PLen: 72 + 512},
		LayoutParams{Receiver: RoleController, PDA: 3}, 3},
	{"pdo beyond plen", CommonHeader{Type: PDUTypeH2CData, Flags: fLast, HLen: 24,
		PDO: 200, PLen: 100}, atCtrl, 3},
	{"pdo at plen", CommonHeader{Type: PDUTypeH2CData, HLen: 24, PDO: 100, PLen: 100},
		atCtrl, 3},
	{"pdo at plen capsule", CommonHeader{Type: capCmd, HLen: 72, PDO: 80, PLen: 80},
		atCtrl, 3},
	{"plen below hlen", CommonHeader{Type: capCmd, HLen: 72, PLen: 50}, atCtrl, 4},
	{"plen below hdgst", CommonHeader{Type: capCmd, Flags: fHD, HLen: 72, PLen: 74},
		atCtrlHD, 4},
	{"ICReq plen 129", CommonHeader{Type: PDUTypeICReq, HLen: 128, PLen: 129}, atCtrl, 4},
	{"CapsuleResp plen 28", CommonHeader{Type: PDUTypeCapsuleResp, HLen: 24, PLen: 28},
		atHost, 4},
	{"R2T plen 20", CommonHeader{Type: PDUTypeR2T, HLen: 24, PLen: 20}, atHost, 4},
	{"H2CData without data", CommonHeader{Type: PDUTypeH2CData, HLen: 24, PLen: 24},
		atCtrl, 4},
	{"no room for ddgst", CommonHeader{Type: PDUTypeH2CData, Flags: fDD, HLen: 24,
		PDO: 24, PLen: 28}, atCtrlDD, 4},
	{"TermReq plen 153", CommonHeader{Type: PDUTypeH2CTermReq, HLen: 24, PLen: 153},
		atCtrl, 4},
	{"TermReq plen 20", CommonHeader{Type: PDUTypeC2HTermReq, HLen: 24, PLen: 20},
		atHost, 4},
}

// TestLayoutErrors: each malformed header gives the expected FES and FEI (TCP §3.6.2.4:
// FEI is the byte offset of the offending field; the lowest one is reported).
func TestLayoutErrors(t *testing.T) {
	for _, tc := range layoutErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tc.ch.Layout(tc.p)
			var pe *PDUError
			if !errors.As(err, &pe) {
				t.Fatalf("Layout(%+v) = %+v, %v; want FEI %d", tc.ch, l, err, tc.fei)
			}
			if pe.FES != FESInvalidHeaderField || pe.FEI != tc.fei {
				t.Fatalf("FES %d FEI %d (%s), want FES 1 FEI %d", pe.FES, pe.FEI, pe.Reason,
					tc.fei)
			}
			if l != (Layout{}) {
				t.Fatalf("non-zero layout with error: %+v", l)
			}
		})
	}
}

func TestLayoutAccepts(t *testing.T) {
	cmd := PDUTypeCapsuleCmd
	for _, tc := range []struct {
		name string
		ch   CommonHeader
		p    LayoutParams
		want Layout
	}{
		{"capsule, no data", CommonHeader{Type: cmd, HLen: 72, PLen: 72}, atCtrl,
			Layout{Type: cmd, HLen: 72, PLen: 72}},
		{"capsule, no data, DDGSTF tolerated", CommonHeader{Type: cmd, Flags: CHFlagDDGSTF,
			HLen: 72, PLen: 72}, atCtrlDD, Layout{Type: cmd, HLen: 72, PLen: 72}},
		{"capsule, no data, pdo at end", CommonHeader{Type: cmd, HLen: 72, PDO: 72,
			PLen: 72}, atCtrl, Layout{Type: cmd, HLen: 72, PLen: 72}},
		{"capsule, both digests, padded", CommonHeader{Type: cmd,
			Flags: CHFlagHDGSTF | CHFlagDDGSTF, HLen: 72, PDO: 80, PLen: 80 + 4096 + 4},
			LayoutParams{HDGST: true, DDGST: true, PDA: 3},
			Layout{Type: cmd, HLen: 72, HDGST: true, Pad: 4, DataOffset: 80, DataLen: 4096,
				DDGST: true, PLen: 80 + 4096 + 4}},
		{"capsule, extra pad", CommonHeader{Type: cmd, HLen: 72, PDO: 76, PLen: 76 + 8},
			atCtrl, Layout{Type: cmd, HLen: 72, Pad: 4, DataOffset: 76, DataLen: 8,
				PLen: 84}},
		{"C2HData last+success", CommonHeader{Type: PDUTypeC2HData,
			Flags: CHFlagLastPDU | CHFlagSuccess | CHFlagHDGSTF, HLen: 24, PDO: 28,
			PLen: 28 + 512}, LayoutParams{Receiver: RoleHost, HDGST: true},
			Layout{Type: PDUTypeC2HData, HLen: 24, HDGST: true, DataOffset: 28,
				DataLen: 512, PLen: 540}},
		{"R2T with hdgst", CommonHeader{Type: PDUTypeR2T, Flags: CHFlagHDGSTF, HLen: 24,
			PLen: 28}, LayoutParams{Receiver: RoleHost, HDGST: true},
			Layout{Type: PDUTypeR2T, HLen: 24, HDGST: true, PLen: 28}},
		{"TermReq, error data", CommonHeader{Type: PDUTypeH2CTermReq, HLen: 24, PLen: 96},
			atCtrlBoth, Layout{Type: PDUTypeH2CTermReq, HLen: 24, DataOffset: 24,
				DataLen: 72, PLen: 96}},
		{"TermReq, reserved bits ignored", CommonHeader{Type: PDUTypeC2HTermReq,
			Flags: 0xF0, HLen: 24, PDO: 9, PLen: 24}, atHost,
			Layout{Type: PDUTypeC2HTermReq, HLen: 24, DataOffset: 24, PLen: 24}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.ch.Layout(tc.p)
			if err != nil || got != tc.want {
				t.Fatalf("Layout = %+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
}

func TestFrameHeaderPads(t *testing.T) {
	p := LayoutParams{HDGST: true, DDGST: true, PDA: 31}
	ch := FrameHeader(PDUTypeC2HData, CHFlagLastPDU|CHFlagDDGSTF, 100, p)
	want := CommonHeader{Type: PDUTypeC2HData, Flags: CHFlagLastPDU | CHFlagHDGSTF |
		CHFlagDDGSTF, HLen: 24, PDO: 128, PLen: 128 + 100 + 4}
	if ch != want {
		t.Fatalf("FrameHeader = %+v, want %+v", ch, want)
	}
	p.Receiver = RoleHost
	l, err := ch.Layout(p)
	if err != nil || l.Pad != 128-28 || l.DataLen != 100 {
		t.Fatalf("Layout = %+v, %v", l, err)
	}
	if l.HeaderEnd() != 28 {
		t.Fatalf("HeaderEnd = %d", l.HeaderEnd())
	}
	if l.CheckDATAL(100) != nil || l.CheckDATAL(99) == nil {
		t.Fatal("CheckDATAL")
	}
}

func TestFrameHeaderPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"reserved type":   func() { FrameHeader(8, 0, 0, LayoutParams{}) },
		"data on R2T":     func() { FrameHeader(PDUTypeR2T, 0, 1, LayoutParams{}) },
		"empty H2CData":   func() { FrameHeader(PDUTypeH2CData, 0, 0, LayoutParams{}) },
		"big TermReq":     func() { FrameHeader(PDUTypeC2HTermReq, 0, 129, LayoutParams{}) },
		"plen overflow":   func() { FrameHeader(PDUTypeC2HData, 0, ^uint32(0)-20, LayoutParams{}) },
		"FrameHeader pda": func() { FrameHeader(PDUTypeC2HData, 0, 1, LayoutParams{PDA: 32}) },
		"Layout pda":      func() { _, _ = CommonHeader{}.Layout(LayoutParams{PDA: 32}) },
		"NewTermReq type": func() { NewTermReq(PDUTypeR2T, 1, 0, nil) },
		"TermReq data len": func() {
			(&TermReq{Type: PDUTypeH2CTermReq, DataLen: 129}).Put(make([]byte, 200))
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestPDUErrorString(t *testing.T) {
	got := errLayoutHLen.Error()
	want := "nvme/tcp: hlen wrong for pdu type (fes invalid header field, fei 2)"
	if got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if err := CheckHeaderDigest(make([]byte, 28), 24); err == nil {
		t.Fatal("zero digest of zero header accepted")
	} else if pe := err.(*PDUError); pe.FES != FESHeaderDigestError {
		t.Fatal(pe)
	}
}

// TestLayoutIgnoresDigestFlagsLikeSPDKAndNvmet: a digest flag on a type that carries no
// digest, or for a digest that was not negotiated, is ignored by SPDK's target and by
// nvmet, so it is here: the PDU is laid out as if the flag were clear.
func TestLayoutIgnoresDigestFlagsLikeSPDKAndNvmet(t *testing.T) {
	atCtrl := LayoutParams{Receiver: RoleController}
	atCtrlHD := LayoutParams{Receiver: RoleController, HDGST: true}
	for _, tc := range []struct {
		name string
		ch   CommonHeader
		p    LayoutParams
		want Layout
	}{
		{"HDGSTF not negotiated", CommonHeader{Type: PDUTypeCapsuleCmd, Flags: CHFlagHDGSTF, HLen: 72, PLen: 72},
			atCtrl, Layout{Type: PDUTypeCapsuleCmd, HLen: 72, PLen: 72}},
		{"HDGSTF on TermReq", CommonHeader{Type: PDUTypeH2CTermReq, Flags: CHFlagHDGSTF, HLen: 24, PLen: 24},
			atCtrlHD, Layout{Type: PDUTypeH2CTermReq, HLen: 24, PLen: 24, DataOffset: 24}},
		{"HDGSTF on ICReq", CommonHeader{Type: PDUTypeICReq, Flags: CHFlagHDGSTF, HLen: 128, PLen: 128},
			atCtrl, Layout{Type: PDUTypeICReq, HLen: 128, PLen: 128}},
		{"DDGSTF not negotiated", CommonHeader{Type: PDUTypeCapsuleCmd, Flags: CHFlagDDGSTF, HLen: 72, PDO: 72, PLen: 72 + 512},
			atCtrl, Layout{Type: PDUTypeCapsuleCmd, HLen: 72, PLen: 584, DataOffset: 72, DataLen: 512}},
		{"DDGSTF on CapsuleResp", CommonHeader{Type: PDUTypeCapsuleResp, Flags: CHFlagDDGSTF, HLen: 24, PLen: 24},
			LayoutParams{Receiver: RoleHost, DDGST: true}, Layout{Type: PDUTypeCapsuleResp, HLen: 24, PLen: 24}},
		{"PDO unaligned with PDA 0", CommonHeader{Type: PDUTypeCapsuleCmd, HLen: 72, PDO: 74, PLen: 74 + 512},
			atCtrl, Layout{Type: PDUTypeCapsuleCmd, HLen: 72, PLen: 586, Pad: 2, DataOffset: 74, DataLen: 512}},
	} {
		got, err := tc.ch.Layout(tc.p)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}
