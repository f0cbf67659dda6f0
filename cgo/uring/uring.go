package uring

import "errors"

// Completion is one reaped CQE. Its layout is struct io_uring_cqe's (user_data, res,
// flags: 16 bytes), which the cgo side asserts, so that Reap copies CQEs straight into
// the caller's slice.
type Completion struct {
	UserData uint64
	Res      int32 // bytes transferred, 0, or -errno
	Flags    uint32
}

// SQEFlags are per-SQE flags (IOSQE_*).
type SQEFlags uint8

// Link makes the next SQE depend on this one (IOSQE_IO_LINK): it starts only after this
// one completes in full, and a failure or a short read/write here cancels it with
// -ECANCELED. A write linked to an fsync is how a FUA write is made durable.
const Link SQEFlags = 1 << 2

// FsyncDatasync makes PrepFsync an fdatasync (IORING_FSYNC_DATASYNC).
const FsyncDatasync uint32 = 1

// MaxEntries bounds New's entries. The SQ is sized to the I/Os one reactor keeps in
// flight on one file; more only costs pinned kernel memory.
const MaxEntries = 4096

// MaxLen is the largest buffer one read or write SQE can carry (the SQE's len is 32
// bits). Callers split larger I/Os.
const MaxLen = 1<<32 - 1

// ErrNotSupported reports that io_uring is unavailable: a build without cgo, or a kernel
// that has it disabled (ENOSYS, or EPERM from kernel.io_uring_disabled).
var ErrNotSupported = errors.New("uring: io_uring not supported")

// ErrBusy is returned by Close while SQEs are still in flight.
var ErrBusy = errors.New("uring: SQEs in flight")
