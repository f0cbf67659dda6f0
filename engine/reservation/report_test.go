package reservation

import (
	"reflect"
	"slices"
	"testing"

	"sluice/engine/proto/nvme"
)

// TestNVMeReport: PROTOCOLS.md §2 "Report": EDS=0 is Host Identifier Inconsistent Format;
// entries are extended, CNTLID FFFFh, RCSTS on every holder.
func TestNVMeReport(t *testing.T) {
	s := build(t, nvReg(hostA, 0xA1), nvReg(hostB, 0xB2),
		Command{Action: NVMeSetPTPL, From: hostA, PTPL: true},
		nvAcquire(hostB, 0xB2, ExclusiveAccessRegistrantsOnly))
	if _, rs, st := s.NVMeReport(false); st != nvme.StatusHostIdentifierInconsistentFormat.WithDNR() ||
		rs != nil {
		t.Fatalf("EDS=0: %v", st)
	}
	h, rs, st := s.NVMeReport(true)
	if st != nvme.StatusSuccess || h != (nvme.ResvStatus{GEN: 2, RTYPE: 4, REGCTL: 2, PTPLS: 1}) {
		t.Fatalf("%+v %v", h, st)
	}
	want := []nvme.ResvRegistrantExt{
		{CNTLID: 0xFFFF, RKEY: 0xA1, HOSTID: hostA.HostID},
		{CNTLID: 0xFFFF, RCSTS: 1, RKEY: 0xB2, HOSTID: hostB.HostID},
	}
	if !slices.Equal(rs, want) {
		t.Fatalf("%+v", rs)
	}
	b := make([]byte, nvme.ResvStatusDataLen(len(rs), true))
	if err := nvme.MarshalResvStatusExt(b, h, rs); err != nil {
		t.Fatal(err)
	}
	if b[4] != 4 || b[5] != 2 || b[9] != 1 || b[64+2] != 0 || b[128+2] != 1 ||
		b[128+8] != 0xB2 || b[128+16] != 0xBB {
		t.Fatalf("wire %x", b)
	}
	// Under an all-registrants type every registrant is a holder (spec, nvmet).
	s = build(t, nvReg(hostA, 1), nvReg(hostB, 2), nvAcquire(hostA, 1, WriteExclusiveAllRegistrants))
	if _, rs, _ := s.NVMeReport(true); rs[0].RCSTS != 1 || rs[1].RCSTS != 1 {
		t.Fatalf("%+v", rs)
	}
}

// TestSCSIReports: PROTOCOLS.md §3 PERSISTENT RESERVE IN, libiscsi PrinReadKeys and
// PrinReportCapabilities.
func TestSCSIReports(t *testing.T) {
	s := build(t, scRegIgnore(nexA, 5), scRegIgnore(nexB, 5), scRegIgnore(nexA2, 6),
		scReserve(nexA2, 6, WriteExclusive))
	if rk := s.ReadKeys(); rk.Generation != 3 || !slices.Equal(rk.Keys, []uint64{5, 5, 6}) {
		t.Fatalf("duplicates must be reported: %+v", rk)
	}
	if rr := s.ReadReservation(); rr != (ReadReservation{Generation: 3, Reserved: true, Key: 6,
		Type: 1}) {
		t.Fatalf("%+v", rr)
	}
	fs := s.ReadFullStatus()
	if len(fs.Entries) != 3 || fs.Generation != 3 {
		t.Fatalf("%+v", fs)
	}
	if e := fs.Entries[2]; !e.Holder || e.Type != 1 || e.RelativeTargetPort != 2 ||
		e.TransportID != tidOf(nexA2) || e.Protocol != ProtocolSCSI {
		t.Fatalf("%+v", e)
	}
	if e := fs.Entries[0]; e.Holder || e.Type != 0 || e.Key != 5 {
		t.Fatalf("%+v", e)
	}
	// All-registrants: READ RESERVATION reports key 0, every descriptor is a holder.
	s = build(t, scRegIgnore(nexA, 5), nvReg(hostA, 7),
		Command{Action: SCSIRegister, From: nexB, ServiceKey: 8, AllTargetPorts: true},
		scReserve(nexA, 5, ExclusiveAccessAllRegistrants))
	if rr := s.ReadReservation(); !rr.Reserved || rr.Key != 0 || rr.Type != 8 {
		t.Fatalf("%+v", rr)
	}
	for _, e := range s.ReadFullStatus().Entries {
		if !e.Holder || e.Type != 8 {
			t.Fatalf("%+v", e)
		}
	}
	if e := s.ReadFullStatus().Entries; e[1].Protocol != ProtocolNVMe || e[1].HostID != hostA.HostID ||
		!e[2].AllTargetPorts {
		t.Fatalf("%+v", e)
	}
	if rr := (&State{Generation: 4}).ReadReservation(); rr != (ReadReservation{Generation: 4}) {
		t.Fatalf("%+v", rr)
	}
}

// TestReportCapabilities: libiscsi PrinReportCapabilities.Simple checks ALLOW COMMANDS ≤ 5
// and no unknown type mask bits, then reserves each advertised type.
func TestReportCapabilities(t *testing.T) {
	c := (&State{}).ReportCapabilities()
	if !c.CRH || !c.SIPC || !c.ATPC || !c.PTPLC || !c.TMV || c.RLRC || c.PTPLA ||
		c.AllowCommands > 5 || c.TypeMask != 0xEA01 {
		t.Fatalf("%+v", c)
	}
	// Each mask bit is the SCSI type it advertises.
	bits := map[uint16]uint8{MaskWriteExclusive: 1, MaskExclusiveAccess: 3,
		MaskWriteExclusiveRegistrantsOnly: 5, MaskExclusiveAccessRegistrantsOnly: 6,
		MaskWriteExclusiveAllRegistrants: 7, MaskExclusiveAccessAllRegistrants: 8}
	for bit, scsi := range bits {
		typ, ok := TypeFromSCSI(scsi)
		if c.TypeMask&bit == 0 || !ok {
			t.Fatalf("type %d", scsi)
		}
		s := build(t, scRegIgnore(nexA, 9))
		mustApply(t, &s, scReserve(nexA, 9, typ), StatusOK)
		want := uint64(9)
		if typ.AllRegistrants() {
			want = 0
		}
		if rr := s.ReadReservation(); !rr.Reserved || rr.Key != want || rr.Type != scsi {
			t.Fatalf("%+v", rr)
		}
		mustApply(t, &s, scRelease(nexA, 9, typ), StatusOK)
	}
}

// TestNVMeCommandBuilders: decoded NVMe fields become the right Commands.
func TestNVMeCommandBuilders(t *testing.T) {
	c := NVMeRegisterCommand(hostA, nvme.ResvRegister{RREGA: nvme.RREGAReplace, IEKEY: true,
		CPTPL: nvme.CPTPLSet}, nvme.ResvRegisterData{CRKEY: 1, NRKEY: 2})
	if !reflect.DeepEqual(c, Command{Action: NVMeReplace, From: hostA, Key: 1, ServiceKey: 2,
		IEKEY: true, CPTPL: 3}) {
		t.Fatalf("%+v", c)
	}
	c = NVMeAcquireCommand(hostA, nvme.ResvAcquire{RACQA: nvme.RACQAPreemptAndAbort, RTYPE: 6},
		nvme.ResvAcquireData{CRKEY: 1, PRKEY: 2})
	if c.Action != NVMePreemptAbort || c.Type != ExclusiveAccessAllRegistrants || c.ServiceKey != 2 {
		t.Fatalf("%+v", c)
	}
	c = NVMeReleaseCommand(hostA, nvme.ResvRelease{RRELA: nvme.RRELAClear, RTYPE: 9},
		nvme.ResvReleaseData{CRKEY: 4})
	if c.Action != NVMeClear || c.Type != TypeNone || c.Key != 4 {
		t.Fatalf("%+v", c)
	}
	if c = NVMeSetPTPLCommand(hostA, 1); c.Action != NVMeSetPTPL || !c.PTPL {
		t.Fatalf("%+v", c)
	}
	// A reserved RTYPE on Release only matters to a holder: Invalid Field then.
	s := build(t, nvReg(hostA, 1), nvAcquire(hostA, 1, WriteExclusive))
	rel := NVMeReleaseCommand(hostA, nvme.ResvRelease{RTYPE: 0}, nvme.ResvReleaseData{CRKEY: 1})
	if r := s.Apply(rel); r.Status.NVMe() != nvme.StatusInvalidField.WithDNR() {
		t.Fatalf("%v", r.Status)
	}
}

func TestStrings(t *testing.T) {
	for _, s := range []string{
		NVMeRegister.String(), Action(99).String(), ProtocolNVMe.String(), ProtocolSCSI.String(),
		Protocol(7).String(), hostA.String(), nexA.String(), Identity{}.String(),
		AccessRead.String(), Access(42).String(),
	} {
		if s == "" {
			t.Fatal("empty name")
		}
	}
	if nexA.String() != "scsi:"+iqnA+",i,0x23d000000001@1" {
		t.Fatal(nexA.String())
	}
}
