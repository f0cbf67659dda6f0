package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Readv reads into iovs from a non-blocking fd.
//
// Preconditions: len(iovs) > 0, and fd is non-blocking (RawSyscall does not tell the
// scheduler, so a blocking read would stall the whole OS thread's Ps).
func Readv(fd int, iovs []unix.Iovec) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READV, uintptr(fd),
		uintptr(unsafe.Pointer(&iovs[0])), uintptr(len(iovs)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// Writev writes iovs to a non-blocking fd.
//
// Preconditions: len(iovs) > 0 and len(iovs) <= IOVMax; fd is non-blocking.
func Writev(fd int, iovs []unix.Iovec) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd),
		uintptr(unsafe.Pointer(&iovs[0])), uintptr(len(iovs)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// Read reads into b from a non-blocking fd.
//
// Preconditions: len(b) > 0; fd is non-blocking.
func Read(fd int, b []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd),
		uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// Write writes b to a non-blocking fd.
//
// Preconditions: len(b) > 0; fd is non-blocking.
func Write(fd int, b []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd),
		uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// EpollPoll collects ready events without sleeping. It bypasses the scheduler's
// syscall entry because a zero timeout never blocks.
//
// Preconditions: len(events) > 0.
func EpollPoll(epfd int, events []unix.EpollEvent) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// EpollSleep waits up to timeoutMs for events (-1: forever). It goes through the
// scheduler's syscall entry, so that the runtime may hand the caller's P to other
// goroutines while it sleeps (sysmon retakes it after a tick, 20 µs to 10 ms) and a
// stop-the-world need not wait for it. The price is paid on wake-up: a P retaken must
// be reacquired, and the retake resets sysmon to polling every 20 µs. Reactors use it
// only for long idle sleeps.
//
// Preconditions: len(events) > 0.
func EpollSleep(epfd int, events []unix.EpollEvent, timeoutMs int) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(timeoutMs), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// EpollNap waits up to timeoutMs for events without telling the scheduler: the caller
// keeps its P, so waking costs no more than the kernel's wake-up, and sysmon neither
// retakes the P nor starts polling fast. The wait is still interruptible: a preemption
// request (sysmon's, or a stop-the-world's) is a signal, which ends epoll_pwait with
// EINTR, and the caller is preempted at its next function call.
//
// Preconditions: len(events) > 0; 0 <= timeoutMs and small (a few milliseconds), since
// with asynchronous preemption off (GODEBUG=asyncpreemptoff=1) nothing cuts the nap
// short and a stop-the-world waits for it to end.
func EpollNap(epfd int, events []unix.EpollEvent, timeoutMs int) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(timeoutMs), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// SetIovec points iov at b.
//
// Preconditions: len(b) > 0.
func SetIovec(iov *unix.Iovec, b []byte) {
	iov.Base = &b[0]
	iov.SetLen(len(b))
}

// IovecBytes returns the bytes an iovec describes.
func IovecBytes(iov *unix.Iovec) []byte {
	return unsafe.Slice(iov.Base, iov.Len)
}
