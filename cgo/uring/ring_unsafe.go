//go:build cgo && linux

package uring

/*
#cgo LDFLAGS: -luring
#cgo noescape sluice_submit
#cgo nocallback sluice_submit
#cgo noescape sluice_reap
#cgo nocallback sluice_reap
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <liburing.h>

// The Go side mirrors these values and the CQE layout; a liburing that disagrees must
// not build.
_Static_assert(IOSQE_IO_LINK == 4, "IOSQE_IO_LINK");
_Static_assert(IORING_FSYNC_DATASYNC == 1, "IORING_FSYNC_DATASYNC");
_Static_assert(sizeof(struct io_uring_cqe) == 16, "io_uring_cqe size");
_Static_assert(offsetof(struct io_uring_cqe, user_data) == 0, "cqe user_data");
_Static_assert(offsetof(struct io_uring_cqe, res) == 8, "cqe res");
_Static_assert(offsetof(struct io_uring_cqe, flags) == 12, "cqe flags");

enum {
	SLUICE_OP_READ = 0,
	SLUICE_OP_WRITE = 1,
	SLUICE_OP_FSYNC = 2,
	SLUICE_OP_FALLOCATE = 3,
	SLUICE_OP_READ_FIXED = 4,
	SLUICE_OP_WRITE_FIXED = 5,
};

// sluice_sqe is one staged SQE, filled by Go without a cgo call. It holds integers
// only: addr is the address of off-heap or pinned memory, never a Go pointer C keeps.
struct sluice_sqe {
	uint64_t addr;      // read/write: buffer address; fallocate: length
	uint64_t off;       // file offset
	uint64_t user_data; // the caller's tag, returned in the CQE
	uint32_t nbytes;    // read/write: length; fallocate: mode
	uint32_t op_flags;  // read/write: RWF_* flags; fsync: IORING_FSYNC_*
	int32_t fd;
	uint8_t op;         // SLUICE_OP_*
	uint8_t flags;      // IOSQE_*
	uint16_t buf_index; // read/write fixed: index of the registered buffer holding addr
};

struct sluice_submit_result {
	int rc;        // io_uring_submit's result: SQEs consumed, or -errno
	unsigned left; // SQEs still in the SQ, not yet consumed by the kernel
};

// sluice_ring_init sets the ring up with SUBMIT_ALL, so that one bad SQE does not stop
// the kernel from consuming the rest of a batch (its error arrives as its CQE), and
// retries without it on kernels older than 5.18.
static int sluice_ring_init(struct io_uring *ring, unsigned entries) {
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SUBMIT_ALL;
	int rc = io_uring_queue_init_params(entries, ring, &p);
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof(p));
		rc = io_uring_queue_init_params(entries, ring, &p);
	}
	return rc;
}

// sluice_submit copies n staged SQEs into the SQ and submits everything the SQ holds.
// The Go side never stages more than the SQ has room for; -EOVERFLOW says it did, and
// nothing is copied then, so that a link chain is never cut in two.
static struct sluice_submit_result sluice_submit(struct io_uring *ring,
		const struct sluice_sqe *d, unsigned n) {
	struct sluice_submit_result res = {0, 0};
	if (io_uring_sq_space_left(ring) < n) {
		res.rc = -EOVERFLOW;
		res.left = io_uring_sq_ready(ring);
		return res;
	}
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		switch (d[i].op) {
		case SLUICE_OP_READ:
			io_uring_prep_read(sqe, d[i].fd, (void *)(uintptr_t)d[i].addr, d[i].nbytes, d[i].off);
			sqe->rw_flags = (__kernel_rwf_t)d[i].op_flags;
			break;
		case SLUICE_OP_WRITE:
			io_uring_prep_write(sqe, d[i].fd, (const void *)(uintptr_t)d[i].addr, d[i].nbytes, d[i].off);
			sqe->rw_flags = (__kernel_rwf_t)d[i].op_flags;
			break;
		case SLUICE_OP_READ_FIXED:
			io_uring_prep_read_fixed(sqe, d[i].fd, (void *)(uintptr_t)d[i].addr, d[i].nbytes, d[i].off,
				d[i].buf_index);
			sqe->rw_flags = (__kernel_rwf_t)d[i].op_flags;
			break;
		case SLUICE_OP_WRITE_FIXED:
			io_uring_prep_write_fixed(sqe, d[i].fd, (const void *)(uintptr_t)d[i].addr, d[i].nbytes, d[i].off,
				d[i].buf_index);
			sqe->rw_flags = (__kernel_rwf_t)d[i].op_flags;
			break;
		case SLUICE_OP_FSYNC:
			io_uring_prep_fsync(sqe, d[i].fd, d[i].op_flags);
			break;
		case SLUICE_OP_FALLOCATE:
			io_uring_prep_fallocate(sqe, d[i].fd, (int)d[i].nbytes, (off_t)d[i].off, (off_t)d[i].addr);
			break;
		default:
			io_uring_prep_nop(sqe);
			break;
		}
		sqe->flags = d[i].flags;
		io_uring_sqe_set_data64(sqe, d[i].user_data);
	}
	res.rc = io_uring_submit(ring);
	res.left = io_uring_sq_ready(ring);
	return res;
}

// sluice_register_buffers registers n buffers given as address and length pairs. The
// iovecs are built here, in C memory, because an iovec array made in Go would be Go
// memory holding pointers, which cgo may not pass.
static int sluice_register_buffers(struct io_uring *ring, const uint64_t *addr_len, unsigned n) {
	struct iovec *iov = calloc(n, sizeof(*iov));
	if (iov == NULL) {
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		iov[i].iov_base = (void *)(uintptr_t)addr_len[2 * i];
		iov[i].iov_len = (size_t)addr_len[2 * i + 1];
	}
	int rc = io_uring_register_buffers(ring, iov, n);
	free(iov);
	return rc;
}

// sluice_reap copies up to cap CQEs into out and marks them seen.
static unsigned sluice_reap(struct io_uring *ring, struct io_uring_cqe *out, unsigned cap) {
	unsigned head, n = 0;
	struct io_uring_cqe *cqe;
	io_uring_for_each_cqe(ring, head, cqe) {
		if (n == cap) {
			break;
		}
		out[n++] = *cqe;
	}
	io_uring_cq_advance(ring, n);
	return n;
}
*/
import "C"

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The Go mirror of struct io_uring_cqe must match it byte for byte (the C side asserts
// the C layout): a negative array length fails the build.
var (
	_ [C.sizeof_struct_io_uring_cqe - unsafe.Sizeof(Completion{})]struct{}
	_ [unsafe.Sizeof(Completion{}) - C.sizeof_struct_io_uring_cqe]struct{}
	_ [unsafe.Offsetof(Completion{}.Res) - 8]struct{}
	_ [8 - unsafe.Offsetof(Completion{}.Res)]struct{}
	_ [unsafe.Offsetof(Completion{}.Flags) - 12]struct{}
	_ [12 - unsafe.Offsetof(Completion{}.Flags)]struct{}
)

const (
	opRead       = C.SLUICE_OP_READ
	opWrite      = C.SLUICE_OP_WRITE
	opFsync      = C.SLUICE_OP_FSYNC
	opFallocate  = C.SLUICE_OP_FALLOCATE
	opReadFixed  = C.SLUICE_OP_READ_FIXED
	opWriteFixed = C.SLUICE_OP_WRITE_FIXED
)

// Ring is one io_uring instance.
//
// Preconditions (every method): called on the owner's goroutine; the Ring is not
// closed, except for Close itself.
type Ring struct {
	// ring lives in C memory: liburing's struct holds pointers into the kernel's
	// mappings, and C code gets it on every call.
	ring *C.struct_io_uring

	// staged are SQEs prepared since the last Submit. A Go slice of a pointer-free C
	// struct: Submit passes it to C for the duration of the call only.
	staged  []C.struct_sluice_sqe
	nstaged int
	sqLeft  uint32 // SQEs already in the SQ that the kernel has not consumed

	entries  int // SQ entries
	inflight int // SQEs staged or submitted whose CQE has not been reaped

	// cqHead and cqTail point into the mmapped CQ ring: the kernel writes the tail,
	// we write the head (through liburing). Read with atomic loads.
	cqHead *uint32
	cqTail *uint32
}

// New sets up a ring with at least entries SQEs (the kernel rounds up to a power of
// two) and a CQ twice as large.
func New(entries int) (*Ring, error) {
	if entries < 1 || entries > MaxEntries {
		return nil, fmt.Errorf("uring: %d entries not in [1, %d]: %w", entries, MaxEntries, syscall.EINVAL)
	}
	ring := (*C.struct_io_uring)(C.calloc(1, C.sizeof_struct_io_uring))
	if ring == nil {
		return nil, fmt.Errorf("uring: allocate ring: %w", syscall.ENOMEM)
	}
	if rc := C.sluice_ring_init(ring, C.uint(entries)); rc < 0 {
		C.free(unsafe.Pointer(ring))
		errno := syscall.Errno(-rc)
		if errno == syscall.ENOSYS || errno == syscall.EPERM {
			return nil, fmt.Errorf("uring: io_uring_setup: %w: %w", ErrNotSupported, errno)
		}
		return nil, fmt.Errorf("uring: io_uring_setup with %d entries: %w", entries, errno)
	}
	n := int(ring.sq.ring_entries)
	if int(ring.cq.ring_entries) < n {
		// The in-flight bound below relies on the CQ holding every SQE's CQE.
		C.io_uring_queue_exit(ring)
		C.free(unsafe.Pointer(ring))
		return nil, fmt.Errorf("uring: CQ of %d entries smaller than SQ of %d", int(ring.cq.ring_entries), n)
	}
	return &Ring{
		ring:    ring,
		staged:  make([]C.struct_sluice_sqe, n),
		entries: n,
		cqHead:  (*uint32)(unsafe.Pointer(ring.cq.khead)),
		cqTail:  (*uint32)(unsafe.Pointer(ring.cq.ktail)),
	}, nil
}

// FD is the ring's file descriptor, for io_uring_register(2) calls made outside this
// package, such as a memory domain registering its mapping as fixed buffers. The fd
// belongs to the Ring: Close closes it.
func (r *Ring) FD() int { return int(r.ring.ring_fd) }

// Entries is the number of SQEs that may be in flight at once.
func (r *Ring) Entries() int { return r.entries }

// Space is how many more SQEs may be prepared now: Entries minus the SQEs staged or
// submitted whose completion has not been reaped. A caller that needs a linked pair
// checks Space() >= 2 first, so that a chain is never half prepared.
func (r *Ring) Space() int { return r.entries - r.inflight }

// Inflight is the number of SQEs staged or submitted whose completion has not been
// reaped.
func (r *Ring) Inflight() int { return r.inflight }

// PrepRead stages a read of len(buf) bytes at off into buf. rwFlags are RWF_* flags
// (preadv2's), flags the SQE's. It returns false, staging nothing, when Space() == 0.
//
// Preconditions: buf stays valid and unmoved until the CQE with userData is reaped
// (off-heap, or pinned); len(buf) <= MaxLen.
func (r *Ring) PrepRead(fd int, buf []byte, off uint64, rwFlags uint32, flags SQEFlags, userData uint64) bool {
	return r.prep(opRead, fd, bufAddr(buf), bufLen(buf), off, 0, rwFlags, flags, userData)
}

// PrepWrite stages a write of buf at off. See PrepRead for the arguments and rules.
func (r *Ring) PrepWrite(fd int, buf []byte, off uint64, rwFlags uint32, flags SQEFlags, userData uint64) bool {
	return r.prep(opWrite, fd, bufAddr(buf), bufLen(buf), off, 0, rwFlags, flags, userData)
}

// PrepReadFixed stages IORING_OP_READ_FIXED: a read into buf, which lies inside the
// registered buffer bufIndex (RegisterBuffers, or a registration made through FD). The
// kernel pinned that buffer's pages once, at registration, so it skips pinning and
// unpinning them for this I/O. A buf that is not wholly inside buffer bufIndex, or an
// index that was never registered, completes with -EFAULT and transfers nothing.
// Otherwise as PrepRead.
func (r *Ring) PrepReadFixed(fd int, buf []byte, off uint64, bufIndex uint16, rwFlags uint32,
	flags SQEFlags, userData uint64) bool {
	return r.prep(opReadFixed, fd, bufAddr(buf), bufLen(buf), off, bufIndex, rwFlags, flags, userData)
}

// PrepWriteFixed stages IORING_OP_WRITE_FIXED: PrepReadFixed's write.
func (r *Ring) PrepWriteFixed(fd int, buf []byte, off uint64, bufIndex uint16, rwFlags uint32,
	flags SQEFlags, userData uint64) bool {
	return r.prep(opWriteFixed, fd, bufAddr(buf), bufLen(buf), off, bufIndex, rwFlags, flags, userData)
}

// PrepFsync stages an fsync of the whole file; fsyncFlags FsyncDatasync makes it an
// fdatasync. It returns false when Space() == 0.
func (r *Ring) PrepFsync(fd int, fsyncFlags uint32, flags SQEFlags, userData uint64) bool {
	return r.prep(opFsync, fd, 0, 0, 0, 0, fsyncFlags, flags, userData)
}

// PrepFallocate stages fallocate(fd, mode, off, length): FALLOC_FL_* mode flags, for
// example ZERO_RANGE or PUNCH_HOLE with KEEP_SIZE. It returns false when Space() == 0.
func (r *Ring) PrepFallocate(fd int, mode uint32, off, length uint64, flags SQEFlags, userData uint64) bool {
	return r.prep(opFallocate, fd, length, mode, off, 0, 0, flags, userData)
}

func (r *Ring) prep(op uint8, fd int, addr uint64, nbytes uint32, off uint64, bufIndex uint16,
	opFlags uint32, flags SQEFlags, userData uint64) bool {
	if r.inflight >= r.entries {
		return false
	}
	d := &r.staged[r.nstaged]
	d.addr = C.uint64_t(addr)
	d.off = C.uint64_t(off)
	d.user_data = C.uint64_t(userData)
	d.nbytes = C.uint32_t(nbytes)
	d.op_flags = C.uint32_t(opFlags)
	d.fd = C.int32_t(fd)
	d.op = C.uint8_t(op)
	d.flags = C.uint8_t(flags)
	d.buf_index = C.uint16_t(bufIndex)
	r.nstaged++
	r.inflight++
	return true
}

// Submit hands every SQE staged since the last call to the kernel with one
// io_uring_submit, and returns how many SQEs the kernel consumed. When the kernel is
// short of resources (EAGAIN, EBUSY) or the call is interrupted, the SQEs stay queued
// in the SQ, Submit returns (0, nil), and the next Submit retries them. Any other error
// means the ring itself is unusable. Submit with nothing to do makes no cgo call.
func (r *Ring) Submit() (int, error) {
	if r.nstaged == 0 && r.sqLeft == 0 {
		return 0, nil
	}
	var first *C.struct_sluice_sqe
	if r.nstaged > 0 {
		if SQEFlags(r.staged[r.nstaged-1].flags)&Link != 0 {
			// The kernel would end the chain here, and the caller's next SQE,
			// whatever it is, would not be covered by it: a caller bug.
			panic("uring: Submit with a dangling Link: the chain's last SQE was never prepared")
		}
		first = &r.staged[0]
	}
	res := C.sluice_submit(r.ring, first, C.uint(r.nstaged))
	if res.rc == -C.EOVERFLOW {
		panic("uring: staged more SQEs than the SQ has room for")
	}
	r.nstaged = 0
	r.sqLeft = uint32(res.left)
	if res.rc >= 0 {
		return int(res.rc), nil
	}
	switch errno := syscall.Errno(-res.rc); errno {
	case syscall.EAGAIN, syscall.EBUSY, syscall.EINTR:
		return 0, nil
	default:
		return 0, errno
	}
}

// Ready reports whether a completion is waiting. It is two atomic loads and no cgo call,
// so pollers may call it on every iteration.
func (r *Ring) Ready() bool {
	return atomic.LoadUint32(r.cqTail) != atomic.LoadUint32(r.cqHead)
}

// Reap copies up to len(out) completions into out and returns how many. It calls into C
// only when Ready; it allocates nothing.
func (r *Ring) Reap(out []Completion) int {
	if len(out) == 0 || !r.Ready() {
		return 0
	}
	n := int(C.sluice_reap(r.ring, (*C.struct_io_uring_cqe)(unsafe.Pointer(&out[0])), C.uint(len(out))))
	r.inflight -= n
	return n
}

// RegisterEventfd makes the kernel signal fd whenever it posts a CQE, so that a reactor
// sleeping in epoll wakes for a completion.
func (r *Ring) RegisterEventfd(fd int) error {
	if rc := C.io_uring_register_eventfd(r.ring, C.int(fd)); rc < 0 {
		return fmt.Errorf("uring: register eventfd %d: %w", fd, syscall.Errno(-rc))
	}
	return nil
}

// RegisterBuffers registers bufs as the ring's fixed buffers, index i for bufs[i], for
// PrepReadFixed and PrepWriteFixed. A ring registers one set for its lifetime: a second
// call fails with EBUSY. The kernel pins the pages (and, for a caller without
// CAP_IPC_LOCK, charges them to RLIMIT_MEMLOCK) until the ring closes.
//
// Preconditions: each buffer is off-heap or pinned memory that stays mapped while the
// ring lives; each is at most 1 GiB, the kernel's limit.
func (r *Ring) RegisterBuffers(bufs [][]byte) error {
	if len(bufs) == 0 {
		return fmt.Errorf("uring: register no buffers: %w", syscall.EINVAL)
	}
	addrLen := make([]uint64, 2*len(bufs))
	for i, b := range bufs {
		addrLen[2*i], addrLen[2*i+1] = bufAddr(b), uint64(len(b))
	}
	// addrLen holds integers only, so C may read it for the duration of the call.
	rc := C.sluice_register_buffers(r.ring, (*C.uint64_t)(unsafe.Pointer(&addrLen[0])), C.uint(len(bufs)))
	if rc < 0 {
		return fmt.Errorf("uring: register %d fixed buffers: %w", len(bufs), syscall.Errno(-rc))
	}
	return nil
}

// Close tears the ring down. It refuses while SQEs are in flight: the kernel would
// finish them after Close, writing into buffers their owner believes are free.
// Closing a closed ring does nothing.
func (r *Ring) Close() error {
	if r.ring == nil {
		return nil
	}
	if r.inflight > 0 {
		return fmt.Errorf("uring: close with %d SQEs in flight: %w", r.inflight, ErrBusy)
	}
	C.io_uring_queue_exit(r.ring)
	C.free(unsafe.Pointer(r.ring))
	r.ring, r.cqHead, r.cqTail = nil, nil, nil
	return nil
}

func bufAddr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

func bufLen(b []byte) uint32 {
	if uint64(len(b)) > MaxLen {
		panic("uring: buffer longer than MaxLen")
	}
	return uint32(len(b))
}
