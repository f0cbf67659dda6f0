package mem

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// The patent's behaviours (US10733027, PROTOCOLS.md section 5, M1-M6). Most use the
// 64 KiB class (4 objects a slice) with FullThresholdDiv 2 (full below 2 free objects),
// so that every state is a few allocations away.

const k64 = 64 << 10

// scenario is a core whose slices of the 64 KiB class are in known states:
// partial (2 of 4 free), full (1 free), dirty (retained, same class), dirty of the
// 128 KiB class (retained), clean slices on the same page, and a current slice with no
// room, so that the next Alloc(k64) runs the cost model.
type scenario struct {
	d                                *Domain
	c                                *Core
	partial, full, dirty, dirtyOther int32
	clean                            int32 // lowest clean slice of the core's page
	keep                             []Buf // live objects; freed by release
}

func sliceOf(b Buf) int32 { return int32(b.off() >> sliceShift) }

func mustAlloc(tb testing.TB, c *Core, size int) Buf {
	tb.Helper()
	b, err := c.Alloc(size)
	if err != nil {
		tb.Fatalf("Alloc(%d): %v", size, err)
	}
	return b
}

// fill allocates one more object than slice s has room for and returns the objects of s
// and the Buf that went to the next slice.
func fillSlice(tb testing.TB, c *Core, size int) (objs []Buf, next Buf) {
	tb.Helper()
	first := mustAlloc(tb, c, size)
	objs = []Buf{first}
	for {
		b := mustAlloc(tb, c, size)
		if sliceOf(b) != sliceOf(first) {
			return objs, b
		}
		objs = append(objs, b)
	}
}

func newScenario(tb testing.TB, d *Domain, id int) *scenario {
	tb.Helper()
	c := newTestCore(tb, d, id)
	s := &scenario{d: d, c: c}
	// Fill four slices of 64 KiB objects (A, B, C, E) and one of 128 KiB (G) first: with
	// nothing freed yet, each refill takes a clean slice. Then free to set the states.
	var objs [4][]Buf
	for i := range objs {
		for range 4 {
			objs[i] = append(objs[i], mustAlloc(tb, c, k64))
		}
		if sliceOf(objs[i][0]) != sliceOf(objs[i][3]) {
			tb.Fatalf("scenario: slice %d split", i)
		}
	}
	g1, g2 := mustAlloc(tb, c, 128<<10), mustAlloc(tb, c, 128<<10)
	s.dirtyOther = sliceOf(g1)
	c.Free(g1)
	c.Free(g2)
	c.Trim() // the 128 KiB current slice is empty: retained dirty of its class

	a, b, cc, e := objs[0], objs[1], objs[2], objs[3]
	s.partial, s.full, s.dirty = sliceOf(a[0]), sliceOf(b[0]), sliceOf(cc[0])
	c.Free(a[0])
	c.Free(a[1]) // A: 2 of 4 free, partial
	c.Free(b[0]) // B: 1 free, below the threshold of 2: full
	for _, x := range cc {
		c.Free(x) // C: empty, dirty, retained
	}
	s.keep = append(s.keep, a[2], a[3], b[1], b[2], b[3])
	s.keep = append(s.keep, e...) // E: current, no room

	s.clean = -1
	for i := int32(0); i < slicesPerPage; i++ {
		if sl := &d.slices[s.partial/slicesPerPage*slicesPerPage+i]; sl.where == inClean && s.clean < 0 {
			s.clean = s.partial/slicesPerPage*slicesPerPage + i
		}
	}
	if err := d.checkConsistency(); err != nil {
		tb.Fatal(err)
	}
	want := map[int32]SliceState{s.partial: SliceStatePartial, s.full: SliceStateFull,
		s.dirty: SliceStateDirty, s.dirtyOther: SliceStateDirty, s.clean: SliceStateClean}
	for i, st := range want {
		if d.slices[i].state != st {
			tb.Fatalf("scenario: slice %d is %v, want %v", i, d.slices[i].state, st)
		}
	}
	if d.slices[s.full].nfree != 1 {
		tb.Fatalf("scenario: full slice has %d free, want 1", d.slices[s.full].nfree)
	}
	return s
}

func (s *scenario) release() {
	for _, b := range s.keep {
		s.c.Free(b)
	}
	s.keep = nil
}

func scenarioDomain(tb testing.TB) *Domain {
	return newTestDomain(tb, DomainConfig{SizeBytes: 8 << 20, FullThresholdDiv: 2, MaxDirtyPerClass: 2})
}

// M1: a request for size S with a partial S-slice available is served from it.
func TestM1PartialFirst(t *testing.T) {
	s := newScenario(t, scenarioDomain(t), 0)
	defer s.release()
	b := mustAlloc(t, s.c, k64)
	defer s.c.Free(b)
	if sliceOf(b) != s.partial {
		t.Fatalf("served from slice %d (%v), want the partial slice %d", sliceOf(b), s.d.slices[sliceOf(b)].state, s.partial)
	}
}

// M2: without a partial S-slice, a dirty slice is reused and re-formatted for S, even one
// last used for another size.
func TestM2DirtyReusedAndResized(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 8 << 20})
	c := newTestCore(t, d, 0)
	objs, next := fillSlice(t, c, 4096) // 64 objects of 4 KiB, then one in a second slice
	old := sliceOf(objs[0])
	for _, b := range objs {
		c.Free(b)
	}
	c.Free(next)
	c.Trim() // the second (current) slice is retained too: two dirty 4 KiB slices
	if st := d.slices[old].state; st != SliceStateDirty {
		t.Fatalf("emptied slice is %v, want dirty", st)
	}
	b := mustAlloc(t, c, 1000) // class 1024: no partial slice of it anywhere
	defer c.Free(b)
	sl := &d.slices[sliceOf(b)]
	if sl.where != inCurrent || int(sl.cls) != classOf(1000) || sl.nobj != SliceSize/1024 {
		t.Fatalf("served from slice %d class %d nobj %d, want a dirty 4 KiB slice re-formatted to 1 KiB", sliceOf(b), sl.cls, sl.nobj)
	}
	if sliceOf(b) != old && sliceOf(b) != sliceOf(next) {
		t.Fatalf("served from slice %d, want one of the dirty slices %d, %d", sliceOf(b), old, sliceOf(next))
	}
	if cs := d.Stats().Cores; len(cs) != 1 {
		t.Fatal("stats lost the core")
	}
}

// M3: without a partial or dirty slice, a clean slice (on a page the core holds before a
// page from the pool).
func TestM3CleanWhenNoDirty(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 8 << 20})
	c := newTestCore(t, d, 0)
	a := mustAlloc(t, c, 100)
	defer c.Free(a)
	if st := d.slices[sliceOf(a)].state; st != SliceStatePartial {
		t.Fatalf("first slice is %v", st)
	}
	pg := sliceOf(a) / slicesPerPage
	next := pg*slicesPerPage + 1
	if st := d.slices[next].state; st != SliceStateClean {
		t.Fatalf("neighbour slice is %v, want clean", st)
	}
	b := mustAlloc(t, c, 5000) // another class: no partial, no dirty slice exists
	defer c.Free(b)
	if sliceOf(b) != next {
		t.Fatalf("served from slice %d, want the clean slice %d of the held page", sliceOf(b), next)
	}
	if c.pages != 1 {
		t.Fatalf("core took %d pages, want 1 (a clean held slice before the pool)", c.pages)
	}
}

// M4: a full slice is chosen last, and never when it has no free object.
func TestM4FullLast(t *testing.T) {
	t.Run("after every other candidate", func(t *testing.T) {
		s := newScenario(t, scenarioDomain(t), 0)
		defer s.release()
		var bufs []Buf
		defer func() {
			for _, b := range bufs {
				s.c.Free(b)
			}
		}()
		c := s.c
		for {
			b, err := c.Alloc(k64)
			if err != nil {
				t.Fatalf("domain ran out before the full slice was chosen: %v", err)
			}
			bufs = append(bufs, b)
			if sliceOf(b) != s.full {
				continue
			}
			// Chosen: nothing else may be left that could serve the class.
			r := &c.rows[classOf(k64)]
			others := int(s.d.poolFresh.Load()+s.d.poolUsed.Load()) + int(c.clean.n+c.spare.n+r.partial.n)
			for i := range c.rows[:numClasses] {
				others += int(c.rows[i].dirty.n)
			}
			if others != 0 {
				t.Fatalf("full slice chosen while %d other candidates remain", others)
			}
			return
		}
	})
	t.Run("never without a free object", func(t *testing.T) {
		d := newTestDomain(t, DomainConfig{SizeBytes: PageSize, FullThresholdDiv: 2})
		c := newTestCore(t, d, 0)
		var bufs []Buf
		for {
			b, err := c.Alloc(k64)
			if errors.Is(err, ErrNoMemory) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			bufs = append(bufs, b)
		}
		if len(bufs) != PageSize/k64 {
			t.Fatalf("allocated %d objects of 64 KiB from one page, want %d", len(bufs), PageSize/k64)
		}
		c.Free(bufs[5])
		b := mustAlloc(t, c, k64) // the only candidate: a full slice with one free object
		if b.off() != bufs[5].off() {
			t.Fatalf("got %v, want the freed object of the full slice", b)
		}
		bufs[5] = b
		for _, b := range bufs {
			c.Free(b)
		}
	})
}

// M5: a slice's object size never changes while it has live objects, and when its last
// object is freed it becomes dirty, not clean.
func TestM5SizeFixedWhileLive(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: PageSize, MaxDirtyPerClass: -1})
	c := newTestCore(t, d, 0)
	// One object in each of the 8 slices of the only page: every slice has a live object.
	var bufs []Buf
	for _, size := range []int{64, 128, 256, 512, 1024, 2048, 4096, 8192} {
		bufs = append(bufs, mustAlloc(t, c, size))
	}
	classes := make([]uint8, slicesPerPage)
	for i := range classes {
		classes[i] = d.slices[i].cls
	}
	// Every other class must fail: no slice may be re-formatted under live objects.
	for _, size := range []int{192, 384, 768, 3072, 16 << 10, 256 << 10} {
		if b, err := c.Alloc(size); !errors.Is(err, ErrNoMemory) {
			t.Fatalf("Alloc(%d) = %v, %v with every slice live; want ErrNoMemory", size, b, err)
		}
	}
	for i := range classes {
		if d.slices[i].cls != classes[i] {
			t.Fatalf("slice %d changed class under live objects", i)
		}
	}
	c.Free(bufs[3])
	s := sliceOf(bufs[3])
	if st := d.slices[s].state; st != SliceStateDirty {
		t.Fatalf("slice emptied of its last object is %v, want dirty", st)
	}
	if d.slices[s].cls != classes[s] {
		t.Fatal("emptied slice forgot its class")
	}
	for i, b := range bufs {
		if i != 3 {
			c.Free(b)
		}
	}
}

// M6: clean is set only at start: a slice that was ever used never becomes clean again,
// including when its page goes back to the pool and comes back; a new domain is all clean.
func TestM6CleanOnlyAtStart(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 8 << 20, MaxDirtyPerClass: -1})
	for i := range d.slices {
		if d.slices[i].state != SliceStateClean {
			t.Fatalf("new domain: slice %d is %v", i, d.slices[i].state)
		}
	}
	cores := []*Core{newTestCore(t, d, 0), newTestCore(t, d, 1)}
	used := make([]bool, len(d.slices))
	r := rand.New(rand.NewPCG(6, 6))
	var live []Buf
	for step := range 3000 {
		c := cores[r.IntN(2)]
		if r.IntN(2) == 0 || len(live) == 0 {
			if b, err := c.Alloc(max(randomSize(r)%(PageSize), 1)); err == nil {
				live = append(live, b)
			}
		} else {
			i := r.IntN(len(live))
			c.Free(live[i])
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
		}
		if step%97 == 0 {
			c.Trim()
		}
		for i := range d.slices {
			st := d.slices[i].state
			if used[i] && st == SliceStateClean {
				t.Fatalf("step %d: slice %d was used and is clean again", step, i)
			}
			used[i] = used[i] || st != SliceStateClean
		}
	}
	for _, b := range live {
		cores[0].Free(b)
	}
	for _, c := range cores {
		c.Reclaim()
		c.Trim()
	}
	st := d.Stats()
	if st.PagesFree != st.PagesTotal || st.PagesFresh == st.PagesTotal {
		t.Fatalf("after the workload: %d free, %d fresh of %d pages; want all free, not all fresh",
			st.PagesFree, st.PagesFresh, st.PagesTotal)
	}
}
