//go:build !cgo || !linux

package uring

// Ring is unavailable in this build: New always fails, so no Ring is ever made and the
// methods below exist only so that callers compile.
type Ring struct{}

// New returns ErrNotSupported: this build has no liburing.
func New(entries int) (*Ring, error) { return nil, ErrNotSupported }

// FD returns -1.
func (r *Ring) FD() int { return -1 }

// Entries returns 0.
func (r *Ring) Entries() int { return 0 }

// Space returns 0.
func (r *Ring) Space() int { return 0 }

// Inflight returns 0.
func (r *Ring) Inflight() int { return 0 }

// PrepRead returns false.
func (r *Ring) PrepRead(fd int, buf []byte, off uint64, rwFlags uint32, flags SQEFlags, userData uint64) bool {
	return false
}

// PrepWrite returns false.
func (r *Ring) PrepWrite(fd int, buf []byte, off uint64, rwFlags uint32, flags SQEFlags, userData uint64) bool {
	return false
}

// PrepReadFixed returns false.
func (r *Ring) PrepReadFixed(fd int, buf []byte, off uint64, bufIndex uint16, rwFlags uint32,
	flags SQEFlags, userData uint64) bool {
	return false
}

// PrepWriteFixed returns false.
func (r *Ring) PrepWriteFixed(fd int, buf []byte, off uint64, bufIndex uint16, rwFlags uint32,
	flags SQEFlags, userData uint64) bool {
	return false
}

// PrepFsync returns false.
func (r *Ring) PrepFsync(fd int, fsyncFlags uint32, flags SQEFlags, userData uint64) bool {
	return false
}

// PrepFallocate returns false.
func (r *Ring) PrepFallocate(fd int, mode uint32, off, length uint64, flags SQEFlags, userData uint64) bool {
	return false
}

// Submit returns ErrNotSupported.
func (r *Ring) Submit() (int, error) { return 0, ErrNotSupported }

// Ready returns false.
func (r *Ring) Ready() bool { return false }

// Reap returns 0.
func (r *Ring) Reap(out []Completion) int { return 0 }

// RegisterEventfd returns ErrNotSupported.
func (r *Ring) RegisterEventfd(fd int) error { return ErrNotSupported }

// RegisterBuffers returns ErrNotSupported.
func (r *Ring) RegisterBuffers(bufs [][]byte) error { return ErrNotSupported }

// Close returns nil.
func (r *Ring) Close() error { return nil }
