package host

import (
	"errors"
	"strconv"

	"sluice/engine/proto/nvme"
)

// Sentinel errors. The ones the asynchronous I/O path returns (ErrTagBusy, ErrTagRange,
// ErrBadLength, ErrNothingOutstanding) are package values, so returning them allocates
// nothing.
var (
	// ErrClosed: the controller or queue was closed by this host.
	ErrClosed = errors.New("nvme/tcp host: closed")
	// ErrTimeout: a command (or the ICResp, or CSTS.RDY) did not arrive in time. On an
	// I/O queue it is fatal: the queue is closed, as the Linux host resets the
	// association.
	ErrTimeout = errors.New("nvme/tcp host: timed out")
	// ErrProtocol is matched (errors.Is) by every *ProtocolError.
	ErrProtocol = errors.New("nvme/tcp host: protocol violation by the controller")
	// ErrTerminated is matched by every *TermReqError.
	ErrTerminated = errors.New("nvme/tcp host: controller terminated the connection")
	// ErrTagBusy: the tag names a command that has not completed yet.
	ErrTagBusy = errors.New("nvme/tcp host: tag in use")
	// ErrTagRange: the tag is not below the queue size.
	ErrTagRange = errors.New("nvme/tcp host: tag out of range")
	// ErrBadLength: a block count outside 1..65536 or a buffer that cannot carry it.
	ErrBadLength = errors.New("nvme/tcp host: bad transfer length")
	// ErrNothingOutstanding: Reap was called with no command in flight; it would block
	// forever.
	ErrNothingOutstanding = errors.New("nvme/tcp host: no command outstanding")
	// ErrBusy: a synchronous helper was called while asynchronous commands are in
	// flight on the same queue.
	ErrBusy = errors.New("nvme/tcp host: asynchronous commands outstanding")
	// ErrQueueFull: every command slot is in use.
	ErrQueueFull = errors.New("nvme/tcp host: queue full")
	// ErrNoIOQueues: the controller granted no more I/O queues (Set Features 07h).
	ErrNoIOQueues = errors.New("nvme/tcp host: no I/O queue left")
	// ErrUnsupported: the controller asks for something this host does not do (in-band
	// authentication) or the command cannot be expressed (bidirectional data).
	ErrUnsupported = errors.New("nvme/tcp host: unsupported")
)

// StatusError is a command that completed with a non-success NVMe status. DW0 is the
// completion's command-specific dword 0 (for a Connect "invalid parameters" failure,
// decode it with nvme.ConnectInvalidParam).
//
// errors.Is(err, &StatusError{Status: s}) matches on the status code type and code,
// ignoring DNR, More and CRD.
type StatusError struct {
	Status nvme.Status
	DW0    uint32
	Op     string // what was being done, for the message
}

func (e *StatusError) Error() string {
	if e.Op == "" {
		return "nvme: " + e.Status.String()
	}
	return e.Op + ": nvme: " + e.Status.String()
}

// Is matches another *StatusError with the same (SCT, SC).
func (e *StatusError) Is(target error) bool {
	t, ok := target.(*StatusError)
	return ok && t.Status.Code() == e.Status.Code()
}

// IsStatus reports whether err carries NVMe status s (compared without DNR, More and
// CRD).
func IsStatus(err error, s nvme.Status) bool {
	return errors.Is(err, &StatusError{Status: s})
}

// ProtocolError is a violation of NVMe/TCP or NVMe by the controller, found by this
// host. When FES is nonzero the host sent an H2CTermReq with FES and FEI (the byte
// offset of the offending field in the PDU) and closed the connection. FES is 0 for
// violations that are not framing errors (a bad Identify, an unexpected status).
type ProtocolError struct {
	PDU    nvme.PDUType // type of the offending PDU, when one is to blame
	FES    nvme.FES
	FEI    uint32
	Reason string
	Err    error // underlying cause, often a *nvme.PDUError
}

func (e *ProtocolError) Error() string {
	s := "nvme/tcp host: controller protocol violation: " + e.Reason
	if e.FES != 0 {
		s += " (" + e.PDU.String() + ", fes " + e.FES.String() + ", fei " +
			strconv.FormatUint(uint64(e.FEI), 10) + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *ProtocolError) Unwrap() error { return e.Err }

// Is matches ErrProtocol.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

// protoErr builds a framing violation (one the host answers with an H2CTermReq).
func protoErr(t nvme.PDUType, fes nvme.FES, fei uint32, reason string) *ProtocolError {
	return &ProtocolError{PDU: t, FES: fes, FEI: fei, Reason: reason}
}

// pduErr converts a codec *nvme.PDUError on a received PDU.
func pduErr(t nvme.PDUType, err error) error {
	var pe *nvme.PDUError
	if errors.As(err, &pe) {
		return &ProtocolError{PDU: t, FES: pe.FES, FEI: pe.FEI, Reason: pe.Reason, Err: err}
	}
	return err
}

// gateErr builds a non-framing violation (a bad Identify or property value).
func gateErr(reason string) *ProtocolError { return &ProtocolError{Reason: reason} }

// TermReqError is a C2HTermReq received from the controller: it found a fatal error
// in what this host sent. Data is the error data, a copy of the offending PDU header.
type TermReqError struct {
	FES  nvme.FES
	FEI  uint32
	Data []byte
}

func (e *TermReqError) Error() string {
	return "nvme/tcp host: controller sent C2HTermReq: " + e.FES.String() + " (fei " +
		strconv.FormatUint(uint64(e.FEI), 10) + ")"
}

// Is matches ErrTerminated.
func (e *TermReqError) Is(target error) bool { return target == ErrTerminated }
