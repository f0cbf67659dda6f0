package initiator

import (
	"errors"
	"strconv"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// Sentinel errors. The ones the asynchronous path returns (ErrTagBusy, ErrTagRange,
// ErrBadLength, ErrNothingOutstanding, ErrAborted) are package values, so returning
// them allocates nothing.
var (
	// ErrClosed: the session was closed (or reset) by this initiator.
	ErrClosed = errors.New("iscsi initiator: closed")
	// ErrTimeout: nothing arrived from the target within the timeout while a command
	// or request was outstanding. It is fatal: the session is closed, since the fate
	// of what was outstanding is unknown (ErrorRecoveryLevel 0 has no recovery within
	// a session).
	ErrTimeout = errors.New("iscsi initiator: timed out")
	// ErrDisconnected is matched by every *ConnError: the target closed or reset the
	// connection, or it failed under us.
	ErrDisconnected = errors.New("iscsi initiator: connection lost")
	// ErrProtocol is matched by every *ProtocolError.
	ErrProtocol = errors.New("iscsi initiator: protocol violation by the target")
	// ErrLogin is matched by every *LoginError.
	ErrLogin = errors.New("iscsi initiator: login failed")
	// ErrTagBusy: the tag names a command that has not been reaped yet.
	ErrTagBusy = errors.New("iscsi initiator: tag in use")
	// ErrTagRange: the tag is not below the queue depth.
	ErrTagRange = errors.New("iscsi initiator: tag out of range")
	// ErrBadLength: a block count or buffer that cannot describe the transfer.
	ErrBadLength = errors.New("iscsi initiator: bad transfer length")
	// ErrNothingOutstanding: Reap was called with no command outstanding; it would
	// block forever.
	ErrNothingOutstanding = errors.New("iscsi initiator: no command outstanding")
	// ErrQueueFull: every tag is in use, so a synchronous helper found no slot.
	ErrQueueFull = errors.New("iscsi initiator: queue full")
	// ErrAborted completes a command that a task management function (ABORT TASK,
	// ABORT TASK SET, LOGICAL UNIT RESET) ended: the target sends no status for it
	// (RFC 7143 §11.5.1), so whether a write reached the medium is unknown.
	ErrAborted = errors.New("iscsi initiator: command aborted by task management")
	// ErrLoggedOut completes a command still outstanding when the target answered a
	// session logout: it ended with the session and no status came.
	ErrLoggedOut = errors.New("iscsi initiator: command outstanding at logout")
	// ErrDiscovery: a SCSI command or task management function on a discovery session.
	ErrDiscovery = errors.New("iscsi initiator: discovery session carries no SCSI commands")
	// ErrTextRejected: the target answered a text key (SendTargets) with Reject.
	ErrTextRejected = errors.New("iscsi initiator: the target rejected the text key")
	// ErrTargetAuth: mutual CHAP failed, the target did not prove the secret it was
	// configured with (or tried to reflect the initiator's challenge).
	ErrTargetAuth = errors.New("iscsi initiator: target failed mutual CHAP authentication")
)

// ProtocolError is a violation of RFC 7143 by the target, found by this initiator. The
// session is dead afterwards: its connection is closed, as an initiator at
// ErrorRecoveryLevel 0 recovers by starting a new session.
type ProtocolError struct {
	// Opcode is the offending PDU's opcode.
	Opcode proto.Opcode
	// Offset is the byte offset in the BHS of the offending field (informational).
	Offset int
	// ITT is the offending PDU's Initiator Task Tag.
	ITT    uint32
	Reason string
	// Err is the underlying cause, often a *proto.PDUError.
	Err error
}

func (e *ProtocolError) Error() string {
	s := "iscsi initiator: target protocol violation: " + e.Reason + " (" + e.Opcode.String() +
		" @" + strconv.Itoa(e.Offset) + ", itt 0x" + strconv.FormatUint(uint64(e.ITT), 16) + ")"
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *ProtocolError) Unwrap() error { return e.Err }

// Is matches ErrProtocol.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

// ConnError is a transport failure: the connection closed, was reset, or a read or
// write failed.
type ConnError struct {
	Op  string
	Err error
}

func (e *ConnError) Error() string { return "iscsi initiator: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the socket error.
func (e *ConnError) Unwrap() error { return e.Err }

// Is matches ErrDisconnected.
func (e *ConnError) Is(target error) bool { return target == ErrDisconnected }

// LoginError is a login the target refused: Status is the Status-Class and
// Status-Detail of its final Login Response (RFC 7143 §11.13.5). A redirection (class
// 1) carries the TargetAddress to try.
type LoginError struct {
	Status        proto.Status
	TargetAddress string
}

func (e *LoginError) Error() string {
	s := "iscsi initiator: login refused: " + e.Status.String()
	if e.TargetAddress != "" {
		s += " (TargetAddress " + e.TargetAddress + ")"
	}
	return s
}

// Is matches ErrLogin.
func (e *LoginError) Is(target error) bool { return target == ErrLogin }

// RejectError is a Reject PDU the target answered a request of this initiator with
// (RFC 7143 §11.17). Opcode is the rejected PDU's.
type RejectError struct {
	Reason proto.RejectReason
	Opcode proto.Opcode
}

func (e *RejectError) Error() string {
	return "iscsi initiator: target rejected " + e.Opcode.String() + ": " + e.Reason.String()
}

// TMFError is a task management function that did not complete: Response is the TMF
// Response code (RFC 7143 §11.6.1).
type TMFError struct {
	Function proto.TMFunction
	Response proto.TMFResponseCode
}

func (e *TMFError) Error() string {
	return "iscsi initiator: " + e.Function.String() + ": " + e.Response.String()
}

// LogoutError is a logout the target answered with a code other than success.
type LogoutError struct {
	Response proto.LogoutResponseCode
}

func (e *LogoutError) Error() string { return "iscsi initiator: logout: " + e.Response.String() }

// StatusError is a SCSI command that completed with a status other than GOOD, or with
// a response other than "command completed at target". The synchronous helpers return
// it; the asynchronous path reports the status in the Completion instead.
type StatusError struct {
	Op       string
	Response proto.SCSIResponseCode
	Status   pscsi.Status
	// Sense is the decoded sense data, when HasSense.
	Sense    pscsi.Sense
	HasSense bool
}

func (e *StatusError) Error() string {
	s := "iscsi initiator: " + e.Op + ": "
	if e.Response != proto.ResponseCompleted {
		return s + e.Response.String()
	}
	s += "status " + e.Status.String()
	if e.HasSense {
		s += ", sense " + e.Sense.Key.String() + " " + e.Sense.Code.String()
	}
	return s
}

// IsSense reports whether err is a *StatusError carrying sense key k.
func IsSense(err error, k pscsi.SenseKey) bool {
	var se *StatusError
	return errors.As(err, &se) && se.HasSense && se.Sense.Key == k
}
