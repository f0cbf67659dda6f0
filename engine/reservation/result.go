package reservation

import (
	"strconv"

	"sluice/engine/proto/nvme"
)

// Status is the outcome of a command in terms both protocols can put on the wire; one
// outcome maps to different wire values per protocol ([Status.NVMe], [Status.SCSI]),
// which is how one state machine serves both without knowing either transport.
type Status uint8

// Outcomes.
const (
	StatusOK Status = iota
	// StatusConflict: NVMe Reservation Conflict, SCSI RESERVATION CONFLICT. The requester
	// is not registered, its key does not match, or the reservation forbids the action.
	StatusConflict
	// StatusInvalidField: a field of the command itself is wrong (NVMe Invalid Field in
	// Command; SCSI ILLEGAL REQUEST, INVALID FIELD IN CDB): a reserved action or type,
	// IEKEY where it is not allowed, a SCOPE other than LU_SCOPE.
	StatusInvalidField
	// StatusInvalidParameterList: a field of the parameter data is wrong (SCSI ILLEGAL
	// REQUEST, INVALID FIELD IN PARAMETER LIST): PREEMPT with a zero key under a non
	// all-registrants type, misused SPEC_I_PT, a zero key to move to. NVMe has no
	// parameter list status: it is Invalid Field there, which is what the NVMe spec and
	// nvmet return for Preempt with PRKEY=0 under such a type.
	StatusInvalidParameterList
	// StatusInvalidRelease: the holder released with the wrong type or scope (SCSI ILLEGAL
	// REQUEST, INVALID RELEASE OF PERSISTENT RESERVATION 26h/04h; NVMe Invalid Field, as
	// the spec and SPDK say — nvmet returns Reservation Conflict).
	StatusInvalidRelease
	// StatusInsufficientResources: the registrant table is full (SCSI ILLEGAL REQUEST,
	// INSUFFICIENT REGISTRATION RESOURCES 55h/04h; NVMe Internal Error, retryable, as SPDK
	// answers a failed registration allocation).
	StatusInsufficientResources

	statusCount
)

var statusNames = [statusCount]string{"ok", "reservation conflict", "invalid field",
	"invalid field in parameter list", "invalid release of persistent reservation",
	"insufficient registration resources"}

// String names the outcome for logs and test failures.
func (s Status) String() string {
	if s >= statusCount {
		return "status " + strconv.Itoa(int(s))
	}
	return statusNames[s]
}

// NVMe returns the NVMe completion status. Conflicts and invalid fields carry DNR (as
// nvmet sets them): the same command fails the same way until the state changes.
func (s Status) NVMe() nvme.Status {
	switch s {
	case StatusOK:
		return nvme.StatusSuccess
	case StatusConflict:
		return nvme.StatusReservationConflict.WithDNR()
	case StatusInsufficientResources:
		return nvme.StatusInternalError
	}
	return nvme.StatusInvalidField.WithDNR()
}

// SCSIStatus is a SCSI status byte with, for CHECK CONDITION, the sense key and additional
// sense code to report. Plain numbers: engine/proto/scsi builds the sense data.
type SCSIStatus struct {
	Status   uint8 // 00h GOOD, 02h CHECK CONDITION, 18h RESERVATION CONFLICT
	SenseKey uint8 // 05h ILLEGAL REQUEST for the check conditions here
	ASC      uint8
	ASCQ     uint8
}

// SCSI status bytes and sense values used by reservations (SAM-5, SPC-4 Annex D).
const (
	SCSIGood                uint8 = 0x00
	SCSICheckCondition      uint8 = 0x02
	SCSIReservationConflict uint8 = 0x18
	SCSIIllegalRequest      uint8 = 0x05
)

// SCSI returns the SCSI status and sense of the outcome.
func (s Status) SCSI() SCSIStatus {
	ill := func(asc, ascq uint8) SCSIStatus {
		return SCSIStatus{SCSICheckCondition, SCSIIllegalRequest, asc, ascq}
	}
	switch s {
	case StatusOK:
		return SCSIStatus{Status: SCSIGood}
	case StatusConflict:
		return SCSIStatus{Status: SCSIReservationConflict}
	case StatusInvalidParameterList:
		return ill(0x26, 0x00)
	case StatusInvalidRelease:
		return ill(0x26, 0x04)
	case StatusInsufficientResources:
		return ill(0x55, 0x04)
	}
	return ill(0x24, 0x00)
}

// NoticeKind is a reservation event a registrant must hear about. Each kind is an NVMe
// Reservation Notification log type and a SCSI unit attention.
type NoticeKind uint8

// Notice kinds.
const (
	// RegistrationPreempted: the registrant's registration was removed by another's
	// PREEMPT (NVMe log type 1; SCSI REGISTRATIONS PREEMPTED 2Ah/05h).
	RegistrationPreempted NoticeKind = 1
	// ReservationReleased: the reservation was released or its type changed (NVMe log type
	// 2; SCSI RESERVATIONS RELEASED 2Ah/04h).
	ReservationReleased NoticeKind = 2
	// ReservationPreempted: a CLEAR removed everything (NVMe log type 3; SCSI
	// RESERVATIONS PREEMPTED 2Ah/03h).
	ReservationPreempted NoticeKind = 3
)

// NVMeLogType returns the Reservation Notification log page type (nvme.ResvNotif*).
func (k NoticeKind) NVMeLogType() uint8 {
	switch k {
	case RegistrationPreempted:
		return nvme.ResvNotifRegistrationPreempt
	case ReservationReleased:
		return nvme.ResvNotifReservationReleased
	case ReservationPreempted:
		return nvme.ResvNotifReservationPreempt
	}
	return nvme.ResvNotifEmpty
}

// SCSIUnitAttention returns the additional sense code and qualifier of the unit attention
// (sense key 06h UNIT ATTENTION).
func (k NoticeKind) SCSIUnitAttention() (asc, ascq uint8) {
	switch k {
	case RegistrationPreempted:
		return 0x2A, 0x05
	case ReservationReleased:
		return 0x2A, 0x04
	case ReservationPreempted:
		return 0x2A, 0x03
	}
	return 0, 0
}

// String names the kind for logs.
func (k NoticeKind) String() string {
	switch k {
	case RegistrationPreempted:
		return "registration preempted"
	case ReservationReleased:
		return "reservation released"
	case ReservationPreempted:
		return "reservation preempted"
	}
	return "notice " + strconv.Itoa(int(k))
}

// Notice is one notification to deliver: to every controller of an NVMe host (a
// Reservation Notification log entry and an AEN, unless that controller's mask, feature
// 82h, suppresses the kind) or as a unit attention to every I_T nexus the subject covers.
// The requester never gets a notice about its own command.
type Notice struct {
	Kind NoticeKind
	To   Subject
}

// Result is what Apply decided. On any Status other than StatusOK the state did not
// change and Notices and Aborts are empty.
type Result struct {
	Status  Status
	Notices []Notice
	// Aborts lists, for NVMe Preempt and Abort and SCSI PREEMPT AND ABORT, the subjects
	// whose registrations were preempted: the transports abort their in-flight commands
	// on this volume (SCSI: their task sets, except the PERSISTENT RESERVE OUT itself).
	Aborts []Subject
}

func fail(s Status) Result { return Result{Status: s} }

func (r *Result) notify(k NoticeKind, to Subject) {
	r.Notices = append(r.Notices, Notice{Kind: k, To: to})
}
