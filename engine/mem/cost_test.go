package mem

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestCost pins Weights.Cost on the candidates of the package documentation's worked
// example (doc.go): change one and the other must follow.
func TestCost(t *testing.T) {
	w := DefaultWeights()
	for _, tc := range []struct {
		name string
		c    Candidate
		want int64 // hundredths of a weight unit
	}{
		{"partial, 3/4 free, page 3 busy", Candidate{State: SliceStatePartial, PageBusy: 3, Free: 3, Objects: 4}, 0 + 150 + 250},
		{"dirty same class, page 3 busy", Candidate{State: SliceStateDirty, SameClass: true, PageBusy: 3}, 1000 + 250},
		{"dirty other class, page 3 busy", Candidate{State: SliceStateDirty, PageBusy: 3}, 1000 + 200 + 250},
		{"clean, page 3 busy", Candidate{State: SliceStateClean, PageBusy: 3}, 2000 + 100 + 250},
		{"full, 1/4 free, page 3 busy", Candidate{State: SliceStateFull, PageBusy: 3, Free: 1, Objects: 4}, 4000 + 50 + 250},
		{"used page from the pool", Candidate{State: SliceStateDirty, FromPool: true}, 1000 + 200 + 400 + 1200},
		{"fresh page from the pool", Candidate{State: SliceStateClean, FromPool: true}, 2000 + 100 + 400 + 1200},
		{"busy page clamps", Candidate{State: SliceStateClean, PageBusy: 99}, 2100},
	} {
		if got := w.Cost(tc.c); got != tc.want {
			t.Errorf("%s: Cost = %d, want %d", tc.name, got, tc.want)
		}
	}
	// Claim 1's order under the defaults, on any page: partial < dirty < clean < full.
	order := []SliceState{SliceStatePartial, SliceStateDirty, SliceStateClean, SliceStateFull}
	for busyA := range slicesPerPage + 1 {
		for busyB := range slicesPerPage + 1 {
			for i := 0; i+1 < len(order); i++ {
				a := w.Cost(Candidate{State: order[i], PageBusy: busyA, Free: 3, Objects: 4})
				b := w.Cost(Candidate{State: order[i+1], PageBusy: busyB, Free: 1, Objects: 4})
				if a >= b {
					t.Fatalf("%v on a page with %d busy costs %d >= %v with %d busy: %d", order[i], busyA, a, order[i+1], busyB, b)
				}
			}
		}
	}
}

// TestFloors: no candidate costs less than its kind's floor, for any weights and page.
func TestFloors(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for range 2000 {
		rw := func() int32 { return int32(r.IntN(81) - 40) }
		w := Weights{Partial: rw(), Dirty: rw(), Clean: rw(), Full: rw(), Reformat: rw(),
			Occupancy: rw(), Fullness: rw(), Touch: rw(), Pool: rw()}
		f := w.floors()
		busy, objs := r.IntN(slicesPerPage+1), 1+r.IntN(4096)
		free := r.IntN(objs + 1)
		for _, tc := range []struct {
			floor int64
			c     Candidate
		}{
			{f.partial, Candidate{State: SliceStatePartial, PageBusy: busy, Free: free, Objects: objs}},
			{f.full, Candidate{State: SliceStateFull, PageBusy: busy, Free: free, Objects: objs}},
			{f.dirtySame, Candidate{State: SliceStateDirty, SameClass: true, PageBusy: busy}},
			{f.dirtySame, Candidate{State: SliceStateDirty, SameClass: r.IntN(2) == 0, PageBusy: busy}},
			{f.dirtyOther, Candidate{State: SliceStateDirty, PageBusy: busy}},
			{f.clean, Candidate{State: SliceStateClean, PageBusy: busy}},
		} {
			if cost := w.Cost(tc.c); cost < tc.floor {
				t.Fatalf("weights %+v: %+v costs %d below its floor %d", w, tc.c, cost, tc.floor)
			}
		}
	}
}

// choiceRoles maps the scenario's slices to the names the table uses.
func (s *scenario) role(i int32) string {
	switch {
	case i == s.partial:
		return "partial"
	case i == s.full:
		return "full"
	case i == s.dirty:
		return "dirty"
	case i == s.dirtyOther:
		return "dirty-other"
	case i/slicesPerPage != s.partial/slicesPerPage:
		return "pool"
	case s.d.slices[i].cls == uint8(classOf(k64)) && s.d.slices[i].nobj == 4 && i == s.clean:
		return "clean"
	}
	return fmt.Sprintf("slice %d", i)
}

// modelChoice is the model's prescription for the scenario, computed from Weights.Cost
// over the candidates the scenario has: the table's expectation must agree with it.
func (s *scenario) modelChoice(w Weights) string {
	busy := int(s.d.pages[s.partial/slicesPerPage].busy)
	cands := []struct {
		role string
		c    Candidate
	}{
		{"partial", Candidate{State: SliceStatePartial, PageBusy: busy, Free: 2, Objects: 4}},
		{"dirty", Candidate{State: SliceStateDirty, SameClass: true, PageBusy: busy}},
		{"dirty-other", Candidate{State: SliceStateDirty, PageBusy: busy}},
		{"clean", Candidate{State: SliceStateClean, PageBusy: busy}},
		{"full", Candidate{State: SliceStateFull, PageBusy: busy, Free: 1, Objects: 4}},
		{"pool", Candidate{State: SliceStateClean, FromPool: true}},
	}
	best, bestCost := "", int64(0)
	for _, c := range cands {
		if cost := w.Cost(c.c); best == "" || cost < bestCost {
			best, bestCost = c.role, cost
		}
	}
	return best
}

// TestChoiceTable: given slices in known states (the scenario) and given weights, the
// slice the core chooses is the one the table (and the model) prescribes.
func TestChoiceTable(t *testing.T) {
	def, fresh := DefaultWeights(), FreshWeights()
	with := func(w Weights, f func(*Weights)) Weights { f(&w); return w }
	for _, tc := range []struct {
		name string
		w    Weights
		want string
	}{
		{"default", def, "partial"},
		{"partial dear", with(def, func(w *Weights) { w.Partial = 50 }), "dirty"},
		{"reform cheap", with(def, func(w *Weights) { w.Partial, w.Reformat = 50, -5 }), "dirty-other"},
		{"dirty dear", with(def, func(w *Weights) { w.Partial, w.Dirty = 50, 30 }), "clean"},
		{"clean dear", with(def, func(w *Weights) { w.Partial, w.Dirty, w.Clean = 50, 45, 45 }), "full"},
		{"pool cheap", with(def, func(w *Weights) { w.Partial, w.Dirty, w.Clean, w.Pool = 50, 30, 30, -20 }), "pool"},
		{"fresh", fresh, "partial"},
		{"fresh, partial dear", with(fresh, func(w *Weights) { w.Partial = 30 }), "pool"},
		{"fresh, pool dear", with(fresh, func(w *Weights) { w.Partial, w.Pool = 30, 5 }), "clean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScenario(t, scenarioDomain(t), 0)
			defer s.release()
			if m := s.modelChoice(tc.w); m != tc.want {
				t.Fatalf("table says %s, model says %s", tc.want, m)
			}
			if err := s.d.SetWeights(0, tc.w); err != nil {
				t.Fatal(err)
			}
			b := mustAlloc(t, s.c, k64)
			defer s.c.Free(b)
			if got := s.role(sliceOf(b)); got != tc.want {
				t.Fatalf("chose %s, want %s", got, tc.want)
			}
		})
	}
}

// TestWeightsPerCore: changing one core's weights changes that core's choices only.
func TestWeightsPerCore(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 16 << 20, FullThresholdDiv: 2})
	a, b := newScenario(t, d, 1), newScenario(t, d, 2)
	defer a.release()
	defer b.release()
	w := DefaultWeights()
	w.Partial, w.Dirty = 50, 30 // clean first
	if err := d.SetWeights(1, w); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Weights(1); got != w {
		t.Fatalf("Weights(1) = %+v, want %+v", got, w)
	}
	if got, _ := d.Weights(2); got != DefaultWeights() {
		t.Fatalf("Weights(2) = %+v, want the defaults", got)
	}
	ba, bb := mustAlloc(t, a.c, k64), mustAlloc(t, b.c, k64)
	defer a.c.Free(ba)
	defer b.c.Free(bb)
	if got := a.role(sliceOf(ba)); got != "clean" {
		t.Fatalf("reweighted core chose %s, want clean", got)
	}
	if got := b.role(sliceOf(bb)); got != "partial" {
		t.Fatalf("other core chose %s, want partial (its weights did not change)", got)
	}
	if err := d.SetWeights(99, w); err == nil {
		t.Fatal("SetWeights on an unknown core succeeded")
	}
}

// churn runs a seeded mixed-size workload with random lifetimes on one core, keeping
// about liveBytes live, and returns the core's peak footprint in pages and the peak live
// bytes. sample, when not nil, is called every sampleEvery operations.
func churn(tb testing.TB, c *Core, seed uint64, ops int, liveBytes int64, sampleEvery int, sample func(op int, live int64)) (peakPages int, peakLive int64) {
	r := rand.New(rand.NewPCG(seed, 0xc4))
	type item struct {
		b    Buf
		dies int
	}
	var live []item
	var cur int64
	sizes := []int{64, 200, 512, 1500, 4096, 4096, 8192, 16 << 10, 60 << 10, 128 << 10}
	for op := range ops {
		// Free the dead, then allocate while under the target.
		for i := 0; i < len(live); {
			if live[i].dies <= op {
				cur -= int64(live[i].b.Len())
				c.Free(live[i].b)
				live[i] = live[len(live)-1]
				live = live[:len(live)-1]
				continue
			}
			i++
		}
		if cur < liveBytes {
			size := sizes[r.IntN(len(sizes))]
			b, err := c.Alloc(size)
			if err != nil {
				tb.Fatalf("churn op %d: Alloc(%d): %v", op, size, err)
			}
			cur += int64(size)
			peakLive = max(peakLive, cur)
			live = append(live, item{b: b, dies: op + 1 + r.IntN(400)})
		}
		peakPages = max(peakPages, int(c.pages))
		if sample != nil && op%sampleEvery == 0 {
			sample(op, cur)
		}
	}
	for _, it := range live {
		c.Free(it.b)
	}
	return peakPages, peakLive
}

// TestWeightingsFootprint: two weightings give measurably different footprints on the
// same churn workload: the defaults reuse dirty memory; FreshWeights reach for clean
// memory first and so touch more of the domain.
func TestWeightingsFootprint(t *testing.T) {
	peaks := map[string]int{}
	for name, w := range map[string]Weights{"default": DefaultWeights(), "fresh": FreshWeights()} {
		d := newTestDomain(t, DomainConfig{SizeBytes: 32 << 20, Weights: &w})
		c := newTestCore(t, d, 0)
		peak, live := churn(t, c, 7, 6000, 3<<20, 0, nil)
		peaks[name] = peak
		t.Logf("%s: peak %d pages (%d MiB) for %d KiB peak live", name, peak, peak*PageSize>>20, live>>10)
		if err := d.checkConsistency(); err != nil {
			t.Fatal(err)
		}
	}
	if peaks["fresh"] < peaks["default"]*3/2 {
		t.Fatalf("peak footprint: fresh %d pages, default %d; want fresh >= 1.5x default", peaks["fresh"], peaks["default"])
	}
}

func TestTuneMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		win  tuneWindow
		want TuneMode
	}{
		{"growing", tuneWindow{allocs: 100, frees: 10, refills: 10, heldBytes: 4 * PageSize, liveBytes: 3 * PageSize}, TuneModeBase},
		{"bloated", tuneWindow{allocs: 100, frees: 100, refills: 10, heldBytes: 20 * PageSize, liveBytes: 3 * PageSize}, TuneModeCompact},
		{"pool low", tuneWindow{allocs: 100, frees: 100, poolLow: true}, TuneModeCompact},
		{"churn with reformats", tuneWindow{allocs: 100, frees: 95, refills: 20, reformats: 10, heldBytes: 4 * PageSize, liveBytes: 3 * PageSize}, TuneModeSegregate},
		{"churn without reformats", tuneWindow{allocs: 100, frees: 95, refills: 20, reformats: 2, heldBytes: 4 * PageSize, liveBytes: 3 * PageSize}, TuneModeBase},
	} {
		if got := tuneMode(tc.win); got != tc.want {
			t.Errorf("%s: tuneMode = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Segregate must rank a clean slice before another class's dirty one on any page.
	w := TuneModeSegregate.derive(DefaultWeights())
	for busyA := range slicesPerPage + 1 {
		for busyB := range slicesPerPage + 1 {
			clean := w.Cost(Candidate{State: SliceStateClean, PageBusy: busyA})
			other := w.Cost(Candidate{State: SliceStateDirty, PageBusy: busyB})
			same := w.Cost(Candidate{State: SliceStateDirty, SameClass: true, PageBusy: busyB})
			if clean >= other || same >= clean {
				t.Fatalf("segregate: dirty same %d, clean %d, dirty other %d (busy %d/%d)", same, clean, other, busyA, busyB)
			}
		}
	}
	if c := TuneModeCompact.derive(DefaultWeights()); c.Pool <= DefaultWeights().Pool || c.Fullness <= DefaultWeights().Fullness {
		t.Fatalf("compact did not raise pool and fullness: %+v", c)
	}
	// From FreshWeights, compact restores claim 1's order and fills busy pages first.
	if c := TuneModeCompact.derive(FreshWeights()); c.Dirty >= c.Clean || c.Occupancy <= 0 {
		t.Fatalf("compact of fresh: %+v", c)
	}
}

// TestAutoTune: a core with AutoTune set moves to compact mode when its footprint bloats,
// and Weights reports the derived weights.
func TestAutoTune(t *testing.T) {
	w := FreshWeights()
	w.AutoTune = true
	d := newTestDomain(t, DomainConfig{SizeBytes: 32 << 20, Weights: &w})
	c := newTestCore(t, d, 0)
	churn(t, c, 3, 6000, 3<<20, 0, nil)
	got, err := d.Weights(0)
	if err != nil {
		t.Fatal(err)
	}
	if c.mode != TuneModeCompact || got.Pool <= w.Pool {
		t.Fatalf("after a bloating churn: mode %v, weights %+v; want compact", c.mode, got)
	}
	c.PublishStats()
	if m := d.Stats().Cores[0].TuneMode; m != "compact" {
		t.Fatalf("stats tune_mode = %q", m)
	}
}
