//go:build cgo && linux

package uring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// diskDir returns a temp dir on a disk-backed file system, so that O_DIRECT and
// fallocate behave as on a real volume: /tmp is tmpfs on many machines.
func diskDir(t testing.TB) string {
	t.Helper()
	base := os.TempDir()
	var st unix.Statfs_t
	if unix.Statfs(base, &st) == nil && (st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC) {
		base = "/var/tmp"
	}
	d, err := os.MkdirTemp(base, "uring-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func newRing(t testing.TB, entries int) *Ring {
	t.Helper()
	r, err := New(entries)
	if errors.Is(err, ErrNotSupported) {
		t.Skipf("io_uring unavailable: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

func openFile(t testing.TB, size int64, flags int) int {
	t.Helper()
	fd, err := unix.Open(filepath.Join(diskDir(t), "f"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|flags, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	return fd
}

// offHeap maps n bytes outside the Go heap, as production buffers are.
func offHeap(t testing.TB, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// wait submits and reaps until want completions have arrived.
func wait(t testing.TB, r *Ring, want int) []Completion {
	t.Helper()
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	out := make([]Completion, 0, want)
	buf := make([]Completion, 4)
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < want {
		n := r.Reap(buf)
		out = append(out, buf[:n]...)
		if n == 0 && time.Now().After(deadline) {
			t.Fatalf("%d of %d completions after 10s", len(out), want)
		}
	}
	return out
}

func byTag(cs []Completion) map[uint64]int32 {
	m := map[uint64]int32{}
	for _, c := range cs {
		m[c.UserData] = c.Res
	}
	return m
}

func TestWriteLinkedFsyncThenRead(t *testing.T) {
	r := newRing(t, 8)
	fd := openFile(t, 1<<20, unix.O_DIRECT)
	buf := offHeap(t, 8192)
	for i := range buf[:4096] {
		buf[i] = byte(i*7 + 1)
	}
	if !r.PrepWrite(fd, buf[:4096], 8192, 0, Link, 1) || !r.PrepFsync(fd, FsyncDatasync, 0, 2) {
		t.Fatal("prep refused with an empty ring")
	}
	if r.Inflight() != 2 || r.Space() != r.Entries()-2 {
		t.Fatalf("inflight %d space %d", r.Inflight(), r.Space())
	}
	got := byTag(wait(t, r, 2))
	if got[1] != 4096 || got[2] != 0 {
		t.Fatalf("write+fdatasync completions %v", got)
	}
	if !r.PrepRead(fd, buf[4096:], 8192, 0, 0, 3) {
		t.Fatal("prep read refused")
	}
	if got := byTag(wait(t, r, 1)); got[3] != 4096 || !bytes.Equal(buf[:4096], buf[4096:]) {
		t.Fatalf("read back %v", got)
	}
	if r.Inflight() != 0 {
		t.Fatalf("inflight %d after reaping everything", r.Inflight())
	}
}

// TestShortReadCancelsLink pins down the kernel rule the file bdev's FUA path relies
// on: a short read or write breaks its chain, and the linked SQE completes -ECANCELED.
func TestShortReadCancelsLink(t *testing.T) {
	r := newRing(t, 8)
	fd := openFile(t, 4096, 0)
	buf := offHeap(t, 8192)
	r.PrepRead(fd, buf, 0, 0, Link, 1)
	r.PrepFsync(fd, FsyncDatasync, 0, 2)
	got := byTag(wait(t, r, 2))
	if got[1] != 4096 || got[2] != -int32(unix.ECANCELED) {
		t.Fatalf("short read then linked fsync: %v", got)
	}
}

func TestFallocatePunchHoleReadsZeros(t *testing.T) {
	r := newRing(t, 8)
	fd := openFile(t, 1<<20, 0)
	buf := offHeap(t, 65536)
	for i := range buf {
		buf[i] = 0xA5
	}
	r.PrepWrite(fd, buf, 0, 0, Link, 1)
	r.PrepFsync(fd, FsyncDatasync, 0, 2)
	wait(t, r, 2)
	r.PrepFallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 65536, 0, 3)
	if got := byTag(wait(t, r, 1)); got[3] != 0 {
		t.Fatalf("punch hole: %v", got)
	}
	r.PrepRead(fd, buf, 0, 0, 0, 4)
	wait(t, r, 1)
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatal("punched range does not read as zeros")
	}
}

func TestSpaceBoundsInflight(t *testing.T) {
	r := newRing(t, 4)
	fd := openFile(t, 4096, 0)
	n := 0
	for r.PrepFsync(fd, 0, 0, uint64(n)) {
		n++
	}
	if n != r.Entries() || r.Space() != 0 {
		t.Fatalf("prepared %d of %d entries, space %d", n, r.Entries(), r.Space())
	}
	// Submitting does not free entries: only reaping does, since the CQ must have
	// room for every CQE.
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if r.PrepFsync(fd, 0, 0, 99) {
		t.Fatal("prep accepted beyond Entries before any reap")
	}
	wait(t, r, n)
	if r.Space() != r.Entries() {
		t.Fatalf("space %d after reaping all", r.Space())
	}
}

func TestCloseRefusesInflight(t *testing.T) {
	r, err := New(4)
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	fd := openFile(t, 4096, 0)
	r.PrepFsync(fd, 0, 0, 1)
	if err := r.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("close with a staged SQE: %v", err)
	}
	wait(t, r, 1)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestDanglingLinkPanics(t *testing.T) {
	r := newRing(t, 4)
	fd := openFile(t, 4096, 0)
	r.PrepFsync(fd, 0, Link, 1)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Submit accepted a chain whose last SQE carries Link")
			}
		}()
		_, _ = r.Submit()
	}()
	// Complete the chain so that cleanup can close the ring.
	r.PrepFsync(fd, 0, 0, 2)
	wait(t, r, 2)
}

func TestEventfdSignalsCompletion(t *testing.T) {
	r := newRing(t, 4)
	fd := openFile(t, 4096, 0)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := r.RegisterEventfd(efd); err != nil {
		t.Fatal(err)
	}
	r.PrepFsync(fd, FsyncDatasync, 0, 7)
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	pfd := []unix.PollFd{{Fd: int32(efd), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 10_000); err != nil || n != 1 {
		t.Fatalf("eventfd not readable after a completion: n=%d err=%v", n, err)
	}
	if got := byTag(wait(t, r, 1)); got[7] != 0 {
		t.Fatalf("fsync: %v", got)
	}
}

// TestFixedReadWrite registers two off-heap buffers and moves data through the fixed
// forms of read and write, naming each buffer by its index; pieces inside a registered
// buffer (not only its start) are valid fixed buffers too.
func TestFixedReadWrite(t *testing.T) {
	r := newRing(t, 8)
	if r.FD() < 0 {
		t.Fatalf("ring fd %d", r.FD())
	}
	fd := openFile(t, 1<<20, unix.O_DIRECT)
	a, b := offHeap(t, 16384), offHeap(t, 8192)
	if err := r.RegisterBuffers([][]byte{a, b}); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		a[i] = byte(i*13 + 5)
	}
	if !r.PrepWriteFixed(fd, a[4096:12288], 65536, 0, 0, Link, 1) || !r.PrepFsync(fd, FsyncDatasync, 0, 2) {
		t.Fatal("prep refused with an empty ring")
	}
	if got := byTag(wait(t, r, 2)); got[1] != 8192 || got[2] != 0 {
		t.Fatalf("write fixed + fdatasync: %v", got)
	}
	r.PrepReadFixed(fd, b, 65536, 1, 0, 0, 3)
	if got := byTag(wait(t, r, 1)); got[3] != 8192 || !bytes.Equal(b, a[4096:12288]) {
		t.Fatalf("read fixed: %v, or the bytes differ", got)
	}
	// A second registration on the same ring is refused: a ring has one set.
	if err := r.RegisterBuffers([][]byte{b}); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second registration: %v, want EBUSY", err)
	}
}

// TestFixedOutsideBufferFaults pins down the contract a fixed read or write relies on:
// the kernel checks the address range against the registered buffer the SQE names,
// and a buffer outside it, straddling its end, or an index never registered completes
// with -EFAULT and moves no data.
func TestFixedOutsideBufferFaults(t *testing.T) {
	r := newRing(t, 8)
	fd := openFile(t, 1<<20, 0)
	mapping := offHeap(t, 3*4096)
	reg := mapping[4096:8192]
	for i := range mapping {
		mapping[i] = 0xAB // the file holds zeros: a read that moved data would show
	}
	if err := r.RegisterBuffers([][]byte{reg}); err != nil {
		t.Fatal(err)
	}
	r.PrepReadFixed(fd, mapping[:4096], 0, 0, 0, 0, 1)      // wholly before
	r.PrepWriteFixed(fd, mapping[8192:], 0, 0, 0, 0, 2)     // wholly after
	r.PrepReadFixed(fd, mapping[6144:10240], 0, 0, 0, 0, 3) // straddles the end
	r.PrepWriteFixed(fd, reg, 0, 1, 0, 0, 4)                // index never registered
	r.PrepReadFixed(fd, reg[512:1024], 0, 0, 0, 0, 5)       // inside: fine
	got := byTag(wait(t, r, 5))
	for tag := uint64(1); tag <= 4; tag++ {
		if got[tag] != -int32(unix.EFAULT) {
			t.Errorf("fixed op %d outside its registered buffer: res %d, want -EFAULT", tag, got[tag])
		}
	}
	if got[5] != 512 || !bytes.Equal(mapping[4608:5120], make([]byte, 512)) {
		t.Errorf("fixed read inside the buffer: res %d, want 512 bytes of zeros", got[5])
	}
	ab := bytes.Repeat([]byte{0xAB}, 4096)
	if !bytes.Equal(mapping[:4096], ab) || !bytes.Equal(mapping[6144:10240], ab[:4096]) {
		t.Error("a refused fixed read wrote into memory")
	}
	file := make([]byte, 4096)
	if _, err := unix.Pread(fd, file, 0); err != nil || !bytes.Equal(file, make([]byte, 4096)) {
		t.Errorf("a refused fixed write reached the file (pread: %v)", err)
	}
}

// TestFixedWithoutRegistrationFaults: a fixed op on a ring that registered nothing
// fails the same way, which is why a caller tracks whether its ring has buffers.
func TestFixedWithoutRegistrationFaults(t *testing.T) {
	r := newRing(t, 4)
	fd := openFile(t, 4096, 0)
	r.PrepReadFixed(fd, offHeap(t, 4096), 0, 0, 0, 0, 1)
	if got := byTag(wait(t, r, 1)); got[1] != -int32(unix.EFAULT) {
		t.Fatalf("fixed read with no buffers registered: %v, want -EFAULT", got)
	}
}

func TestAligned(t *testing.T) {
	b := offHeap(t, 8192)
	if !Aligned(b, 4096) || Aligned(b[1:], 2) || !Aligned(b[512:], 512) || Aligned(b[512:], 4096) {
		t.Fatal("Aligned disagrees with page-aligned mmap offsets")
	}
}

// TestReadAllocatesNothing: a 4 KiB read staged, submitted and reaped costs no heap
// allocation.
func TestReadAllocatesNothing(t *testing.T) {
	r := newRing(t, 8)
	fd := openFile(t, 1<<20, unix.O_DIRECT)
	buf := offHeap(t, 4096)
	out := make([]Completion, 8)
	allocs := testing.AllocsPerRun(200, func() {
		r.PrepRead(fd, buf, 4096, 0, 0, 1)
		if _, err := r.Submit(); err != nil {
			panic(err)
		}
		for r.Reap(out) == 0 {
		}
	})
	if allocs != 0 {
		t.Fatalf("prep+submit+reap allocates %v per read", allocs)
	}
}

// TestReadFixedAllocatesNothing: the fixed form costs no allocation either.
func TestReadFixedAllocatesNothing(t *testing.T) {
	r := newRing(t, 8)
	fd := openFile(t, 1<<20, unix.O_DIRECT)
	buf := offHeap(t, 4096)
	if err := r.RegisterBuffers([][]byte{buf}); err != nil {
		t.Fatal(err)
	}
	out := make([]Completion, 8)
	allocs := testing.AllocsPerRun(200, func() {
		r.PrepReadFixed(fd, buf, 4096, 0, 0, 0, 1)
		if _, err := r.Submit(); err != nil {
			panic(err)
		}
		for r.Reap(out) == 0 {
		}
		if out[0].Res != 4096 {
			panic(out[0].Res)
		}
	})
	if allocs != 0 {
		t.Fatalf("fixed prep+submit+reap allocates %v per read", allocs)
	}
}

// BenchmarkReadyIdle measures the check a poller makes on every iteration.
func BenchmarkReadyIdle(b *testing.B) {
	r := newRing(b, 8)
	for b.Loop() {
		if r.Ready() {
			b.Fatal("completion on an idle ring")
		}
	}
}
