package nvme

import (
	"bytes"
	"os"
	"testing"
)

// Fuzz targets for the reservation decoders (resv.go), with the properties of
// fuzz_test.go: never panic; an error comes with the zero value; decode → encode → decode
// gives the same value. Seeds live in testdata/fuzz/<target>/ and are written by
// TestGenSeedsResv.

func FuzzResvSQE(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var s SQE
		copy(s[:], b)
		var out SQE
		reg := DecodeResvRegister(&s)
		reg.Put(&out)
		if DecodeResvRegister(&out) != reg || reg.RREGA > 7 || reg.CPTPL > 3 {
			t.Fatalf("register %+v", reg)
		}
		acq := DecodeResvAcquire(&s)
		acq.Put(&out)
		if DecodeResvAcquire(&out) != acq || acq.RACQA > 7 {
			t.Fatalf("acquire %+v", acq)
		}
		rel := DecodeResvRelease(&s)
		rel.Put(&out)
		if DecodeResvRelease(&out) != rel || rel.RRELA > 7 {
			t.Fatalf("release %+v", rel)
		}
		rep := DecodeResvReport(&s)
		rep.Put(&out)
		if DecodeResvReport(&out) != rep || rep.Len() == 0 || rep.Len()%4 != 0 {
			t.Fatalf("report %+v", rep)
		}
	})
}

func FuzzResvRegisterData(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeResvRegisterData(b)
		if err != nil {
			if d != (ResvRegisterData{}) || len(b) >= ResvRegisterDataLen {
				t.Fatalf("error %v with %+v for %d bytes", err, d, len(b))
			}
			return
		}
		var out [ResvRegisterDataLen]byte
		d.Put(out[:])
		if !bytes.Equal(out[:], b[:ResvRegisterDataLen]) {
			t.Fatal("bytes differ")
		}
	})
}

func FuzzResvAcquireData(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeResvAcquireData(b)
		if err != nil {
			if d != (ResvAcquireData{}) || len(b) >= ResvAcquireDataLen {
				t.Fatalf("error %v with %+v for %d bytes", err, d, len(b))
			}
			return
		}
		var out [ResvAcquireDataLen]byte
		d.Put(out[:])
		if !bytes.Equal(out[:], b[:ResvAcquireDataLen]) {
			t.Fatal("bytes differ")
		}
	})
}

func FuzzResvReleaseData(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeResvReleaseData(b)
		if err != nil {
			if d != (ResvReleaseData{}) || len(b) >= ResvReleaseDataLen {
				t.Fatalf("error %v with %+v for %d bytes", err, d, len(b))
			}
			return
		}
		var out [ResvReleaseDataLen]byte
		d.Put(out[:])
		if !bytes.Equal(out[:], b[:ResvReleaseDataLen]) {
			t.Fatal("bytes differ")
		}
	})
}

func FuzzResvStatusExt(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rs, err := DecodeResvStatusExt(b)
		if err != nil {
			if h != (ResvStatus{}) || rs != nil {
				t.Fatal("non-zero on error")
			}
			return
		}
		out := make([]byte, ResvStatusDataLen(len(rs), true))
		if err := MarshalResvStatusExt(out, h, rs); err != nil {
			t.Fatal(err)
		}
		h2, rs2, err := DecodeResvStatusExt(out)
		if err != nil || h2 != h || len(rs2) != len(rs) {
			t.Fatalf("round trip %+v %v", h2, err)
		}
		for i := range rs {
			if rs2[i] != rs[i] {
				t.Fatalf("entry %d: %+v != %+v", i, rs2[i], rs[i])
			}
		}
	})
}

func FuzzResvStatus(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rs, err := DecodeResvStatus(b)
		if err != nil {
			if h != (ResvStatus{}) || rs != nil {
				t.Fatal("non-zero on error")
			}
			return
		}
		out := make([]byte, ResvStatusDataLen(len(rs), false))
		if err := MarshalResvStatus(out, h, rs); err != nil {
			t.Fatal(err)
		}
		h2, rs2, err := DecodeResvStatus(out)
		if err != nil || h2 != h || len(rs2) != len(rs) {
			t.Fatalf("round trip %+v %v", h2, err)
		}
		for i := range rs {
			if rs2[i] != rs[i] {
				t.Fatalf("entry %d: %+v != %+v", i, rs2[i], rs[i])
			}
		}
	})
}

func FuzzResvNotifLog(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var in, out [ResvNotifLogLen]byte
		copy(in[:], b)
		var l, again ResvNotifLog
		l.Unmarshal(&in)
		l.MarshalTo(&out)
		again.Unmarshal(&out)
		if again != l {
			t.Fatalf("%+v != %+v", again, l)
		}
	})
}

func FuzzResvFeatures(f *testing.F) {
	f.Fuzz(func(t *testing.T, v uint64) {
		m, ok := DecodeResvNotifMask(uint32(v))
		if !ok {
			if m != (ResvNotifMask{}) {
				t.Fatal("non-zero mask on error")
			}
		} else if m.Value() != uint32(v) {
			t.Fatalf("mask %#x -> %+v -> %#x", uint32(v), m, m.Value())
		}
		p := DecodeResvPersistence(uint32(v))
		if DecodeResvPersistence(ResvPersistence(p)) != p {
			t.Fatal("persistence")
		}
	})
}

// TestGenSeedsResv rewrites the reservation seed corpus (commands as nvme-cli and the Linux
// block layer send them, reports as SPDK returns them). Run with the other generator:
// SLUICE_GEN_SEEDS=1 go test -run GenSeeds
func TestGenSeedsResv(t *testing.T) {
	if os.Getenv("SLUICE_GEN_SEEDS") == "" {
		t.Skip("set SLUICE_GEN_SEEDS=1 to regenerate the seed corpus")
	}
	genResvSQESeeds(t)
	genResvDataSeeds(t)
	genResvReportSeeds(t)
}

func genResvSQESeeds(t *testing.T) {
	var s SQE
	s.SetOpcode(uint8(NVMReservationRegister))
	s.SetNSID(1)
	s.SetSGL1(SGLDescriptor{Length: ResvRegisterDataLen, ID: SGLIDInCapsule})
	ResvRegister{RREGA: RREGARegister, CPTPL: CPTPLSet}.Put(&s)
	seedFile(t, "FuzzResvSQE", "register-ptpl", s[:])
	ResvRegister{RREGA: RREGAReplace, IEKEY: true}.Put(&s)
	seedFile(t, "FuzzResvSQE", "replace-iekey", s[:])
	s.SetOpcode(uint8(NVMReservationAcquire))
	ResvAcquire{RACQA: RACQAPreemptAndAbort, RTYPE: RTypeWriteExclusiveRegistrantsOnly}.Put(&s)
	seedFile(t, "FuzzResvSQE", "preempt-abort-wero", s[:])
	s.SetOpcode(uint8(NVMReservationRelease))
	ResvRelease{RRELA: RRELAClear}.Put(&s)
	seedFile(t, "FuzzResvSQE", "clear", s[:])
	s.SetOpcode(uint8(NVMReservationReport))
	s.SetSGL1(SGLDescriptor{Length: 4096, ID: SGLIDTransport})
	ResvReport{NUMD: NUMDFor(4096), EDS: true}.Put(&s)
	seedFile(t, "FuzzResvSQE", "report-eds", s[:])
	s.SetCDW10(0xFFFFFFFF)
	s.SetCDW11(0xFFFFFFFF)
	seedFile(t, "FuzzResvSQE", "all-ones", s[:])
}

func genResvDataSeeds(t *testing.T) {
	b := make([]byte, 16)
	ResvRegisterData{NRKEY: 0xABCDEF}.Put(b)
	seedFile(t, "FuzzResvRegisterData", "register", b)
	seedFile(t, "FuzzResvRegisterData", "short", b[:15])
	ResvAcquireData{CRKEY: 0xABCDEF, PRKEY: 0x123456}.Put(b)
	seedFile(t, "FuzzResvAcquireData", "preempt", b)
	seedFile(t, "FuzzResvAcquireData", "short", b[:9])
	ResvReleaseData{CRKEY: 0xABCDEF}.Put(b)
	seedFile(t, "FuzzResvReleaseData", "release", b[:8])
	seedFile(t, "FuzzResvReleaseData", "short", b[:3])
	seedFile(t, "FuzzResvFeatures", "mask-all", uint64(0xE))
	seedFile(t, "FuzzResvFeatures", "mask-reserved", uint64(0x11))
	seedFile(t, "FuzzResvFeatures", "ptpl", uint64(1))
	var lb [ResvNotifLogLen]byte
	(&ResvNotifLog{Count: 3, Type: ResvNotifRegistrationPreempt, Available: 2, NSID: 1}).
		MarshalTo(&lb)
	seedFile(t, "FuzzResvNotifLog", "registration-preempted", lb[:16])
}

func genResvReportSeeds(t *testing.T) {
	rs := []ResvRegistrantExt{
		{CNTLID: CNTLIDDynamic, RCSTS: ResvRCSTSHolder, RKEY: 0xABCDEF,
			HOSTID: [16]byte{0xF8, 0x1D, 0x4F, 0xAE, 15: 0xF6}},
		{CNTLID: CNTLIDDynamic, RKEY: 0x123456, HOSTID: [16]byte{1, 15: 2}},
	}
	b := make([]byte, ResvStatusDataLen(len(rs), true))
	_ = MarshalResvStatusExt(b, ResvStatus{GEN: 4, RTYPE: RTypeWriteExclusive, PTPLS: 1}, rs)
	seedFile(t, "FuzzResvStatusExt", "two-holder", b)
	seedFile(t, "FuzzResvStatusExt", "truncated", b[:100])
	seedFile(t, "FuzzResvStatusExt", "empty", b[:ResvStatusExtLen])
	brs := []ResvRegistrant{{CNTLID: 1, RCSTS: 1, HOSTID: 0x1234, RKEY: 7}}
	bb := make([]byte, ResvStatusDataLen(1, false))
	_ = MarshalResvStatus(bb, ResvStatus{GEN: 1, RTYPE: RTypeExclusiveAccess}, brs)
	seedFile(t, "FuzzResvStatus", "one", bb)
	seedFile(t, "FuzzResvStatus", "truncated", bb[:30])
}
