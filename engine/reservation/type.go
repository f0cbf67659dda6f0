package reservation

import "strconv"

// Type is a reservation type in one numbering for both protocols, so that a reservation
// taken over iSCSI reads back over NVMe with the same meaning. The values deliberately
// equal NVMe's RTYPE (1..6), but callers convert through [TypeFromNVMe]/[Type.NVMe] and
// [TypeFromSCSI]/[Type.SCSI] and never rely on that.
//
// TypeNone is "no reservation" in a State and "absent or invalid" in a Command: a wire
// type value that names no type converts to TypeNone, and commands that need a type answer
// it with an invalid-field status.
type Type uint8

// The six reservation types (NVM Figure "Reservation Type Encoding", SPC-4 Table 212).
const (
	TypeNone                       Type = 0
	WriteExclusive                 Type = 1
	ExclusiveAccess                Type = 2
	WriteExclusiveRegistrantsOnly  Type = 3
	ExclusiveAccessRegistrantsOnly Type = 4
	WriteExclusiveAllRegistrants   Type = 5
	ExclusiveAccessAllRegistrants  Type = 6
	typeCount                           = 7
)

// nvmeRType and scsiType are the wire numbers of each Type, indexed by Type. SCSI skips
// 2 and 4 (obsolete "shared" types of SPC-1) and so disagrees with NVMe from type 2 on.
var (
	nvmeRType = [typeCount]uint8{0, 1, 2, 3, 4, 5, 6}
	scsiType  = [typeCount]uint8{0, 1, 3, 5, 6, 7, 8}
)

// TypeFromNVMe converts an NVMe RTYPE. ok is false (and the Type is TypeNone) for 0 and
// for the reserved values 07h..FFh.
func TypeFromNVMe(rtype uint8) (t Type, ok bool) {
	for i := Type(1); i < typeCount; i++ {
		if nvmeRType[i] == rtype {
			return i, true
		}
	}
	return TypeNone, false
}

// TypeFromSCSI converts a SCSI PERSISTENT RESERVE OUT TYPE (CDB byte 2 bits 3:0). ok is
// false (and the Type is TypeNone) for 0, the obsolete 2 and 4, and the reserved values.
func TypeFromSCSI(typ uint8) (t Type, ok bool) {
	for i := Type(1); i < typeCount; i++ {
		if scsiType[i] == typ {
			return i, true
		}
	}
	return TypeNone, false
}

// NVMe returns the NVMe RTYPE of t (0 for TypeNone or an invalid value).
func (t Type) NVMe() uint8 {
	if t >= typeCount {
		return 0
	}
	return nvmeRType[t]
}

// SCSI returns the SCSI TYPE of t (0 for TypeNone or an invalid value).
func (t Type) SCSI() uint8 {
	if t >= typeCount {
		return 0
	}
	return scsiType[t]
}

// Valid reports whether t is one of the six types.
func (t Type) Valid() bool { return t >= WriteExclusive && t < typeCount }

// AllRegistrants reports an "all registrants" type: every registrant is a reservation
// holder, and the reservation lasts until the last registrant goes (SPC-4 §5.13.10).
func (t Type) AllRegistrants() bool {
	return t == WriteExclusiveAllRegistrants || t == ExclusiveAccessAllRegistrants
}

// RegistrantsOnly reports a "registrants only" type: one holder, but every registrant may
// access the media.
func (t Type) RegistrantsOnly() bool {
	return t == WriteExclusiveRegistrantsOnly || t == ExclusiveAccessRegistrantsOnly
}

// registrantsAccess reports a type under which registrants who are not the holder still
// read and write (RO and AR types).
func (t Type) registrantsAccess() bool { return t.RegistrantsOnly() || t.AllRegistrants() }

// exclusiveReads reports a type that blocks reads from those it excludes (the Exclusive
// Access family); the Write Exclusive family lets everyone read.
func (t Type) exclusiveReads() bool {
	return t == ExclusiveAccess || t == ExclusiveAccessRegistrantsOnly ||
		t == ExclusiveAccessAllRegistrants
}

var typeNames = [typeCount]string{"none", "write exclusive", "exclusive access",
	"write exclusive - registrants only", "exclusive access - registrants only",
	"write exclusive - all registrants", "exclusive access - all registrants"}

// String names the type for logs and test failures.
func (t Type) String() string {
	if t >= typeCount {
		return "type " + strconv.Itoa(int(t))
	}
	return typeNames[t]
}
