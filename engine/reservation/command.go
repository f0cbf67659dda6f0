package reservation

import (
	"strconv"

	"sluice/engine/proto/nvme"
)

// Action is what a Command asks for: one per NVMe and SCSI reservation action, plus the
// SCSI-2 commands and the events that clear SCSI-2 reservations. The zero value is
// ActionNone, which Apply answers with StatusInvalidField (so does every value it does not
// know): the NVMe builders map reserved action codes to it.
type Action uint8

// Actions.
const (
	ActionNone Action = iota

	// NVMe Reservation Register (RREGA 0, 1, 2), Acquire (RACQA 0, 1, 2), Release
	// (RRELA 0, 1) and Set Features Reservation Persistence (83h).
	NVMeRegister
	NVMeUnregister
	NVMeReplace
	NVMeAcquire
	NVMePreempt
	NVMePreemptAbort
	NVMeRelease
	NVMeClear
	NVMeSetPTPL

	// SCSI PERSISTENT RESERVE OUT service actions 00h..07h.
	SCSIRegister
	SCSIReserve
	SCSIRelease
	SCSIClear
	SCSIPreempt
	SCSIPreemptAbort
	SCSIRegisterIgnore
	SCSIRegisterMove

	// SCSI-2 RESERVE(6)/(10) and RELEASE(6)/(10).
	SCSI2Reserve
	SCSI2Release

	// Events, not commands: they report what already happened, so they always succeed
	// and never ask to persist. NexusLost is an I_T nexus loss (logout, connection drop);
	// ClearSCSI2 is a LUN reset, target reset or hard reset. Both end SCSI-2 reservations
	// and leave persistent reservations alone (SPC-4 §5.13.1).
	NexusLost
	ClearSCSI2

	actionCount
)

var actionNames = [actionCount]string{"none", "nvme register", "nvme unregister",
	"nvme replace", "nvme acquire", "nvme preempt", "nvme preempt and abort", "nvme release",
	"nvme clear", "nvme set ptpl", "scsi register", "scsi reserve", "scsi release",
	"scsi clear", "scsi preempt", "scsi preempt and abort",
	"scsi register and ignore existing key", "scsi register and move", "scsi-2 reserve",
	"scsi-2 release", "nexus lost", "clear scsi-2"}

// String names the action for logs and test failures.
func (a Action) String() string {
	if a >= actionCount {
		return "action " + strconv.Itoa(int(a))
	}
	return actionNames[a]
}

// Protocol returns the protocol whose identities may send the action (ProtocolNone for the
// events, which any identity may report).
func (a Action) Protocol() Protocol {
	switch {
	case a >= NVMeRegister && a <= NVMeSetPTPL:
		return ProtocolNVMe
	case a >= SCSIRegister && a <= SCSI2Release:
		return ProtocolSCSI
	}
	return ProtocolNone
}

// Command is one reservation command or event, with every field any action uses; each
// action reads only its own. Fields are plain values (no maps, no pointers) so that the
// group can encode a Command as a raft log entry and every replica applies the same bytes.
// Wire parsing stays in the protocol layers: they validate lengths and fill a Command.
type Command struct {
	Action Action
	// From is the requester: the NVMe host, or the SCSI I_T nexus the command came on.
	// For NexusLost it is the nexus that was lost.
	From Identity

	// Key is the requester's current key: NVMe CRKEY, SCSI RESERVATION KEY.
	Key uint64
	// ServiceKey is the other key: NVMe NRKEY (register, replace) or PRKEY (preempt), SCSI
	// SERVICE ACTION RESERVATION KEY (register, preempt, register and move).
	ServiceKey uint64
	// Type is the requested reservation type, converted by TypeFromNVMe or TypeFromSCSI;
	// TypeNone when the wire value named no type.
	Type Type
	// Scope is the SCSI SCOPE (CDB byte 2 bits 7:4); only LU_SCOPE (0) exists.
	Scope uint8

	// IEKEY is NVMe's Ignore Existing Key bit (CDW10 bit 3).
	IEKEY bool
	// CPTPL is NVMe Register's Change Persist Through Power Loss State (nvme.CPTPL*).
	CPTPL uint8
	// PTPL is the value NVMeSetPTPL sets (Set Features 83h CDW11 bit 0).
	PTPL bool

	// APTPL is the SCSI parameter list's Activate Persist Through Power Loss bit.
	APTPL bool
	// AllTargetPorts is ALL_TG_PT: register the initiator port on every target port.
	AllTargetPorts bool
	// SpecIPT is SPEC_I_PT: also register the initiator ports in TransportIDs.
	SpecIPT      bool
	TransportIDs []TransportID

	// MoveTo, MoveTargetPort and Unreg are REGISTER AND MOVE's destination initiator port,
	// its RELATIVE TARGET PORT IDENTIFIER (the caller has checked the port exists: an
	// unknown one is the caller's INVALID FIELD IN PARAMETER LIST) and the UNREG bit.
	MoveTo         TransportID
	MoveTargetPort uint16
	Unreg          bool
}

// NVMeRegisterCommand builds the Command for a Reservation Register from its decoded
// CDW10 and data. A reserved RREGA gives ActionNone, which Apply answers with Invalid
// Field.
func NVMeRegisterCommand(from Identity, f nvme.ResvRegister, d nvme.ResvRegisterData) Command {
	acts := [...]Action{nvme.RREGARegister: NVMeRegister, nvme.RREGAUnregister: NVMeUnregister,
		nvme.RREGAReplace: NVMeReplace}
	c := Command{From: from, Key: d.CRKEY, ServiceKey: d.NRKEY, IEKEY: f.IEKEY, CPTPL: f.CPTPL}
	if int(f.RREGA) < len(acts) {
		c.Action = acts[f.RREGA]
	}
	return c
}

// NVMeAcquireCommand builds the Command for a Reservation Acquire.
func NVMeAcquireCommand(from Identity, f nvme.ResvAcquire, d nvme.ResvAcquireData) Command {
	acts := [...]Action{nvme.RACQAAcquire: NVMeAcquire, nvme.RACQAPreempt: NVMePreempt,
		nvme.RACQAPreemptAndAbort: NVMePreemptAbort}
	t, _ := TypeFromNVMe(f.RTYPE)
	c := Command{From: from, Key: d.CRKEY, ServiceKey: d.PRKEY, IEKEY: f.IEKEY, Type: t}
	if int(f.RACQA) < len(acts) {
		c.Action = acts[f.RACQA]
	}
	return c
}

// NVMeReleaseCommand builds the Command for a Reservation Release.
func NVMeReleaseCommand(from Identity, f nvme.ResvRelease, d nvme.ResvReleaseData) Command {
	acts := [...]Action{nvme.RRELARelease: NVMeRelease, nvme.RRELAClear: NVMeClear}
	t, _ := TypeFromNVMe(f.RTYPE)
	c := Command{From: from, Key: d.CRKEY, IEKEY: f.IEKEY, Type: t}
	if int(f.RRELA) < len(acts) {
		c.Action = acts[f.RRELA]
	}
	return c
}

// NVMeSetPTPLCommand builds the Command for Set Features Reservation Persistence (83h)
// from its CDW11.
func NVMeSetPTPLCommand(from Identity, cdw11 uint32) Command {
	return Command{Action: NVMeSetPTPL, From: from, PTPL: nvme.DecodeResvPersistence(cdw11)}
}

// AsksToPersist reports whether cmd "asks to persist through power loss" in the sense of
// DESIGN.md's admission rule, so that only those commands query the group's sync state:
// NVMe Register with CPTPL=11b, Set Features 83h with PTPL=1, a SCSI PERSISTENT RESERVE OUT
// with APTPL=1 (whatever its service action: the bit asks even where SPC-4 ignores it, and
// refusing costs only a retry), and any reservation command on a volume whose persistence
// is already on. The events (NexusLost, ClearSCSI2) never ask: they report what already
// happened and must not be refused.
func AsksToPersist(cmd Command, s *State) bool {
	a := cmd.Action
	if a == ActionNone || a >= actionCount || a == NexusLost || a == ClearSCSI2 {
		return false
	}
	if s != nil && s.PTPL {
		return true
	}
	switch {
	case a == NVMeRegister || a == NVMeUnregister || a == NVMeReplace:
		return cmd.CPTPL == nvme.CPTPLSet
	case a == NVMeSetPTPL:
		return cmd.PTPL
	case a >= SCSIRegister && a <= SCSIRegisterMove:
		return cmd.APTPL
	}
	return false
}
