// Package uring is sluice's thin binding to liburing: one io_uring instance per owner,
// with exactly the operations the file bdev needs (read, write, their fixed-buffer
// forms, fdatasync, fallocate, linked SQEs, eventfd notification, buffer registration)
// and nothing else.
//
// What it owns: the ring (its setup, its mmapped SQ and CQ, its teardown) and a
// staging array of prepared SQEs. Prep* calls only fill the staging array from Go;
// Submit makes one cgo call that copies every staged SQE into the SQ and issues one
// io_uring_submit, so a reactor iteration costs one cgo call and one syscall however
// many I/Os it starts. Ready reads the CQ head and tail through pointers taken once at
// setup, with atomic loads and no cgo call, so an idle poller costs a few nanoseconds;
// Reap calls into C only when there is something to copy out.
//
// Who may call it: engine/bdev's file backend, from the reactor that owns the Ring.
// A Ring is not safe for concurrent use: every method runs on its owner's goroutine.
//
// What it must never do: hand C a Go pointer that C keeps. user_data is the caller's
// integer (an index), never a pointer. Data buffers are handed to the kernel as
// addresses, so the caller must guarantee that each buffer stays valid and does not
// move until the CQE that carries its user_data has been reaped: off-heap memory
// (mmap, the hugepage allocator) or Go memory pinned with runtime.Pinner. Fixed
// buffers are registered once per ring (RegisterBuffers, or io_uring_register(2) on FD
// by their owner) and must stay mapped for the ring's lifetime; the kernel itself checks
// that a fixed read or write stays inside the buffer it names. The package
// also never lets more SQEs be in flight than the SQ has entries, so the CQ (twice as
// large) cannot overflow and every SQE yields exactly one CQE that Reap will see.
//
// Without cgo (CGO_ENABLED=0) New returns ErrNotSupported, so the rest of sluice builds
// and the file bdev reports that it is unavailable.
package uring
