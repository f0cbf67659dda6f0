package replication

import "sluice/engine/bdev"

// Errors, aliases of the bdev (hence RPC) sentinels so that a wrapped error reaches an
// RPC client with the right code.
var (
	ErrInvalid  = bdev.ErrInvalid
	ErrNotFound = bdev.ErrNotFound
	ErrExists   = bdev.ErrExists
	ErrState    = bdev.ErrClosed
)

// Status codes of error frames and failed acks: errno values, as the RPC layer's codes
// are, so that a log line reads the same on both nodes.
const (
	errnoIO       = 5
	errnoAccess   = 13
	errnoExists   = 17
	errnoInvalid  = 22
	errnoNoSpace  = 28
	errnoRange    = 34
	errnoCanceled = 125
)
