package group

import (
	"errors"
	"fmt"
)

// ErrRetryable marks a refusal: the group did not take the command and nothing changed
// (no key, no generation, no log entry). The protocol layers answer it with a status the
// host retries and never reads as fencing: NVMe Command Interrupted (SCT 0, SC 21h) with
// DNR clear, SCSI BUSY. Every refusal reason below wraps it, so errors.Is(err,
// ErrRetryable) is the one test a caller needs.
var ErrRetryable = errors.New("retryable")

// Refusal reasons. Each wraps ErrRetryable.
var (
	// ErrNotSynchronized: the command asks to persist and the backup group leader did not
	// become synchronized within the catch-up grace (DESIGN.md, the admission rule).
	ErrNotSynchronized = fmt.Errorf("backup group leader not synchronized: %w", ErrRetryable)
	// ErrNoBackup: the command asks to persist and the group has no backup group leader.
	ErrNoBackup = fmt.Errorf("no backup group leader: %w", ErrRetryable)
	// ErrNoQuorum: the group leader has not heard from a quorum within an election
	// timeout (its lease lapsed), so it admits nothing.
	ErrNoQuorum = fmt.Errorf("group leader has no quorum: %w", ErrRetryable)
	// ErrNoLeader: no group leader could be reached in time.
	ErrNoLeader = fmt.Errorf("no group leader: %w", ErrRetryable)
	// ErrNotReady: a new group leader has not yet decided the group incarnation (see the
	// package doc, "Whole-group restart"), or it is handing leadership to the BGL.
	ErrNotReady = fmt.Errorf("group leader not ready: %w", ErrRetryable)
	// ErrDropped: the proposal was lost in a leader change before it committed; its log
	// index now holds another entry, so it never took effect.
	ErrDropped = fmt.Errorf("proposal dropped by a leader change: %w", ErrRetryable)
)

// ErrOutcomeUnknown reports a command that was handed to the group leader but whose
// answer never came back (the leader died, the context ended): the command may or may not
// have taken effect. It does not wrap ErrRetryable, because "nothing changed" is not
// known; the protocols still answer it with the same retryable status, and the manager
// learns the truth from the Subscribe events.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// Operating errors.
var (
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("group node closed")
	// ErrInvalid: an argument the group rejects (unknown member, zero ID, ...).
	ErrInvalid = errors.New("invalid argument")
	// ErrExists: the node already belongs to a group, or the member already exists.
	ErrExists = errors.New("already exists")
	// ErrNotFound: no such member or volume.
	ErrNotFound = errors.New("not found")
	// ErrNotEmpty: a node that holds reservation state cannot join another group (its
	// state would be discarded).
	ErrNotEmpty = errors.New("node holds reservation state")
	// ErrStandalone: the operation needs a group and the node is standalone.
	ErrStandalone = errors.New("node is standalone")
	// ErrStorage: the node's storage failed; the node stops serving (raft cannot go on
	// safely without its log).
	ErrStorage = errors.New("group storage failed")
)

// Code is an error on the wire between nodes (forwarded commands): the sentinels above,
// numbered, so that the origin returns the same sentinel its caller can test for.
type Code uint8

// Codes.
const (
	CodeOK Code = iota
	CodeNotSynchronized
	CodeNoBackup
	CodeNoQuorum
	CodeNoLeader
	CodeNotReady
	CodeDropped
	CodeOutcomeUnknown
	CodeClosed
	CodeInvalid
	CodeExists
	CodeNotFound
	CodeNotEmpty
	CodeStandalone
	CodeStorage
	CodeInternal
	codeCount
)

var codeErrors = [codeCount]error{nil, ErrNotSynchronized, ErrNoBackup, ErrNoQuorum,
	ErrNoLeader, ErrNotReady, ErrDropped, ErrOutcomeUnknown, ErrClosed, ErrInvalid, ErrExists,
	ErrNotFound, ErrNotEmpty, ErrStandalone, ErrStorage, nil}

// codeOf maps an error to its wire code; unmapped errors are CodeInternal.
func codeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	for c := CodeNotSynchronized; c < codeCount; c++ {
		if codeErrors[c] != nil && errors.Is(err, codeErrors[c]) {
			return c
		}
	}
	return CodeInternal
}

// errorOf rebuilds the error a peer sent: the sentinel, wrapped with the peer's text.
func errorOf(c Code, msg string) error {
	if c == CodeOK {
		return nil
	}
	if c < codeCount && codeErrors[c] != nil {
		if msg == "" || msg == codeErrors[c].Error() {
			return codeErrors[c]
		}
		return &remoteError{msg: msg, sentinel: codeErrors[c]}
	}
	return &remoteError{msg: msg}
}

// remoteError is an error that crossed the peer link: its text is the remote node's, and
// errors.Is matches the sentinel its code named.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string {
	if e.msg == "" {
		return "group leader: internal error"
	}
	return "group leader: " + e.msg
}

func (e *remoteError) Unwrap() error { return e.sentinel }

// errorf is fmt.Errorf, short for the many refusals the leader builds.
var errorf = fmt.Errorf
