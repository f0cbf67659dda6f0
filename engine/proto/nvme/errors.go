package nvme

import (
	"errors"
	"strconv"
)

// ErrShortBuffer reports that a decoder was handed fewer bytes than the structure needs.
// It is a programming or framing error on the caller's side, never a wire status.
var ErrShortBuffer = errors.New("nvme: buffer too short")

// FES is the Fatal Error Status of an NVMe/TCP termination request (TCP §3.6.2.4/5,
// H2CTermReq/C2HTermReq PSH @8).
type FES uint16

// Fatal Error Status values (TCP Figure "Fatal Error Status").
const (
	// FESInvalidHeaderField: a PDU header field is invalid; FEI is the byte offset of
	// the field from the start of the PDU.
	FESInvalidHeaderField FES = 0x01
	// FESPDUSequenceError: a PDU arrived that is not valid in the connection's state.
	FESPDUSequenceError FES = 0x02
	// FESHeaderDigestError: the header digest did not match.
	FESHeaderDigestError FES = 0x03
	// FESDataOutOfRange: H2CData/C2HData offset or length is outside the transfer.
	FESDataOutOfRange FES = 0x04
	// FESDataLimitExceeded: data or R2T limits exceeded (also "R2T limit exceeded").
	FESDataLimitExceeded FES = 0x05
	// FESUnsupportedParameter: an ICReq/ICResp or header parameter is unsupported;
	// FEI is the byte offset of the parameter.
	FESUnsupportedParameter FES = 0x06
)

// String names the FES for logs.
func (f FES) String() string {
	switch f {
	case FESInvalidHeaderField:
		return "invalid header field"
	case FESPDUSequenceError:
		return "pdu sequence error"
	case FESHeaderDigestError:
		return "header digest error"
	case FESDataOutOfRange:
		return "data transfer out of range"
	case FESDataLimitExceeded:
		return "data transfer limit exceeded"
	case FESUnsupportedParameter:
		return "unsupported parameter"
	}
	return "fes 0x" + strconv.FormatUint(uint64(f), 16)
}

// PDUError is a fatal NVMe/TCP transport error: the receiver must send a TermReq with
// FES and FEI (FEI is the byte offset of the offending field from the start of the PDU
// for FES 01h and 06h, and 0 otherwise), then close the connection (TCP §3.6.2.4).
// Never answer a received TermReq with a TermReq: just close.
//
// The errors returned by this package's hot-path checks are preallocated package
// values, so returning one allocates nothing; callers must treat them as read-only.
type PDUError struct {
	FES    FES
	FEI    uint32
	Reason string
}

// Error formats the error for logs. It allocates; keep it off the per-I/O path.
func (e *PDUError) Error() string {
	return "nvme/tcp: " + e.Reason + " (fes " + e.FES.String() + ", fei " +
		strconv.FormatUint(uint64(e.FEI), 10) + ")"
}

func newPDUError(fes FES, fei uint32, reason string) *PDUError {
	return &PDUError{FES: fes, FEI: fei, Reason: reason}
}
