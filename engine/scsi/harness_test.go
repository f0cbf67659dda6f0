package scsi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/proto/scsi"
	"sluice/engine/reactor"
	"sluice/engine/reservation"
	"sluice/engine/reservation/manager"
	"sluice/engine/reservation/manager/managertest"
)

// harness is an LU on stepped reactors (no goroutine runs them: the test polls them,
// so every step is deterministic), with a bdev of the chosen kind and, optionally, a
// reservation manager deciding with an in-memory decider.
type harness struct {
	t     testing.TB
	rs    []*reactor.Reactor
	cores []*mem.Core
	dom   *mem.Domain
	bdevs *bdev.Manager
	rec   *recBackend // the "rec" module's backend
	mgr   *manager.Manager
	dec   *managertest.Decider
	lu    *LU
	chs   []*Channel // one per reactor
	done  map[*Task]*int
}

type hOpts struct {
	module     string // "malloc" (default), "rec", "delay" (over malloc), "null"
	blocks     uint64
	blockSize  uint32
	reactors   int
	resv       bool
	delayPolls uint32
	readOnly   bool
	volatile   bool             // rec: the bdev has a volatile cache (WCE starts at 1)
	limits     scsi.BlockLimits // LUConfig.Limits
	// lossGate, with resv, holds the manager's NexusLost decisions until it is closed.
	lossGate chan struct{}
}

// gatedDecider holds NexusLost decisions until its gate is closed.
type gatedDecider struct {
	*managertest.Decider
	gate chan struct{}
}

func (g *gatedDecider) Reserve(ctx context.Context, vol [16]byte,
	cmd reservation.Command) (reservation.Result, error) {
	if cmd.Action == reservation.NexusLost {
		<-g.gate
	}
	return g.Decider.Reserve(ctx, vol, cmd)
}

const (
	testBlocks = 4096
	testBS     = 512
)

var (
	init1 = reservation.SCSINexus("iqn.2026-01.dev.sluice:init1", 0x23D000000001, 1)
	init2 = reservation.SCSINexus("iqn.2026-01.dev.sluice:init2", 0x23D000000002, 1)
)

func newHarness(t testing.TB, o hOpts) *harness {
	t.Helper()
	if o.blocks == 0 {
		o.blocks = testBlocks
	}
	if o.blockSize == 0 {
		o.blockSize = testBS
	}
	if o.reactors == 0 {
		o.reactors = 1
	}
	h := &harness{t: t, bdevs: bdev.NewManager()}
	dom, err := mem.NewDomain(mem.DomainConfig{SizeBytes: 32 << 20, Hugepages: mem.HugepagesNever,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h.dom = dom
	for i := 0; i < o.reactors; i++ {
		r, err := reactor.New(reactor.Config{ID: i, Core: -1, Mode: reactor.ModeBusy})
		if err != nil {
			t.Fatal(err)
		}
		core, err := dom.NewCore(i)
		if err != nil {
			t.Fatal(err)
		}
		h.rs, h.cores = append(h.rs, r), append(h.cores, core)
	}
	b := h.makeBdev(o)
	cfg := LUConfig{Bdev: b, LUN: 0, TargetName: "iqn.2026-01.dev.sluice:target",
		Ports:    []TargetPort{{RelativeID: 1, Name: "iqn.2026-01.dev.sluice:target,t,0x0001"}},
		ReadOnly: o.readOnly, Limits: o.limits}
	if o.resv {
		h.dec = managertest.New()
		var d manager.Decider = h.dec
		if o.lossGate != nil {
			d = &gatedDecider{Decider: h.dec, gate: o.lossGate}
		}
		h.mgr = manager.New(manager.Config{Decider: d, Reactors: h.rs, Timeout: 10 * time.Second})
		cfg.Manager, cfg.Home = h.mgr, h.rs[0]
	}
	h.lu, err = NewLU(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range h.rs {
		ch, err := h.lu.Channel(r, h.cores[i])
		if err != nil {
			t.Fatal(err)
		}
		h.chs = append(h.chs, ch)
	}
	t.Cleanup(h.close)
	return h
}

func (h *harness) makeBdev(o hOpts) *bdev.Bdev {
	var b *bdev.Bdev
	var err error
	switch o.module {
	case "", "malloc":
		b, err = bdev.CreateMalloc(h.bdevs, bdev.MallocParams{Name: "vol", NumBlocks: o.blocks,
			BlockSize: o.blockSize}, nil)
	case "null":
		b, err = bdev.CreateNull(h.bdevs, bdev.NullParams{Name: "vol", NumBlocks: o.blocks,
			BlockSize: o.blockSize})
	case "delay":
		if _, err = bdev.CreateMalloc(h.bdevs, bdev.MallocParams{Name: "base", NumBlocks: o.blocks,
			BlockSize: o.blockSize}, nil); err == nil {
			b, err = bdev.CreateDelay(h.bdevs, bdev.DelayParams{Name: "vol", BaseBdevName: "base",
				DelayPolls: o.delayPolls})
		}
	case "rec":
		h.rec = &recBackend{mem: make([]byte, o.blocks*uint64(o.blockSize))}
		caps := bdev.Caps{Flush: true, FUA: true, WriteZeroes: true, Unmap: true,
			UnmapReadsZero: true, VolatileCache: o.volatile}
		b, err = h.bdevs.Register(bdev.Config{Name: "vol", Module: "rec", BlockSize: o.blockSize,
			NumBlocks: o.blocks, Caps: caps}, h.rec)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *harness) close() {
	if h.rec != nil {
		h.rec.release() // a failed test may leave writes held
	}
	h.pollN(4)
	for _, ch := range h.chs {
		ch.Put()
	}
	h.pollN(4)
	h.lu.Close()
	if h.mgr != nil {
		// The manager may be waiting for a reactor step (a barrier, a drain): keep
		// stepping until it has stopped.
		closed := make(chan struct{})
		go func() { h.mgr.Close(); close(closed) }()
		for stop := false; !stop; {
			select {
			case <-closed:
				stop = true
			default:
				h.pollN(1)
			}
		}
	}
	h.pollN(4)
	_ = h.bdevs.CloseAll()
	// The reactors were never started, so there is no loop to stop (their two file
	// descriptors each stay open until the test binary exits, as in engine/nvmf's).
	_ = h.dom.Close()
}

// pollN steps every reactor n times.
func (h *harness) pollN(n int) {
	for range n {
		for _, r := range h.rs {
			r.PollOnce()
		}
	}
}

// until steps the reactors until cond holds, failing after 10 s of wall time (the
// reservation manager decides on its own goroutine).
func (h *harness) until(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		h.pollN(1)
	}
}

// nexus makes a nexus and consumes its POWER ON unit attention.
func (h *harness) nexus(id reservation.Identity) *Nexus {
	nx := h.lu.Nexus(id)
	for {
		if _, ok := nx.take(); !ok {
			return nx
		}
	}
}

// req is one command for exec.
type req struct {
	cdb  []byte
	out  []byte // data-out
	in   int    // data-in buffer size (EDTL)
	edtl int    // overrides the expected length when non-zero (use -1 for 0)
	ch   int    // channel index
}

// exec runs one command to completion and checks Done ran exactly once.
func (h *harness) exec(nx *Nexus, r req) *Task {
	h.t.Helper()
	t := h.start(nx, r)
	h.until("task "+scsi.Opcode(t.cdbBytes()[0]).String(), func() bool { return h.doneCount(t) > 0 })
	h.pollN(2)
	if n := h.doneCount(t); n != 1 {
		h.t.Fatalf("Done ran %d times", n)
	}
	return t
}

func (h *harness) doneCount(t *Task) int {
	if n := h.done[t]; n != nil {
		return *n
	}
	return 0
}

// start executes a command without waiting for it.
func (h *harness) start(nx *Nexus, r req) *Task {
	t := &Task{Nexus: nx}
	t.SetCDB(r.cdb)
	if r.out != nil {
		t.Data = r.out
		t.ExpectedLen = uint32(len(r.out))
	} else {
		t.Data = make([]byte, r.in)
		t.ExpectedLen = uint32(r.in)
	}
	switch {
	case r.edtl == -1:
		t.ExpectedLen = 0
	case r.edtl != 0:
		t.ExpectedLen = uint32(r.edtl)
	}
	n := new(int)
	if h.done == nil {
		h.done = map[*Task]*int{}
	}
	h.done[t] = n
	t.Done = func(*Task) { *n++ }
	h.chs[r.ch].Execute(t)
	return t
}

func cdb(c scsi.CDB) []byte { return c.Append(nil) }

func senseOf(t *Task) scsi.Sense {
	s, err := scsi.DecodeSense(t.Sense[:t.SenseLen])
	if err != nil {
		return scsi.Sense{}
	}
	return s
}

func wantGood(tb testing.TB, t *Task) {
	tb.Helper()
	if t.Status != scsi.StatusGood {
		s := senseOf(t)
		tb.Fatalf("%v: status %v, sense %v %v", t.State(), t.Status, s.Key, s.Code)
	}
}

func wantSense(tb testing.TB, t *Task, key scsi.SenseKey, code scsi.SenseCode) scsi.Sense {
	tb.Helper()
	s := senseOf(t)
	if t.Status != scsi.StatusCheckCondition || s.Key != key || s.Code != code {
		tb.Fatalf("status %v sense %v %v, want CHECK CONDITION %v %v", t.Status, s.Key, s.Code, key, code)
	}
	return s
}

func wantStatus(tb testing.TB, t *Task, st scsi.Status) {
	tb.Helper()
	if t.Status != st {
		s := senseOf(t)
		tb.Fatalf("status %v (sense %v %v), want %v", t.Status, s.Key, s.Code, st)
	}
}

// Command builders.
func read16(lba uint64, n uint32) []byte {
	return cdb(scsi.CDB{Opcode: scsi.OpRead16, LBA: lba, TransferLength: n})
}

func write16(lba uint64, n uint32) []byte {
	return cdb(scsi.CDB{Opcode: scsi.OpWrite16, LBA: lba, TransferLength: n})
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// writeBlocks writes data at lba and checks GOOD.
func (h *harness) writeBlocks(nx *Nexus, lba uint64, data []byte) {
	h.t.Helper()
	wantGood(h.t, h.exec(nx, req{cdb: write16(lba, uint32(len(data)/testBS)), out: data}))
}

// readBlocks reads n blocks at lba.
func (h *harness) readBlocks(nx *Nexus, lba uint64, n int) []byte {
	h.t.Helper()
	t := h.exec(nx, req{cdb: read16(lba, uint32(n)), in: n * testBS})
	wantGood(h.t, t)
	return t.Data
}

func (h *harness) wantBlocks(nx *Nexus, lba uint64, want []byte) {
	h.t.Helper()
	if got := h.readBlocks(nx, lba, len(want)/testBS); !bytes.Equal(got, want) {
		h.t.Fatalf("blocks at %d differ from what was expected", lba)
	}
}

// recBackend is a RAM bdev that records what reaches it: FUA writes and flushes, so the
// tests see what WCE and SYNCHRONIZE CACHE do to durability.
type recBackend struct {
	mem                                []byte
	mu                                 sync.Mutex
	writes, fuaWrites, flushes, unmaps int
	zeroes                             int
	// hold keeps the completions of writes until release: a write stays "in the
	// bdev" as long as a test needs (its data is already in mem).
	hold bool
	held []*bdev.IO
	// failWrites fails every write with an I/O error, writing nothing.
	failWrites bool
}

// release completes the held writes.
//
// Preconditions: on the reactor they were submitted on (the test's goroutine).
func (b *recBackend) release() { b.completeHeld(false) }

// completeHeld completes the writes held now; with keep, later writes are held too.
func (b *recBackend) completeHeld(keep bool) {
	b.mu.Lock()
	held := b.held
	b.held, b.hold = nil, keep
	b.mu.Unlock()
	for _, io := range held {
		io.Complete(bdev.StatusSuccess)
	}
}

func (b *recBackend) NewChannel(*reactor.Reactor) (bdev.BackendChannel, error) {
	return recChannel{b}, nil
}
func (b *recBackend) Close() error { return nil }

func (b *recBackend) counts() (writes, fua, flushes, unmaps, zeroes int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.writes, b.fuaWrites, b.flushes, b.unmaps, b.zeroes
}

type recChannel struct{ b *recBackend }

func (c recChannel) Submit(io *bdev.IO) {
	b := c.b
	b.mu.Lock()
	switch io.Type {
	case bdev.IORead:
		copy(io.Buf, b.mem[io.Offset:io.Offset+io.Length])
	case bdev.IOWrite:
		if b.failWrites {
			b.mu.Unlock()
			io.Complete(bdev.StatusIOError)
			return
		}
		copy(b.mem[io.Offset:io.Offset+io.Length], io.Buf)
		b.writes++
		if io.FUA {
			b.fuaWrites++
		}
		if b.hold {
			b.held = append(b.held, io)
			b.mu.Unlock()
			return
		}
	case bdev.IOFlush:
		b.flushes++
	case bdev.IOUnmap:
		clear(b.mem[io.Offset : io.Offset+io.Length])
		b.unmaps++
	case bdev.IOWriteZeroes:
		clear(b.mem[io.Offset : io.Offset+io.Length])
		b.zeroes++
	}
	b.mu.Unlock()
	io.Complete(bdev.StatusSuccess)
}

func (recChannel) Close() {}
