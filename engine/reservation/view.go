package reservation

import "strconv"

// Access is what an I/O asks of the media, as far as reservations care. The protocol
// layers classify their opcodes once (a table, not a per-I/O decision):
//
//	AccessRead       NVMe Read, Compare, Verify; SCSI READ(6..16), VERIFY, MODE SENSE,
//	                 READ BUFFER, RECEIVE DIAGNOSTIC RESULTS, REPORT SUPPORTED OPERATION
//	                 CODES (SPC-4 Table 65 treats those like reads: allowed through Write
//	                 Exclusive, blocked by Exclusive Access)
//	AccessWrite      NVMe Write, Write Zeroes, Dataset Management, Flush, Write
//	                 Uncorrectable (nvmet's and SPDK's write group); SCSI WRITE*, UNMAP,
//	                 WRITE SAME, COMPARE AND WRITE, SYNCHRONIZE CACHE, FORMAT UNIT,
//	                 MODE SELECT, LOG SELECT, WRITE BUFFER, SEND DIAGNOSTIC
//	AccessControl    allowed through every persistent reservation, refused under another
//	                 nexus's SCSI-2 reservation: TEST UNIT READY, READ CAPACITY(10/16),
//	                 LOG SENSE, START STOP UNIT, REPORT TARGET PORT GROUPS (the SPDK
//	                 scsi_pr.c table, PROTOCOLS.md §3)
//	AccessResvIn     PERSISTENT RESERVE IN and NVMe Reservation Report: allowed through
//	                 persistent reservations, refused from everyone while a SCSI-2
//	                 reservation exists (SPC-2 §5.5.1, "regardless of initiator")
//	AccessAlways     never refused: INQUIRY, REPORT LUNS, REQUEST SENSE, and NVMe admin
//	                 commands
//
// Reservation commands themselves (NVMe Register, Acquire, Release; PERSISTENT RESERVE
// OUT; RESERVE and RELEASE(6/10)) are not checked here: Apply decides them.
type Access uint8

// Access classes. The zero value is invalid and is refused whenever any reservation
// exists, so an unclassified opcode fails safe.
const (
	AccessInvalid Access = iota
	AccessRead
	AccessWrite
	AccessControl
	AccessResvIn
	AccessAlways
)

// String names the access class.
func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	case AccessControl:
		return "control"
	case AccessResvIn:
		return "reservation in"
	case AccessAlways:
		return "always"
	}
	return "access " + strconv.Itoa(int(a))
}

// View is an immutable snapshot of the parts of a State the I/O path checks. The
// reservation manager builds one after each change and publishes it per volume through
// an atomic pointer; reactors call Allows on every I/O without locks. A nil *View means
// "no reservation".
type View struct {
	active     bool // a persistent or SCSI-2 reservation exists
	typ        Type
	gen        uint32
	ignoreISID bool
	scsi2      bool
	scsi2ID    Identity
	holder     int // index in regs of a one-holder type's holder, else -1
	regs       []Subject
}

// View builds the snapshot. It allocates (a copy of the registrants); call it on the
// control path, once per change.
func (s *State) View() *View {
	v := &View{typ: s.Type, gen: s.Generation, ignoreISID: s.IgnoreISID, holder: -1,
		scsi2: s.SCSI2.Held, scsi2ID: s.SCSI2.Holder}
	v.active = s.Type != TypeNone || s.SCSI2.Held
	if len(s.Registrants) > 0 {
		v.regs = make([]Subject, len(s.Registrants))
	}
	for i, r := range s.Registrants {
		v.regs[i] = r.Subject
		if r.Holder {
			v.holder = i
		}
	}
	return v
}

// Generation returns the generation the View was built at, so that a reactor can tell a
// stale snapshot from a fresh one.
func (v *View) Generation() uint32 {
	if v == nil {
		return 0
	}
	return v.gen
}

// Allows reports whether an I/O of class a from id may proceed; false means the protocol
// layer completes it with Reservation Conflict (NVMe 83h, SCSI status 18h). It allocates
// nothing and, with no reservation, costs a nil check and one load.
//
// The rules are those of the NVMe spec and SPC-4 Table 65 (libiscsi ProutReserve.Access*):
// the holder may do everything; Write Exclusive refuses others' writes, Exclusive Access
// their reads and writes; the registrants-only and all-registrants types let registrants
// do everything and refuse the same to non-registrants. A SCSI-2 reservation refuses
// everything but AccessAlways to every other nexus and NVMe host.
func (v *View) Allows(id Identity, a Access) bool {
	if v == nil || !v.active || a == AccessAlways {
		return true
	}
	return v.allowsReserved(id, a)
}

func (v *View) allowsReserved(id Identity, a Access) bool {
	if v.scsi2 {
		return a != AccessResvIn && a != AccessInvalid && v.scsi2ID.Matches(id, v.ignoreISID)
	}
	switch a {
	case AccessControl, AccessResvIn:
		return true
	case AccessRead, AccessWrite:
	default:
		return false
	}
	if v.holder >= 0 && v.regs[v.holder].Covers(id, v.ignoreISID) {
		return true
	}
	if a == AccessRead && !v.typ.exclusiveReads() {
		return true
	}
	return v.typ.registrantsAccess() && v.registered(id)
}

func (v *View) registered(id Identity) bool {
	for i := range v.regs {
		if v.regs[i].Covers(id, v.ignoreISID) {
			return true
		}
	}
	return false
}
