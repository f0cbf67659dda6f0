package iscsi

import (
	"errors"
	"reflect"
	"testing"
)

// field is an expected run of bytes at a BHS offset, written from RFC 7143 §11's
// figures rather than from the encoders.
type field struct {
	off int
	b   []byte
}

func at(off int, b ...byte) field { return field{off, b} }

// wantBHS builds the expected header: the listed fields, every other byte zero
// (reserved).
func wantBHS(fields ...field) BHS {
	var b BHS
	for _, f := range fields {
		copy(b[f.off:], f.b)
	}
	return b
}

var testLUN = LUN{0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}

// pduCase encodes v with put, compares the bytes with want, and decodes them back.
type pduCase struct {
	name   string
	put    func(*BHS)
	want   BHS
	decode func(*BHS) (any, error)
	value  any
}

func runPDUCases(t *testing.T, cases []pduCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b BHS
			for i := range b {
				b[i] = 0xee // Put must clear reserved bytes
			}
			c.put(&b)
			if b != c.want {
				t.Fatalf("encoded\n%x\nwant\n%x", b, c.want)
			}
			got, err := c.decode(&b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.value) {
				t.Fatalf("decoded %+v\nwant %+v", got, c.value)
			}
		})
	}
}

func TestSCSIPDUs(t *testing.T) {
	cmd := SCSICommand{Immediate: true, Final: true, Read: true, Attr: TaskSimple,
		TotalAHSLength: 2, DataSegmentLength: 0x010203, LUN: testLUN, ITT: 0x11223344,
		ExpectedDataTransferLength: 0x1000, CmdSN: 7, ExpStatSN: 9,
		CDB: [16]byte{0x28, 0, 0, 0, 0, 0x10, 0, 0, 8}}
	rsp := SCSIResponse{BidiOverflow: true, BidiUnderflow: true, Overflow: true,
		Underflow: true, Response: ResponseTargetFailure, Status: 0x02,
		DataSegmentLength: 20, ITT: 5, SNACKTag: 6, StatSN: 7, ExpCmdSN: 8, MaxCmdSN: 9,
		ExpDataSN: 10, BidiReadResidualCount: 11, ResidualCount: 12}
	din := DataIn{Final: true, Ack: true, Overflow: true, Underflow: true, HasStatus: true,
		Status: 0x00, DataSegmentLength: 4096, LUN: testLUN, ITT: 1, TTT: 2, StatSN: 3,
		ExpCmdSN: 4, MaxCmdSN: 5, DataSN: 6, BufferOffset: 0x2000, ResidualCount: 512}
	dout := DataOut{Final: true, DataSegmentLength: 8192, LUN: testLUN, ITT: 1,
		TTT: 0xffffffff, ExpStatSN: 3, DataSN: 4, BufferOffset: 0x10000}
	r2t := R2T{LUN: testLUN, ITT: 1, TTT: 2, StatSN: 3, ExpCmdSN: 4, MaxCmdSN: 5, R2TSN: 6,
		BufferOffset: 0x8000, DesiredDataTransferLength: 0x40000}
	runPDUCases(t, []pduCase{
		{"SCSICommand §11.3", cmd.Put, wantBHS(at(0, 0x41, 0xc1), at(4, 2, 1, 2, 3),
			at(8, testLUN[:]...), at(16, 0x11, 0x22, 0x33, 0x44), at(20, 0, 0, 0x10, 0),
			at(24, 0, 0, 0, 7), at(28, 0, 0, 0, 9), at(32, cmd.CDB[:]...)),
			func(b *BHS) (any, error) { return DecodeSCSICommand(b) }, cmd},
		{"SCSIResponse §11.4", rsp.Put, wantBHS(at(0, 0x21, 0x9e, 0x01, 0x02),
			at(5, 0, 0, 20), at(16, 0, 0, 0, 5), at(20, 0, 0, 0, 6), at(24, 0, 0, 0, 7),
			at(28, 0, 0, 0, 8), at(32, 0, 0, 0, 9), at(36, 0, 0, 0, 10),
			at(40, 0, 0, 0, 11), at(44, 0, 0, 0, 12)),
			func(b *BHS) (any, error) { return DecodeSCSIResponse(b) }, rsp},
		{"DataIn §11.7", din.Put, wantBHS(at(0, 0x25, 0xc7), at(5, 0, 0x10, 0),
			at(8, testLUN[:]...), at(16, 0, 0, 0, 1), at(20, 0, 0, 0, 2),
			at(24, 0, 0, 0, 3), at(28, 0, 0, 0, 4), at(32, 0, 0, 0, 5),
			at(36, 0, 0, 0, 6), at(40, 0, 0, 0x20, 0), at(44, 0, 0, 2, 0)),
			func(b *BHS) (any, error) { return DecodeDataIn(b) }, din},
		{"DataOut §11.7", dout.Put, wantBHS(at(0, 0x05, 0x80), at(5, 0, 0x20, 0),
			at(8, testLUN[:]...), at(16, 0, 0, 0, 1), at(20, 0xff, 0xff, 0xff, 0xff),
			at(28, 0, 0, 0, 3), at(36, 0, 0, 0, 4), at(40, 0, 1, 0, 0)),
			func(b *BHS) (any, error) { return DecodeDataOut(b) }, dout},
		{"R2T §11.8", r2t.Put, wantBHS(at(0, 0x31, 0x80), at(8, testLUN[:]...),
			at(16, 0, 0, 0, 1), at(20, 0, 0, 0, 2), at(24, 0, 0, 0, 3), at(28, 0, 0, 0, 4),
			at(32, 0, 0, 0, 5), at(36, 0, 0, 0, 6), at(40, 0, 0, 0x80, 0),
			at(44, 0, 4, 0, 0)),
			func(b *BHS) (any, error) { return DecodeR2T(b) }, r2t},
	})
}

func TestControlPDUs(t *testing.T) {
	nopOut := NOPOut{Immediate: true, DataSegmentLength: 3, LUN: testLUN, ITT: 1,
		TTT: 0xffffffff, CmdSN: 2, ExpStatSN: 3}
	nopIn := NOPIn{DataSegmentLength: 3, LUN: testLUN, ITT: 0xffffffff, TTT: 9, StatSN: 2,
		ExpCmdSN: 3, MaxCmdSN: 4}
	tmf := TMFRequest{Immediate: true, Function: TMFAbortTask, LUN: testLUN, ITT: 1,
		ReferencedTaskTag: 2, CmdSN: 3, ExpStatSN: 4, RefCmdSN: 5, ExpDataSN: 6}
	tmfRsp := TMFResponse{Response: TMFRejected, ITT: 1, StatSN: 2, ExpCmdSN: 3,
		MaxCmdSN: 4}
	txt := TextRequest{Immediate: true, Continue: true, DataSegmentLength: 16,
		LUN: testLUN, ITT: 1, TTT: 0xffffffff, CmdSN: 2, ExpStatSN: 3}
	txtRsp := TextResponse{Final: true, DataSegmentLength: 16, LUN: testLUN, ITT: 1,
		TTT: 0xffffffff, StatSN: 2, ExpCmdSN: 3, MaxCmdSN: 4}
	runPDUCases(t, []pduCase{
		{"NOPOut §11.18", nopOut.Put, wantBHS(at(0, 0x40, 0x80), at(5, 0, 0, 3),
			at(8, testLUN[:]...), at(16, 0, 0, 0, 1), at(20, 0xff, 0xff, 0xff, 0xff),
			at(24, 0, 0, 0, 2), at(28, 0, 0, 0, 3)),
			func(b *BHS) (any, error) { return DecodeNOPOut(b) }, nopOut},
		{"NOPIn §11.19", nopIn.Put, wantBHS(at(0, 0x20, 0x80), at(5, 0, 0, 3),
			at(8, testLUN[:]...), at(16, 0xff, 0xff, 0xff, 0xff), at(20, 0, 0, 0, 9),
			at(24, 0, 0, 0, 2), at(28, 0, 0, 0, 3), at(32, 0, 0, 0, 4)),
			func(b *BHS) (any, error) { return DecodeNOPIn(b) }, nopIn},
		{"TMFRequest §11.5", tmf.Put, wantBHS(at(0, 0x42, 0x81), at(8, testLUN[:]...),
			at(16, 0, 0, 0, 1), at(20, 0, 0, 0, 2), at(24, 0, 0, 0, 3), at(28, 0, 0, 0, 4),
			at(32, 0, 0, 0, 5), at(36, 0, 0, 0, 6)),
			func(b *BHS) (any, error) { return DecodeTMFRequest(b) }, tmf},
		{"TMFResponse §11.6", tmfRsp.Put, wantBHS(at(0, 0x22, 0x80, 0xff),
			at(16, 0, 0, 0, 1), at(24, 0, 0, 0, 2), at(28, 0, 0, 0, 3), at(32, 0, 0, 0, 4)),
			func(b *BHS) (any, error) { return DecodeTMFResponse(b) }, tmfRsp},
		{"TextRequest §11.10", txt.Put, wantBHS(at(0, 0x44, 0x40), at(5, 0, 0, 16),
			at(8, testLUN[:]...), at(16, 0, 0, 0, 1), at(20, 0xff, 0xff, 0xff, 0xff),
			at(24, 0, 0, 0, 2), at(28, 0, 0, 0, 3)),
			func(b *BHS) (any, error) { return DecodeTextRequest(b) }, txt},
		{"TextResponse §11.11", txtRsp.Put, wantBHS(at(0, 0x24, 0x80), at(5, 0, 0, 16),
			at(8, testLUN[:]...), at(16, 0, 0, 0, 1), at(20, 0xff, 0xff, 0xff, 0xff),
			at(24, 0, 0, 0, 2), at(28, 0, 0, 0, 3), at(32, 0, 0, 0, 4)),
			func(b *BHS) (any, error) { return DecodeTextResponse(b) }, txtRsp},
	})
}

func TestSessionPDUs(t *testing.T) {
	logout := LogoutRequest{Immediate: true, Reason: LogoutCloseConnection, ITT: 1,
		CID: 0x0102, CmdSN: 2, ExpStatSN: 3}
	logoutRsp := LogoutResponse{Response: LogoutCIDNotFound, ITT: 1, StatSN: 2,
		ExpCmdSN: 3, MaxCmdSN: 4, Time2Wait: 0x0203, Time2Retain: 0x0405}
	snack := SNACKRequest{Type: SNACKStatus, LUN: testLUN, ITT: 0xffffffff, TTT: 2,
		ExpStatSN: 3, BegRun: 4, RunLength: 5}
	async := AsyncMessage{DataSegmentLength: 20, LUN: testLUN, StatSN: 1, ExpCmdSN: 2,
		MaxCmdSN: 3, Event: AsyncDropConnection, VCode: 7, Parameter1: 0x0102,
		Parameter2: 0x0304, Parameter3: 0x0506}
	rej := Reject{Reason: RejectDataDigest, DataSegmentLength: 48, StatSN: 1,
		ExpCmdSN: 2, MaxCmdSN: 3, DataSN: 4}
	runPDUCases(t, []pduCase{
		{"LogoutRequest §11.14", logout.Put, wantBHS(at(0, 0x46, 0x81),
			at(16, 0, 0, 0, 1), at(20, 1, 2), at(24, 0, 0, 0, 2), at(28, 0, 0, 0, 3)),
			func(b *BHS) (any, error) { return DecodeLogoutRequest(b) }, logout},
		{"LogoutResponse §11.15", logoutRsp.Put, wantBHS(at(0, 0x26, 0x80, 0x01),
			at(16, 0, 0, 0, 1), at(24, 0, 0, 0, 2), at(28, 0, 0, 0, 3),
			at(32, 0, 0, 0, 4), at(40, 2, 3, 4, 5)),
			func(b *BHS) (any, error) { return DecodeLogoutResponse(b) }, logoutRsp},
		{"SNACKRequest §11.16", snack.Put, wantBHS(at(0, 0x10, 0x81),
			at(8, testLUN[:]...), at(16, 0xff, 0xff, 0xff, 0xff), at(20, 0, 0, 0, 2),
			at(28, 0, 0, 0, 3), at(40, 0, 0, 0, 4), at(44, 0, 0, 0, 5)),
			func(b *BHS) (any, error) { return DecodeSNACKRequest(b) }, snack},
		{"AsyncMessage §11.9", async.Put, wantBHS(at(0, 0x32, 0x80), at(5, 0, 0, 20),
			at(8, testLUN[:]...), at(16, 0xff, 0xff, 0xff, 0xff), at(24, 0, 0, 0, 1),
			at(28, 0, 0, 0, 2), at(32, 0, 0, 0, 3), at(36, 2, 7, 1, 2, 3, 4, 5, 6)),
			func(b *BHS) (any, error) { return DecodeAsyncMessage(b) }, async},
		{"Reject §11.17", rej.Put, wantBHS(at(0, 0x3f, 0x80, 0x02), at(5, 0, 0, 48),
			at(16, 0xff, 0xff, 0xff, 0xff), at(24, 0, 0, 0, 1), at(28, 0, 0, 0, 2),
			at(32, 0, 0, 0, 3), at(36, 0, 0, 0, 4)),
			func(b *BHS) (any, error) { return DecodeReject(b) }, rej},
	})
}

func TestLoginPDUs(t *testing.T) {
	isid := ISID{0x80, 0x12, 0x34, 0x56, 0x78, 0x9a}
	req := LoginRequest{Transit: true, CSG: StageSecurity, NSG: StageOperational,
		VersionMax: 0, VersionMin: 0, DataSegmentLength: 0x1ff, ISID: isid, TSIH: 0x0102,
		ITT: 1, CID: 0x0304, CmdSN: 2, ExpStatSN: 3}
	rsp := LoginResponse{Transit: true, CSG: StageOperational, NSG: StageFullFeature,
		DataSegmentLength: 9, ISID: isid, TSIH: 0x0506, ITT: 1, StatSN: 2, ExpCmdSN: 3,
		MaxCmdSN: 4, Status: StatusAuthenticationFailure}
	runPDUCases(t, []pduCase{
		{"LoginRequest §11.12", req.Put, wantBHS(at(0, 0x43, 0x81), at(5, 0, 1, 0xff),
			at(8, isid[:]...), at(14, 1, 2), at(16, 0, 0, 0, 1), at(20, 3, 4),
			at(24, 0, 0, 0, 2), at(28, 0, 0, 0, 3)),
			func(b *BHS) (any, error) { return DecodeLoginRequest(b) }, req},
		{"LoginResponse §11.13", rsp.Put, wantBHS(at(0, 0x23, 0x87), at(5, 0, 0, 9),
			at(8, isid[:]...), at(14, 5, 6), at(16, 0, 0, 0, 1), at(24, 0, 0, 0, 2),
			at(28, 0, 0, 0, 3), at(32, 0, 0, 0, 4), at(36, 2, 1)),
			func(b *BHS) (any, error) { return DecodeLoginResponse(b) }, rsp},
	})
	if isid.Type() != 2 || isid.String() != "80123456789a" {
		t.Fatalf("ISID type %d string %s", isid.Type(), isid)
	}
}

// TestDecodeWrongOpcode: every decoder refuses another opcode with a zero value.
func TestDecodeWrongOpcode(t *testing.T) {
	var b BHS
	b[0] = byte(OpReject)
	if v, err := DecodeSCSICommand(&b); !errors.Is(err, ErrOpcode) || v != (SCSICommand{}) {
		t.Fatalf("DecodeSCSICommand on a Reject: %+v %v", v, err)
	}
	b[0] = byte(OpSCSICommand)
	if v, err := DecodeReject(&b); !errors.Is(err, ErrOpcode) || v != (Reject{}) {
		t.Fatalf("DecodeReject on a SCSI Command: %+v %v", v, err)
	}
}

func TestGenericBHS(t *testing.T) {
	var b BHS
	(&SCSICommand{Immediate: true, Final: true, TotalAHSLength: 3,
		DataSegmentLength: 0xabcdef, ITT: 0x01020304, CmdSN: 5, ExpStatSN: 6,
		ExpectedDataTransferLength: 7}).Put(&b)
	switch {
	case b.Opcode() != OpSCSICommand || !b.Immediate() || !b.Final():
		t.Fatal("byte 0/1 accessors")
	case b.TotalAHSLength() != 3 || b.AHSLen() != 12 || b.DataSegmentLength() != 0xabcdef:
		t.Fatal("length accessors")
	case b.ITT() != 0x01020304 || b.TTT() != 7 || b.CmdSN() != 5 || b.ExpStatSN() != 6:
		t.Fatal("tag and SN accessors")
	}
	b.SetLengths(1, 12)
	if b.TotalAHSLength() != 1 || b.DataSegmentLength() != 12 {
		t.Fatal("SetLengths")
	}
	var r BHS
	(&R2T{ITT: 1}).Put(&r)
	r.PutSequence(10, 11, 12)
	d, _ := DecodeR2T(&r)
	if d.StatSN != 10 || d.ExpCmdSN != 11 || d.MaxCmdSN != 12 {
		t.Fatalf("PutSequence %+v", d)
	}
	if _, err := BHSOf(make([]byte, 47)); !errors.Is(err, ErrShortBuffer) {
		t.Fatal("BHSOf short")
	}
	p := make([]byte, 64)
	h, _ := BHSOf(p)
	h[0] = 0x3f
	if p[0] != 0x3f {
		t.Fatal("BHSOf copies instead of aliasing")
	}
}

func TestResidual(t *testing.T) {
	for _, c := range []struct {
		exp, got uint32
		o, u     bool
		n        uint32
	}{
		{4096, 4096, false, false, 0},
		{4096, 512, false, true, 3584}, // underflow: less moved than expected
		{512, 4096, true, false, 3584}, // overflow: the command wanted more
		{0, 512, true, false, 512},
	} {
		var r SCSIResponse
		r.SetResidual(c.exp, c.got)
		var d DataIn
		d.SetResidual(c.exp, c.got)
		if r.Overflow != c.o || r.Underflow != c.u || r.ResidualCount != c.n ||
			d.Overflow != c.o || d.Underflow != c.u || d.ResidualCount != c.n {
			t.Errorf("%d/%d: %+v %+v", c.exp, c.got, r, d)
		}
	}
}

func TestSenseData(t *testing.T) {
	sense := []byte{0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x24, 0x00}
	seg := AppendSenseData(nil, sense)
	if seg[0] != 0 || seg[1] != 14 || len(seg) != 16 {
		t.Fatalf("sense segment %x", seg)
	}
	s, r, err := SplitSenseData(append(seg, 0xaa))
	if err != nil || string(s) != string(sense) || len(r) != 1 || r[0] != 0xaa {
		t.Fatalf("split %x %x %v", s, r, err)
	}
	if s, r, err := SplitSenseData(nil); s != nil || r != nil || err != nil {
		t.Fatal("empty segment")
	}
	for _, bad := range [][]byte{{0}, {0, 3, 1, 2}} {
		if _, _, err := SplitSenseData(bad); err == nil {
			t.Fatalf("accepted %x", bad)
		}
	}
}

func TestAHS(t *testing.T) {
	tail := make([]byte, 16) // a 32-byte CDB
	for i := range tail {
		tail[i] = byte(i + 16)
	}
	p := AppendExtendedCDBAHS(nil, tail)
	p = AppendBidiReadAHS(p, 0x10000)
	// Extended CDB: AHSLength = 32-15 = 17 (§11.2.2.3), 4+16 bytes padded to 20.
	if len(p) != 20+8 || p[0] != 0 || p[1] != 17 || p[2] != 1 || p[20+1] != 5 {
		t.Fatalf("AHS bytes %x", p)
	}
	c, err := ParseCommandAHS(p)
	if err != nil || string(c.ExtendedCDB) != string(tail) || !c.HasBidiReadLength ||
		c.BidiReadLength != 0x10000 {
		t.Fatalf("parsed %+v %v", c, err)
	}
	odd := AppendExtendedCDBAHS(nil, []byte{1, 2, 3}) // 19-byte CDB: AHSLength 4
	if len(odd) != 8 || odd[1] != 4 {
		t.Fatalf("odd AHS %x", odd)
	}
	for name, bad := range map[string][]byte{
		"short":   {0, 5, 2},
		"zero":    {0, 0, 1, 0},
		"overrun": {0, 9, 1, 0, 1, 2, 3, 4},
		"dup":     append(AppendBidiReadAHS(nil, 1), AppendBidiReadAHS(nil, 2)...),
		"bidilen": {0, 1, 2, 0},
	} {
		if _, err := ParseCommandAHS(bad); err == nil {
			t.Errorf("%s: accepted %x", name, bad)
		}
	}
	// Unknown AHS types are skipped.
	if c, err := ParseCommandAHS([]byte{0, 1, 60, 0}); err != nil || c.HasBidiReadLength {
		t.Fatalf("unknown type: %+v %v", c, err)
	}
}

func TestEnumStrings(t *testing.T) {
	for _, s := range []string{OpSCSICommand.String(), Opcode(0x1c).String(),
		TaskACA.String(), StageFullFeature.String(), Stage(2).String(),
		ResponseCompleted.String(), TMFTaskReassign.String(), TMFRejected.String(),
		RejectWaitingForLogout.String(), RejectReason(0x0b).String(),
		LogoutRemoveForRecover.String(), LogoutCleanupFailed.String(),
		AsyncRenegotiate.String(), SNACKRData.String(), StatusInvalidDuringLogin.String(),
		Status(0x0399).String(), LoginStateFullFeature.String(), CHAPSHA3256.String(),
		KeyMaxBurstLength.String()} {
		if s == "" {
			t.Fatal("empty String")
		}
	}
	if StatusSessionDoesNotExist.String() != "session does not exist (0x020a)" {
		t.Fatal(StatusSessionDoesNotExist.String())
	}
	if !OpSNACKRequest.FromInitiator() || OpR2T.FromInitiator() || Opcode(0x07).Defined() {
		t.Fatal("opcode direction")
	}
}
