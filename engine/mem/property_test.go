package mem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

// testSeed returns SEED from the environment, or a fixed default so that runs repeat.
func testSeed(t *testing.T) uint64 {
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: %v", s, err)
		}
		return v
	}
	return 1
}

// liveBuf is the model's record of a live buffer: the Buf, the core that allocated it and
// the stamp written at both ends of its memory.
type liveBuf struct {
	b     Buf
	owner int
	stamp uint64
}

func bufCap(b Buf) uint64 {
	switch {
	case b.cls() < numClasses:
		return uint64(classSizes[b.cls()])
	case b.cls() == clsSpan:
		return uint64(b.idx()) * SliceSize
	}
	return uint64(ClassSize(int(b.n())))
}

func randomSize(r *rand.Rand) int {
	switch x := r.IntN(100); {
	case x < 45:
		return 1 + r.IntN(smallMax)
	case x < 85:
		return smallMax + 1 + r.IntN(MaxClassSize-smallMax)
	case x < 97:
		return MaxClassSize + 1 + r.IntN(PageSize-MaxClassSize)
	default:
		return PageSize + 1 + r.IntN(2*PageSize)
	}
}

// TestPropertyRandomOps drives random alloc/free/reclaim/trim/reweigh sequences over
// three cores against a model and checks after every step that no two live objects
// overlap, that every object lies in its slice (spans in their page) and is aligned as its
// class promises, that each buffer's contents are intact, and that the state counters
// match the slices' bitmaps. After freeing everything it checks that every slice is clean
// or dirty and that the footprint obeys the policy. SEED=n picks the first seed.
func TestPropertyRandomOps(t *testing.T) {
	seed := testSeed(t)
	steps := 2500
	if testing.Short() || slowChecks {
		steps = 500
	}
	for i := range uint64(4) {
		maxDirty := []int{1, 2, -1, 3}[i]
		t.Run(fmt.Sprintf("seed=%d/maxdirty=%d", seed+i, maxDirty), func(t *testing.T) {
			runProperty(t, seed+i, steps, maxDirty)
		})
	}
}

func runProperty(t *testing.T, seed uint64, steps, maxDirty int) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	d := newTestDomain(t, DomainConfig{SizeBytes: 24 << 20, MaxDirtyPerClass: maxDirty, FullThresholdDiv: 4})
	cores := make([]*Core, 3)
	for i := range cores {
		cores[i] = newTestCore(t, d, 10+i)
	}
	var live []liveBuf
	stamp := uint64(0)
	fail := func(step int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d step %d: %s (reproduce with SEED=%d)", seed, step, fmt.Sprintf(format, args...), seed)
	}
	free := func(step, i, by int) {
		lb := live[i]
		p := lb.b.Bytes()
		if binary.LittleEndian.Uint64(p) != lb.stamp || binary.LittleEndian.Uint64(p[len(p)-8:]) != lb.stamp {
			fail(step, "contents of %v overwritten", lb.b)
		}
		cores[by].Free(lb.b)
		live[i] = live[len(live)-1]
		live = live[:len(live)-1]
	}
	for step := range steps {
		ci := r.IntN(len(cores))
		c := cores[ci]
		switch x := r.IntN(100); {
		case x < 50 || len(live) == 0:
			size := max(randomSize(r), 16)
			b, err := c.Alloc(size)
			if errors.Is(err, ErrNoMemory) {
				if size <= PageSize && d.poolFresh.Load()+d.poolUsed.Load() != 0 {
					fail(step, "ErrNoMemory for %d bytes with pages in the pool", size)
				}
				continue
			}
			if err != nil {
				fail(step, "Alloc(%d): %v", size, err)
			}
			stamp++
			p := b.Bytes()
			binary.LittleEndian.PutUint64(p, stamp)
			binary.LittleEndian.PutUint64(p[len(p)-8:], stamp)
			live = append(live, liveBuf{b: b, owner: ci, stamp: stamp})
		case x < 90:
			by := ci
			if r.IntN(4) == 0 {
				by = r.IntN(len(cores)) // cross-core free
			}
			free(step, r.IntN(len(live)), by)
		case x < 95:
			c.Reclaim()
		case x < 98:
			c.Trim()
		default:
			w := DefaultWeights()
			if r.IntN(2) == 0 {
				w = FreshWeights()
			}
			w.AutoTune = r.IntN(2) == 0
			if err := d.SetWeights(c.ID(), w); err != nil {
				t.Fatal(err)
			}
		}
		if err := checkLive(live); err != nil {
			fail(step, "%v", err)
		}
		if err := d.checkConsistency(); err != nil {
			fail(step, "%v", err)
		}
	}
	for _, cs := range d.Stats().Cores {
		t.Logf("core %d: refills %d reformats %d nomem %d remote sent %d reclaimed %d peak pages %d", cs.Core, cs.Refills, cs.Reformats, cs.NoMemory, cs.RemoteFreesSent, cs.RemoteFreesReclaimed, cs.PeakPagesHeld)
	}
	t.Logf("live at end %d", len(live))
	for len(live) > 0 {
		free(steps, r.IntN(len(live)), r.IntN(len(cores)))
	}
	for _, c := range cores {
		c.Reclaim()
	}
	if err := d.checkConsistency(); err != nil {
		fail(steps, "after freeing all: %v", err)
	}
	checkAllIdle(t, d, cores, false)
	for _, c := range cores {
		c.Trim()
	}
	if err := d.checkConsistency(); err != nil {
		fail(steps, "after trim: %v", err)
	}
	checkAllIdle(t, d, cores, true)
}

// checkLive checks the model's live buffers: no overlap, containment, alignment.
func checkLive(live []liveBuf) error {
	sorted := slices.Clone(live)
	slices.SortFunc(sorted, func(a, b liveBuf) int { return int(a.b.off()>>6) - int(b.b.off()>>6) })
	for i, lb := range sorted {
		b := lb.b
		end := b.off() + bufCap(b)
		if i+1 < len(sorted) && end > sorted[i+1].b.off() {
			return fmt.Errorf("%v overlaps %v", b, sorted[i+1].b)
		}
		addr := reflect.ValueOf(b.Bytes()).Pointer()
		switch {
		case b.cls() < numClasses:
			if b.off()>>sliceShift != (end-1)>>sliceShift {
				return fmt.Errorf("%v crosses its slice", b)
			}
			if a := classAlign(int(b.cls())); addr%uintptr(a) != 0 {
				return fmt.Errorf("%v at %#x not %d-aligned", b, addr, a)
			}
		case b.cls() == clsSpan:
			if b.off()>>pageShift != (end-1)>>pageShift || addr%SliceSize != 0 {
				return fmt.Errorf("span %v crosses its page or is misaligned", b)
			}
		default:
			if addr%PageSize != 0 {
				return fmt.Errorf("pages %v not page aligned", b)
			}
		}
	}
	return nil
}

// checkAllIdle checks the end state: every slice clean or dirty, and the footprint
// policy: without Trim a core holds at most (maxDirty+1) pages per class (retained slices
// plus one current each); after Trim every page it holds has a retained dirty slice.
func checkAllIdle(t *testing.T, d *Domain, cores []*Core, trimmed bool) {
	t.Helper()
	for i := range d.slices {
		if st := d.slices[i].state; st != SliceStateClean && st != SliceStateDirty {
			t.Fatalf("slice %d is %v after freeing everything", i, st)
		}
	}
	for _, c := range cores {
		bound := int32(numClasses * (d.maxDirty + 1))
		if trimmed {
			bound = 0
			for r := range c.rows[:numClasses] {
				bound += c.rows[r].dirty.n
				if c.rows[r].cur >= 0 {
					t.Fatalf("core %d class %s still has a current slice after Trim", c.id, rowName(r))
				}
			}
		}
		if c.pages > bound {
			t.Fatalf("core %d holds %d pages, policy allows %d (trimmed %v)", c.id, c.pages, bound, trimmed)
		}
	}
	if trimmed && d.maxDirty == 0 {
		if st := d.Stats(); st.PagesFree != st.PagesTotal {
			t.Fatalf("maxDirty 0: %d of %d pages back in the pool", st.PagesFree, st.PagesTotal)
		}
	}
}
