package iscsi

import "strconv"

// Status is a Login Response Status-Class (@36) and Status-Detail (@37) pair, held as
// class<<8 | detail so that the constants read like the RFC's table (RFC 7143
// §11.13.5): 0x0201 is class 2 (initiator error), detail 1 (authentication failure).
type Status uint16

// Login statuses, every one RFC 7143 §11.13.5 defines.
const (
	// Class 0: success.
	StatusSuccess Status = 0x0000

	// Class 1: redirection. The response carries TargetAddress.
	StatusTargetMovedTemporarily Status = 0x0101
	StatusTargetMovedPermanently Status = 0x0102

	// Class 2: initiator error; the initiator should not retry as is.
	StatusInitiatorError          Status = 0x0200
	StatusAuthenticationFailure   Status = 0x0201
	StatusAuthorizationFailure    Status = 0x0202
	StatusNotFound                Status = 0x0203
	StatusTargetRemoved           Status = 0x0204
	StatusUnsupportedVersion      Status = 0x0205
	StatusTooManyConnections      Status = 0x0206
	StatusMissingParameter        Status = 0x0207
	StatusCantIncludeInSession    Status = 0x0208
	StatusSessionTypeNotSupported Status = 0x0209
	StatusSessionDoesNotExist     Status = 0x020a
	StatusInvalidDuringLogin      Status = 0x020b

	// Class 3: target error; the initiator may retry later.
	StatusTargetError        Status = 0x0300
	StatusServiceUnavailable Status = 0x0301
	StatusOutOfResources     Status = 0x0302
)

// Status classes (RFC 7143 §11.13.5).
const (
	StatusClassSuccess        uint8 = 0
	StatusClassRedirection    uint8 = 1
	StatusClassInitiatorError uint8 = 2
	StatusClassTargetError    uint8 = 3
)

// NewStatus builds a Status from the two bytes of a Login Response.
func NewStatus(class, detail uint8) Status { return Status(class)<<8 | Status(detail) }

// Class is Status-Class, Login Response byte @36.
func (s Status) Class() uint8 { return uint8(s >> 8) }

// Detail is Status-Detail, Login Response byte @37.
func (s Status) Detail() uint8 { return uint8(s) }

// Success reports class 0.
func (s Status) Success() bool { return s.Class() == StatusClassSuccess }

// String names the status as RFC 7143 §11.13.5 does, with its code.
func (s Status) String() string {
	name := s.name()
	code := strconv.FormatUint(uint64(s)|0x10000, 16)[1:]
	if name == "" {
		return "status 0x" + code
	}
	return name + " (0x" + code + ")"
}

func (s Status) name() string {
	switch s {
	case StatusSuccess:
		return "success"
	case StatusTargetMovedTemporarily:
		return "target moved temporarily"
	case StatusTargetMovedPermanently:
		return "target moved permanently"
	case StatusInitiatorError:
		return "initiator error"
	case StatusAuthenticationFailure:
		return "authentication failure"
	case StatusAuthorizationFailure:
		return "authorization failure"
	case StatusNotFound:
		return "not found"
	case StatusTargetRemoved:
		return "target removed"
	case StatusUnsupportedVersion:
		return "unsupported version"
	case StatusTooManyConnections:
		return "too many connections"
	case StatusMissingParameter:
		return "missing parameter"
	case StatusCantIncludeInSession:
		return "can't include in session"
	case StatusSessionTypeNotSupported:
		return "session type not supported"
	case StatusSessionDoesNotExist:
		return "session does not exist"
	case StatusInvalidDuringLogin:
		return "invalid during login"
	case StatusTargetError:
		return "target error"
	case StatusServiceUnavailable:
		return "service unavailable"
	case StatusOutOfResources:
		return "out of resources"
	}
	return ""
}
