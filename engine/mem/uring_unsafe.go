package mem

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fixedBufferShift sizes the io_uring fixed buffers a domain registers: the kernel caps
// one registered buffer at 1 GiB, so a domain registers one per GiB of its mapping. Pages
// never straddle a boundary, so a class object, a span or a single page lies in one.
const fixedBufferShift = 30

// ioringRegisterBuffers is IORING_REGISTER_BUFFERS (include/uapi/linux/io_uring.h).
const ioringRegisterBuffers = 0

// FixedBuffers returns the iovecs to register with io_uring (IORING_REGISTER_BUFFERS),
// one per GiB of the domain. Buf.FixedBuffer gives a buffer's index among them.
func (d *Domain) FixedBuffers() []unix.Iovec {
	n := (len(d.mem) + 1<<fixedBufferShift - 1) >> fixedBufferShift
	iov := make([]unix.Iovec, n)
	for i := range iov {
		lo := i << fixedBufferShift
		hi := min(len(d.mem), lo+1<<fixedBufferShift)
		iov[i].Base = &d.mem[lo]
		iov[i].SetLen(hi - lo)
	}
	return iov
}

// RegisterFixedBuffers registers the domain's memory with the io_uring instance ringFD as
// fixed buffers, so that the file bdev can use IORING_OP_{READ,WRITE}_FIXED on Bufs and
// Regions without the kernel pinning pages per I/O. Call it once per ring, at setup.
func (d *Domain) RegisterFixedBuffers(ringFD int) error {
	iov := d.FixedBuffers()
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(ringFD), ioringRegisterBuffers,
		uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), 0, 0)
	if errno != 0 {
		return fmt.Errorf("mem: register %d fixed buffers of node %d with io_uring: %w", len(iov), d.node, errno)
	}
	return nil
}

// FixedBuffer returns the index, among the domain's FixedBuffers, of the registered
// buffer that holds b.
func (b Buf) FixedBuffer() int { return int(b.off() >> fixedBufferShift) }

// FixedBuffer returns the index, among the domain's FixedBuffers, of the registered
// buffer that holds page i of the region.
func (r Region) FixedBuffer(i int) int {
	p := int64(r.first) + int64(i)
	if r.first < 0 {
		p = int64(r.pages[i])
	}
	return int(p << pageShift >> fixedBufferShift)
}

// ioUringSetup creates an io_uring instance with default parameters and returns its fd;
// tests use it to check RegisterFixedBuffers.
func ioUringSetup(entries uint32) (int, error) {
	var params [120]byte // struct io_uring_params, zeroed: no flags
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&params[0])), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}
