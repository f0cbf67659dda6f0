package nvme

import (
	"bytes"
	"errors"
	"testing"
)

// Every decoder has a fuzz target with these properties: it never panics; on error the
// returned value is the zero value; otherwise decode → encode → decode gives the same
// value. Seeds live in testdata/fuzz/<target>/ and run with every `go test`.

func paramsFrom(p uint8) LayoutParams {
	return LayoutParams{Receiver: Role(p & 1), HDGST: p&2 != 0, DDGST: p&4 != 0, PDA: p >> 3}
}

func FuzzCommonHeader(f *testing.F) {
	f.Add(frameHeaderBytes(PDUTypeICReq, 0, 0, LayoutParams{}), uint8(0))
	f.Add(frameHeaderBytes(PDUTypeCapsuleCmd, 0, 4096, LayoutParams{HDGST: true}), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, pb uint8) {
		ch, err := DecodeCommonHeader(b)
		if err != nil {
			if ch != (CommonHeader{}) || len(b) >= CHLen {
				t.Fatalf("error %v with %+v for %d bytes", err, ch, len(b))
			}
			return
		}
		var out [CHLen]byte
		ch.Put(out[:])
		if !bytes.Equal(out[:], b[:CHLen]) {
			t.Fatalf("re-encoded %x, want %x", out, b[:CHLen])
		}
		if again, _ := DecodeCommonHeader(out[:]); again != ch {
			t.Fatalf("round trip %+v != %+v", again, ch)
		}
		checkLayout(t, ch, paramsFrom(pb))
	})
}

// frameHeaderBytes frames a common header for seeds.
func frameHeaderBytes(t PDUType, flags uint8, n uint32, p LayoutParams) []byte {
	b := make([]byte, CHLen)
	FrameHeader(t, flags, n, p).Put(b)
	return b
}

func checkLayout(t *testing.T, ch CommonHeader, p LayoutParams) {
	l, err := ch.Layout(p)
	if err != nil {
		var pe *PDUError
		if !errors.As(err, &pe) || pe.FES != FESInvalidHeaderField || pe.FEI > 4 {
			t.Fatalf("Layout error %v", err)
		}
		if l != (Layout{}) {
			t.Fatalf("non-zero layout %+v with error", l)
		}
		return
	}
	dd := uint32(0)
	if l.DDGST {
		dd = DigestLen
	}
	switch {
	case l.PLen != ch.PLen || l.HLen != uint32(ch.HLen) || l.Type != ch.Type:
		t.Fatalf("layout %+v disagrees with %+v", l, ch)
	case l.HeaderEnd() > l.PLen:
		t.Fatalf("header past plen: %+v", l)
	case l.DataLen == 0 && (l.DDGST || l.Pad != 0):
		t.Fatalf("digest or pad without data: %+v", l)
	case l.DataLen > 0 && (l.DataOffset < l.HeaderEnd() ||
		l.DataOffset+l.DataLen+dd != l.PLen || l.HeaderEnd()+l.Pad != l.DataOffset):
		t.Fatalf("layout does not add up: %+v", l)
	}
	// A sender with the same settings frames the same PDU with the least padding the
	// receiver accepts, and the same digest flags.
	re := FrameHeader(ch.Type, ch.Flags, l.DataLen, p)
	if re.Flags&CHFlagHDGSTF != ch.Flags&CHFlagHDGSTF ||
		l.DataLen > 0 && re.Flags&CHFlagDDGSTF != ch.Flags&CHFlagDDGSTF {
		t.Fatalf("reframed flags %+v from %+v", re, ch)
	}
	if ch.Type.hasPDO() && l.DataLen > 0 {
		if uint32(re.PDO) > l.DataOffset {
			t.Fatalf("accepted pdo %d below the sender's %d", l.DataOffset, re.PDO)
		}
		if uint32(re.PDO) != l.DataOffset {
			return
		}
	}
	if re.PLen != ch.PLen {
		t.Fatalf("reframed %+v from %+v", re, ch)
	}
}

func FuzzICReq(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeICReq(b)
		if err != nil {
			if r != (ICReq{}) {
				t.Fatal("non-zero on error")
			}
			return
		}
		out := make([]byte, ICReqLen)
		r.Put(out)
		if again, err := DecodeICReq(out); err != nil || again != r {
			t.Fatalf("round trip %+v != %+v", again, r)
		}
		_ = r.Validate()
	})
}

func FuzzICResp(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeICResp(b)
		if err != nil {
			if r != (ICResp{}) {
				t.Fatal("non-zero on error")
			}
			return
		}
		out := make([]byte, ICReqLen)
		r.Put(out)
		if again, err := DecodeICResp(out); err != nil || again != r {
			t.Fatalf("round trip %+v != %+v", again, r)
		}
		_ = r.Validate()
	})
}

func FuzzH2CData(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeH2CData(b)
		if err != nil {
			if d != (H2CData{}) {
				t.Fatal("non-zero on error")
			}
			return
		}
		out := make([]byte, DataHLen)
		d.Put(out)
		if again, err := DecodeH2CData(out); err != nil || again != d {
			t.Fatalf("round trip %+v != %+v", again, d)
		}
	})
}

func FuzzC2HData(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeC2HData(b)
		if err != nil {
			if d != (C2HData{}) {
				t.Fatal("non-zero on error")
			}
			return
		}
		out := make([]byte, DataHLen)
		d.Put(out)
		if again, err := DecodeC2HData(out); err != nil || again != d {
			t.Fatalf("round trip %+v != %+v", again, d)
		}
	})
}

func FuzzR2T(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeR2T(b)
		if err != nil {
			if d != (R2T{}) {
				t.Fatal("non-zero on error")
			}
			return
		}
		out := make([]byte, DataHLen)
		d.Put(out)
		if again, err := DecodeR2T(out); err != nil || again != d {
			t.Fatalf("round trip %+v != %+v", again, d)
		}
	})
}

func FuzzTermReq(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := DecodeTermReq(b)
		if err != nil {
			if tr != (TermReq{}) {
				t.Fatal("non-zero on error")
			}
			return
		}
		out := make([]byte, MaxTermReqPLen)
		n := tr.Put(out)
		again, err := DecodeTermReq(out[:n])
		if err != nil || again != tr {
			t.Fatalf("round trip %+v, %v", again, err)
		}
		ch, _ := DecodeCommonHeader(out)
		p := LayoutParams{Receiver: RoleController}
		if !ch.Type.FromHost() {
			p.Receiver = RoleHost
		}
		if l, err := ch.Layout(p); err != nil || l.DataLen != uint32(tr.DataLen) {
			t.Fatalf("layout of re-encoded TermReq: %+v %v", l, err)
		}
	})
}

func FuzzSQE(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var in SQE
		copy(in[:], b)
		var out SQE
		out.SetOpcode(in.Opcode())
		out.SetFUSE(in.FUSE())
		out.SetPSDT(in.PSDT())
		out[1] |= in[1] & 0x3C // CDW0 bits 13:10 are reserved
		out.SetCID(in.CID())
		out.SetNSID(in.NSID())
		out.SetCDW2(in.CDW2())
		out.SetCDW3(in.CDW3())
		out.SetMPTR(in.MPTR())
		d := in.SGL1()
		out.SetSGL1(d)
		for n := 10; n < 16; n++ {
			out.SetCDW(n, in.CDW(n))
		}
		if d.Type() != SGLTypeKeyedDataBlock {
			copy(out[36:39], in[36:39]) // reserved in unkeyed descriptors
		}
		if out != in {
			t.Fatalf("rebuilt SQE\n%x\nwant\n%x", out[:], in[:])
		}
		if again := out.SGL1(); again != d {
			t.Fatalf("SGL round trip %+v != %+v", again, d)
		}
		if got, err := DecodeSGL(b); err != nil {
			if got != (SGLDescriptor{}) {
				t.Fatal("non-zero SGL on error")
			}
		}
	})
}

func FuzzGetLogPage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var s SQE
		copy(s[:], b)
		g := DecodeGetLogPage(&s)
		var s2 SQE
		g.Put(&s2)
		if again := DecodeGetLogPage(&s2); again != g {
			t.Fatalf("round trip %+v != %+v", again, g)
		}
		if g.Len() == 0 || g.Len()%4 != 0 {
			t.Fatalf("length %d", g.Len())
		}
	})
}

func FuzzDSMRange(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeDSMRange(b)
		if err != nil {
			if r != (DSMRange{}) {
				t.Fatal("non-zero on error")
			}
			return
		}
		var out [DSMRangeLen]byte
		r.Put(out[:])
		if !bytes.Equal(out[:], b[:DSMRangeLen]) {
			t.Fatal("bytes differ")
		}
	})
}

func FuzzConnectData(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeConnectData(b)
		if err != nil {
			if d != (ConnectData{}) {
				t.Fatal("non-zero on error")
			}
			return
		}
		var out [ConnectDataLen]byte
		d.Put(&out)
		if again, err := DecodeConnectData(out[:]); err != nil || again != d {
			t.Fatalf("round trip %+v, %v", again, err)
		}
	})
}

func FuzzValidateNQN(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateNQN(s)
		if err != nil && !errors.Is(err, ErrInvalidNQN) {
			t.Fatal(err)
		}
		if err == nil {
			var field [NQNFieldLen]byte
			PutNQN(field[:], s)
			if NQNString(field[:]) != s {
				t.Fatal("field round trip")
			}
		}
	})
}

func FuzzProperties(f *testing.F) {
	f.Fuzz(func(t *testing.T, v uint64) {
		if c := DecodeCAP(v); DecodeCAP(c.Value()) != c {
			t.Fatal("CAP")
		}
		if c := DecodeCC(uint32(v)); DecodeCC(c.Value()) != c {
			t.Fatal("CC")
		}
		if c := DecodeCSTS(uint32(v)); DecodeCSTS(c.Value()) != c {
			t.Fatal("CSTS")
		}
		if e := DecodeAsyncEvent(uint32(v)); DecodeAsyncEvent(e.DW0()) != e {
			t.Fatal("async event")
		}
		_ = Status(v).String()
	})
}

func FuzzIdentifyController(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var in [IdentifyLen]byte
		copy(in[:], b)
		var c, again IdentifyController
		c.Unmarshal(&in)
		var out, out2 [IdentifyLen]byte
		c.MarshalTo(&out)
		again.Unmarshal(&out)
		if again != c {
			t.Fatal("round trip")
		}
		again.MarshalTo(&out2)
		if out != out2 {
			t.Fatal("marshal not stable")
		}
	})
}

func FuzzIdentifyNamespace(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var in [IdentifyLen]byte
		copy(in[:], b)
		var n, again IdentifyNamespace
		n.Unmarshal(&in)
		var out [IdentifyLen]byte
		n.MarshalTo(&out)
		again.Unmarshal(&out)
		if again != n {
			t.Fatal("round trip")
		}
		_ = n.BlockSize()
	})
}

func FuzzNSList(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var in [IdentifyLen]byte
		copy(in[:], b)
		var l, again NSList
		l.Unmarshal(&in)
		var out [IdentifyLen]byte
		l.MarshalTo(&out)
		again.Unmarshal(&out)
		if again != l {
			t.Fatal("round trip")
		}
	})
}

func FuzzNSIDDescriptors(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := DecodeNSIDDescriptors(b)
		if err != nil {
			if ds != nil {
				t.Fatal("non-nil on error")
			}
			return
		}
		var out [IdentifyLen]byte
		if err := MarshalNSIDDescriptors(&out, ds); err != nil {
			if len(b) <= IdentifyLen {
				t.Fatalf("MarshalNSIDDescriptors of decoded list: %v", err)
			}
			return
		}
		again, err := DecodeNSIDDescriptors(out[:])
		if err != nil || len(again) != len(ds) {
			t.Fatalf("round trip %v, %v", again, err)
		}
		for i := range ds {
			if again[i] != ds[i] {
				t.Fatalf("%d: %+v != %+v", i, again[i], ds[i])
			}
		}
	})
}

func FuzzDiscoveryLog(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, es, err := DecodeDiscoveryLog(b)
		if err != nil {
			if h != (DiscoveryLogHeader{}) || es != nil {
				t.Fatal("non-zero on error")
			}
			return
		}
		out := make([]byte, DiscoveryLogLen(len(es)))
		if err := MarshalDiscoveryLog(out, h.GENCTR, es); err != nil {
			t.Fatal(err)
		}
		h2, es2, err := DecodeDiscoveryLog(out)
		h.RECFMT = 0 // MarshalDiscoveryLog writes format 0
		if err != nil || h2 != h || len(es2) != len(es) {
			t.Fatalf("round trip %+v %v", h2, err)
		}
		for i := range es {
			if es2[i] != es[i] {
				t.Fatalf("entry %d differs", i)
			}
		}
	})
}

func FuzzErrorLogEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var in, out [ErrorLogEntryLen]byte
		copy(in[:], b)
		var e, again ErrorLogEntry
		e.Unmarshal(&in)
		e.MarshalTo(&out)
		again.Unmarshal(&out)
		if again != e {
			t.Fatalf("error entry %+v != %+v", again, e)
		}
		var r, r2 ResvNotifLog
		r.Unmarshal(&in)
		r.MarshalTo(&out)
		r2.Unmarshal(&out)
		if r2 != r {
			t.Fatalf("reservation notification %+v != %+v", r2, r)
		}
	})
}

func FuzzSMARTLog(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var in, out [SMARTLogLen]byte
		copy(in[:], b)
		var s, again SMARTLog
		s.Unmarshal(&in)
		s.MarshalTo(&out)
		again.Unmarshal(&out)
		if again != s {
			t.Fatalf("smart %+v != %+v", again, s)
		}
		var fw, fw2 FirmwareSlotLog
		fw.Unmarshal(&in)
		fw.MarshalTo(&out)
		fw2.Unmarshal(&out)
		if fw2 != fw {
			t.Fatalf("firmware %+v != %+v", fw2, fw)
		}
	})
}

func FuzzCommandEffectsLog(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var in, out [CommandEffectsLogLen]byte
		copy(in[:], b)
		var c, again CommandEffectsLog
		c.Unmarshal(&in)
		c.MarshalTo(&out)
		again.Unmarshal(&out)
		if again != c {
			t.Fatal("effects round trip")
		}
	})
}
