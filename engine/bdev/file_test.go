package bdev

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/cgo/uring"
	"sluice/engine/reactor"
)

// fileTestDeadline bounds how long a test waits for an I/O before calling it lost. It is
// a liveness bound for a shared, loaded machine, not a speed check.
const fileTestDeadline = 30 * time.Second

// diskTempDir returns a fresh directory on a disk-backed file system, so that O_DIRECT,
// fallocate and st_blocks behave as on a real volume. /tmp is tmpfs on many machines;
// /var/tmp is on disk by convention.
func diskTempDir(t testing.TB) string {
	t.Helper()
	skipWithoutUring(t)
	base := os.TempDir()
	if isMemFS(base) {
		base = "/var/tmp"
	}
	if isMemFS(base) {
		t.Skipf("no disk-backed temp dir: %s and /var/tmp are memory file systems", os.TempDir())
	}
	d, err := os.MkdirTemp(base, "sluice-file-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// skipWithoutUring skips a test when this machine or build has no io_uring. Every file
// bdev test asks for a directory first, so the directory helpers call it.
func skipWithoutUring(t testing.TB) {
	t.Helper()
	r, err := uring.New(1)
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	_ = r.Close()
}

func isMemFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && (st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC)
}

// mountTemp mounts a fresh file system of fstype on a temp dir and unmounts it in
// cleanup, after the bdevs the test opens on it (cleanups run last-in first-out).
func mountTemp(t *testing.T, fstype, opts string) string {
	t.Helper()
	skipWithoutUring(t)
	if os.Geteuid() != 0 {
		t.Skipf("mounting %s needs root: run the bdev tests as root to cover this case", fstype)
	}
	dir := t.TempDir()
	if err := unix.Mount(fstype, dir, fstype, 0, opts); err != nil {
		t.Skipf("mount -t %s -o %q (root, but no CAP_SYS_ADMIN?): %v", fstype, opts, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// tmpfsDir returns a directory on tmpfs: /dev/shm when it is one, else a fresh mount.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	skipWithoutUring(t)
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC {
		d, err := os.MkdirTemp("/dev/shm", "sluice-file-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return mountTemp(t, "tmpfs", "size=64m")
}

// offHeap maps n bytes outside the Go heap, page aligned, as the data path's buffers are.
func offHeap(t testing.TB, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

type fileRig struct {
	m  *Manager
	b  *Bdev
	r  *reactor.Reactor
	ch *Channel
}

// newFileRig creates a file bdev and opens a channel on a stepped busy reactor; cleanup
// puts the channel and deletes the bdev.
func newFileRig(t testing.TB, p FileParams) *fileRig {
	t.Helper()
	return newFileRigIn(t, NewManager(), p)
}

// newFileRigIn is newFileRig with the caller's Manager, for a test that sets it up
// (a buffer registrar) before the bdev is created.
func newFileRigIn(t testing.TB, m *Manager, p FileParams) *fileRig {
	t.Helper()
	b, err := CreateFile(m, p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := reactor.New(reactor.Config{Core: -1, Mode: reactor.ModeBusy})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := b.GetChannel(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch.Put()
		r.PollOnce() // the channel closes in a reactor step of its own
		if err := m.Delete(context.Background(), p.Name, "file"); err != nil {
			t.Errorf("delete: %v", err)
		}
	})
	return &fileRig{m: m, b: b, r: r, ch: ch}
}

func (g *fileRig) backend() *fileBackend { return g.b.backend.(*fileBackend) }
func (g *fileRig) channel() *fileChannel { return g.ch.be.(*fileChannel) }

// do submits io and steps the reactor until it completes.
func (g *fileRig) do(t testing.TB, io *IO) Status {
	t.Helper()
	done := false
	io.Done = func(*IO) { done = true }
	g.ch.Submit(io)
	g.pollUntil(t, func() bool { return done })
	return io.Status
}

func (g *fileRig) pollUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(fileTestDeadline)
	for !cond() {
		g.r.PollOnce()
		if time.Now().After(deadline) {
			t.Fatalf("I/O not complete after %v", fileTestDeadline)
		}
	}
}

func (g *fileRig) mustDo(t testing.TB, io IO) {
	t.Helper()
	if s := g.do(t, &io); s != StatusSuccess {
		t.Fatalf("%v at %d+%d: %v (errno %d)", io.Type, io.Offset, io.Length, s, io.Errno)
	}
}

func (g *fileRig) read(t testing.TB, off, n uint64) []byte {
	t.Helper()
	buf := offHeap(t, int(n))
	g.mustDo(t, IO{Type: IORead, Offset: off, Length: n, Buf: buf})
	return buf
}

// fill writes a pattern that differs per byte position and per seed, so that data
// landing at the wrong offset or from the wrong I/O shows.
func fill(b []byte, seed byte) {
	for i := range b {
		b[i] = byte(i>>9) ^ byte(i)*31 ^ seed
	}
}

// exerciseReadWrite writes and reads back patterns of 512 B to 512 KiB at several
// offsets, from off-heap (aligned) and Go-heap buffers at an odd address (bounced when
// O_DIRECT is on), then checks every range again once all are written.
func exerciseReadWrite(t *testing.T, g *fileRig) {
	t.Helper()
	type span struct{ off, n uint64 }
	spans := []span{
		{0, 512}, {512, 512}, {4096, 4096}, {3 * 4096, 8192}, {65536 + 512, 32768},
		{1 << 20, 128 << 10}, {2 << 20, 512 << 10}, {g.b.SizeBytes() - 4096, 4096},
	}
	want := map[uint64][]byte{}
	for i, sp := range spans {
		src := offHeap(t, int(sp.n))
		if i%2 == 1 {
			// Go heap, one byte past an aligned start: never O_DIRECT aligned.
			src = make([]byte, sp.n+1)[1:]
		}
		fill(src, byte(i+1))
		g.mustDo(t, IO{Type: IOWrite, Offset: sp.off, Length: sp.n, Buf: src})
		dst := make([]byte, sp.n+1)[1:]
		if i%2 == 0 {
			dst = offHeap(t, int(sp.n))
		}
		g.mustDo(t, IO{Type: IORead, Offset: sp.off, Length: sp.n, Buf: dst})
		if !bytes.Equal(dst, src) {
			t.Fatalf("span %d (%d+%d): read back differs", i, sp.off, sp.n)
		}
		want[sp.off] = append([]byte(nil), src...)
	}
	for _, sp := range spans {
		if got := g.read(t, sp.off, sp.n); !bytes.Equal(got, want[sp.off]) {
			t.Fatalf("%d+%d changed after later writes", sp.off, sp.n)
		}
	}
	if st := g.b.IOStat(); st.NumErrors != 0 || st.NumWriteOps != uint64(len(spans)) {
		t.Fatalf("iostat %+v", st)
	}
}

func TestFileReadWriteDirect(t *testing.T) {
	g := newFileRig(t, FileParams{Name: "f0", Filename: filepath.Join(diskTempDir(t), "vol"),
		SizeBytes: 8 << 20, Direct: "on"})
	be := g.backend()
	if !be.direct || be.blockSize != 512 {
		t.Fatalf("direct %v block size %d", be.direct, be.blockSize)
	}
	exerciseReadWrite(t, g)
	// A misaligned I/O larger than the bounce buffer goes through it in pieces.
	n := uint64(fileBounceBytes + fileBounceBytes/2)
	src := make([]byte, n+1)[1:]
	fill(src, 0x5a)
	g.mustDo(t, IO{Type: IOWrite, FUA: true, Offset: 4 << 20, Length: n, Buf: src})
	dst := make([]byte, n+3)[3:]
	g.mustDo(t, IO{Type: IORead, Offset: 4 << 20, Length: n, Buf: dst})
	if !bytes.Equal(dst, src) {
		t.Fatal("multi-piece bounced I/O read back differs")
	}
}

// TestFileTmpfs: tmpfs accepts O_DIRECT since Linux 6.6 and refuses it before; either
// way the data must round-trip, and WriteZeroes falls back to writing zeros because
// tmpfs has no FALLOC_FL_ZERO_RANGE.
func TestFileTmpfs(t *testing.T) {
	for _, direct := range []string{"auto", "off"} {
		t.Run(direct, func(t *testing.T) {
			g := newFileRig(t, FileParams{Name: "t0", Filename: filepath.Join(tmpfsDir(t), "vol"),
				SizeBytes: 4 << 20, Direct: direct})
			t.Logf("tmpfs, direct=%s: O_DIRECT in use: %v", direct, g.backend().direct)
			exerciseReadWrite(t, g)
			g.mustDo(t, IO{Type: IOWriteZeroes, Offset: 4096, Length: 8192})
			if got := g.read(t, 0, 16384); !bytes.Equal(got[4096:12288], make([]byte, 8192)) {
				t.Fatal("write zeroes on tmpfs left data")
			}
			if !g.channel().noZeroRange {
				t.Fatal("tmpfs accepted FALLOC_FL_ZERO_RANGE; the fallback went untested")
			}
		})
	}
}

// TestFileBufferedFallback: ramfs refuses O_DIRECT and every fallocate mode, so "auto"
// falls back to buffered I/O, "on" fails, and WriteZeroes and Unmap write zeros.
func TestFileBufferedFallback(t *testing.T) {
	dir := mountTemp(t, "ramfs", "")
	path := filepath.Join(dir, "vol")
	m := NewManager()
	_, err := CreateFile(m, FileParams{Name: "strict", Filename: path, SizeBytes: 4 << 20, Direct: "on"})
	if !errors.Is(err, ErrDirectRefused) {
		t.Fatalf("direct=on on ramfs: %v, want ErrDirectRefused", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed create left the file behind: %v", err)
	}
	g := newFileRig(t, FileParams{Name: "r0", Filename: path, SizeBytes: 4 << 20})
	if g.backend().direct {
		t.Fatal("ramfs bdev claims O_DIRECT")
	}
	exerciseReadWrite(t, g)
	g.mustDo(t, IO{Type: IOUnmap, Offset: 0, Length: 4096})
	g.mustDo(t, IO{Type: IOWriteZeroes, Offset: 2 << 20, Length: 3 << 20 / 2})
	if got := g.read(t, 0, 4096); !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatal("unmap on ramfs: reads are not zeros")
	}
	if got := g.read(t, 2<<20, 3<<20/2); !bytes.Equal(got, make([]byte, 3<<20/2)) {
		t.Fatal("write zeroes on ramfs: reads are not zeros")
	}
	if c := g.channel(); !c.noPunch || !c.noZeroRange {
		t.Fatalf("fallbacks not recorded: noPunch %v noZeroRange %v", c.noPunch, c.noZeroRange)
	}
}

func TestFileFlushAndFUASync(t *testing.T) {
	g := newFileRig(t, FileParams{Name: "s0", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: 1 << 20})
	syncs := func() uint64 { return g.b.IOStat().NumSyncOps }
	buf := offHeap(t, 4096)
	fill(buf, 9)
	g.mustDo(t, IO{Type: IOWrite, Offset: 0, Length: 4096, Buf: buf})
	if n := syncs(); n != 0 {
		t.Fatalf("plain write issued %d fdatasync", n)
	}
	g.mustDo(t, IO{Type: IOFlush})
	if n := syncs(); n != 1 {
		t.Fatalf("after FLUSH: %d fdatasync, want 1", n)
	}
	g.mustDo(t, IO{Type: IOWrite, FUA: true, Offset: 8192, Length: 4096, Buf: buf})
	if n := syncs(); n != 2 {
		t.Fatalf("after FUA write: %d fdatasync, want 2 (exactly one for the FUA)", n)
	}
	g.mustDo(t, IO{Type: IOWriteZeroes, FUA: true, Offset: 0, Length: 4096})
	if n := syncs(); n != 3 {
		t.Fatalf("after FUA write zeroes: %d fdatasync, want 3", n)
	}
	g.mustDo(t, IO{Type: IOUnmap, Offset: 0, Length: 4096})
	if n := syncs(); n != 3 {
		t.Fatalf("after a plain unmap: %d fdatasync, want still 3", n)
	}
	g.mustDo(t, IO{Type: IOUnmap, FUA: true, Offset: 4096, Length: 4096})
	if n := syncs(); n != 4 {
		t.Fatalf("after FUA unmap: %d fdatasync, want 4", n)
	}
	if st := g.b.IOStat(); st.NumFlushOps != 1 || st.NumWriteOps != 2 || st.NumWriteZeroesOps != 1 || st.NumUnmapOps != 2 {
		t.Fatalf("iostat %+v", st)
	}
}

func allocatedBlocks(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}

func TestFileUnmapPunchesHoles(t *testing.T) {
	path := filepath.Join(diskTempDir(t), "vol")
	g := newFileRig(t, FileParams{Name: "u0", Filename: path, SizeBytes: 4 << 20})
	if g.b.Caps() != fileCaps || !g.b.Caps().UnmapReadsZero {
		t.Fatalf("caps %+v", g.b.Caps())
	}
	buf := offHeap(t, 2<<20)
	fill(buf, 3)
	g.mustDo(t, IO{Type: IOWrite, FUA: true, Offset: 0, Length: 2 << 20, Buf: buf})
	before := allocatedBlocks(t, path)
	g.mustDo(t, IO{Type: IOUnmap, Offset: 0, Length: 1 << 20})
	after := allocatedBlocks(t, path)
	if after >= before || before-after < (1<<20)/512/2 {
		t.Fatalf("unmap of 1 MiB: st_blocks %d -> %d", before, after)
	}
	got := g.read(t, 0, 2<<20)
	if !bytes.Equal(got[:1<<20], make([]byte, 1<<20)) || !bytes.Equal(got[1<<20:], buf[1<<20:]) {
		t.Fatal("after unmap: unmapped range not zero, or the rest changed")
	}
	if st := g.b.IOStat(); st.NumUnmapOps != 1 || st.BytesUnmapped != 1<<20 {
		t.Fatalf("iostat %+v", st)
	}
}

func TestFileWriteZeroes(t *testing.T) {
	g := newFileRig(t, FileParams{Name: "z0", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: 1 << 20})
	buf := offHeap(t, 65536)
	fill(buf, 7)
	g.mustDo(t, IO{Type: IOWrite, Offset: 0, Length: 65536, Buf: buf})
	g.mustDo(t, IO{Type: IOWriteZeroes, Offset: 4096, Length: 8192})
	got := g.read(t, 0, 65536)
	want := append([]byte(nil), buf...)
	clear(want[4096:12288])
	if !bytes.Equal(got, want) {
		t.Fatal("write zeroes: wrong bytes around or inside the range")
	}
	if g.channel().noZeroRange {
		t.Fatal("disk file system refused FALLOC_FL_ZERO_RANGE")
	}
}

func TestFileOutOfRange(t *testing.T) {
	g := newFileRig(t, FileParams{Name: "o0", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: 64 << 10})
	buf := offHeap(t, 8192)
	for _, io := range []IO{
		{Type: IORead, Offset: 64 << 10, Length: 4096, Buf: buf[:4096]},
		{Type: IOWrite, Offset: 60 << 10, Length: 8192, Buf: buf},
		{Type: IOUnmap, Offset: 32 << 10, Length: 64 << 10},
		{Type: IORead, Offset: 100, Length: 512, Buf: buf[:512]},
	} {
		if s := g.do(t, &io); s != StatusOutOfRange {
			t.Errorf("%v %d+%d: %v, want out_of_range", io.Type, io.Offset, io.Length, s)
		}
	}
}

// TestFileNoSpace fills a 256 KiB tmpfs through a larger bdev: the write that finds no
// room completes with StatusNoSpace and ENOSPC, not as a generic I/O error.
func TestFileNoSpace(t *testing.T) {
	dir := mountTemp(t, "tmpfs", "size=256k")
	g := newFileRig(t, FileParams{Name: "n0", Filename: filepath.Join(dir, "vol"), SizeBytes: 4 << 20})
	buf := offHeap(t, 48<<10)
	fill(buf, 1)
	for off := uint64(0); off < g.b.SizeBytes(); off += uint64(len(buf)) {
		io := IO{Type: IOWrite, Offset: off, Length: uint64(len(buf)), Buf: buf}
		switch s := g.do(t, &io); s {
		case StatusSuccess:
			continue
		case StatusNoSpace:
			if io.Errno != int32(unix.ENOSPC) {
				t.Fatalf("no space with errno %d, want ENOSPC", io.Errno)
			}
			if off < 128<<10 {
				t.Fatalf("no space after only %d bytes of a 256 KiB file system", off)
			}
			return
		default:
			t.Fatalf("write at %d: %v (errno %d), want success or no_space", off, s, io.Errno)
		}
	}
	t.Fatal("wrote 4 MiB into a 256 KiB tmpfs")
}

// TestFileTruncatedUnderneath: a read past the end of a file shrunk behind the bdev's
// back makes no progress and fails, rather than spinning or returning stale bytes.
func TestFileTruncatedUnderneath(t *testing.T) {
	path := filepath.Join(diskTempDir(t), "vol")
	g := newFileRig(t, FileParams{Name: "e0", Filename: path, SizeBytes: 1 << 20})
	if err := os.Truncate(path, 512<<10); err != nil {
		t.Fatal(err)
	}
	io := IO{Type: IORead, Offset: 768 << 10, Length: 4096, Buf: offHeap(t, 4096)}
	if s := g.do(t, &io); s != StatusIOError || io.Errno != int32(unix.EIO) {
		t.Fatalf("read past a truncated end: %v errno %d", s, io.Errno)
	}
}

// TestFileQueueDeeperThanRing submits 1000 writes at once, four times the ring, then
// 1000 reads: the overflow waits in the pending FIFO and every I/O completes.
func TestFileQueueDeeperThanRing(t *testing.T) {
	const n, bs = 1000, 4096
	g := newFileRig(t, FileParams{Name: "q0", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: n * bs})
	src, dst := offHeap(t, n*bs), offHeap(t, n*bs)
	ios := make([]IO, n)
	completed := 0
	run := func(typ IOType, buf []byte) {
		completed = 0
		for i := range ios {
			// Reverse order, so that the file is not written front to back.
			off := uint64(n-1-i) * bs
			ios[i] = IO{Type: typ, Offset: off, Length: bs, Buf: buf[off : off+bs],
				Done: func(io *IO) {
					if io.Status != StatusSuccess {
						t.Errorf("%v at %d: %v", io.Type, io.Offset, io.Status)
					}
					completed++
				}}
			g.ch.Submit(&ios[i])
		}
		if p := g.channel().pending.len(); p < n-fileRingEntries {
			t.Fatalf("%d I/Os pending after submitting %d to a %d-entry ring", p, n, fileRingEntries)
		}
		g.pollUntil(t, func() bool { return completed == n })
	}
	for i := range n {
		fill(src[i*bs:(i+1)*bs], byte(i))
	}
	run(IOWrite, src)
	run(IORead, dst)
	if !bytes.Equal(src, dst) {
		t.Fatal("read back of 1000 concurrent writes differs")
	}
	if g.ch.Inflight() != 0 || g.channel().ring.Inflight() != 0 {
		t.Fatalf("left in flight: channel %d ring %d", g.ch.Inflight(), g.channel().ring.Inflight())
	}
}

// TestFileRoundWaitsForRoom steps a 4-entry ring into the corner where an I/O already
// in flight needs more room for its next round than is left: the last round of a FUA
// write (write + linked fdatasync) waits in the resume queue, then completes. Two
// misaligned I/Os at once share the bounce buffer in turn.
func TestFileRoundWaitsForRoom(t *testing.T) {
	m := NewManager()
	b, err := CreateFile(m, FileParams{Name: "rw", Filename: filepath.Join(diskTempDir(t), "vol"),
		SizeBytes: 4 << 20, Direct: "on"})
	if err != nil {
		t.Fatal(err)
	}
	b.backend.(*fileBackend).ringEntries = 4
	r := testReactor(t)
	ch, err := b.GetChannel(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Put(); r.PollOnce(); m.Delete(context.Background(), "rw", "file") })
	g := &fileRig{m: m, b: b, r: r, ch: ch}
	c := g.channel()

	n := uint64(fileBounceBytes + 4096)
	src := make([]byte, n+1)[1:]
	fill(src, 0x3c)
	finished := 0
	count := func(io *IO) {
		if io.Status != StatusSuccess {
			t.Errorf("%v at %d: %v", io.Type, io.Offset, io.Status)
		}
		finished++
	}
	a := &IO{Type: IOWrite, FUA: true, Offset: 0, Length: n, Buf: src, Done: count}
	ch.Submit(a) // first round: 1 MiB through the bounce buffer, nothing linked yet
	if _, err := c.ring.Submit(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(fileTestDeadline)
	for !c.ring.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("first round never completed")
		}
	}
	// Three reads staged now leave one entry when the first round is reaped; the
	// last round needs two.
	bufs := offHeap(t, 3*4096)
	for i := range 3 {
		ch.Submit(&IO{Type: IORead, Offset: 2<<20 + uint64(i)*4096, Length: 4096,
			Buf: bufs[i*4096 : (i+1)*4096], Done: count})
	}
	if c.ring.Space() != 0 {
		t.Fatalf("ring space %d, want 0", c.ring.Space())
	}
	r.PollOnce()
	if c.resume.len() != 1 {
		t.Fatalf("resume queue holds %d rounds, want the FUA write's last one", c.resume.len())
	}
	g.pollUntil(t, func() bool { return finished == 4 })
	if got := g.read(t, 0, n); !bytes.Equal(got, src) {
		t.Fatal("FUA write resumed after waiting for room: read back differs")
	}
	if st := b.IOStat(); st.NumSyncOps != 1 {
		t.Fatalf("%d fdatasync for one FUA write", st.NumSyncOps)
	}

	x, y := make([]byte, 4097)[1:], make([]byte, 4097)[1:]
	ch.Submit(&IO{Type: IORead, Offset: 0, Length: 4096, Buf: x, Done: count})
	ch.Submit(&IO{Type: IORead, Offset: 4096, Length: 4096, Buf: y, Done: count})
	if c.bounceWait.len() != 1 {
		t.Fatalf("%d I/Os wait for the bounce buffer, want 1", c.bounceWait.len())
	}
	g.pollUntil(t, func() bool { return finished == 6 })
	if !bytes.Equal(x, src[:4096]) || !bytes.Equal(y, src[4096:8192]) {
		t.Fatal("bounced reads that waited their turn read wrong data")
	}
}

func TestFileQueueGrowsInOrder(t *testing.T) {
	q := newFileQueue[int](3)
	if len(q.buf) != 4 {
		t.Fatalf("capacity %d, want 4 (next power of two)", len(q.buf))
	}
	next := 0
	for i := range 100 {
		q.push(i)
		if i%3 == 2 {
			if q.peek() != next {
				t.Fatalf("peek %d, want %d", q.peek(), next)
			}
			q.pop()
			next++
		}
	}
	for ; q.len() > 0; next++ {
		if q.peek() != next {
			t.Fatalf("peek %d, want %d", q.peek(), next)
		}
		q.pop()
	}
	if next != 100 {
		t.Fatalf("popped %d of 100", next)
	}
}

// TestFileWakesInterruptReactor: a reactor in interrupt mode sleeps in epoll whenever an
// iteration finds nothing to do, and a completion must wake it. (On Linux 6.x the task
// work that posts a completion also interrupts the submitting thread's epoll_wait, so
// this passes even without the eventfd; TestFileEventfdWakesOtherThread covers that.)
func TestFileWakesInterruptReactor(t *testing.T) {
	m := NewManager()
	b, err := CreateFile(m, FileParams{Name: "w0", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r, err := reactor.New(reactor.Config{Core: -1, Mode: reactor.ModeInterrupt})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	var ch *Channel
	if err := r.Do(func() { ch, err = b.GetChannel(r) }); err != nil || ch == nil {
		t.Fatalf("get channel: %v", err)
	}
	buf := offHeap(t, 4096)
	fill(buf, 2)
	done := make(chan Status, 1)
	io := &IO{Length: 4096, Buf: buf, Done: func(io *IO) { done <- io.Status }}
	sleeps := r.Stats().Sleeps
	for i := range 20 {
		// FUA makes each I/O last a device round trip, long enough for the reactor
		// to go to sleep behind it.
		io.Type, io.FUA, io.Offset = IOWrite, i%2 == 0, uint64(i)*4096
		if i%4 == 3 {
			io.Type, io.FUA = IORead, false
		}
		if err := r.Do(func() { ch.Submit(io) }); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-done:
			if s != StatusSuccess {
				t.Fatalf("I/O %d: %v", i, s)
			}
		case <-time.After(fileTestDeadline):
			t.Fatalf("I/O %d not complete after %v: the completion did not wake the reactor", i, fileTestDeadline)
		}
	}
	if r.Stats().Sleeps == sleeps {
		t.Fatal("the reactor never slept, so the wakeup went untested")
	}
	if err := r.Do(func() { ch.Put() }); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(context.Background(), "w0", "file"); err != nil {
		t.Fatal(err)
	}
}

// TestFileEventfdWakesOtherThread is the case the ring's eventfd exists for. io_uring
// delivers a completion as task work to the thread that submitted, which also kicks
// that thread out of epoll_wait: a reactor that submits and sleeps on one locked thread
// would wake even without the eventfd, so the test above cannot tell. Here the
// submitting thread is not the one asleep in the reactor's epoll: only the eventfd,
// registered in that epoll, can wake it. Without the eventfd this hangs, unless the
// completion happens to land before the reactor's first sleep.
func TestFileEventfdWakesOtherThread(t *testing.T) {
	m := NewManager()
	b, err := CreateFile(m, FileParams{Name: "x0", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r, err := reactor.New(reactor.Config{Core: -1, Mode: reactor.ModeInterrupt})
	if err != nil {
		t.Fatal(err)
	}
	buf := offHeap(t, 4096)
	fill(buf, 4)
	var done atomic.Bool
	var ch *Channel
	submitted, finished := make(chan error), make(chan struct{})
	go func() { // thread A: opens the channel and submits
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var err error
		if ch, err = b.GetChannel(r); err != nil {
			submitted <- err
			return
		}
		// FUA: the linked fdatasync keeps the I/O in flight well past this call.
		ch.Submit(&IO{Type: IOWrite, FUA: true, Length: 4096, Buf: buf, Done: func(*IO) { done.Store(true) }})
		r.PollOnce()
		submitted <- nil
		<-finished // parked, but alive to run the completion's task work
	}()
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	result := make(chan bool, 1)
	go func() { // thread B: steps the reactor, which sleeps in epoll when idle
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for !done.Load() {
			r.PollOnce()
		}
		result <- true
	}()
	select {
	case <-result:
	case <-time.After(fileTestDeadline):
		t.Fatal("completion did not wake a reactor sleeping on another thread")
	}
	close(finished)
	ch.Put()
	r.PollOnce()
	if err := m.Delete(context.Background(), "x0", "file"); err != nil {
		t.Fatal(err)
	}
}

func TestFilePersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(diskTempDir(t), "vol")
	m := NewManager()
	r := testReactor(t)
	p := FileParams{Name: "p0", Filename: path, SizeBytes: 1 << 20}
	b, err := CreateFile(m, p)
	if err != nil {
		t.Fatal(err)
	}
	// The file is locked while a bdev has it open.
	if _, err := CreateFile(m, FileParams{Name: "p1", Filename: path}); err == nil {
		t.Fatal("a second bdev opened a file already in use")
	}
	ch, _ := b.GetChannel(r)
	g := &fileRig{m: m, b: b, r: r, ch: ch}
	data := offHeap(t, 64<<10)
	fill(data, 0x77)
	g.mustDo(t, IO{Type: IOWrite, Offset: 128 << 10, Length: 64 << 10, Buf: data})
	ch.Put()
	r.PollOnce()
	if err := m.Delete(context.Background(), "p0", "file"); err != nil {
		t.Fatal(err)
	}
	g = newFileRig(t, FileParams{Name: "p0", Filename: path})
	if g.b.NumBlocks() != b.NumBlocks() || g.b.UUID() != b.UUID() {
		t.Fatalf("reopened as %d blocks uuid %x, was %d blocks uuid %x",
			g.b.NumBlocks(), g.b.UUID(), b.NumBlocks(), b.UUID())
	}
	if got := g.read(t, 128<<10, 64<<10); !bytes.Equal(got, data) {
		t.Fatal("data written before close not read back after reopen")
	}
}

func TestFileCreateParams(t *testing.T) {
	dir := diskTempDir(t)
	m := NewManager()
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name string
		p    FileParams
		want error
	}{
		{"no size for a new file", FileParams{Name: "a", Filename: missing}, unix.ENOENT},
		{"bad direct", FileParams{Name: "a", Filename: missing, SizeBytes: 4096, Direct: "maybe"}, ErrInvalid},
		{"bad block size", FileParams{Name: "a", Filename: missing, SizeBytes: 4096, BlockSize: 1000}, ErrInvalid},
		{"bad uuid", FileParams{Name: "a", Filename: missing, SizeBytes: 4096, UUID: "x"}, ErrInvalid},
		{"no name", FileParams{Filename: missing, SizeBytes: 4096}, ErrInvalid},
		{"directory", FileParams{Name: "a", Filename: dir}, unix.EISDIR},
		{"smaller than a block", FileParams{Name: "a", Filename: missing, SizeBytes: 256}, ErrInvalid},
	} {
		if _, err := CreateFile(m, tc.p); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: failed create left %s behind", tc.name, missing)
		}
	}

	path := filepath.Join(dir, "vol")
	u := "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f"
	b, err := CreateFile(m, FileParams{Name: "v", Filename: path, SizeBytes: 10<<20 + 100, UUID: u})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o600 || st.Size != 10<<20+100 || st.Blocks > 8 {
		t.Fatalf("created file mode %o size %d blocks %d: want 0600, sparse", st.Mode&0o777, st.Size, st.Blocks)
	}
	if b.Module() != "file" || b.BlockSize() != 512 || b.NumBlocks() != 10<<20/512 || FormatUUID(b.UUID()) != u {
		t.Fatalf("module %s block size %d blocks %d uuid %s", b.Module(), b.BlockSize(), b.NumBlocks(), FormatUUID(b.UUID()))
	}
	if p := b.Params().(FileParams); p.BlockSize != 512 || p.Direct != "" || p.SizeBytes != 10<<20+100 {
		t.Fatalf("echoed params %+v", p)
	}
	if _, err := CreateFile(m, FileParams{Name: "v", Filename: filepath.Join(dir, "other"), SizeBytes: 4096}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("duplicate name created a file")
	}
	if err := m.Delete(context.Background(), "v", "file"); err != nil {
		t.Fatal(err)
	}
	// Reopen: a larger size_bytes is refused, a smaller one yields to the file.
	if _, err := CreateFile(m, FileParams{Name: "v", Filename: path, SizeBytes: 20 << 20}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("size_bytes larger than the file: %v", err)
	}
	b, err = CreateFile(m, FileParams{Name: "v", Filename: path, SizeBytes: 4096, BlockSize: 4096, Direct: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if b.BlockSize() != 4096 || b.NumBlocks() != 10<<20/4096 || b.backend.(*fileBackend).direct {
		t.Fatalf("reopened: block size %d blocks %d", b.BlockSize(), b.NumBlocks())
	}
	if err := m.CloseAll(); err != nil {
		t.Fatal(err)
	}
}

// TestFileSubmitAllocatesNothing: a 4 KiB write and read through Channel.Submit, the
// ring and the completion allocate nothing, with off-heap buffers, plain or naming a
// registered fixed buffer of a memory domain.
func TestFileSubmitAllocatesNothing(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		g := newFileRig(t, FileParams{Name: "a0", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: 1 << 20})
		if allocs := allocsPerWriteRead(g, offHeap(t, 4096), 0); allocs != 0 {
			t.Fatalf("file bdev allocates %v per 4 KiB write+read", allocs)
		}
	})
	t.Run("fixed", func(t *testing.T) {
		core, m := newFixedDomain(t)
		g := newFileRigIn(t, m, FileParams{Name: "a1", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: 1 << 20})
		buf := allocBuf(t, core, 4096)
		before := g.b.IOStat().NumFixedBufferOps
		if allocs := allocsPerWriteRead(g, buf.Bytes(), uint32(buf.FixedBuffer())+1); allocs != 0 {
			t.Fatalf("file bdev allocates %v per 4 KiB fixed-buffer write+read", allocs)
		}
		if st := g.b.IOStat(); st.NumFixedBufferOps == before || st.NumFixedBufferFaults != 0 {
			t.Fatalf("fixed path not taken: %+v", st)
		}
	})
}

// allocsPerWriteRead measures the heap allocations of a 4 KiB write then read of buf.
func allocsPerWriteRead(g *fileRig, buf []byte, fixedBuf uint32) float64 {
	done := false
	io := &IO{Length: uint64(len(buf)), Buf: buf, FixedBuf: fixedBuf, Done: func(*IO) { done = true }}
	run := func(typ IOType) {
		io.Type, io.Offset, done = typ, 8192, false
		g.ch.Submit(io)
		for !done {
			g.r.PollOnce()
		}
		if io.Status != StatusSuccess {
			panic(io.Status.String())
		}
	}
	return testing.AllocsPerRun(500, func() {
		run(IOWrite)
		run(IORead)
	})
}

// BenchmarkFileRandRead4K reads random 4 KiB blocks of a 64 MiB file on disk, 32 I/Os
// in flight, on one stepped busy reactor. "direct" goes to the device with O_DIRECT;
// "buffered" hits the page cache, which leaves the cost of the software path.
func BenchmarkFileRandRead4K(b *testing.B) {
	const size = 64 << 20
	path := filepath.Join(diskTempDir(b), "vol")
	// Real blocks, not holes: reading a hole costs the disk nothing.
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{0xA5}, 1<<20)
	for off := 0; off < size; off += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	for _, direct := range []string{"on", "off"} {
		name := map[string]string{"on": "direct", "off": "buffered"}[direct]
		b.Run(name, func(b *testing.B) {
			benchRandRead(b, FileParams{Name: "bench", Filename: path, Direct: direct}, size)
		})
	}
}

func benchRandRead(b *testing.B, p FileParams, size uint64) {
	const qd, bs = 32, 4096
	g := newFileRig(b, p)
	rng := rand.New(rand.NewPCG(1, 2))
	blocks := size / bs
	bufs := offHeap(b, qd*bs)
	ios := make([]IO, qd)
	issued, completed := 0, 0
	done := func(io *IO) {
		if io.Status != StatusSuccess {
			b.Fatalf("read: %v", io.Status)
		}
		completed++
		if issued < b.N {
			issued++
			io.Offset = rng.Uint64N(blocks) * bs
			g.ch.Submit(io)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range ios {
		ios[i] = IO{Type: IORead, Length: bs, Buf: bufs[i*bs : (i+1)*bs], Done: done}
		if issued < b.N {
			issued++
			ios[i].Offset = rng.Uint64N(blocks) * bs
			g.ch.Submit(&ios[i])
		}
	}
	for completed < b.N {
		g.r.PollOnce()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "IOPS")
}
