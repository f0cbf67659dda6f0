package replication

import (
	"testing"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/reactor"
)

// TestReactorSideAllocatesNothing: the 0-allocation rule holds on the reactor's side of
// the ring. A 4 KiB write through the replica layer (count its region, copy its data
// into a buffer of the reactor's core, push the frame, wake the pump, submit to the
// base), its completion, and its ack (the retire message back on the reactor, which in
// sync mode completes the parent) allocate nothing on the Go heap once warm. The
// tunnel's side, which the test plays by hand here, is where the rule stops: msgpack
// encoding, x/crypto/ssh's packets and the in-flight table allocate, on goroutines of
// their own that never hold up a reactor.
func TestReactorSideAllocatesNothing(t *testing.T) {
	for _, mode := range []Mode{ModeSync, ModeAsync} {
		t.Run(mode.String(), func(t *testing.T) {
			dom := newDomain(t, 64<<20)
			core, err := dom.NewCore(0)
			if err != nil {
				t.Fatal(err)
			}
			r, err := reactor.New(reactor.Config{ID: 0, Core: -1, Mode: reactor.ModeBusy})
			if err != nil {
				t.Fatal(err)
			}
			m := bdev.NewManager()
			svc := NewService(m, Env{Mem: func(int) *mem.Core { return core }, Control: r})
			if _, err := bdev.CreateMalloc(m, bdev.MallocParams{Name: "base", NumBlocks: 8192,
				BlockSize: 512}, nil); err != nil {
				t.Fatal(err)
			}
			b, err := svc.CreateReplica(ReplicaParams{Name: "vol", BaseBdevName: "base", RegionBytes: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			v, _ := svc.volume("vol")
			// The test is the ring's consumer: the volume's goroutines stop first.
			close(v.quit)
			v.wg.Wait()
			v.tracked.Store(true)
			setAll(v.rg.intent, v.rg.n)
			setAll(v.rg.durable, v.rg.n)
			v.att.Store(&attachment{partner: "p", mode: mode, journalCap: 1 << 20})
			v.setState(VolStateSyncing)

			ch, err := b.GetChannel(r)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			done := false
			io := &bdev.IO{Type: bdev.IOWrite, Length: 4096, Buf: buf,
				Done: func(*bdev.IO) { done = true }}
			var off uint64
			write := func() {
				done = false
				io.Offset = off
				off = (off + 4096) % (4 << 20)
				ch.Submit(io)
				r.PollOnce()
				rec, ok := v.ring.Pop()
				if !ok {
					t.Fatal("no frame in the ring")
				}
				v.retire(rec, false) // the partner's ack, as the ack reader retires it
				for !done {
					r.PollOnce()
				}
				r.PollOnce()
			}
			for range 200 {
				write()
			}
			if n := testing.AllocsPerRun(1000, write); n != 0 {
				t.Fatalf("%v mode: %.2f allocations per replicated write on the reactor side", mode, n)
			}
			if io.Status != bdev.StatusSuccess || v.journalBytes.Load() != 0 || v.rg.pending[0].Load() != 0 {
				t.Fatalf("status %v, journal %d, pending %d", io.Status, v.journalBytes.Load(), v.rg.pending[0].Load())
			}
			ch.Put()
			r.PollOnce()
			v.wg.Add(0)
			v.quit = make(chan struct{}) // close() closes it again at cleanup
			if err := m.CloseAll(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
