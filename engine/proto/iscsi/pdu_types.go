package iscsi

import "strconv"

// Opcode is the PDU opcode, BHS byte @0 bits 5..0 (RFC 7143 §11.2.1.2). Bit 5 tells the
// direction: initiator opcodes are 0x00-0x1f, target opcodes 0x20-0x3f.
type Opcode uint8

// Opcodes (RFC 7143 §11.2.1.2). 0x1c-0x1e and 0x3c-0x3e are vendor specific; the rest
// is reserved.
const (
	OpNOPOut         Opcode = 0x00 // §11.18
	OpSCSICommand    Opcode = 0x01 // §11.3
	OpTMFRequest     Opcode = 0x02 // §11.5
	OpLoginRequest   Opcode = 0x03 // §11.12
	OpTextRequest    Opcode = 0x04 // §11.10
	OpDataOut        Opcode = 0x05 // §11.7
	OpLogoutRequest  Opcode = 0x06 // §11.14
	OpSNACKRequest   Opcode = 0x10 // §11.16
	OpNOPIn          Opcode = 0x20 // §11.19
	OpSCSIResponse   Opcode = 0x21 // §11.4
	OpTMFResponse    Opcode = 0x22 // §11.6
	OpLoginResponse  Opcode = 0x23 // §11.13
	OpTextResponse   Opcode = 0x24 // §11.11
	OpDataIn         Opcode = 0x25 // §11.7
	OpLogoutResponse Opcode = 0x26 // §11.15
	OpR2T            Opcode = 0x31 // §11.8
	OpAsyncMessage   Opcode = 0x32 // §11.9
	OpReject         Opcode = 0x3f // §11.17
)

// FromInitiator reports whether PDUs with this opcode travel initiator to target (bit 5
// clear).
func (o Opcode) FromInitiator() bool { return o&0x20 == 0 }

// Defined reports whether the opcode is one of the standard opcodes above.
func (o Opcode) Defined() bool {
	switch o {
	case OpNOPOut, OpSCSICommand, OpTMFRequest, OpLoginRequest, OpTextRequest, OpDataOut,
		OpLogoutRequest, OpSNACKRequest, OpNOPIn, OpSCSIResponse, OpTMFResponse,
		OpLoginResponse, OpTextResponse, OpDataIn, OpLogoutResponse, OpR2T,
		OpAsyncMessage, OpReject:
		return true
	}
	return false
}

// String returns the RFC name of the opcode.
func (o Opcode) String() string {
	switch o {
	case OpNOPOut:
		return "NOP-Out"
	case OpSCSICommand:
		return "SCSI Command"
	case OpTMFRequest:
		return "Task Management Function Request"
	case OpLoginRequest:
		return "Login Request"
	case OpTextRequest:
		return "Text Request"
	case OpDataOut:
		return "SCSI Data-Out"
	case OpLogoutRequest:
		return "Logout Request"
	case OpSNACKRequest:
		return "SNACK Request"
	case OpNOPIn:
		return "NOP-In"
	case OpSCSIResponse:
		return "SCSI Response"
	case OpTMFResponse:
		return "Task Management Function Response"
	case OpLoginResponse:
		return "Login Response"
	case OpTextResponse:
		return "Text Response"
	case OpDataIn:
		return "SCSI Data-In"
	case OpLogoutResponse:
		return "Logout Response"
	case OpR2T:
		return "Ready To Transfer"
	case OpAsyncMessage:
		return "Asynchronous Message"
	case OpReject:
		return "Reject"
	}
	return "Opcode(0x" + strconv.FormatUint(uint64(o), 16) + ")"
}

// ReservedTag is the all-ones value of ITT/TTT fields that carry no tag (RFC 7143
// §11.2.1.8: 0xffffffff is reserved; NOP-Out with ITT 0xffffffff wants no answer, a
// NOP-In or Data-In with TTT 0xffffffff wants no acknowledgement).
const ReservedTag uint32 = 0xffffffff

// TaskAttr is the SCSI Command task attribute, byte @1 bits 2..0 (RFC 7143 §11.3.1,
// SAM-2 task attributes).
type TaskAttr uint8

// Task attributes. 5-7 are reserved.
const (
	TaskUntagged    TaskAttr = 0
	TaskSimple      TaskAttr = 1
	TaskOrdered     TaskAttr = 2
	TaskHeadOfQueue TaskAttr = 3
	TaskACA         TaskAttr = 4
)

// String names the attribute.
func (a TaskAttr) String() string {
	switch a {
	case TaskUntagged:
		return "untagged"
	case TaskSimple:
		return "simple"
	case TaskOrdered:
		return "ordered"
	case TaskHeadOfQueue:
		return "head of queue"
	case TaskACA:
		return "ACA"
	}
	return "TaskAttr(" + strconv.Itoa(int(a)) + ")"
}

// Stage is a login stage, the CSG and NSG fields of Login Request/Response byte @1
// (RFC 7143 §11.12.3). 2 is reserved.
type Stage uint8

// Login stages.
const (
	StageSecurity    Stage = 0 // SecurityNegotiation
	StageOperational Stage = 1 // LoginOperationalNegotiation
	StageFullFeature Stage = 3 // FullFeaturePhase
)

// String names the stage.
func (s Stage) String() string {
	switch s {
	case StageSecurity:
		return "SecurityNegotiation"
	case StageOperational:
		return "LoginOperationalNegotiation"
	case StageFullFeature:
		return "FullFeaturePhase"
	}
	return "Stage(" + strconv.Itoa(int(s)) + ")"
}

// SCSIResponseCode is the Response field of a SCSI Response, byte @2 (RFC 7143
// §11.4.3). 0x80-0xff are vendor specific.
type SCSIResponseCode uint8

// SCSI Response codes.
const (
	ResponseCompleted     SCSIResponseCode = 0x00 // Command Completed at Target
	ResponseTargetFailure SCSIResponseCode = 0x01 // Target Failure
)

// String names the code.
func (c SCSIResponseCode) String() string {
	switch c {
	case ResponseCompleted:
		return "command completed at target"
	case ResponseTargetFailure:
		return "target failure"
	}
	return "response 0x" + strconv.FormatUint(uint64(c), 16)
}

// TMFunction is the task management function, TMF Request byte @1 bits 6..0 (RFC 7143
// §11.5.1).
type TMFunction uint8

// Task management functions.
const (
	TMFAbortTask        TMFunction = 1
	TMFAbortTaskSet     TMFunction = 2
	TMFClearACA         TMFunction = 3
	TMFClearTaskSet     TMFunction = 4
	TMFLogicalUnitReset TMFunction = 5
	TMFTargetWarmReset  TMFunction = 6
	TMFTargetColdReset  TMFunction = 7
	TMFTaskReassign     TMFunction = 8
)

// String names the function.
func (f TMFunction) String() string {
	switch f {
	case TMFAbortTask:
		return "ABORT TASK"
	case TMFAbortTaskSet:
		return "ABORT TASK SET"
	case TMFClearACA:
		return "CLEAR ACA"
	case TMFClearTaskSet:
		return "CLEAR TASK SET"
	case TMFLogicalUnitReset:
		return "LOGICAL UNIT RESET"
	case TMFTargetWarmReset:
		return "TARGET WARM RESET"
	case TMFTargetColdReset:
		return "TARGET COLD RESET"
	case TMFTaskReassign:
		return "TASK REASSIGN"
	}
	return "TMFunction(" + strconv.Itoa(int(f)) + ")"
}

// TMFResponseCode is the Response field of a TMF Response, byte @2 (RFC 7143 §11.6.1).
type TMFResponseCode uint8

// TMF response codes.
const (
	TMFComplete             TMFResponseCode = 0
	TMFTaskNotExist         TMFResponseCode = 1
	TMFLUNNotExist          TMFResponseCode = 2
	TMFTaskStillAllegiant   TMFResponseCode = 3
	TMFReassignNotSupported TMFResponseCode = 4
	TMFNotSupported         TMFResponseCode = 5
	TMFAuthorizationFailed  TMFResponseCode = 6
	TMFRejected             TMFResponseCode = 255
)

// String names the code.
func (c TMFResponseCode) String() string {
	switch c {
	case TMFComplete:
		return "function complete"
	case TMFTaskNotExist:
		return "task does not exist"
	case TMFLUNNotExist:
		return "LUN does not exist"
	case TMFTaskStillAllegiant:
		return "task still allegiant"
	case TMFReassignNotSupported:
		return "task allegiance reassignment not supported"
	case TMFNotSupported:
		return "task management function not supported"
	case TMFAuthorizationFailed:
		return "function authorization failed"
	case TMFRejected:
		return "function rejected"
	}
	return "TMFResponseCode(" + strconv.Itoa(int(c)) + ")"
}

// RejectReason is the Reason field of a Reject PDU, byte @2 (RFC 7143 §11.17.1).
type RejectReason uint8

// Reject reasons. 0x01 is reserved and 0x0b (Negotiation Reset in RFC 3720) is
// deprecated and must not be sent.
const (
	RejectDataDigest          RejectReason = 0x02 // data (payload) digest error
	RejectSNACK               RejectReason = 0x03 // SNACK Reject
	RejectProtocolError       RejectReason = 0x04
	RejectCommandNotSupported RejectReason = 0x05
	RejectImmediateCommand    RejectReason = 0x06 // too many immediate commands
	RejectTaskInProgress      RejectReason = 0x07
	RejectInvalidDataAck      RejectReason = 0x08
	RejectInvalidPDUField     RejectReason = 0x09
	RejectLongOperation       RejectReason = 0x0a // can't generate TTT: out of resources
	RejectWaitingForLogout    RejectReason = 0x0c
)

// String names the reason.
func (r RejectReason) String() string {
	switch r {
	case RejectDataDigest:
		return "data digest error"
	case RejectSNACK:
		return "SNACK reject"
	case RejectProtocolError:
		return "protocol error"
	case RejectCommandNotSupported:
		return "command not supported"
	case RejectImmediateCommand:
		return "immediate command reject"
	case RejectTaskInProgress:
		return "task in progress"
	case RejectInvalidDataAck:
		return "invalid data ack"
	case RejectInvalidPDUField:
		return "invalid pdu field"
	case RejectLongOperation:
		return "long operation reject"
	case RejectWaitingForLogout:
		return "waiting for logout"
	}
	return "RejectReason(0x" + strconv.FormatUint(uint64(r), 16) + ")"
}

// LogoutReason is the reason code of a Logout Request, byte @1 bits 6..0 (RFC 7143
// §11.14.1).
type LogoutReason uint8

// Logout reason codes.
const (
	LogoutCloseSession     LogoutReason = 0
	LogoutCloseConnection  LogoutReason = 1
	LogoutRemoveForRecover LogoutReason = 2 // remove the connection for recovery
)

// String names the reason.
func (r LogoutReason) String() string {
	switch r {
	case LogoutCloseSession:
		return "close the session"
	case LogoutCloseConnection:
		return "close the connection"
	case LogoutRemoveForRecover:
		return "remove the connection for recovery"
	}
	return "LogoutReason(" + strconv.Itoa(int(r)) + ")"
}

// LogoutResponseCode is the Response field of a Logout Response, byte @2 (RFC 7143
// §11.15.1).
type LogoutResponseCode uint8

// Logout response codes.
const (
	LogoutSuccess              LogoutResponseCode = 0 // connection or session closed
	LogoutCIDNotFound          LogoutResponseCode = 1
	LogoutRecoveryNotSupported LogoutResponseCode = 2
	LogoutCleanupFailed        LogoutResponseCode = 3
)

// String names the code.
func (c LogoutResponseCode) String() string {
	switch c {
	case LogoutSuccess:
		return "closed successfully"
	case LogoutCIDNotFound:
		return "CID not found"
	case LogoutRecoveryNotSupported:
		return "connection recovery is not supported"
	case LogoutCleanupFailed:
		return "cleanup failed"
	}
	return "LogoutResponseCode(" + strconv.Itoa(int(c)) + ")"
}

// AsyncEvent is the AsyncEvent field of an Asynchronous Message, byte @36 (RFC 7143
// §11.9.1). 5-254 are reserved; 255 is vendor specific.
type AsyncEvent uint8

// Asynchronous events.
const (
	AsyncSCSIEvent          AsyncEvent = 0 // sense data in the data segment
	AsyncRequestLogout      AsyncEvent = 1 // Parameter3: seconds to wait for the logout
	AsyncDropConnection     AsyncEvent = 2 // Parameter1 CID, 2 Time2Wait, 3 Time2Retain
	AsyncDropAllConnections AsyncEvent = 3 // Parameter2 Time2Wait, 3 Time2Retain
	AsyncRenegotiate        AsyncEvent = 4 // Parameter3: seconds to wait for the Text Request
	AsyncVendorSpecific     AsyncEvent = 255
)

// String names the event.
func (e AsyncEvent) String() string {
	switch e {
	case AsyncSCSIEvent:
		return "SCSI asynchronous event"
	case AsyncRequestLogout:
		return "target requests logout"
	case AsyncDropConnection:
		return "target will drop the connection"
	case AsyncDropAllConnections:
		return "target will drop all connections"
	case AsyncRenegotiate:
		return "target requests parameter negotiation"
	case AsyncVendorSpecific:
		return "vendor specific"
	}
	return "AsyncEvent(" + strconv.Itoa(int(e)) + ")"
}

// SNACKType is the Type field of a SNACK Request, byte @1 bits 3..0 (RFC 7143 §11.16.1).
type SNACKType uint8

// SNACK types.
const (
	SNACKDataR2T SNACKType = 0 // Data/R2T SNACK
	SNACKStatus  SNACKType = 1
	SNACKDataACK SNACKType = 2
	SNACKRData   SNACKType = 3 // R-Data SNACK
)

// String names the type.
func (t SNACKType) String() string {
	switch t {
	case SNACKDataR2T:
		return "Data/R2T"
	case SNACKStatus:
		return "Status"
	case SNACKDataACK:
		return "DataACK"
	case SNACKRData:
		return "R-Data"
	}
	return "SNACKType(" + strconv.Itoa(int(t)) + ")"
}
