package bench

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawWritev writes iovs without building them on the heap per call, so that the
// limit server does no work beyond the syscall itself.
func rawWritev(fd int, iovs []unix.Iovec) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iovs[0])), uintptr(len(iovs)))
	return int(n), e
}

func rawRead(fd int, b []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}
