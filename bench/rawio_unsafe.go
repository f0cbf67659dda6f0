package bench

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The raw-socket limit's syscalls: raw (no scheduler entry, the sockets are
// non-blocking) and with caller-owned iovec arrays, so that neither end of the limit
// does any work beyond the syscall itself.

func rawWritev(fd int, iovs []unix.Iovec) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iovs[0])), uintptr(len(iovs)))
	return int(n), e
}

func rawRead(fd int, b []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}

func rawAccept(fd int) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0,
		uintptr(unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC), 0, 0)
	return int(n), e
}

// rawEpollPoll collects ready events without sleeping: the limit waits for input on
// epoll, like sluice's reactors and SPDK's sock layer, rather than by retrying reads
// that take the socket's lock.
func rawEpollPoll(ep int, evs []unix.EpollEvent) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])),
		uintptr(len(evs)), 0, 0, 0)
	return int(n), e
}
