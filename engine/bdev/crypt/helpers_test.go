package crypt

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/cgo/uring"
	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/reactor"
)

// productionKDF is DefaultKDF as shipped; TestMain lowers DefaultKDF so that the many
// passphrase formats of the tests take milliseconds, and the test of the shipped
// parameters puts it back.
var productionKDF = DefaultKDF

func TestMain(m *testing.M) {
	DefaultKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
	os.Exit(m.Run())
}

// testDeadline bounds how long a test waits for an I/O before calling it lost: a
// liveness bound for a shared machine, not a speed check.
const testDeadline = 30 * time.Second

// rig is a crypt test's world: a memory domain with one core per reactor, a stepped data
// reactor (ID 0) the test drives, and a started control reactor (ID 1) for header I/O.
type rig struct {
	m       *bdev.Manager
	dom     *mem.Domain
	cores   []*mem.Core
	r       *reactor.Reactor
	control *reactor.Reactor
	env     Env
}

func newRig(t testing.TB) *rig {
	return newRigSized(t, 64<<20)
}

func newRigSized(t testing.TB, domBytes int64) *rig {
	t.Helper()
	d, err := mem.NewDomain(mem.DomainConfig{SizeBytes: domBytes, Hugepages: mem.HugepagesNever,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: a buffer the layer leaked fails the test here.
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("memory domain: %v", err)
		}
	})
	g := &rig{m: bdev.NewManager(), dom: d}
	// Runs after the channels' cleanups and before the domain's: layers before bases.
	t.Cleanup(func() {
		if err := g.m.CloseAll(); err != nil {
			t.Errorf("close bdevs: %v", err)
		}
	})
	for i := range 2 {
		c, err := d.NewCore(i)
		if err != nil {
			t.Fatal(err)
		}
		g.cores = append(g.cores, c)
	}
	g.m.SetBufferRegistrar(d.RegisterFixedBuffers)
	if g.r, err = reactor.New(reactor.Config{ID: 0, Core: -1, Mode: reactor.ModeBusy}); err != nil {
		t.Fatal(err)
	}
	if g.control, err = reactor.New(reactor.Config{ID: 1, Core: -1, Mode: reactor.ModeAdaptive}); err != nil {
		t.Fatal(err)
	}
	if err := g.control.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.control.Stop)
	g.env = Env{Mem: func(i int) *mem.Core { return g.cores[i] }, Control: g.control}
	return g
}

// create makes a crypt bdev and fails the test on error.
func (g *rig) create(t testing.TB, p CreateParams) *bdev.Bdev {
	t.Helper()
	b, err := Create(context.Background(), g.m, g.env, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// open opens a channel on the data reactor. put releases it and steps the reactor so
// that it closes; it runs at cleanup if the test did not call it.
func (g *rig) open(t testing.TB, b *bdev.Bdev) (ch *bdev.Channel, put func()) {
	t.Helper()
	ch, err := b.GetChannel(g.r)
	if err != nil {
		t.Fatal(err)
	}
	put = sync.OnceFunc(func() {
		ch.Put()
		g.r.PollOnce()
	})
	t.Cleanup(put)
	return ch, put
}

// do submits io on ch and steps the data reactor until it completes.
func (g *rig) do(t testing.TB, ch *bdev.Channel, io *bdev.IO) bdev.Status {
	t.Helper()
	done := false
	io.Done = func(*bdev.IO) { done = true }
	ch.Submit(io)
	g.pollUntil(t, func() bool { return done })
	return io.Status
}

func (g *rig) mustDo(t testing.TB, ch *bdev.Channel, io bdev.IO) {
	t.Helper()
	if s := g.do(t, ch, &io); s != bdev.StatusSuccess {
		t.Fatalf("%v of %d bytes at %d: %v (errno %d)", io.Type, io.Length, io.Offset, s, io.Errno)
	}
}

func (g *rig) pollUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for !cond() {
		g.r.PollOnce()
		if time.Now().After(deadline) {
			t.Fatalf("I/O not complete after %v", testDeadline)
		}
	}
}

// write and read move n bytes at off through ch with Go-heap buffers.
func (g *rig) write(t testing.TB, ch *bdev.Channel, off uint64, data []byte) {
	t.Helper()
	g.mustDo(t, ch, bdev.IO{Type: bdev.IOWrite, Offset: off, Length: uint64(len(data)), Buf: data})
}

func (g *rig) read(t testing.TB, ch *bdev.Channel, off, n uint64) []byte {
	t.Helper()
	buf := make([]byte, n)
	g.mustDo(t, ch, bdev.IO{Type: bdev.IORead, Offset: off, Length: n, Buf: buf})
	return buf
}

// inUse is the bytes of the domain's objects in use on every core, published now.
func (g *rig) inUse() int64 {
	for _, c := range g.cores {
		c.PublishStats()
	}
	var n int64
	for _, cs := range g.dom.Stats().Cores {
		n += cs.BytesInUse
	}
	return n
}

func (g *rig) malloc(t testing.TB, name string, blocks uint64, bs uint32) *bdev.Bdev {
	t.Helper()
	b, err := bdev.CreateMalloc(g.m, bdev.MallocParams{Name: name, NumBlocks: blocks, BlockSize: bs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// delete removes a bdev and fails the test on error.
func (g *rig) delete(t testing.TB, name string) {
	t.Helper()
	if err := g.m.Delete(context.Background(), name, ""); err != nil {
		t.Fatal(err)
	}
}

// keyFile writes a random 32-byte KEK in a directory of its own, mode 0600.
func keyFile(t testing.TB) string {
	t.Helper()
	k := make([]byte, kekLen)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(p, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fill writes a pattern that differs per byte position and per seed, so that data at the
// wrong offset or from the wrong I/O shows.
func fill(b []byte, seed byte) {
	for i := range b {
		b[i] = byte(i>>9) ^ byte(i)*31 ^ seed
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	fill(b, seed)
	return b
}

// diskTempDir is a fresh directory on a disk-backed file system (O_DIRECT works there);
// it skips the test without io_uring, which every file bdev needs.
func diskTempDir(t testing.TB) string {
	t.Helper()
	r, err := uring.New(1)
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	_ = r.Close()
	base := os.TempDir()
	if isMemFS(base) {
		base = "/var/tmp"
	}
	if isMemFS(base) {
		t.Skipf("no disk-backed temp dir: %s and /var/tmp are memory file systems", os.TempDir())
	}
	d, err := os.MkdirTemp(base, "sluice-crypt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func isMemFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && (st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC)
}

// baseBytes reads n bytes at off straight from b (a crypt bdev's base, claimed but
// readable), as someone holding the disk would.
func (g *rig) baseBytes(t testing.TB, b *bdev.Bdev, off, n uint64) []byte {
	t.Helper()
	ch, err := b.GetChannel(g.r)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ch.Put(); g.r.PollOnce() }()
	return g.read(t, ch, off, n)
}

// dataKey unwraps the data key of the volume on base with the KEK in keyFile (or pass),
// as an independent reader of the format would.
func (g *rig) dataKey(t testing.TB, base *bdev.Bdev, keyFile string, pass Secret) (Header, []byte) {
	t.Helper()
	h, err := pickHeader(g.baseBytes(t, base, 0, min(base.SizeBytes(), 2*maxBlockSize)))
	if err != nil {
		t.Fatal(err)
	}
	k, err := kekFor(&h, keyFile, pass)
	if err != nil {
		t.Fatal(err)
	}
	dek, err := unwrap(k, &h)
	if err != nil {
		t.Fatal(err)
	}
	return h, dek
}
