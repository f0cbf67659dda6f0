package scsi

import (
	"errors"
	"reflect"
	"testing"
)

// Every decoder has a fuzz target with these properties: it never panics; on error the
// returned value is the zero value; otherwise decode → encode → decode gives the same
// value. Seeds live in testdata/fuzz/<target>/ (see seeds_test.go) and run with every
// `go test`.

func FuzzDecodeCDB(f *testing.F) {
	f.Add(bhs(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCDB(b)
		if err != nil {
			var se *SenseError
			if c != (CDB{}) || !errors.As(err, &se) || se.Sense.Key != SenseKeyIllegalRequest {
				t.Fatalf("error %v with %+v", err, c)
			}
			return
		}
		if int(c.Length) > len(b) || c.Opcode != Opcode(b[0]) {
			t.Fatalf("decoded %+v from %d bytes", c, len(b))
		}
		enc := c.Append(nil)
		again, err := DecodeCDB(enc)
		if err != nil || again != c || len(enc) != int(c.Length) {
			t.Fatalf("round trip % x: %+v, %v; want %+v", enc, again, err, c)
		}
		checkUsageCovers(t, b[:c.Length], c)
		exerciseChecks(&c)
	})
}

// checkUsageCovers asserts the REPORT SUPPORTED OPERATION CODES usage data names every
// bit the decoder reads: the CDB masked with it decodes to the same command (the
// CONTROL byte aside, whose NACA bit is refused rather than supported).
func checkUsageCovers(t *testing.T, b []byte, c CDB) {
	d, ok := NewCommandDescriptor(c.Opcode, c.ServiceAction, true)
	if !ok {
		return
	}
	masked := make([]byte, len(b))
	for i := range b {
		masked[i] = b[i] & d.Usage[i]
	}
	masked[0] = b[0]
	got, err := DecodeCDB(masked)
	got.Control, c.Control = 0, 0
	if err != nil || got != c {
		t.Fatalf("usage % x drops a decoded bit of % x: %+v, want %+v (%v)", d.Usage, b,
			got, c, err)
	}
}

func exerciseChecks(c *CDB) {
	lim := BlockLimits{MaxTransferLength: 256, MaxWriteSameLength: 1024,
		MaxCompareAndWriteLength: 1, WSNZ: c.Group&1 != 0}
	_ = c.CheckRange(1 << 20)
	_ = lim.CheckTransferLength(c)
	_ = lim.CheckCompareAndWrite(c)
	_ = lim.CheckWriteAtomic(c)
	if c.Opcode == OpSanitize {
		_ = CheckSanitizeLength(c, 512)
	}
	_ = c.CheckProtect(false)
	_ = c.CheckDPOFUA(false)
	_ = c.CheckAnchor(false)
	if c.Opcode == OpWriteSame10 || c.Opcode == OpWriteSame16 {
		_, _ = lim.CheckWriteSame(c, 1<<20)
	}
	_, _ = c.DataLength(512)
	if c.Opcode == OpModeSense6 || c.Opcode == OpModeSense10 {
		_, _ = sluiceModePages().AppendModeSense(nil, c, &sluiceHeader)
	}
	if c.Opcode == OpMaintenanceIn && c.ServiceAction == SAReportSupportedOpcodes {
		_, _ = CommandTable{}.AppendReport(nil, c)
	}
}

func FuzzDecodeSanitizeOverwrite(f *testing.F) {
	f.Add([]byte{0x01, 0, 0, 4, 0xAA, 0xAA, 0xAA, 0xAA})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeSanitizeOverwrite(b, 512)
		if err != nil {
			if !reflect.DeepEqual(o, SanitizeOverwrite{}) {
				t.Fatalf("error %v with %+v", err, o)
			}
			return
		}
		again, err := DecodeSanitizeOverwrite(o.Append(nil), 512)
		if err != nil || !reflect.DeepEqual(again, o) {
			t.Fatalf("round trip %+v, %v; want %+v", again, err, o)
		}
		buf := make([]byte, 2*512)
		o.FillPattern(buf, 512, o.PassInverted(0))
	})
}

func FuzzDecodeExtendedCopy(f *testing.F) {
	f.Add(func() []byte { l := xcopyList(8, 0); return l.Append(nil) }())
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeExtendedCopy(b, &testCopyLimits)
		if err != nil {
			if !reflect.DeepEqual(l, XCopyList{}) {
				t.Fatalf("error %v with %+v", err, l)
			}
			return
		}
		again, err := DecodeExtendedCopy(l.Append(nil), &testCopyLimits)
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		// Append normalises what the decoder ignores (reserved bytes, bytes past the
		// designator); the decoded fields survive.
		if len(again.Targets) != len(l.Targets) || !reflect.DeepEqual(again.Segments, l.Segments) {
			t.Fatalf("round trip %+v; want %+v", again, l)
		}
	})
}

func FuzzDecodeSense(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSense(b)
		if err != nil {
			if s != (Sense{}) {
				t.Fatalf("error %v with %+v", err, s)
			}
			return
		}
		out := make([]byte, SenseMaxLen)
		n := s.Put(out, b[0]&0x7F >= senseDescriptorCurrent)
		again, err := DecodeSense(out[:n])
		if err != nil || again != s {
			t.Fatalf("round trip % x: %+v, %v; want %+v", out[:n], again, err, s)
		}
	})
}

func FuzzDecodeModeSelect(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, ten bool) {
		l, err := DecodeModeSelect(b, ten)
		if err != nil {
			if !reflect.DeepEqual(l, ModeSelectList{}) {
				t.Fatalf("error %v with %+v", err, l)
			}
			return
		}
		again, err := DecodeModeSelect(l.Append(nil), ten)
		if err != nil || !reflect.DeepEqual(again, l) {
			t.Fatalf("round trip %+v, %v; want %+v", again, err, l)
		}
		m := sluiceModePages()
		c := CDB{Opcode: OpModeSelect6, PF: true}
		if _, err := m.Select(&l, &c, &sluiceHeader); err != nil {
			if !reflect.DeepEqual(m, sluiceModePages()) {
				t.Fatal("a refused MODE SELECT changed the pages")
			}
		}
	})
}

func FuzzDecodeUnmap(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeUnmap(b)
		if err != nil {
			if l.Len() != 0 {
				t.Fatalf("error %v with %d descriptors", err, l.Len())
			}
			return
		}
		descs := unmapDescs(l)
		again, err := DecodeUnmap(AppendUnmap(nil, descs))
		if err != nil || !reflect.DeepEqual(unmapDescs(again), descs) {
			t.Fatalf("round trip %+v, %v; want %+v", unmapDescs(again), err, descs)
		}
		_ = l.Check(1<<20, &BlockLimits{MaxUnmapLBACount: 4096, MaxUnmapDescriptors: 16})
	})
}

func FuzzDecodePROut(f *testing.F) {
	f.Fuzz(func(t *testing.T, sa uint8, b []byte) {
		action := PROutAction(sa % 8)
		p, err := DecodePROut(action, b)
		if err != nil {
			if !reflect.DeepEqual(p, PROutParams{}) {
				t.Fatalf("error %v with %+v", err, p)
			}
			return
		}
		again, err := DecodePROut(action, p.Append(action, nil))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip %+v, %v; want %+v", again, err, p)
		}
	})
}

func FuzzDecodeTransportID(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		id, n, err := DecodeTransportID(b)
		if err != nil {
			if id != (TransportID{}) || n != 0 {
				t.Fatalf("error %v with %+v, %d", err, id, n)
			}
			return
		}
		if n < transportIDHdrLen || n > len(b) {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		enc := id.Append(nil)
		again, m, err := DecodeTransportID(enc)
		if err != nil || again != id || m != len(enc) || m != id.Len() || m%4 != 0 {
			t.Fatalf("round trip % x: %+v %d, %v; want %+v", enc, again, m, err, id)
		}
	})
}

func FuzzDecodeLUN(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var field [LUNLen]byte
		copy(field[:], b)
		lun, err := DecodeLUN(field)
		if err != nil {
			if lun != 0 {
				t.Fatalf("error %v with LUN %d", err, lun)
			}
			return
		}
		if lun > MaxLUN {
			t.Fatalf("LUN %d out of range", lun)
		}
		if again, err := DecodeLUN(EncodeLUN(lun)); err != nil || again != lun {
			t.Fatalf("round trip %d, %v; want %d", again, err, lun)
		}
	})
}
