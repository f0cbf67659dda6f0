package mem

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestCrossCoreFree runs two reactors on their own goroutines. Each allocates buffers of
// mixed sizes, fills them with a pattern and hands half to the other, which checks the
// pattern and frees them through its own Core (the lock-free remote path); each calls
// Reclaim as a poller would. Run under -race, it checks that no lock is needed on the
// owner's fast path and that ownership hand-offs are race-free.
func TestCrossCoreFree(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 32 << 20})
	cores := []*Core{newTestCore(t, d, 0), newTestCore(t, d, 1)}
	const n = 4000
	chans := []chan Buf{make(chan Buf, 64), make(chan Buf, 64)}
	var wg sync.WaitGroup
	for i, c := range cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 9))
			out, in := chans[i], chans[1-i]
			var mine []Buf
			pattern := byte(0x10 + i)
			received, sent := 0, 0
			check := func(b Buf) {
				if p := b.Bytes(); !bytes.Equal(p[:8], bytes.Repeat([]byte{pattern ^ 1}, 8)) {
					t.Errorf("core %d received %v with contents %x", i, b, p[:8])
				}
				c.Free(b)
				received++
			}
			for sent < n/2 || received < n/2 {
				if sent < n/2 {
					b, err := c.Alloc([]int{64, 200, 4096, 20000, 128 << 10}[r.IntN(5)])
					if err != nil {
						t.Errorf("core %d: %v", i, err)
						return
					}
					clear(b.Bytes())
					copy(b.Bytes(), bytes.Repeat([]byte{pattern}, 8))
					if r.IntN(2) == 0 {
						mine = append(mine, b)
					} else {
						select {
						case out <- b:
							sent++
						case b2 := <-in:
							mine = append(mine, b)
							check(b2)
						}
					}
				} else {
					check(<-in)
				}
				if len(mine) > 32 {
					c.Free(mine[0])
					mine = mine[1:]
				}
				c.Reclaim()
			}
			for _, b := range mine {
				c.Free(b)
			}
		}()
	}
	wg.Wait()
	// The reactors stopped (wg.Wait orders it): this goroutine may act as both owners.
	for _, c := range cores {
		c.Reclaim()
		c.PublishStats()
	}
	if err := d.checkConsistency(); err != nil {
		t.Fatal(err)
	}
	st := d.Stats()
	for _, cs := range st.Cores {
		if cs.BytesInUse != 0 || cs.RemoteFreesSent == 0 || cs.RemoteFreesReclaimed == 0 {
			t.Fatalf("core %d: in use %d, remote sent %d reclaimed %d", cs.Core, cs.BytesInUse, cs.RemoteFreesSent, cs.RemoteFreesReclaimed)
		}
	}
}

// TestRemoteFreeStorm: several goroutines free one owner's objects at once while the
// owner keeps allocating and reclaiming: the CAS loop must lose nothing.
func TestRemoteFreeStorm(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 16 << 20})
	owner := newTestCore(t, d, 0)
	const freers, per = 3, 3000
	others := make([]*Core, freers)
	for i := range others {
		others[i] = newTestCore(t, d, 1+i)
	}
	work := make(chan Buf, 256)
	var wg sync.WaitGroup
	for _, c := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				c.Free(b)
			}
		}()
	}
	for range freers * per {
		b, err := owner.Alloc(64)
		if err != nil {
			t.Fatal(err)
		}
		work <- b
		owner.Reclaim()
	}
	close(work)
	wg.Wait()
	owner.Reclaim()
	owner.Trim()
	if owner.rows[0].inUse != 0 {
		t.Fatalf("%d objects never came back", owner.rows[0].inUse)
	}
	if got := owner.ctr.remoteReclaimed; got != freers*per {
		t.Fatalf("reclaimed %d, want %d", got, freers*per)
	}
	if err := d.checkConsistency(); err != nil {
		t.Fatal(err)
	}
}

// TestFastPathAllocs: alloc and free, local and remote, and Reclaim allocate nothing on
// the Go heap (Buf is a value; lists are indices; the remote list lives in object memory).
func TestFastPathAllocs(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 16 << 20})
	c, other := newTestCore(t, d, 0), newTestCore(t, d, 1)
	for _, size := range []int{64, 300, 4096, 128 << 10, 1 << 20} {
		if n := testing.AllocsPerRun(200, func() {
			b, err := c.Alloc(size)
			if err != nil {
				panic(err)
			}
			c.Free(b)
		}); n != 0 {
			t.Errorf("Alloc+Free(%d): %v allocs per run", size, n)
		}
	}
	if n := testing.AllocsPerRun(200, func() {
		b, _ := c.Alloc(512)
		other.Free(b)
		c.Reclaim()
	}); n != 0 {
		t.Errorf("remote free + Reclaim: %v allocs per run", n)
	}
	if n := testing.AllocsPerRun(50, func() {
		var bs [200]Buf
		for i := range bs { // crosses slices: refills run the cost model
			bs[i], _ = c.Alloc(64 << 10)
		}
		for _, b := range bs {
			c.Free(b)
		}
	}); n != 0 {
		t.Errorf("refill path: %v allocs per run", n)
	}
}

func TestAllocErrors(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 4 << 20})
	c := newTestCore(t, d, 0)
	for _, size := range []int{0, -1} {
		if _, err := c.Alloc(size); err != ErrInvalidSize {
			t.Errorf("Alloc(%d) = %v, want ErrInvalidSize", size, err)
		}
	}
	if _, err := c.Alloc(8 << 20); err != ErrNoMemory {
		t.Errorf("Alloc above the cap = %v, want ErrNoMemory", err)
	}
	var bufs []Buf
	for {
		b, err := c.Alloc(100 << 10)
		if err == ErrNoMemory {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, b)
	}
	if len(bufs) != 2*PageSize/(128<<10) {
		t.Fatalf("got %d buffers of 128 KiB from 4 MiB", len(bufs))
	}
	for _, b := range bufs {
		c.Free(b)
	}
	c.Free(Buf{}) // no-op
	if _, err := d.NewCore(0); err == nil {
		t.Fatal("duplicate core id accepted")
	}
}

func TestDoubleFreePanics(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 4 << 20})
	c := newTestCore(t, d, 0)
	keep := mustAlloc(t, c, 64)
	defer c.Free(keep)
	b := mustAlloc(t, c, 64)
	c.Free(b)
	defer func() {
		if recover() == nil {
			t.Fatal("double free did not panic")
		}
	}()
	c.Free(b)
}

func TestRegion(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 16 << 20})
	c := newTestCore(t, d, 0)
	small := mustAlloc(t, c, 64) // slab pages grow from the bottom
	defer c.Free(small)
	r, err := d.AllocRegion(5<<20 + 1)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Contiguous() || r.Pages() != 3 || len(r.Bytes()) != 5<<20+1 {
		t.Fatalf("region: contiguous %v pages %d len %d", r.Contiguous(), r.Pages(), len(r.Bytes()))
	}
	if int(r.first) != d.npages-3 {
		t.Fatalf("region starts at page %d, want the top (%d)", r.first, d.npages-3)
	}
	for i := range r.Pages() {
		p := r.Page(i)
		p[0], p[len(p)-1] = 1, 2
	}
	if st := d.Stats(); st.PagesRegion != 3 {
		t.Fatalf("stats: %d region pages", st.PagesRegion)
	}
	// Fragment the pool so that a second region must be scattered.
	hole, err := d.AllocRegion(PageSize)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := d.AllocRegion(int64(d.npages-6) * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	hole.Free()
	r3, err := d.AllocRegion(2 * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Contiguous() || r3.Bytes() != nil || len(r3.Page(1)) != PageSize {
		t.Fatalf("scattered region: contiguous %v", r3.Contiguous())
	}
	if _, err := d.AllocRegion(PageSize); err == nil {
		t.Fatal("region beyond the cap succeeded")
	}
	for _, x := range []Region{r, r2, r3} {
		x.Free()
	}
	defer func() {
		if recover() == nil {
			t.Fatal("double region free did not panic")
		}
	}()
	r.Free()
}
