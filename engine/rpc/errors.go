package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// JSON-RPC 2.0 reserved error codes (JSON-RPC 2.0 specification, section 5.1).
const (
	CodeParseError     = -32700 // the bytes are not JSON, or the request is too large
	CodeInvalidRequest = -32600 // JSON, but not a valid request object
	CodeMethodNotFound = -32601 // no method of that name is registered
	CodeInvalidParams  = -32602 // params do not decode into the method's parameter type
	CodeInternalError  = -32603 // a handler panicked or failed in an unmapped way
)

// Application sentinels. Modules wrap them with context so that the client sees both the
// right code and a message naming the object:
//
//	return fmt.Errorf("bdev %q: %w", name, rpc.ErrNotFound)
//
// The code a sentinel maps to is fixed by codeTable; the message sent is the text of the
// whole (wrapped) error.
var (
	// ErrInvalidParams reports parameters that decode but make no sense together; it is
	// answered with -32602 like a decoding failure.
	ErrInvalidParams = errors.New("invalid params")
	// ErrInvalidState reports a method that exists but cannot run in the current state
	// (SPDK's -1 "Invalid state").
	ErrInvalidState = errors.New("invalid state")
	// ErrAgain reports a transient condition: the same call may succeed later.
	ErrAgain = errors.New("try again")
	// ErrNoMemory reports exhausted memory or a full preallocated pool.
	ErrNoMemory = errors.New("out of memory")
	// ErrBusy reports an object in use (a bdev claimed by a namespace, say).
	ErrBusy = errors.New("busy")
	// ErrExists reports an object that already exists under the requested name.
	ErrExists = errors.New("already exists")
	// ErrNotFound reports a named object (bdev, subsystem, listener, ...) that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid reports an argument value the module rejects (SPDK's -EINVAL).
	ErrInvalid = errors.New("invalid argument")
	// ErrNoSpace reports a full backing store or an exhausted ID space.
	ErrNoSpace = errors.New("no space left")
	// ErrNotSupported reports an operation the module or platform does not implement.
	ErrNotSupported = errors.New("not supported")
	// ErrTimeout reports an operation that did not finish in time.
	ErrTimeout = errors.New("timed out")
	// ErrCanceled reports an operation abandoned because its context was canceled.
	ErrCanceled = errors.New("canceled")
)

// codeEntry maps the errors that match via errors.Is to one wire code. The first error in
// match is the one (*Error).Is reports for that code on the client side.
type codeEntry struct {
	code  int
	match []error
}

// codeTable is the one table mapping Go errors to JSON-RPC error codes (STYLE.md: "RPC
// errors map sentinels to JSON-RPC codes in one table in rpc/"). Application codes are
// negative errno values, as SPDK sends them (spdk_jsonrpc_send_error_response(request, rc,
// spdk_strerror(-rc))), so that SPDK users read familiar numbers. Entries are tried in
// order and the first match wins: an error wrapping two sentinels gets the code listed
// first. An error matching no entry is answered with -32603 and its own text.
var codeTable = [...]codeEntry{
	{CodeInvalidParams, []error{ErrInvalidParams}},
	{-1, []error{ErrInvalidState}},                         // SPDK's "Invalid state"
	{-2, []error{fs.ErrNotExist}},                          // ENOENT: a file path
	{-11, []error{ErrAgain}},                               // EAGAIN
	{-12, []error{ErrNoMemory}},                            // ENOMEM
	{-13, []error{fs.ErrPermission}},                       // EACCES
	{-16, []error{ErrBusy}},                                // EBUSY
	{-17, []error{ErrExists, fs.ErrExist}},                 // EEXIST
	{-19, []error{ErrNotFound}},                            // ENODEV, SPDK's "no such bdev"
	{-22, []error{ErrInvalid}},                             // EINVAL
	{-28, []error{ErrNoSpace}},                             // ENOSPC
	{-95, []error{ErrNotSupported, errors.ErrUnsupported}}, // EOPNOTSUPP
	{-110, []error{ErrTimeout, context.DeadlineExceeded, os.ErrDeadlineExceeded}}, // ETIMEDOUT
	{-125, []error{ErrCanceled, context.Canceled}},                                // ECANCELED
}

// Error is a JSON-RPC 2.0 error object (specification section 5.1). The server sends it;
// Client.Call returns it, so callers can switch on Code or use errors.Is with the
// sentinels of codeTable (ErrNotFound, ErrExists, ...).
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Error formats the code the way sluicectl prints it: "error -19: bdev "x": not found".
func (e *Error) Error() string {
	return fmt.Sprintf("error %d: %s", e.Code, e.Message)
}

// Is reports whether target is the sentinel that codeTable maps to e.Code, so that
// errors.Is(err, rpc.ErrNotFound) holds for an error that crossed the socket.
func (e *Error) Is(target error) bool {
	for i := range codeTable {
		if codeTable[i].code == e.Code {
			return codeTable[i].match[0] == target
		}
	}
	return false
}

// AsError converts any error into the JSON-RPC error object the server sends for it: an
// *Error (possibly wrapped) keeps its code and data; otherwise codeTable picks the code.
// The message is always the full text of err, so the context that modules add survives.
// AsError(nil) is nil. Safe for concurrent use.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e == err {
			return e
		}
		// Keep the wrapping context but not the inner "error N:" prefix.
		msg := strings.Replace(err.Error(), e.Error(), e.Message, 1)
		return &Error{Code: e.Code, Message: msg, Data: e.Data}
	}
	return &Error{Code: codeOf(err), Message: err.Error()}
}

func codeOf(err error) int {
	for i := range codeTable {
		for _, m := range codeTable[i].match {
			if errors.Is(err, m) {
				return codeTable[i].code
			}
		}
	}
	return CodeInternalError
}

func errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
