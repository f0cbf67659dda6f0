package bdev

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"sluice/cgo/uring"
	"sluice/engine/mem"
)

// newMemDomain maps a small domain of ordinary pages, as the daemon's allocator would
// on a machine without hugepages. Cleanup closes it, after everything registered later
// (channels, buffers) is gone, and fails the test on a leaked buffer.
func newMemDomain(t testing.TB) *mem.Core {
	t.Helper()
	d, err := mem.NewDomain(mem.DomainConfig{SizeBytes: 16 << 20, Hugepages: mem.HugepagesNever,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	core, err := d.NewCore(0)
	if err != nil {
		t.Fatal(err)
	}
	return core
}

// newFixedDomain is a domain plus a Manager that registers it with every file bdev
// ring, as sluiced wires them.
func newFixedDomain(t testing.TB) (*mem.Core, *Manager) {
	t.Helper()
	core := newMemDomain(t)
	m := NewManager()
	m.SetBufferRegistrar(core.Domain().RegisterFixedBuffers)
	return core, m
}

func allocBuf(t testing.TB, core *mem.Core, n int) mem.Buf {
	t.Helper()
	b, err := core.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { core.Free(b) })
	return b
}

// fixedIndex is what a protocol target puts in IO.FixedBuf for b.
func fixedIndex(b mem.Buf) uint32 { return uint32(b.FixedBuffer()) + 1 }

// TestFileFixedBuffers writes and reads allocator buffers naming their fixed buffer,
// with and without O_DIRECT, checks the bytes both ways against plain I/Os, and checks
// that num_fixed_buffer_ops counts exactly the I/Os that named one.
func TestFileFixedBuffers(t *testing.T) {
	for _, direct := range []string{"on", "off"} {
		t.Run("direct="+direct, func(t *testing.T) {
			core, m := newFixedDomain(t)
			g := newFileRigIn(t, m, FileParams{Name: "fx", Filename: filepath.Join(diskTempDir(t), "vol"),
				SizeBytes: 4 << 20, Direct: direct})
			if !g.channel().fixed {
				t.Fatal("the channel's ring has no fixed buffers after a successful registration")
			}
			be := g.backend()
			fixed := uint64(0)
			for i, n := range []int{4096, 8192, 65536, 128 << 10} {
				src, dst := allocBuf(t, core, n), allocBuf(t, core, n)
				if be.direct && !uring.Aligned(src.Bytes(), be.memAlign) {
					t.Fatalf("allocator buffer %v not aligned to %d: it would be bounced", src, be.memAlign)
				}
				off := uint64(i) * (256 << 10)
				fill(src.Bytes(), byte(i+1))
				clear(dst.Bytes())
				g.mustDo(t, IO{Type: IOWrite, FUA: i%2 == 1, Offset: off, Length: uint64(n),
					Buf: src.Bytes(), FixedBuf: fixedIndex(src)})
				g.mustDo(t, IO{Type: IORead, Offset: off, Length: uint64(n), Buf: dst.Bytes(), FixedBuf: fixedIndex(dst)})
				fixed += 2
				if !bytes.Equal(dst.Bytes(), src.Bytes()) {
					t.Fatalf("%d bytes at %d: fixed read of a fixed write differs", n, off)
				}
				// Cross-check with plain I/O, so that a fixed op that moved the
				// wrong bytes both ways cannot pass.
				if got := g.read(t, off, uint64(n)); !bytes.Equal(got, src.Bytes()) {
					t.Fatalf("%d bytes at %d: plain read of a fixed write differs", n, off)
				}
			}
			plain := offHeap(t, 8192)
			fill(plain, 0x42)
			g.mustDo(t, IO{Type: IOWrite, Offset: 2 << 20, Length: 8192, Buf: plain})
			dst := allocBuf(t, core, 8192)
			g.mustDo(t, IO{Type: IORead, Offset: 2 << 20, Length: 8192, Buf: dst.Bytes(), FixedBuf: fixedIndex(dst)})
			fixed++
			if !bytes.Equal(dst.Bytes(), plain) {
				t.Fatal("fixed read of a plain write differs")
			}
			// A Go-heap buffer (misaligned: bounced under O_DIRECT) naming no fixed
			// buffer takes the plain path as before.
			heap := make([]byte, 4097)[1:]
			fill(heap, 0x17)
			g.mustDo(t, IO{Type: IOWrite, Offset: 3 << 20, Length: 4096, Buf: heap})
			back := make([]byte, 4096)
			g.mustDo(t, IO{Type: IORead, Offset: 3 << 20, Length: 4096, Buf: back})
			if !bytes.Equal(back, heap) {
				t.Fatal("Go-heap I/O beside fixed ones: read back differs")
			}
			st := g.b.IOStat()
			if st.NumFixedBufferOps != fixed || st.NumFixedBufferFaults != 0 || st.NumErrors != 0 {
				t.Fatalf("iostat %+v: want %d fixed-buffer ops, no faults, no errors", st, fixed)
			}
		})
	}
}

// TestFileFixedBufferOfOtherMemory: an I/O naming fixed buffer 0 with memory that is
// not inside it (another domain's, a stray index) is refused by the kernel with
// EFAULT; the channel redoes it as a plain I/O, so it succeeds, and counts the fault.
// A FUA write's fdatasync, cancelled with the refused write, is issued again.
func TestFileFixedBufferOfOtherMemory(t *testing.T) {
	_, m := newFixedDomain(t)
	other := newMemDomain(t)
	g := newFileRigIn(t, m, FileParams{Name: "fo", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: 1 << 20})
	src := allocBuf(t, other, 4096)
	fill(src.Bytes(), 0x99)
	g.mustDo(t, IO{Type: IOWrite, FUA: true, Offset: 4096, Length: 4096, Buf: src.Bytes(), FixedBuf: fixedIndex(src)})
	dst := allocBuf(t, other, 4096)
	// Index 7 was never registered (a 16 MiB domain registers one buffer).
	g.mustDo(t, IO{Type: IORead, Offset: 4096, Length: 4096, Buf: dst.Bytes(), FixedBuf: 8})
	if !bytes.Equal(dst.Bytes(), src.Bytes()) {
		t.Fatal("I/Os redone without their fixed buffer: read back differs")
	}
	st := g.b.IOStat()
	if st.NumFixedBufferFaults != 2 || st.NumFixedBufferOps != 0 || st.NumErrors != 0 || st.NumSyncOps != 1 {
		t.Fatalf("iostat %+v: want 2 faults, 0 fixed ops, 0 errors, 1 fdatasync", st)
	}
}

// TestFileFixedShortReadRemainder: a short read's next round moves the rest of the same
// buffer, still inside the registered buffer, so it stays a fixed read and the kernel
// accepts it. Here the file was truncated behind the bdev: the first round returns the
// half before the end, the fixed second round reads nothing, and the I/O fails with
// EIO, not with a fixed-buffer fault.
func TestFileFixedShortReadRemainder(t *testing.T) {
	core, m := newFixedDomain(t)
	path := filepath.Join(diskTempDir(t), "vol")
	g := newFileRigIn(t, m, FileParams{Name: "fs", Filename: path, SizeBytes: 1 << 20, Direct: "off"})
	src := allocBuf(t, core, 8192)
	fill(src.Bytes(), 0x61)
	g.mustDo(t, IO{Type: IOWrite, Offset: 512 << 10, Length: 8192, Buf: src.Bytes(), FixedBuf: fixedIndex(src)})
	if err := os.Truncate(path, 512<<10+4096); err != nil {
		t.Fatal(err)
	}
	dst := allocBuf(t, core, 8192)
	io := IO{Type: IORead, Offset: 512 << 10, Length: 8192, Buf: dst.Bytes(), FixedBuf: fixedIndex(dst)}
	if s := g.do(t, &io); s != StatusIOError || io.Errno != int32(unix.EIO) {
		t.Fatalf("read across a truncated end: %v errno %d, want io_error EIO", s, io.Errno)
	}
	if !bytes.Equal(dst.Bytes()[:4096], src.Bytes()[:4096]) {
		t.Fatal("the short first round did not land at the start of the buffer")
	}
	if st := g.b.IOStat(); st.NumFixedBufferOps != 2 || st.NumFixedBufferFaults != 0 {
		t.Fatalf("iostat %+v: want 2 fixed-buffer ops and no fault", st)
	}
}

// TestFileFixedRegistrationFails: a registrar that fails (here as RLIMIT_MEMLOCK makes
// it fail for a daemon without CAP_IPC_LOCK) is called once per ring, logs one warning
// per bdev however many channels open, and I/Os naming a fixed buffer run plain.
func TestFileFixedRegistrationFails(t *testing.T) {
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	core := newMemDomain(t)
	m := NewManager()
	var calls atomic.Int32
	m.SetBufferRegistrar(func(int) error {
		calls.Add(1)
		return unix.ENOMEM
	})
	g := newFileRigIn(t, m, FileParams{Name: "fr", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: 1 << 20})
	r2 := testReactor(t)
	ch2, err := g.b.GetChannel(r2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ch2.Put(); r2.PollOnce() }()
	if calls.Load() != 2 {
		t.Fatalf("registrar called %d times for 2 rings", calls.Load())
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "RLIMIT_MEMLOCK") {
		t.Fatalf("%d warnings, want 1 naming RLIMIT_MEMLOCK:\n%s", n, logs.String())
	}
	if g.channel().fixed || ch2.be.(*fileChannel).fixed {
		t.Fatal("a channel whose registration failed uses fixed buffers")
	}
	buf := allocBuf(t, core, 4096)
	fill(buf.Bytes(), 5)
	g.mustDo(t, IO{Type: IOWrite, Offset: 0, Length: 4096, Buf: buf.Bytes(), FixedBuf: fixedIndex(buf)})
	if got := g.read(t, 0, 4096); !bytes.Equal(got, buf.Bytes()) {
		t.Fatal("read back differs")
	}
	if st := g.b.IOStat(); st.NumFixedBufferOps != 0 || st.NumFixedBufferFaults != 0 || st.NumErrors != 0 {
		t.Fatalf("iostat %+v", st)
	}
}
