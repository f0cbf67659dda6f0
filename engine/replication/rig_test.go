package replication

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/reactor"
)

const testDeadline = 30 * time.Second

// node is one side of a local pair: its own bdev registry and replication service over
// a started reactor, sharing the test's memory domain.
type node struct {
	t   testing.TB
	m   *bdev.Manager
	svc *Service
	r   *reactor.Reactor
	dir string
}

// pair is two nodes in one process, A replicating to B over a real SSH tunnel on
// loopback, through a forwarder that a test can cut (a partition).
type pair struct {
	a, b  *node
	dom   *mem.Domain
	ports Ports
	fwd   *forwarder
	addr  string // what A dials: the forwarder (127.0.0.2), or B itself
}

// direct makes A dial B without the forwarder (benchmarks: no extra copy).
func (p *pair) direct() { p.addr = "127.0.0.1" }

func testLog() *slog.Logger {
	if os.Getenv("REPL_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newDomain(t testing.TB, bytes int64) *mem.Domain {
	d, err := mem.NewDomain(mem.DomainConfig{SizeBytes: bytes, Hugepages: mem.HugepagesNever,
		Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func newNode(t testing.TB, dom *mem.Domain, id int, persist bool) *node {
	t.Helper()
	core, err := dom.NewCore(id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := reactor.New(reactor.Config{ID: id, Core: -1, Mode: benchMode()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, m: bdev.NewManager(), r: r}
	if persist {
		n.dir = t.TempDir()
	}
	// Cleanups run last-registered first: bdevs close, then the reactor stops.
	t.Cleanup(r.Stop)
	n.svc = NewService(n.m, Env{Mem: func(int) *mem.Core { return core }, Control: r,
		DataDir: n.dir, Logger: testLog()})
	// Copies are malloc bdevs: the tests need no io_uring.
	n.svc.newTarget = func(p *Partnership, name string, size uint64, bs uint32) (*bdev.Bdev, error) {
		return bdev.CreateMalloc(n.m, bdev.MallocParams{Name: copyBdevName(p.name, name),
			NumBlocks: size / uint64(bs), BlockSize: bs}, nil)
	}
	t.Cleanup(func() {
		for _, p := range n.svc.partnershipList() {
			_ = n.svc.DeletePartnership(p.name)
		}
		_ = n.m.CloseAll()
	})
	return n
}

// newPair makes A with a malloc base "baseA" of size bytes under replica bdev "vol0",
// and B listening for it.
func newPair(t testing.TB, size uint64, regionBytes uint32, persistA bool) *pair {
	t.Helper()
	p := &pair{dom: newDomain(t, 256<<20), addr: "127.0.0.2"}
	p.a = newNode(t, p.dom, 0, persistA)
	p.b = newNode(t, p.dom, 1, false)
	p.ports = freeBase(t)
	if _, err := bdev.CreateMalloc(p.a.m, bdev.MallocParams{Name: "baseA", NumBlocks: size / 512,
		BlockSize: 512}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.svc.CreateReplica(ReplicaParams{Name: "vol0", BaseBdevName: "baseA",
		RegionBytes: regionBytes}); err != nil {
		t.Fatal(err)
	}
	p.fwd = newForwarder(t, "127.0.0.2:"+strconv.Itoa(int(p.ports[LinkTunnel])),
		"127.0.0.1:"+strconv.Itoa(int(p.ports[LinkTunnel])))
	return p
}

func (p *pair) listen(t testing.TB, params PartnershipParams) {
	t.Helper()
	params.Name, params.Role, params.Address = "p1", RoleListen, "127.0.0.1"
	params.BasePort, params.PeerKey = p.ports[LinkTunnel], p.a.id()
	if _, err := p.b.svc.CreatePartnership(context.Background(), params); err != nil {
		t.Fatal(err)
	}
}

func (p *pair) dial(t testing.TB, noWait bool) {
	t.Helper()
	if _, err := p.a.svc.CreatePartnership(context.Background(), PartnershipParams{Name: "p1",
		Role: RoleDial, Address: p.addr, BasePort: p.ports[LinkTunnel],
		PeerKey: p.b.id(), NoWait: noWait}); err != nil {
		t.Fatal(err)
	}
}

func (p *pair) start(t testing.TB, mode string, journal int64) {
	t.Helper()
	p.listen(t, PartnershipParams{})
	p.dial(t, false)
	if err := p.a.svc.StartVolume(VolumeParams{Volume: "vol0", Partnership: "p1", Mode: mode,
		JournalBytes: journal}); err != nil {
		t.Fatal(err)
	}
}

func (p *pair) vol(t testing.TB) *volume {
	v, err := p.a.svc.volume("vol0")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitState waits for vol0 to reach s with nothing left to copy or acknowledge.
func (p *pair) waitInSync(t testing.TB) {
	t.Helper()
	v := p.vol(t)
	deadline := time.Now().Add(testDeadline)
	for {
		st := v.status(false)
		if st.State == "replicating" && st.ResyncRegions == 0 && st.LagWrites == 0 && st.LagBytes == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not in sync after %v: %+v", testDeadline, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ioer submits I/O on a node's reactor from the test goroutine.
type ioer struct {
	n  *node
	ch *bdev.Channel
}

func (n *node) open(t testing.TB, name string) *ioer {
	t.Helper()
	b, err := n.m.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	o := &ioer{n: n}
	var gerr error
	if err := n.r.Do(func() { o.ch, gerr = b.GetChannel(n.r) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	t.Cleanup(o.close)
	return o
}

func (o *ioer) close() {
	if o.ch != nil {
		_ = o.n.r.Do(o.ch.Put)
		o.ch = nil
	}
}

func (o *ioer) do(t testing.TB, typ bdev.IOType, off uint64, buf []byte) bdev.Status {
	t.Helper()
	done := make(chan struct{})
	io := &bdev.IO{Type: typ, Offset: off, Length: uint64(len(buf)), Buf: buf,
		Done: func(*bdev.IO) { close(done) }}
	if err := o.n.r.Post(func() { o.ch.Submit(io) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(testDeadline):
		t.Fatalf("%v at %d not complete after %v", typ, off, testDeadline)
	}
	return io.Status
}

func (o *ioer) write(t testing.TB, off uint64, buf []byte) {
	t.Helper()
	if s := o.do(t, bdev.IOWrite, off, buf); s != bdev.StatusSuccess {
		t.Fatalf("write at %d: %v", off, s)
	}
}

// readAll reads a whole bdev through the node's control reactor.
func (n *node) readAll(t testing.TB, name string) []byte {
	t.Helper()
	b, err := n.m.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, b.SizeBytes())
	for off := uint64(0); off < b.SizeBytes(); off += 1 << 20 {
		chunk := out[off:min(b.SizeBytes(), off+1<<20)]
		if err := n.svc.baseIO(context.Background(), b, bdev.IORead, off, chunk); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func (p *pair) copyName() string { return copyBdevName("p1", "vol0") }

// assertSame compares A's base with B's copy.
func (p *pair) assertSame(t testing.TB) {
	t.Helper()
	a, b := p.a.readAll(t, "baseA"), p.b.readAll(t, p.copyName())
	if !bytes.Equal(a, b) {
		for off := 0; off < len(a); off += 512 {
			if !bytes.Equal(a[off:off+512], b[off:off+512]) {
				t.Fatalf("copy differs first at byte %d (A %x, B %x); sha256 A %x B %x", off,
					a[off:off+16], b[off:off+16], sha256.Sum256(a), sha256.Sum256(b))
			}
		}
	}
}

// stamp fills a block with its lba and a generation, so that a stale block shows.
func stamp(buf []byte, lba uint64, gen uint32) {
	for i := 0; i+16 <= len(buf); i += 16 {
		for j := 0; j < 8; j++ {
			buf[i+j] = byte(lba >> (8 * j))
		}
		for j := 0; j < 4; j++ {
			buf[i+8+j] = byte(gen >> (8 * j))
		}
		buf[i+12], buf[i+13], buf[i+14], buf[i+15] = 0xa5, byte(i), byte(i>>8), 0x5a
	}
}

// randomWrites writes n 4 KiB blocks at random 4 KiB offsets below limit.
func randomWrites(t testing.TB, o *ioer, rng *rand.Rand, n int, limit uint64, gen uint32) {
	t.Helper()
	buf := make([]byte, 4096)
	for i := 0; i < n; i++ {
		off := rng.Uint64N(limit/4096) * 4096
		stamp(buf, off/512, gen+uint32(i))
		o.write(t, off, buf)
	}
}

// forwarder relays TCP between A and B and can cut every connection and refuse new
// ones: a partition of the link, with both nodes alive.
type forwarder struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	cut    bool
}

func newForwarder(t testing.TB, listen, target string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); f.partition(true) })
	go f.serve()
	return f
}

func (f *forwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		if f.cut {
			f.mu.Unlock()
			c.Close()
			continue
		}
		f.mu.Unlock()
		d, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns[c], f.conns[d] = struct{}{}, struct{}{}
		f.mu.Unlock()
		go func() { _, _ = io.Copy(d, c); d.Close() }()
		go func() { _, _ = io.Copy(c, d); c.Close() }()
	}
}

// partition cuts (or heals) the link.
func (f *forwarder) partition(cut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = cut
	if cut {
		for c := range f.conns {
			c.Close()
		}
		clear(f.conns)
	}
}

func (n *node) id() string {
	id, err := n.svc.Identity()
	if err != nil {
		n.t.Fatal(err)
	}
	return id.AuthorizedKey()
}

func benchMode() reactor.Mode {
	if os.Getenv("REPL_MODE") == "interrupt" {
		return reactor.ModeInterrupt
	}
	return reactor.ModeAdaptive
}
