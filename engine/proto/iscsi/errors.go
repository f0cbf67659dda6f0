package iscsi

import (
	"errors"
	"strconv"
)

// ErrShortBuffer reports that a decoder was handed fewer bytes than the structure needs.
// It is a framing or programming error on the caller's side, never a wire status.
var ErrShortBuffer = errors.New("iscsi: buffer too short")

// ErrOpcode reports that a typed decoder was handed a BHS of another opcode. The caller
// switches on [BHS.Opcode] first; this is a programming error, never a wire status.
var ErrOpcode = errors.New("iscsi: decoder does not match the pdu opcode")

// PDUError is a protocol error found in a received PDU. Reason is the Reject reason
// (RFC 7143 §11.17.1) the receiver puts in the Reject PDU it answers with; a zero Reason
// means no Reject can be sent and the connection must be dropped, as after a header
// digest error: the length fields cannot be trusted, so the next PDU cannot be found
// without markers (RFC 7143 §7.8, §11.17.1 note on header digest errors).
//
// The errors returned by this package's hot-path checks are preallocated package values,
// so returning one allocates nothing; callers must treat them as read-only.
type PDUError struct {
	Reason RejectReason
	// Offset is the byte offset in the BHS of the offending field (informational, for
	// logs and counters).
	Offset uint8
	Msg    string
}

// Fatal reports whether the connection must be dropped instead of answering with a
// Reject.
func (e *PDUError) Fatal() bool { return e.Reason == 0 }

// Error formats the error for logs. It allocates; keep it off the per-I/O path.
func (e *PDUError) Error() string {
	s := "iscsi: " + e.Msg + " (@" + strconv.Itoa(int(e.Offset))
	if e.Fatal() {
		return s + ", drop connection)"
	}
	return s + ", reject reason " + e.Reason.String() + ")"
}

func newPDUError(r RejectReason, off uint8, msg string) *PDUError {
	return &PDUError{Reason: r, Offset: off, Msg: msg}
}

// Text and negotiation errors. They travel inside a [LoginError] during login (status
// 0200, initiator error) and make the caller answer a Text Request with a Reject
// (reason protocol error) in full feature phase.
var (
	// ErrTextSyntax: a key=value pair without "=", an empty key name, or a block that
	// does not end with the NUL that terminates every pair (RFC 7143 §6.1).
	ErrTextSyntax = errors.New("iscsi: malformed key=value text")
	// ErrKeyTooLong: a key name above 63 bytes (RFC 7143 §6.1, standard-label).
	ErrKeyTooLong = errors.New("iscsi: key name longer than 63 bytes")
	// ErrValueTooLong: a value above 255 bytes, or above 8192 bytes for the keys that
	// carry large binary values (CHAP_C, CHAP_R) (RFC 7143 §6.1).
	ErrValueTooLong = errors.New("iscsi: key value too long")
	// ErrDuplicateKey: a key offered twice in one negotiation (RFC 7143 §6.2: "an
	// attempt to renegotiate/redeclare parameters not specifically allowed MUST be
	// detected").
	ErrDuplicateKey = errors.New("iscsi: key sent twice in one negotiation")
	// ErrTextTooLong: a logical text data segment assembled from C-bit continuations
	// grew past the assembler's bound.
	ErrTextTooLong = errors.New("iscsi: text data segment too long")
	// ErrBadValue: a value that does not parse as the number, boolean or binary value
	// its key needs.
	ErrBadValue = errors.New("iscsi: malformed value")
)

// LoginError is a failed login: Status is the Status-Class/Status-Detail the target
// answers with in its final Login Response before dropping the connection.
type LoginError struct {
	Status Status
	Key    string // the key at fault, if any
	Err    error  // the underlying cause, if any
}

// Error formats the error for logs.
func (e *LoginError) Error() string {
	s := "iscsi: login failed: " + e.Status.String()
	if e.Key != "" {
		s += " (key " + e.Key + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *LoginError) Unwrap() error { return e.Err }

func loginErr(st Status, key string, err error) *LoginError {
	return &LoginError{Status: st, Key: key, Err: err}
}
