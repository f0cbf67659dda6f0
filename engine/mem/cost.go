package mem

// Weights are a core's cost-model weights, in weight units. A candidate slice's cost is
// a state allocation cost (what using a slice in that state costs the core) plus a memory
// allocation cost (what it does to the footprint); the lowest total wins, ties going to
// the lowest address. See the package documentation for a worked example.
//
// Weights are per core: SetWeights changes one core's choices and no other's.
type Weights struct {
	// State allocation costs, by the candidate's state.
	Partial int32 `json:"partial"`
	Dirty   int32 `json:"dirty"`
	Clean   int32 `json:"clean"`
	Full    int32 `json:"full"`
	// Reformat is added for a dirty slice last used for another class: its metadata is
	// rebuilt and the class it served loses a retained slice.
	Reformat int32 `json:"reformat"`

	// Memory allocation costs.
	// Occupancy is charged in proportion to the idle slices of the candidate's page, so
	// that busy pages fill up and idle ones empty out and can go back to the domain.
	Occupancy int32 `json:"occupancy"`
	// Fullness is charged in proportion to a partial or full slice's free fraction, so
	// that nearly full slices are filled first (packing live objects densely).
	Fullness int32 `json:"fullness"`
	// Touch is charged for a clean slice: memory no object has used since start is cold
	// in every cache and TLB.
	Touch int32 `json:"touch"`
	// Pool is charged for taking a page from the domain's pool: it grows the core's
	// footprint by a whole page.
	Pool int32 `json:"pool"`

	// AutoTune lets the core re-derive its weights from these every tuneEvery refills,
	// from what it observes (see tuner).
	AutoTune bool `json:"auto_tune"`
}

// DefaultWeights returns the weights that give claim 1's order, partial > dirty > clean >
// full, with memory costs that stay below the 10-unit gap between states (so the state
// decides and memory breaks ties) except that taking a page from the pool (12) ranks a
// pooled page after the slices of the same state or better that the core already holds.
func DefaultWeights() Weights {
	return Weights{
		Partial: 0, Dirty: 10, Clean: 20, Full: 40,
		Reformat: 2, Occupancy: 4, Fullness: 2, Touch: 1, Pool: 12,
	}
}

// FreshWeights returns weights for a latency-first core: clean memory before dirty
// (no reformat, no reuse of memory another class just left), emptier pages first, and no
// charge for taking pages from the pool. The footprint grows to touch fresh memory before
// it reuses any; compare with DefaultWeights in the churn benchmark.
func FreshWeights() Weights {
	return Weights{
		Partial: 0, Dirty: 20, Clean: 10, Full: 40,
		Reformat: 10, Occupancy: -4, Fullness: 0, Touch: 0, Pool: 0,
	}
}

// Candidate describes a slice the cost model may choose, as Weights.Cost sees it.
type Candidate struct {
	State SliceState
	// SameClass: a dirty candidate was last formatted for the requested class.
	SameClass bool
	// FromPool: the slice's page would first be taken from the domain's pool.
	FromPool bool
	// PageBusy is the number of the page's slices in use (current, partial, full or part
	// of a span), 0 to 8.
	PageBusy int
	// Free and Objects are a partial or full slice's free objects and capacity.
	Free, Objects int
}

// costScale makes costs integers in hundredths of a weight unit.
const costScale = 100

// Cost returns the candidate's cost in hundredths of a weight unit (lower is better).
// It is a pure function of w and c.
func (w *Weights) Cost(c Candidate) int64 {
	var cost int64
	switch c.State {
	case SliceStatePartial:
		cost = costScale * int64(w.Partial)
	case SliceStateFull:
		cost = costScale * int64(w.Full)
	case SliceStateDirty:
		cost = costScale * int64(w.Dirty)
		if !c.SameClass {
			cost += costScale * int64(w.Reformat)
		}
	case SliceStateClean:
		cost = costScale * int64(w.Clean+w.Touch)
	}
	if (c.State == SliceStatePartial || c.State == SliceStateFull) && c.Objects > 0 {
		cost += costScale * int64(w.Fullness) * int64(c.Free) / int64(c.Objects)
	}
	idle := int64(slicesPerPage - min(max(c.PageBusy, 0), slicesPerPage))
	cost += costScale * int64(w.Occupancy) * idle / slicesPerPage
	if c.FromPool {
		cost += costScale * int64(w.Pool)
	}
	return cost
}

// floors are, per kind of candidate, the lowest cost any candidate of that kind can have
// under some weights: its state cost plus the smallest value each memory term can take.
// A refill skips a list whose floor is above the best cost found so far: the common case
// (a partial slice under the defaults) then looks at one list.
type floors struct {
	partial, dirtySame, dirtyOther, clean, full int64
}

func (w *Weights) floors() floors {
	neg := func(x int32) int64 { return costScale * int64(min(x, 0)) }
	mem := neg(w.Occupancy) // occupancy term: Occupancy × idle fraction in [0, 1]
	return floors{
		partial:    costScale*int64(w.Partial) + neg(w.Fullness) + mem,
		dirtySame:  costScale*int64(w.Dirty) + mem + min(0, costScale*int64(w.Reformat)),
		dirtyOther: costScale*int64(w.Dirty+w.Reformat) + mem,
		clean:      costScale*int64(w.Clean+w.Touch) + mem,
		full:       costScale*int64(w.Full) + neg(w.Fullness) + mem,
	}
}

// Tuning. Every tuneEvery refills a core with AutoTune set looks at what it saw in the
// window and picks one of three derivations of the weights it was given (its base):
//
//   - compact, when its footprint is more than twice its live bytes (plus two pages of
//     slack) or the domain's pool is under an eighth: fullness weighs double, the pool
//     costs a band more, busy pages are filled first and dirty slices come before clean
//     ones, so it packs, stops growing and lets idle pages drain back to the domain;
//   - segregate, when it is in steady churn (frees at least 90% of allocs) and more than a
//     quarter of its refills re-format a slice of another class: the reformat cost rises
//     past the dirty-to-clean gap, so that clean slices now rank before other classes'
//     dirty ones (dirty and clean reordered) and classes stop stealing each other's slices;
//   - base otherwise.
const tuneEvery = 64

// TuneMode names the derivation a tuning core currently uses.
type TuneMode uint8

const (
	TuneModeBase TuneMode = iota
	TuneModeCompact
	TuneModeSegregate
)

// String returns the mode's name as the stats RPC spells it.
func (m TuneMode) String() string {
	switch m {
	case TuneModeCompact:
		return "compact"
	case TuneModeSegregate:
		return "segregate"
	}
	return "base"
}

// tuneWindow is what a core observed since the last tuning.
type tuneWindow struct {
	allocs, frees, refills, reformats uint64
	heldBytes, liveBytes              int64
	poolLow                           bool
}

// tuneMode decides the mode for a window. It is a pure function.
func tuneMode(win tuneWindow) TuneMode {
	if win.poolLow || win.heldBytes > 2*win.liveBytes+2*PageSize {
		return TuneModeCompact
	}
	if win.allocs > 0 && win.frees*10 >= win.allocs*9 && win.reformats*4 > win.refills {
		return TuneModeSegregate
	}
	return TuneModeBase
}

// derive returns the weights mode m makes of base.
func (m TuneMode) derive(base Weights) Weights {
	w := base
	switch m {
	case TuneModeCompact:
		w.Fullness = 2*max(base.Fullness, 0) + 1
		w.Pool = max(base.Pool, 0) + 10
		// Fill busy pages so that idle ones drain and go back to the pool, and reuse dirty
		// memory before clean: claim 1's order, whatever the base preferred.
		w.Occupancy = max(base.Occupancy, -base.Occupancy, 1)
		if w.Clean < w.Dirty {
			w.Clean, w.Dirty = w.Dirty, w.Clean
		}
	case TuneModeSegregate:
		// Past the gap plus the widest occupancy difference, so that no page makes a
		// dirty slice of another class cheaper than a clean one.
		gap := base.Clean + base.Touch - base.Dirty + max(base.Occupancy, -base.Occupancy)
		w.Reformat = max(base.Reformat, gap+1)
	}
	return w
}
