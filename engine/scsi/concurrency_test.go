package scsi

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/proto/scsi"
	"sluice/engine/reactor"
)

// TestConcurrentCompareAndWrite runs COMPARE AND WRITE increments of one counter from
// two running reactors (real goroutines: the race detector sees the range lock's
// cross-reactor traffic), while plain writes keep hitting the other blocks of the
// locked range (with the same content each time). Each worker reads the 16-block
// range, then COMPARE AND WRITEs it back with the counter in block 0 plus one, retrying
// on MISCOMPARE; an increment lost between a compare and its write shows in the final
// count. How often the two reactors overlap depends on the OS scheduler, so the
// deterministic interleavings are TestCompareAndWriteAtomic's; this one is for -race.
func TestConcurrentCompareAndWrite(t *testing.T) {
	const (
		span  = 16  // blocks per COMPARE AND WRITE
		perRx = 150 // increments per reactor
	)
	bdevs := bdev.NewManager()
	// A delay bdev: completions come polls later, so a COMPARE AND WRITE's read and
	// write are far apart and an unserialised one would lose increments.
	if _, err := bdev.CreateMalloc(bdevs, bdev.MallocParams{Name: "base", NumBlocks: 1024,
		BlockSize: testBS}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := bdev.CreateDelay(bdevs, bdev.DelayParams{Name: "vol", BaseBdevName: "base", DelayPolls: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer bdevs.CloseAll()
	lu, err := NewLU(LUConfig{Bdev: b})
	if err != nil {
		t.Fatal(err)
	}
	defer lu.Close()
	dom, err := mem.NewDomain(mem.DomainConfig{SizeBytes: 16 << 20, Hugepages: mem.HugepagesNever,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Close()
	var finished atomic.Int32
	for i := range 2 {
		r, err := reactor.New(reactor.Config{ID: i, Core: -1, Mode: reactor.ModeBusy})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		core, err := dom.NewCore(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Do(func() { startCounter(t, lu, r, core, span, perRx, &finished) }); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for finished.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("workers did not finish")
		}
		time.Sleep(time.Millisecond)
	}
	// Read the counter back on a third, stepped reactor.
	r, _ := reactor.New(reactor.Config{ID: 9, Core: -1, Mode: reactor.ModeBusy})
	core, _ := dom.NewCore(9)
	ch, err := lu.Channel(r, core)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Put()
	rd := &Task{Nexus: lu.Nexus(init2), Data: make([]byte, testBS)}
	rd.SetCDB(read16(0, 1))
	done := false
	rd.Done = func(*Task) { done = true }
	for !done { // the first attempt reports the POWER ON unit attention
		ch.Execute(rd)
		for rd.x.inflight {
			r.PollOnce()
		}
		done = rd.Status == scsi.StatusGood
	}
	t.Logf("%d compare and write retries", retries.Load())
	if got := be.Uint64(rd.Data); got != 2*perRx {
		t.Fatalf("counter %d after %d increments: the compare and writes interleaved", got, 2*perRx)
	}
}

var retries atomic.Int64

// startCounter starts, on reactor r, a worker that increments the counter n times and
// a writer that keeps writing the range's other blocks until the worker is done.
//
// Preconditions: on r.
func startCounter(t *testing.T, lu *LU, r *reactor.Reactor, core *mem.Core, span, n int,
	finished *atomic.Int32) {
	ch, err := lu.Channel(r, core)
	if err != nil {
		t.Error(err)
		return
	}
	nx := lu.Nexus(init1)
	nx.take()
	read := &Task{Nexus: nx, Data: make([]byte, span*testBS), ExpectedLen: uint32(span * testBS)}
	read.SetCDB(read16(0, uint32(span)))
	caw := &Task{Nexus: nx, Data: make([]byte, 2*span*testBS), ExpectedLen: uint32(2 * span * testBS)}
	caw.SetCDB(cawCDB(0, uint32(span)))
	// The writer's blocks keep one content, so that its writes contend for the range
	// (they drain and block) without making every compare miss.
	write := &Task{Nexus: nx, Data: pattern(testBS, 0x33), ExpectedLen: testBS}
	done, k := 0, 0
	// Each next step is posted, not executed inside Done: malloc completes inline, and
	// the chain would otherwise recurse without bound.
	next := func(t *Task) { _ = r.Post(func() { ch.Execute(t) }) }
	read.Done = func(tk *Task) {
		if tk.Status != scsi.StatusGood {
			next(read)
			return
		}
		copy(caw.Data, read.Data)
		copy(caw.Data[span*testBS:], read.Data)
		be.PutUint64(caw.Data[span*testBS:], be.Uint64(read.Data)+1)
		next(caw)
	}
	caw.Done = func(tk *Task) {
		if tk.Status == scsi.StatusGood {
			done++
		} else {
			retries.Add(1)
		}
		if done == n {
			finished.Add(1)
			return
		}
		next(read)
	}
	write.Done = func(*Task) {
		if done < n {
			k++
			write.SetCDB(write16(uint64(1+k%(span-1)), 1))
			next(write)
		}
	}
	write.SetCDB(write16(1, 1))
	ch.Execute(read)
	ch.Execute(write)
}
