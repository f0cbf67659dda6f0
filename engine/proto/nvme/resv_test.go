package nvme

import (
	"bytes"
	"errors"
	"testing"
)

func TestResvCommandDwords(t *testing.T) {
	var s SQE
	// nvme-cli "resv-register --rrega=2 --iekey --cptpl=3".
	r := ResvRegister{RREGA: RREGAReplace, IEKEY: true, CPTPL: CPTPLSet}
	r.Put(&s)
	if s.CDW10() != 0xC000000A {
		t.Fatalf("register cdw10 %#x", s.CDW10())
	}
	if got := DecodeResvRegister(&s); got != r {
		t.Fatalf("register %+v", got)
	}
	// Reserved bits 29:4 are dropped on decode.
	s.SetCDW10(0x3FFFFFF0 | 1)
	if got := DecodeResvRegister(&s); got != (ResvRegister{RREGA: RREGAUnregister}) {
		t.Fatalf("reserved bits leaked: %+v", got)
	}

	a := ResvAcquire{RACQA: RACQAPreemptAndAbort, RTYPE: RTypeExclusiveAccessAllRegistrants}
	a.Put(&s)
	if s.CDW10() != 0x0602 || DecodeResvAcquire(&s) != a {
		t.Fatalf("acquire cdw10 %#x", s.CDW10())
	}
	rl := ResvRelease{RRELA: RRELAClear, IEKEY: true, RTYPE: RTypeWriteExclusive}
	rl.Put(&s)
	if s.CDW10() != 0x0109 || DecodeResvRelease(&s) != rl {
		t.Fatalf("release cdw10 %#x", s.CDW10())
	}
	// nvme-cli "resv-report --numd=1023 --eds".
	rp := ResvReport{NUMD: 1023, EDS: true}
	rp.Put(&s)
	if s.CDW10() != 1023 || s.CDW11() != 1 || DecodeResvReport(&s) != rp || rp.Len() != 4096 {
		t.Fatalf("report %#x %#x", s.CDW10(), s.CDW11())
	}
}

func TestResvData(t *testing.T) {
	b := make([]byte, 16)
	ResvRegisterData{CRKEY: 0x0102030405060708, NRKEY: 0x1112131415161718}.Put(b)
	if b[0] != 0x08 || b[7] != 0x01 || b[8] != 0x18 || b[15] != 0x11 {
		t.Fatalf("register data %x", b)
	}
	if d, err := DecodeResvRegisterData(b); err != nil || d.NRKEY != 0x1112131415161718 {
		t.Fatalf("%+v %v", d, err)
	}
	ResvAcquireData{CRKEY: 1, PRKEY: 2}.Put(b)
	if d, err := DecodeResvAcquireData(b); err != nil || d != (ResvAcquireData{1, 2}) {
		t.Fatalf("%+v %v", d, err)
	}
	ResvReleaseData{CRKEY: 9}.Put(b)
	if d, err := DecodeResvReleaseData(b[:8]); err != nil || d.CRKEY != 9 {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := DecodeResvRegisterData(b[:15]); !errors.Is(err, ErrShortBuffer) {
		t.Fatal("short register data")
	}
	if _, err := DecodeResvAcquireData(b[:15]); !errors.Is(err, ErrShortBuffer) {
		t.Fatal("short acquire data")
	}
	if _, err := DecodeResvReleaseData(b[:7]); !errors.Is(err, ErrShortBuffer) {
		t.Fatal("short release data")
	}
}

func TestResvReportExtLayout(t *testing.T) {
	host := [16]byte{0xA0, 15: 0xAF}
	rs := []ResvRegistrantExt{
		{CNTLID: CNTLIDDynamic, RCSTS: ResvRCSTSHolder, RKEY: 0x1122334455667788, HOSTID: host},
		{CNTLID: CNTLIDDynamic, RKEY: 5},
	}
	b := make([]byte, ResvStatusDataLen(2, true))
	for i := range b {
		b[i] = 0xEE // reserved bytes must come out zero
	}
	h := ResvStatus{GEN: 7, RTYPE: RTypeWriteExclusive, REGCTL: 99, PTPLS: 1}
	if err := MarshalResvStatusExt(b, h, rs); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off  int
		want []byte
	}{
		{0, []byte{7, 0, 0, 0, 1, 2, 0, 0, 0, 1}}, // GEN, RTYPE, REGCTL=len(rs), PTPLS
		{10, make([]byte, 54)},                    // reserved to 63
		{64, []byte{0xFF, 0xFF, 1, 0, 0, 0, 0, 0}},
		{72, []byte{0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}}, // RKEY @8
		{80, host[:]}, // HOSTID @16
		{96, make([]byte, 32)},
		{128 + 8, []byte{5}},
	} {
		if !bytes.Equal(b[c.off:c.off+len(c.want)], c.want) {
			t.Fatalf("@%d: %x, want %x", c.off, b[c.off:c.off+len(c.want)], c.want)
		}
	}
	gh, grs, err := DecodeResvStatusExt(b)
	h.REGCTL = 2
	if err != nil || gh != h || len(grs) != 2 || grs[0] != rs[0] || grs[1] != rs[1] {
		t.Fatalf("%+v %+v %v", gh, grs, err)
	}
	if _, _, err := DecodeResvStatusExt(b[:127]); !errors.Is(err, ErrResvStatusTruncated) {
		t.Fatalf("truncated: %v", err)
	}
	if _, _, err := DecodeResvStatusExt(b[:63]); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short: %v", err)
	}
	if err := MarshalResvStatusExt(b[:127], h, rs); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("marshal short: %v", err)
	}
}

func TestResvReportBasicLayout(t *testing.T) {
	rs := []ResvRegistrant{{CNTLID: 1, RCSTS: 1, HOSTID: 0x0102, RKEY: 0x0304}}
	b := make([]byte, ResvStatusDataLen(1, false))
	if err := MarshalResvStatus(b, ResvStatus{GEN: 1, RTYPE: 2}, rs); err != nil {
		t.Fatal(err)
	}
	if b[5] != 1 || b[24] != 1 || b[26] != 1 || b[32] != 0x02 || b[33] != 0x01 ||
		b[40] != 0x04 || b[41] != 0x03 {
		t.Fatalf("%x", b)
	}
	h, got, err := DecodeResvStatus(b)
	if err != nil || h.REGCTL != 1 || got[0] != rs[0] {
		t.Fatalf("%+v %+v %v", h, got, err)
	}
	if _, _, err := DecodeResvStatus(b[:47]); !errors.Is(err, ErrResvStatusTruncated) {
		t.Fatal(err)
	}
}

func TestResvFeatures(t *testing.T) {
	if RESCAPAll != 0xFF {
		t.Fatalf("RESCAPAll %#x", RESCAPAll)
	}
	m := ResvNotifMask{ReservationReleased: true, ReservationPreempted: true}
	if m.Value() != 0xC {
		t.Fatalf("mask %#x", m.Value())
	}
	if got, ok := DecodeResvNotifMask(0xC); !ok || got != m {
		t.Fatal("decode mask")
	}
	if _, ok := DecodeResvNotifMask(0x1); ok {
		t.Fatal("reserved bit 0 accepted")
	}
	if m.Masks(ResvNotifRegistrationPreempt) || !m.Masks(ResvNotifReservationReleased) ||
		!m.Masks(ResvNotifReservationPreempt) || m.Masks(ResvNotifEmpty) {
		t.Fatal("Masks")
	}
	if ResvPersistence(true) != 1 || !DecodeResvPersistence(0xFFFFFFFF) ||
		DecodeResvPersistence(2) {
		t.Fatal("persistence")
	}
}

func TestAllocsResvDecode(t *testing.T) {
	var s SQE
	ResvAcquire{RACQA: 1, RTYPE: 2}.Put(&s)
	data := make([]byte, 16)
	var sink uint64
	assertNoAllocs(t, "resv decode", func() {
		a := DecodeResvAcquire(&s)
		r := DecodeResvRegister(&s)
		l := DecodeResvRelease(&s)
		d, _ := DecodeResvAcquireData(data)
		sink += uint64(a.RTYPE) + uint64(r.CPTPL) + uint64(l.RRELA) + d.PRKEY
	})
	_ = sink
}
