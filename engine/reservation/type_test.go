package reservation

import (
	"testing"

	"sluice/engine/proto/nvme"
)

// TestTypeMappingNVMeSCSI pins the NVMe ↔ SCSI numbering of the six reservation types
// (PROTOCOLS.md §2 table; NVM "Reservation Type Encoding", SPC-4 Table 212): NVMe numbers
// them 1..6, SCSI 1, 3, 5, 6, 7, 8. Getting this wrong silently turns a Windows cluster's
// Write Exclusive - Registrants Only (SCSI 5) into NVMe's Write Exclusive - All
// Registrants.
func TestTypeMappingNVMeSCSI(t *testing.T) {
	for _, c := range []struct {
		typ        Type
		nvme, scsi uint8
		name       string
	}{
		{WriteExclusive, 1, 1, "write exclusive"},
		{ExclusiveAccess, 2, 3, "exclusive access"},
		{WriteExclusiveRegistrantsOnly, 3, 5, "write exclusive - registrants only"},
		{ExclusiveAccessRegistrantsOnly, 4, 6, "exclusive access - registrants only"},
		{WriteExclusiveAllRegistrants, 5, 7, "write exclusive - all registrants"},
		{ExclusiveAccessAllRegistrants, 6, 8, "exclusive access - all registrants"},
	} {
		if c.typ.NVMe() != c.nvme || c.typ.SCSI() != c.scsi || c.typ.String() != c.name {
			t.Errorf("%v: nvme %d scsi %d", c.typ, c.typ.NVMe(), c.typ.SCSI())
		}
		if got, ok := TypeFromNVMe(c.nvme); !ok || got != c.typ {
			t.Errorf("TypeFromNVMe(%d) = %v, %v", c.nvme, got, ok)
		}
		if got, ok := TypeFromSCSI(c.scsi); !ok || got != c.typ {
			t.Errorf("TypeFromSCSI(%d) = %v, %v", c.scsi, got, ok)
		}
		// NVMe → SCSI → NVMe through the unified type.
		viaSCSI, _ := TypeFromSCSI(c.typ.SCSI())
		if viaSCSI.NVMe() != c.nvme {
			t.Errorf("round trip of nvme %d gives %d", c.nvme, viaSCSI.NVMe())
		}
	}
	if nvme.RTypeExclusiveAccess != ExclusiveAccess.NVMe() ||
		nvme.RTypeExclusiveAccessAllRegistrants != ExclusiveAccessAllRegistrants.NVMe() {
		t.Error("proto/nvme RTYPE constants disagree")
	}
	// Zero and the values that name no type convert to TypeNone.
	for _, v := range []uint8{0, 7, 8, 0xFF} {
		if got, ok := TypeFromNVMe(v); ok || got != TypeNone {
			t.Errorf("TypeFromNVMe(%d) = %v, %v", v, got, ok)
		}
	}
	for _, v := range []uint8{0, 2, 4, 9, 0xF} {
		if got, ok := TypeFromSCSI(v); ok || got != TypeNone {
			t.Errorf("TypeFromSCSI(%d) = %v, %v", v, got, ok)
		}
	}
	if TypeNone.NVMe() != 0 || TypeNone.SCSI() != 0 || Type(9).NVMe() != 0 || Type(9).SCSI() != 0 ||
		Type(9).Valid() || TypeNone.Valid() || Type(9).String() != "type 9" {
		t.Error("invalid types")
	}
}

// TestTypeClasses pins which types are all-registrants and registrants-only, which the
// holder and access rules hang on.
func TestTypeClasses(t *testing.T) {
	for typ := Type(1); typ < typeCount; typ++ {
		ar := typ == WriteExclusiveAllRegistrants || typ == ExclusiveAccessAllRegistrants
		ro := typ == WriteExclusiveRegistrantsOnly || typ == ExclusiveAccessRegistrantsOnly
		ea := typ == ExclusiveAccess || typ == ExclusiveAccessRegistrantsOnly ||
			typ == ExclusiveAccessAllRegistrants
		if typ.AllRegistrants() != ar || typ.RegistrantsOnly() != ro || typ.exclusiveReads() != ea {
			t.Errorf("%v", typ)
		}
	}
}

// TestStatusMapping pins the wire values of each outcome (PROTOCOLS.md §2 "Status codes",
// §3 sense codes).
func TestStatusMapping(t *testing.T) {
	for _, c := range []struct {
		s    Status
		nvme nvme.Status
		scsi SCSIStatus
	}{
		{StatusOK, nvme.StatusSuccess, SCSIStatus{}},
		{StatusConflict, nvme.StatusReservationConflict.WithDNR(), SCSIStatus{Status: 0x18}},
		{StatusInvalidField, nvme.StatusInvalidField.WithDNR(), SCSIStatus{2, 5, 0x24, 0}},
		{StatusInvalidParameterList, nvme.StatusInvalidField.WithDNR(), SCSIStatus{2, 5, 0x26, 0}},
		{StatusInvalidRelease, nvme.StatusInvalidField.WithDNR(), SCSIStatus{2, 5, 0x26, 4}},
		{StatusInsufficientResources, nvme.StatusInternalError, SCSIStatus{2, 5, 0x55, 4}},
	} {
		if c.s.NVMe() != c.nvme || c.s.SCSI() != c.scsi || c.s.String() == "" {
			t.Errorf("%v: nvme %v scsi %+v", c.s, c.s.NVMe(), c.s.SCSI())
		}
	}
	if nvme.StatusReservationConflict.Code() != 0x83 {
		t.Error("reservation conflict is SCT 0 SC 83h")
	}
	for _, c := range []struct {
		k         NoticeKind
		log       uint8
		asc, ascq uint8
	}{
		{RegistrationPreempted, nvme.ResvNotifRegistrationPreempt, 0x2A, 0x05},
		{ReservationReleased, nvme.ResvNotifReservationReleased, 0x2A, 0x04},
		{ReservationPreempted, nvme.ResvNotifReservationPreempt, 0x2A, 0x03},
	} {
		asc, ascq := c.k.SCSIUnitAttention()
		if c.k.NVMeLogType() != c.log || asc != c.asc || ascq != c.ascq || c.k.String() == "" {
			t.Errorf("%v", c.k)
		}
	}
	if NoticeKind(9).NVMeLogType() != nvme.ResvNotifEmpty || Status(99).String() != "status 99" {
		t.Error("unknown values")
	}
}
