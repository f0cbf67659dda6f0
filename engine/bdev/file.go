package bdev

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"sluice/cgo/uring"
	"sluice/engine/reactor"
)

// FileParams are bdev_file_create's parameters.
//
//   - BlockSize 0 picks 512, or the file system's direct I/O alignment when O_DIRECT
//     is used and that alignment is larger (a 4Kn disk). The chosen size is echoed in
//     Params, so that a saved config reopens the bdev with the same geometry.
//   - SizeBytes creates the file, sparse, when it does not exist (it is required then).
//     An existing file keeps its size: SizeBytes may be smaller (the file may have been
//     grown offline) but not larger, which would mean the wrong or a truncated file.
//     A size that is not a multiple of the block size leaves its tail unused.
//   - Direct is "auto" (the default: O_DIRECT, or buffered I/O with a one-line warning
//     when the file system or the block size refuses it), "on" (fail instead) or "off".
type FileParams struct {
	Name      string `json:"name" rpc:"required"`
	Filename  string `json:"filename" rpc:"required"`
	BlockSize uint32 `json:"block_size,omitempty"`
	SizeBytes uint64 `json:"size_bytes,omitempty"`
	UUID      string `json:"uuid,omitempty"`
	Direct    string `json:"direct,omitempty"`
}

// ErrDirectRefused reports that O_DIRECT was asked for ("on") and cannot be used.
var ErrDirectRefused = errors.New("direct I/O refused")

type directMode uint8

const (
	directAuto directMode = iota
	directOn
	directOff
)

func parseDirectMode(s string) (directMode, error) {
	switch s {
	case "", "auto":
		return directAuto, nil
	case "on":
		return directOn, nil
	case "off":
		return directOff, nil
	}
	return 0, fmt.Errorf("direct %q: want auto, on or off: %w", s, ErrInvalid)
}

// fileCaps: fdatasync makes FLUSH and FUA real; fallocate serves WriteZeroes and, by
// punching holes, Unmap with zeros read back. VolatileCache because without FUA a
// write may sit in the page cache or the disk's cache until FLUSH.
var fileCaps = Caps{Flush: true, FUA: true, WriteZeroes: true, Unmap: true,
	UnmapReadsZero: true, VolatileCache: true}

// CreateFile registers a bdev backed by a regular file or a block device, served per
// reactor through io_uring.
func CreateFile(m *Manager, p FileParams) (*Bdev, error) {
	b, err := createFile(m, p)
	if err != nil {
		return nil, fmt.Errorf("bdev_file_create %q: %w", p.Name, err)
	}
	return b, nil
}

func createFile(m *Manager, p FileParams) (*Bdev, error) {
	u, err := parseOptionalUUID(p.UUID)
	if err != nil {
		return nil, err
	}
	mode, err := parseDirectMode(p.Direct)
	if err != nil {
		return nil, err
	}
	// Checked here as well as by Register, so that a bad request creates no file.
	switch {
	case p.Name == "" || p.Filename == "":
		return nil, fmt.Errorf("name and filename are required: %w", ErrInvalid)
	case p.BlockSize != 0 && (p.BlockSize < 512 || p.BlockSize > 65536 || p.BlockSize&(p.BlockSize-1) != 0):
		return nil, fmt.Errorf("block size %d is not a power of two in [512, 65536]: %w", p.BlockSize, ErrInvalid)
	}
	if _, err := m.Get(p.Name); err == nil {
		return nil, ErrExists
	}
	// Without io_uring (a build without cgo, kernel.io_uring_disabled) the bdev could
	// never open a channel: refuse it now rather than at its first I/O.
	ring, err := uring.New(1)
	if err != nil {
		return nil, err
	}
	_ = ring.Close() // nothing was prepared: it cannot refuse
	be, created, err := openFileBackend(p, mode)
	if err != nil {
		return nil, err
	}
	be.registrar = m.bufferRegistrar()
	echo := p
	echo.BlockSize = be.blockSize
	b, err := m.Register(Config{
		Name: p.Name, Module: "file", BlockSize: be.blockSize,
		NumBlocks: uint64(be.size) / uint64(be.blockSize), UUID: u,
		Caps: fileCaps, Params: echo,
	}, be)
	if err != nil && created {
		os.Remove(p.Filename)
	}
	return b, err
}

// fileBackend is one open file shared by the bdev's channels. Its fields are set at
// creation and only read afterwards, so channels on any reactor share it without locks.
type fileBackend struct {
	name      string
	path      string
	fd        int
	size      int64
	blockSize uint32
	direct    bool // O_DIRECT is set on fd
	memAlign  int  // O_DIRECT: buffers not aligned to this are bounced
	// ringEntries sizes each channel's ring; tests shrink it to fill it on purpose.
	ringEntries int

	// zeroes is a read-only mapping of zero pages that writes zeros where the file
	// system cannot fallocate them. Read-only, so every channel shares it.
	zeroes []byte

	// registrar registers the I/O memory with each channel's ring (nil: none), so
	// that I/Os naming a fixed buffer skip the kernel's per-I/O page pinning.
	registrar BufferRegistrar
	// registerWarned: a registration failed and was logged. Channels open on
	// several reactors; one line per bdev says it all.
	registerWarned atomic.Bool
}

// openFileBackend opens (or creates) the file, locks it, and settles the block size and
// O_DIRECT. created reports a file made here, which the caller removes if it fails later.
func openFileBackend(p FileParams, mode directMode) (be *fileBackend, created bool, err error) {
	fd, err := unix.Open(p.Filename, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) && p.SizeBytes > 0 {
		fd, err = unix.Open(p.Filename, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		created = err == nil
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, false, fmt.Errorf("open %s: %w (give size_bytes to create it)", p.Filename, err)
		}
		return nil, false, fmt.Errorf("open %s: %w", p.Filename, err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
			if created {
				os.Remove(p.Filename)
			}
		}
	}()
	// Two bdevs (or a bdev and another program) writing one file corrupt it; the lock
	// goes with the fd, so it ends when the backend closes or the process dies.
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, created, fmt.Errorf("lock %s (used by another bdev or process?): %w", p.Filename, err)
	}
	if created {
		if err := makeDurableFile(fd, p.Filename, int64(p.SizeBytes)); err != nil {
			return nil, created, err
		}
	}
	size, err := fileSize(fd, p.Filename)
	if err != nil {
		return nil, created, err
	}
	if p.SizeBytes > uint64(size) {
		return nil, created, fmt.Errorf("%s is %d bytes, smaller than size_bytes %d: %w",
			p.Filename, size, p.SizeBytes, ErrInvalid)
	}
	be = &fileBackend{name: p.Name, path: p.Filename, fd: fd, size: size, blockSize: p.BlockSize,
		ringEntries: fileRingEntries}
	if err := be.setupDirect(mode, p.BlockSize); err != nil {
		return nil, created, err
	}
	if size < int64(be.blockSize) {
		return nil, created, fmt.Errorf("%s is %d bytes, less than one %d-byte block: %w",
			p.Filename, size, be.blockSize, ErrInvalid)
	}
	be.zeroes, err = unix.Mmap(-1, 0, fileZeroBytes, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, created, fmt.Errorf("map zero buffer: %w", err)
	}
	return be, created, nil
}

// makeDurableFile sizes a new file and makes its existence survive a crash: the bdev
// will be used as a disk, and a disk does not vanish with its directory entry.
func makeDurableFile(fd int, path string, size int64) error {
	if err := unix.Ftruncate(fd, size); err != nil {
		return fmt.Errorf("size %s to %d bytes: %w", path, size, err)
	}
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	dir, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory of %s: %w", path, err)
	}
	defer unix.Close(dir)
	if err := unix.Fsync(dir); err != nil {
		return fmt.Errorf("fsync directory of %s: %w", path, err)
	}
	return nil
}

func fileSize(fd int, path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return st.Size, nil
	case unix.S_IFBLK:
		size, err := unix.Seek(fd, 0, io.SeekEnd)
		if err != nil {
			return 0, fmt.Errorf("size of block device %s: %w", path, err)
		}
		return size, nil
	}
	return 0, fmt.Errorf("%s is neither a regular file nor a block device: %w", path, ErrInvalid)
}

// setupDirect settles O_DIRECT and the block size. O_DIRECT is refused when statx says
// the file cannot do direct I/O, when the block size is below the file system's
// direct I/O offset alignment, when the kernel will not set the flag (tmpfs before
// Linux 6.6, ramfs, some FUSE), or when a one-block probe read fails with EINVAL.
func (be *fileBackend) setupDirect(mode directMode, requested uint32) error {
	if mode == directOff {
		be.blockSize = max(requested, 512)
		return nil
	}
	memAlign, bs, reason := be.tryDirect(requested)
	if reason == nil {
		be.direct, be.memAlign, be.blockSize = true, memAlign, bs
		return nil
	}
	if mode == directOn {
		return fmt.Errorf("%s: %w: %w", be.path, ErrDirectRefused, reason)
	}
	slog.Warn("bdev file: O_DIRECT refused, using buffered I/O", "bdev", be.name, "file", be.path, "reason", reason.Error())
	be.blockSize = max(requested, 512)
	return nil
}

// fileDefaultMemAlign is used when statx does not report the direct I/O alignment: a
// page is aligned enough for every device.
const fileDefaultMemAlign = 4096

func (be *fileBackend) tryDirect(requested uint32) (memAlign int, bs uint32, reason error) {
	memAlign, offAlign := fileDefaultMemAlign, uint32(512)
	var stx unix.Statx_t
	if unix.Statx(be.fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx) == nil &&
		stx.Mask&unix.STATX_DIOALIGN != 0 {
		if stx.Dio_offset_align == 0 {
			return 0, 0, errors.New("the file system does not support direct I/O on this file")
		}
		memAlign, offAlign = max(int(stx.Dio_mem_align), 1), stx.Dio_offset_align
	}
	bs = requested
	if bs == 0 {
		bs = max(512, offAlign)
	}
	if bs < offAlign || bs%offAlign != 0 {
		return 0, 0, fmt.Errorf("block size %d is not a multiple of the direct I/O alignment %d", bs, offAlign)
	}
	flags, err := unix.FcntlInt(uintptr(be.fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(be.fd), unix.F_SETFL, flags|unix.O_DIRECT)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("set O_DIRECT: %w", err)
	}
	if err := probeDirect(be.fd, bs, be.size); err != nil {
		_, _ = unix.FcntlInt(uintptr(be.fd), unix.F_SETFL, flags)
		return 0, 0, err
	}
	return memAlign, bs, nil
}

// probeDirect reads one block with O_DIRECT, because some file systems accept the flag
// and refuse the I/O (EINVAL) only when it comes.
func probeDirect(fd int, bs uint32, size int64) error {
	if size < int64(bs) {
		return nil
	}
	buf, err := unix.Mmap(-1, 0, int(bs), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("map probe buffer: %w", err)
	}
	defer unix.Munmap(buf)
	if _, err := unix.Pread(fd, buf, 0); err != nil {
		return fmt.Errorf("probe read of %d bytes with O_DIRECT: %w", bs, err)
	}
	return nil
}

func (be *fileBackend) NewChannel(r *reactor.Reactor) (BackendChannel, error) {
	return newFileChannel(be, r)
}

// Close runs once every channel is gone: nothing is in flight. It makes what was
// written durable before letting go of the file (and of its lock), so that deleting a
// bdev or stopping the daemon never depends on the host's last FLUSH.
func (be *fileBackend) Close() error {
	if be.fd < 0 {
		return nil
	}
	var first error
	if err := unix.Fdatasync(be.fd); err != nil {
		first = fmt.Errorf("bdev %q: fdatasync %s: %w", be.name, be.path, err)
	}
	if err := unix.Close(be.fd); err != nil && first == nil {
		first = fmt.Errorf("bdev %q: close %s: %w", be.name, be.path, err)
	}
	be.fd = -1
	if be.zeroes != nil {
		_ = unix.Munmap(be.zeroes)
		be.zeroes = nil
	}
	return first
}

// fileStatus maps a completion's errno to a bdev status: a full file system or quota is
// NoSpace (NVMe Capacity Exceeded, SCSI SPACE ALLOCATION FAILED), anything else is a
// medium error.
func fileStatus(errno unix.Errno) Status {
	switch errno {
	case unix.ENOSPC, unix.EDQUOT:
		return StatusNoSpace
	}
	return StatusIOError
}
