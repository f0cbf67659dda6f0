package nvme

import (
	"bytes"
	"errors"
	"testing"
)

// pduCase frames one PDU of each type, with and without digests, and checks that the
// receiver's Layout and PSH decoders give back what the sender framed.
type pduCase struct {
	name    string
	typ     PDUType
	hlen    uint8
	flags   uint8
	dataLen uint32
	put     func(b []byte)
	check   func(t *testing.T, b []byte)
}

func pduCases() []pduCase {
	icreq := ICReq{PFV: 0, HPDA: 0, DGST: DigestHeader | DigestData, MAXR2T: 0}
	icresp := ICResp{PFV: 0, CPDA: 0, DGST: DigestHeader, MAXH2CDATA: 131072}
	h2c := H2CData{CCCID: 0x1234, TTAG: 7, DATAO: 8192, DATAL: 4096}
	c2h := C2HData{CCCID: 0xBEEF, DATAO: 4096, DATAL: 512}
	r2t := R2T{CCCID: 3, TTAG: 0xFFFE, R2TO: 0, R2TL: 1 << 20}
	return []pduCase{
		{"ICReq", PDUTypeICReq, 128, 0, 0, icreq.Put, func(t *testing.T, b []byte) {
			got, err := DecodeICReq(b)
			if err != nil || got != icreq {
				t.Fatalf("DecodeICReq = %+v, %v; want %+v", got, err, icreq)
			}
		}},
		{"ICResp", PDUTypeICResp, 128, 0, 0, icresp.Put, func(t *testing.T, b []byte) {
			got, err := DecodeICResp(b)
			if err != nil || got != icresp {
				t.Fatalf("DecodeICResp = %+v, %v; want %+v", got, err, icresp)
			}
		}},
		{"CapsuleCmd", PDUTypeCapsuleCmd, 72, 0, 0, func(b []byte) {
			s := CapsuleSQE(b)
			s.SetOpcode(uint8(NVMRead))
			s.SetCID(42)
			s.SetNSID(1)
		}, func(t *testing.T, b []byte) {
			s := CapsuleSQE(b)
			if s.NVMOpcode() != NVMRead || s.CID() != 42 || s.NSID() != 1 {
				t.Fatalf("SQE = %x", s[:])
			}
		}},
		{"CapsuleCmdICD", PDUTypeCapsuleCmd, 72, 0, 4096, func(b []byte) {
			CapsuleSQE(b).SetSGL1(SGLDescriptor{Length: 4096, ID: SGLIDInCapsule})
		}, func(t *testing.T, b []byte) {
			if d := CapsuleSQE(b).SGL1(); d.Length != 4096 || d.ID != 0x01 {
				t.Fatalf("SGL1 = %+v", d)
			}
		}},
		{"CapsuleResp", PDUTypeCapsuleResp, 24, 0, 0, func(b []byte) {
			CapsuleCQE(b).Fill(42, 1, 5, 0xAABBCCDD, 0, StatusInvalidField.WithDNR())
		}, func(t *testing.T, b []byte) {
			c := CapsuleCQE(b)
			if c.CID() != 42 || c.Status() != StatusInvalidField.WithDNR() ||
				c.DW0() != 0xAABBCCDD {
				t.Fatalf("CQE = %x", c[:])
			}
		}},
		{"H2CData", PDUTypeH2CData, 24, CHFlagLastPDU, 4096, h2c.Put, func(t *testing.T, b []byte) {
			got, err := DecodeH2CData(b)
			if err != nil || got != h2c {
				t.Fatalf("DecodeH2CData = %+v, %v; want %+v", got, err, h2c)
			}
		}},
		{"C2HData", PDUTypeC2HData, 24, CHFlagLastPDU | CHFlagSuccess, 512, c2h.Put,
			func(t *testing.T, b []byte) {
				got, err := DecodeC2HData(b)
				if err != nil || got != c2h {
					t.Fatalf("DecodeC2HData = %+v, %v; want %+v", got, err, c2h)
				}
			}},
		{"R2T", PDUTypeR2T, 24, 0, 0, r2t.Put, func(t *testing.T, b []byte) {
			got, err := DecodeR2T(b)
			if err != nil || got != r2t {
				t.Fatalf("DecodeR2T = %+v, %v; want %+v", got, err, r2t)
			}
		}},
	}
}

func TestPDURoundTrip(t *testing.T) {
	for _, tc := range pduCases() {
		for _, dg := range []struct{ h, d bool }{{false, false}, {true, false}, {true, true}} {
			name := tc.name
			if dg.h {
				name += "/hdgst"
			}
			if dg.d {
				name += "/ddgst"
			}
			t.Run(name, func(t *testing.T) {
				roundTripPDU(t, tc, dg.h, dg.d)
			})
		}
	}
}

func roundTripPDU(t *testing.T, tc pduCase, hd, dd bool) {
	send := LayoutParams{HDGST: hd, DDGST: dd}
	recv := send
	if tc.typ.FromHost() {
		recv.Receiver = RoleController
	} else {
		recv.Receiver = RoleHost
	}
	ch := FrameHeader(tc.typ, tc.flags, tc.dataLen, send)
	if ch.HLen != tc.hlen {
		t.Fatalf("hlen = %d, want %d", ch.HLen, tc.hlen)
	}
	if hl, ok := HeaderLength(tc.typ); !ok || hl != tc.hlen {
		t.Fatalf("HeaderLength = %d %v", hl, ok)
	}
	b := make([]byte, ch.PLen)
	ch.Put(b)
	tc.put(b)
	l, err := ch.Layout(recv)
	if err != nil {
		t.Fatalf("Layout(%+v) = %v", ch, err)
	}
	if l.HLen != uint32(tc.hlen) || l.DataLen != tc.dataLen || l.PLen != ch.PLen {
		t.Fatalf("layout %+v for %+v", l, ch)
	}
	wantHD := hd && tc.typ.AllowsHDGST()
	wantDD := dd && tc.typ.AllowsDDGST() && tc.dataLen > 0
	if l.HDGST != wantHD || l.DDGST != wantDD {
		t.Fatalf("digests %v/%v, want %v/%v", l.HDGST, l.DDGST, wantHD, wantDD)
	}
	if l.HDGST {
		SetHeaderDigest(b, int(l.HLen))
		if err := CheckHeaderDigest(b, int(l.HLen)); err != nil {
			t.Fatal(err)
		}
	}
	if l.DataLen > 0 && l.DataOffset+l.DataLen+4*uint32(btoi(l.DDGST)) != l.PLen {
		t.Fatalf("layout does not add up: %+v", l)
	}
	got, _ := DecodeCommonHeader(b)
	if got != ch {
		t.Fatalf("DecodeCommonHeader = %+v, want %+v", got, ch)
	}
	tc.check(t, b)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestICReqLinux decodes the exact ICReq a Linux host sends (nvme_tcp_init_connection:
// pfv 0, hpda 0, digests as configured, maxr2t 0) and checks the encoder reproduces it.
func TestICReqLinux(t *testing.T) {
	wire := make([]byte, 128)
	copy(wire, []byte{0x00, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00})
	ch, err := DecodeCommonHeader(wire)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Layout(LayoutParams{}); err != nil {
		t.Fatalf("Layout: %v", err)
	}
	r, err := DecodeICReq(wire)
	if err != nil || r.Validate() != nil {
		t.Fatalf("DecodeICReq = %+v, %v", r, err)
	}
	if !r.DGST.HDGST() || !r.DGST.DDGST() || r.MAXR2T != 0 || r.HPDA != 0 {
		t.Fatalf("ICReq = %+v", r)
	}
	out := make([]byte, 128)
	for i := range out {
		out[i] = 0xEE // Put must clear the reserved bytes
	}
	FrameHeader(PDUTypeICReq, 0, 0, LayoutParams{}).Put(out)
	r.Put(out)
	if !bytes.Equal(out, wire) {
		t.Fatalf("re-encoded ICReq\n%x\nwant\n%x", out, wire)
	}
}

func TestICValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		fei  uint32
	}{
		{"icreq ok", ICReq{HPDA: 31}.Validate(), 0},
		{"icreq pfv", ICReq{PFV: 1}.Validate(), 8},
		{"icreq hpda", ICReq{HPDA: 32}.Validate(), 10},
		{"icresp ok", ICResp{MAXH2CDATA: 4096}.Validate(), 0},
		{"icresp pfv", ICResp{PFV: 1, MAXH2CDATA: 4096}.Validate(), 8},
		{"icresp cpda", ICResp{CPDA: 32, MAXH2CDATA: 4096}.Validate(), 10},
		{"icresp small", ICResp{MAXH2CDATA: 4092}.Validate(), 12},
		{"icresp unaligned", ICResp{MAXH2CDATA: 4098}.Validate(), 12},
	} {
		if tc.fei == 0 {
			if tc.err != nil {
				t.Errorf("%s: %v", tc.name, tc.err)
			}
			continue
		}
		var pe *PDUError
		if !errors.As(tc.err, &pe) || pe.FES != FESInvalidHeaderField || pe.FEI != tc.fei {
			t.Errorf("%s: err %v, want FES 1 FEI %d", tc.name, tc.err, tc.fei)
		}
	}
}

func TestTermReqRoundTrip(t *testing.T) {
	bad := make([]byte, 72)
	bad[0], bad[2] = 0x04, 0x47
	for _, tc := range []struct {
		typ PDUType
		hdr []byte
	}{
		{PDUTypeH2CTermReq, nil},
		{PDUTypeC2HTermReq, bad},
		{PDUTypeC2HTermReq, make([]byte, 200)}, // truncated to 128
	} {
		tr := NewTermReq(tc.typ, FESInvalidHeaderField, 2, tc.hdr)
		b := make([]byte, MaxTermReqPLen)
		n := tr.Put(b)
		if n != TermReqHLen+min(len(tc.hdr), MaxTermReqDataLen) {
			t.Fatalf("plen %d", n)
		}
		ch, _ := DecodeCommonHeader(b)
		want := FrameHeader(tc.typ, 0, uint32(tr.DataLen), LayoutParams{})
		if ch != want {
			t.Fatalf("CH %+v, want %+v", ch, want)
		}
		got, err := DecodeTermReq(b[:n])
		if err != nil || got != tr {
			t.Fatalf("DecodeTermReq = %+v, %v", got, err)
		}
		if !bytes.Equal(got.ErrorData(), tc.hdr[:min(len(tc.hdr), 128)]) {
			t.Fatalf("error data %x", got.ErrorData())
		}
	}
}

func TestDecodeTermReqErrors(t *testing.T) {
	b := make([]byte, 200)
	tr := NewTermReq(PDUTypeC2HTermReq, FESPDUSequenceError, 0, nil)
	n := tr.Put(b)
	for _, tc := range []struct {
		name string
		mut  func(b []byte) []byte
		fei  uint32
		want error
	}{
		{"type", func(b []byte) []byte { b[0] = 4; return b }, 0, nil},
		{"hlen", func(b []byte) []byte { b[2] = 25; return b }, 2, nil},
		{"plen small", func(b []byte) []byte { b[4] = 23; return b }, 4, nil},
		{"plen big", func(b []byte) []byte { b[4] = 153; return b }, 4, nil},
		{"short", func(b []byte) []byte { b[4] = 30; return b[:29] }, 0, ErrShortBuffer},
		{"tiny", func(b []byte) []byte { return b[:7] }, 0, ErrShortBuffer},
	} {
		c := append([]byte(nil), b[:n+10]...)
		got, err := DecodeTermReq(tc.mut(c))
		if got != (TermReq{}) {
			t.Errorf("%s: non-zero value on error", tc.name)
		}
		if tc.want != nil {
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var pe *PDUError
		if !errors.As(err, &pe) || pe.FEI != tc.fei {
			t.Errorf("%s: %v, want FEI %d", tc.name, err, tc.fei)
		}
	}
}

func TestPDUTypeString(t *testing.T) {
	if PDUTypeR2T.String() != "R2T" || PDUType(8).String() != "PDUType(0x8)" {
		t.Fatal(PDUTypeR2T.String(), PDUType(8).String())
	}
	if FESDataLimitExceeded.String() != "data transfer limit exceeded" {
		t.Fatal(FESDataLimitExceeded.String())
	}
}

func TestShortBuffers(t *testing.T) {
	short := make([]byte, 7)
	if _, err := DecodeCommonHeader(short); err != ErrShortBuffer {
		t.Error("CH")
	}
	if _, err := DecodeICReq(make([]byte, 127)); err != ErrShortBuffer {
		t.Error("ICReq")
	}
	if _, err := DecodeICResp(make([]byte, 127)); err != ErrShortBuffer {
		t.Error("ICResp")
	}
	for _, f := range []func([]byte) error{
		func(b []byte) error { _, err := DecodeH2CData(b); return err },
		func(b []byte) error { _, err := DecodeC2HData(b); return err },
		func(b []byte) error { _, err := DecodeR2T(b); return err },
	} {
		if f(make([]byte, 23)) != ErrShortBuffer {
			t.Error("data PSH")
		}
	}
}
