package mem

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
)

// maxScan bounds how many slices of each list the cost model looks at per refill, so a
// refill costs O(1) however many slices a core holds. Lists are LIFO: the slices looked
// at are the ones the core touched last.
const maxScan = 8

// publishEvery is how many refills pass between two publications of a core's stats.
const publishEvery = 64

// row is a core's allocation state for one size class (or for spans).
type row struct {
	cur     int32 // current slice, -1 when none
	partial list
	full    list // full slices with a free object: candidates, after everything else
	// exhausted holds full slices with no free object. They are never candidates (M4),
	// and keeping them apart keeps the bounded scan of full from missing one that has room.
	exhausted list
	dirty     list // retained dirty slices (the footprint policy bounds their number)
	inUse     int64
	allocs    uint64
	frees     uint64
	counts    [numStates]int32 // this class's slices on this core by state (clean unused)
}

// counters are a core's event counts.
type counters struct {
	refills, reformats, noMemory, remoteSent, remoteReclaimed uint64
}

// Core is one reactor's allocation state within a domain: its current slice per class,
// its partial, full and dirty lists, the pages it holds, and its cost-model weights.
//
// A Core is not safe for concurrent use: Alloc, Free, Reclaim, Trim and PublishStats are
// called by its owner only (the reactor's goroutine), without locks. Free is the
// exception in spirit: any core may free any Buf, through its own Core; a Buf that belongs
// to another core goes back to that core through a lock-free list.
type Core struct {
	d   *Domain
	id  int
	idx int32

	rows      [numRows]row
	clean     list // clean slices on pages this core holds
	spare     list // dirty slices beyond the footprint policy, of any class
	cleanN    int32
	pages     int32
	peakPages int32
	ctr       counters
	w         Weights // in use; owner only
	floor     floors  // of w
	base      Weights // as last set; the tuner derives w from it
	mode      TuneMode
	tuneStart tuneWindow

	// Fields below are shared with other goroutines.
	_ [64]byte
	// remote is the head of the list of objects other cores freed to this core: domain
	// offset + 1 of the last one pushed, 0 when empty. The links live in the freed
	// objects' first 8 bytes (free object memory, so no header and no Go allocation).
	remote atomic.Uint64
	_      [56]byte

	wPending atomic.Bool
	statsReq atomic.Bool
	wReq     Weights // guarded by d.mu
	wCur     Weights // guarded by d.mu

	pubMu sync.Mutex
	pub   CoreStats // guarded by pubMu
}

func newCore(d *Domain, id int, idx int32, w Weights) *Core {
	c := &Core{d: d, id: id, idx: idx, clean: newList(), spare: newList(), w: w, floor: w.floors(), base: w, wReq: w, wCur: w}
	for i := range c.rows {
		r := &c.rows[i]
		r.cur = -1
		r.partial, r.full, r.exhausted, r.dirty = newList(), newList(), newList(), newList()
	}
	c.pub.Classes = make([]ClassStats, numRows)
	c.publish()
	return c
}

// ID returns the core id the Core was created with.
func (c *Core) ID() int { return c.id }

// Domain returns the domain the Core allocates from.
func (c *Core) Domain() *Domain { return c.d }

// Alloc returns a buffer of size bytes: from a size class up to MaxClassSize (aligned to
// 64 bytes, or 4096 for classes of 4 KiB and more), a span of whole slices up to
// PageSize, whole pages beyond. The memory is not zeroed. When the domain's cap is
// reached it returns ErrNoMemory, which is back-pressure: queue the I/O or fail it with a
// retryable status.
//
// Preconditions: called by the core's owner.
func (c *Core) Alloc(size int) (Buf, error) {
	var cls int
	switch {
	case uint(size-1) < smallMax:
		cls = int(smallIndex[(size+63)>>6])
	case uint(size-1) < MaxClassSize:
		cls = int(largeIndex[(size+4095)>>12])
	default:
		return c.allocLarge(size)
	}
	r := &c.rows[cls]
	if s := r.cur; s >= 0 {
		if sl := &c.d.slices[s]; sl.nfree > 0 {
			return c.pop(r, sl, s, cls, size), nil
		}
	}
	return c.refill(cls, size)
}

// pop takes an object from the current slice s of class cls.
func (c *Core) pop(r *row, sl *slice, s int32, cls, size int) Buf {
	idx := sl.take()
	if sl.state != SliceStatePartial || sl.nfree < sl.thresh {
		c.restate(r, sl)
	}
	r.inUse++
	r.allocs++
	off := uint64(s)<<sliceShift + uint64(idx)*uint64(classSizes[cls])
	if invariantsEnabled {
		c.d.inv.alloc(c.d, s, idx, off, int(classSizes[cls]))
	}
	return makeBuf(c.d.id, off, uint32(size), uint16(idx), uint8(cls))
}

// restate moves the counters of a slice whose occupancy changed state; list membership
// is the caller's business.
func (c *Core) restate(r *row, sl *slice) {
	if st := sl.occupancyState(); st != sl.state {
		r.counts[sl.state]--
		r.counts[st]++
		sl.state = st
	}
}

// Free returns b. A buffer of this core goes straight back to its slice; one of another
// core (of this domain or another) is pushed on that core's remote-free list without a
// lock, and the owner takes it back at its next refill or Reclaim. Freeing the zero Buf
// is a no-op.
//
// Preconditions: called by the core's owner; b is live (a double free panics when the
// owner takes it back, at once when built with the invariants tag).
func (c *Core) Free(b Buf) {
	d := c.d
	off, cls := b.off(), b.cls()
	if !invariantsEnabled && b.dom() == d.id && cls < numClasses && d.pageOwner[off>>pageShift] == c.idx {
		c.freeLocal(int32(off>>sliceShift), int(b.idx()), int(cls))
		return
	}
	c.freeSlow(b)
}

// freeLocal puts object idx of slice s back.
func (c *Core) freeLocal(s int32, idx, cls int) {
	sl := &c.d.slices[s]
	if int(sl.cls) != cls {
		panic("mem: free with a class that is not the slice's (stale or forged Buf)")
	}
	sl.put(idx)
	r := &c.rows[cls]
	r.inUse--
	r.frees++
	if sl.state != SliceStatePartial || sl.nfree == sl.nobj {
		c.afterFree(s, sl, r)
	}
}

// afterFree handles a state change caused by a free: full to partial, or to dirty, or an
// exhausted slice that has room again.
func (c *Core) afterFree(s int32, sl *slice, r *row) {
	if sl.occupancyState() == sl.state && sl.where != inExhausted {
		return
	}
	c.restate(r, sl)
	if sl.where == inCurrent {
		return
	}
	switch sl.where {
	case inPartial:
		r.partial.remove(c.d.slices, s)
	case inFull:
		r.full.remove(c.d.slices, s)
	case inExhausted:
		r.exhausted.remove(c.d.slices, s)
	}
	switch sl.state {
	case SliceStatePartial:
		r.partial.push(c.d.slices, s, inPartial)
	case SliceStateFull:
		r.full.push(c.d.slices, s, inFull)
	case SliceStateDirty:
		c.retire(s)
	}
}

// retire makes slice s, which just became empty and is on no list, dirty and keeps it or
// releases its page as the footprint policy says.
func (c *Core) retire(s int32) {
	d := c.d
	sl := &d.slices[s]
	r := &c.rows[sl.cls]
	r.counts[sl.state]--
	r.counts[SliceStateDirty]++
	sl.state = SliceStateDirty
	p := &d.pages[s/slicesPerPage]
	p.busy--
	if int(sl.cls) < numClasses && int(r.dirty.n) < d.maxDirty {
		r.dirty.push(d.slices, s, inDirty)
		p.retained++
		return
	}
	c.spare.push(d.slices, s, inSpare)
	c.maybeRelease(int(s / slicesPerPage))
}

// maybeRelease returns page pg to the domain when none of its slices is in use or
// retained: the footprint policy's "return emptied pages beyond that".
func (c *Core) maybeRelease(pg int) {
	d := c.d
	if p := &d.pages[pg]; p.busy != 0 || p.retained != 0 {
		return
	}
	for i := int32(pg * slicesPerPage); i < int32((pg+1)*slicesPerPage); i++ {
		sl := &d.slices[i]
		switch sl.where {
		case inSpare:
			c.spare.remove(d.slices, i)
			c.rows[sl.cls].counts[SliceStateDirty]--
		case inClean:
			c.clean.remove(d.slices, i)
			c.cleanN--
		default:
			panic("mem: releasing a page with a slice in use")
		}
		sl.where = inPool
	}
	c.pages--
	d.releasePage(pg)
}

// freeSlow frees what the fast path does not: another core's objects, spans, pages, the
// zero Buf, and everything under the invariants tag.
func (c *Core) freeSlow(b Buf) {
	d := b.domain()
	if d == nil {
		if b.IsZero() {
			return
		}
		panic("mem: Free of a Buf whose domain is closed")
	}
	if invariantsEnabled {
		d.inv.free(d, b)
	}
	off, cls := b.off(), b.cls()
	if cls == clsPages {
		d.giveBackRun(int(off>>pageShift), int((uint64(b.n())+PageSize-1)>>pageShift))
		return
	}
	owner := d.pageOwner[off>>pageShift]
	if owner < 0 {
		panic("mem: free of an object whose page is not lent to a core (double free?)")
	}
	switch {
	case d != c.d || owner != c.idx:
		c.ctr.remoteSent++
		d.cores[owner].pushRemote(off)
	case cls == clsSpan:
		c.freeSpan(int32(off >> sliceShift))
	default:
		c.freeLocal(int32(off>>sliceShift), int(b.idx()), int(cls))
	}
}

// pushRemote links the free object at off onto c's remote-free list. It may run on any
// goroutine; it is a CAS loop that never waits for the owner.
func (c *Core) pushRemote(off uint64) {
	link := c.d.mem[off : off+8 : off+8]
	for {
		old := c.remote.Load()
		binary.LittleEndian.PutUint64(link, old)
		if c.remote.CompareAndSwap(old, off+1) {
			return
		}
	}
}

// drainRemote takes back every object other cores freed to c and returns how many.
func (c *Core) drainRemote() int {
	if c.remote.Load() == 0 {
		return 0
	}
	d := c.d
	h := c.remote.Swap(0)
	n := 0
	for h != 0 {
		off := h - 1
		link := d.mem[off : off+8 : off+8]
		h = binary.LittleEndian.Uint64(link)
		if invariantsEnabled {
			poison(link)
		}
		s := int32(off >> sliceShift)
		sl := &d.slices[s]
		if sl.cls == clsSpan {
			c.freeSpan(s)
		} else {
			rel := off - uint64(s)<<sliceShift
			c.freeLocal(s, int(rel/uint64(classSizes[sl.cls])), int(sl.cls))
		}
		if n++; n > len(d.slices)*maxObjects {
			panic("mem: remote-free list has a cycle (an object freed twice across cores)")
		}
	}
	c.ctr.remoteReclaimed += uint64(n)
	return n
}

// Reclaim takes back the objects other cores freed to this core, applies weights set by
// SetWeights and publishes stats a Stats call asked for. A reactor calls it from a poller;
// when idle it costs three atomic loads. It returns the number of objects taken back.
//
// Preconditions: called by the core's owner.
func (c *Core) Reclaim() int {
	n := c.drainRemote()
	if c.wPending.Load() {
		c.applyWeights()
	}
	if c.statsReq.Load() {
		c.publish()
	}
	return n
}

// service is the refill path's housekeeping.
func (c *Core) service() {
	c.ctr.refills++
	c.drainRemote()
	if c.wPending.Load() {
		c.applyWeights()
	}
	if c.w.AutoTune && c.ctr.refills%tuneEvery == 0 {
		c.tune()
	}
	if c.statsReq.Load() || c.ctr.refills%publishEvery == 0 {
		c.publish()
	}
}

func (c *Core) applyWeights() {
	c.d.mu.Lock()
	c.base = c.wReq
	c.wPending.Store(false)
	c.d.mu.Unlock()
	c.w, c.mode = c.base, TuneModeBase
	c.floor = c.w.floors()
}

// tune re-derives the weights from what the core saw since the last tuning.
func (c *Core) tune() {
	now := c.window()
	win := tuneWindow{
		allocs:    now.allocs - c.tuneStart.allocs,
		frees:     now.frees - c.tuneStart.frees,
		refills:   now.refills - c.tuneStart.refills,
		reformats: now.reformats - c.tuneStart.reformats,
		heldBytes: now.heldBytes,
		liveBytes: now.liveBytes,
		poolLow:   int(c.d.poolFresh.Load()+c.d.poolUsed.Load()) < c.d.npages/8,
	}
	c.tuneStart = now
	mode := tuneMode(win)
	if mode == c.mode {
		return
	}
	c.mode = mode
	c.w = mode.derive(c.base)
	c.floor = c.w.floors()
	c.d.mu.Lock()
	c.wCur = c.w
	c.d.mu.Unlock()
}

func (c *Core) window() tuneWindow {
	var w tuneWindow
	for i := range c.rows {
		r := &c.rows[i]
		w.allocs += r.allocs
		w.frees += r.frees
		size := int64(SliceSize)
		if i < numClasses {
			size = int64(classSizes[i])
		}
		w.liveBytes += r.inUse * size
	}
	w.refills, w.reformats = c.ctr.refills, c.ctr.reformats
	w.heldBytes = int64(c.pages) * PageSize
	return w
}

// refill serves an allocation the current slice cannot: it runs the cost model.
func (c *Core) refill(cls, size int) (Buf, error) {
	c.service()
	d := c.d
	r := &c.rows[cls]
	if s := r.cur; s >= 0 {
		sl := &d.slices[s]
		if sl.nfree > 0 { // remote frees came back to it
			return c.pop(r, sl, s, cls, size), nil
		}
		r.cur = -1
		r.exhausted.push(d.slices, s, inExhausted)
	}
	s := c.pick(cls)
	if s < 0 {
		c.ctr.noMemory++
		return Buf{}, ErrNoMemory
	}
	c.activate(s, cls)
	return c.pop(r, &d.slices[s], s, cls, size), nil
}

// choice is the cost model's running best.
type choice struct {
	s     int32
	cost  int64
	pool  bool
	fresh bool
}

// pick returns the slice the cost model chooses for class cls, taking a page from the
// pool if that is the cheapest candidate, or -1 when the domain has nothing left.
func (c *Core) pick(cls int) int32 {
	best := c.best(cls, true)
	if !best.pool {
		return best.s
	}
	if pg, ok := c.takePage(best.fresh); ok {
		return int32(pg * slicesPerPage) // the chosen page's first slice: all are idle
	}
	// Another core emptied the pool since we looked: choose among held slices.
	return c.best(cls, false).s
}

// best evaluates the candidates for class cls: up to maxScan slices of each of the
// class's lists and of the core's clean and spare lists, the latest dirty slice of every
// other class, and (when allowPool) a used and a fresh page from the domain's pool.
func (c *Core) best(cls int, allowPool bool) choice {
	r := &c.rows[cls]
	f := &c.floor
	best := choice{s: -1, cost: math.MaxInt64}
	// A list is looked at only if its floor can match the best so far (<=, so that a tie
	// on a lower address is still found).
	if r.partial.n > 0 && f.partial <= best.cost {
		c.scan(&best, &r.partial, cls, maxScan)
	}
	if r.dirty.n > 0 && f.dirtySame <= best.cost {
		c.scan(&best, &r.dirty, cls, maxScan)
	}
	if c.spare.n > 0 && f.dirtySame <= best.cost {
		c.scan(&best, &c.spare, cls, maxScan)
	}
	if c.clean.n > 0 && f.clean <= best.cost {
		c.scan(&best, &c.clean, cls, maxScan)
	}
	if r.full.n > 0 && f.full <= best.cost {
		c.scan(&best, &r.full, cls, maxScan)
	}
	// Another class's dirty slice may be re-formatted (M2), at the reformat cost; its most
	// recently emptied one stands for the class, so the scan stays bounded.
	if f.dirtyOther <= best.cost {
		for i := range c.rows[:numClasses] {
			if i != cls && c.rows[i].dirty.n > 0 {
				c.scan(&best, &c.rows[i].dirty, cls, 1)
			}
		}
	}
	if !allowPool {
		return best
	}
	if c.d.poolUsed.Load() > 0 {
		cost := c.w.Cost(Candidate{State: SliceStateDirty, FromPool: true})
		if cost < best.cost {
			best = choice{s: -1, cost: cost, pool: true}
		}
	}
	if c.d.poolFresh.Load() > 0 {
		cost := c.w.Cost(Candidate{State: SliceStateClean, FromPool: true})
		if cost < best.cost {
			best = choice{s: -1, cost: cost, pool: true, fresh: true}
		}
	}
	return best
}

func (c *Core) scan(best *choice, l *list, cls, limit int) {
	d := c.d
	i := l.head
	for k := 0; i >= 0 && k < limit; k++ {
		sl := &d.slices[i]
		if sl.state != SliceStateFull || sl.nfree > 0 { // M4: never a full slice with no room
			cost := c.w.Cost(Candidate{
				State:     sl.state,
				SameClass: int(sl.cls) == cls,
				PageBusy:  int(d.pages[i/slicesPerPage].busy),
				Free:      int(sl.nfree),
				Objects:   int(sl.nobj),
			})
			if cost < best.cost || (cost == best.cost && !best.pool && i < best.s) {
				*best = choice{s: i, cost: cost}
			}
		}
		i = sl.next
	}
}

// takePage takes a page from the domain's pool and puts its slices on the core's clean
// and spare lists, lowest first.
func (c *Core) takePage(fresh bool) (int, bool) {
	d := c.d
	pg, ok := d.takePage(c.idx, fresh)
	if !ok {
		return 0, false
	}
	c.pages++
	c.peakPages = max(c.peakPages, c.pages)
	for i := int32((pg+1)*slicesPerPage) - 1; i >= int32(pg*slicesPerPage); i-- {
		sl := &d.slices[i]
		if sl.state == SliceStateClean {
			c.clean.push(d.slices, i, inClean)
			c.cleanN++
			continue
		}
		c.spare.push(d.slices, i, inSpare)
		c.rows[sl.cls].counts[SliceStateDirty]++
	}
	return pg, true
}

// unlink removes an idle or partial/full slice from whatever list holds it.
func (c *Core) unlink(s int32) {
	d := c.d
	sl := &d.slices[s]
	switch sl.where {
	case inPartial:
		c.rows[sl.cls].partial.remove(d.slices, s)
	case inFull:
		c.rows[sl.cls].full.remove(d.slices, s)
	case inDirty:
		c.rows[sl.cls].dirty.remove(d.slices, s)
		d.pages[s/slicesPerPage].retained--
	case inSpare:
		c.spare.remove(d.slices, s)
	case inClean:
		c.clean.remove(d.slices, s)
	default:
		panic("mem: unlink of a slice on no core list")
	}
}

// activate makes slice s the current slice of class cls, formatting it if it is idle
// (clean or dirty).
func (c *Core) activate(s int32, cls int) {
	d := c.d
	sl := &d.slices[s]
	c.unlink(s)
	r := &c.rows[cls]
	if sl.state == SliceStateClean || sl.state == SliceStateDirty {
		if sl.state == SliceStateClean {
			c.cleanN--
		} else {
			c.rows[sl.cls].counts[SliceStateDirty]--
			if int(sl.cls) != cls {
				c.ctr.reformats++
			}
		}
		sl.format(cls, d.fullDiv)
		sl.state = SliceStatePartial
		r.counts[SliceStatePartial]++
		d.pages[s/slicesPerPage].busy++
		if invariantsEnabled {
			poison(d.mem[uint64(s)<<sliceShift : uint64(s+1)<<sliceShift])
		}
	}
	sl.where = inCurrent
	r.cur = s
}

// Trim gives up the core's current slices that are empty (they become dirty and go
// through the footprint policy), so that an idle core holds no more than the policy
// allows. A reactor calls it when it goes idle or stops.
//
// Preconditions: called by the core's owner.
func (c *Core) Trim() {
	c.drainRemote()
	for cls := range c.rows[:numClasses] {
		r := &c.rows[cls]
		s := r.cur
		if s < 0 || c.d.slices[s].nfree != c.d.slices[s].nobj {
			continue
		}
		r.cur = -1
		c.d.slices[s].where = inPool // on no list until retire places it
		c.retire(s)
	}
	c.publish()
}

// allocLarge serves sizes above MaxClassSize: spans of slices up to PageSize, whole
// pages beyond.
func (c *Core) allocLarge(size int) (Buf, error) {
	switch {
	case size <= 0 || uint64(size) > math.MaxUint32:
		return Buf{}, ErrInvalidSize
	case size <= PageSize:
		return c.allocSpan(size)
	}
	n := (size + PageSize - 1) >> pageShift
	p := c.d.takeRun(n)
	if p < 0 {
		c.ctr.noMemory++
		return Buf{}, ErrNoMemory
	}
	return makeBuf(c.d.id, uint64(p)<<pageShift, uint32(size), 0, clsPages), nil
}

// allocSpan allocates k contiguous idle slices of one page.
func (c *Core) allocSpan(size int) (Buf, error) {
	c.service()
	k := (size + SliceSize - 1) >> sliceShift
	s := c.findRun(k)
	if s < 0 {
		if pg, ok := c.takePage(false); ok {
			s = int32(pg * slicesPerPage)
		}
	}
	if s < 0 {
		c.ctr.noMemory++
		return Buf{}, ErrNoMemory
	}
	d := c.d
	r := &c.rows[clsSpan]
	for i := s; i < s+int32(k); i++ {
		sl := &d.slices[i]
		c.unlink(i)
		if sl.state == SliceStateClean {
			c.cleanN--
		} else {
			c.rows[sl.cls].counts[SliceStateDirty]--
		}
		sl.clearBits()
		sl.cls, sl.state, sl.where, sl.span, sl.hint, sl.thresh = clsSpan, SliceStateFull, inSpan, 0, 0, 1
		sl.nobj = 1 // one object (the span), none free; no bitmap bit is ever set
		r.counts[SliceStateFull]++
	}
	d.slices[s].span = uint8(k)
	d.pages[s/slicesPerPage].busy += int16(k)
	r.inUse++
	r.allocs++
	if invariantsEnabled {
		d.inv.alloc(d, s, 0, uint64(s)<<sliceShift, 0)
	}
	return makeBuf(d.id, uint64(s)<<sliceShift, uint32(size), uint16(k), clsSpan), nil
}

// findRun returns the first of k contiguous idle slices on one page the core holds,
// looking at the pages of its clean and spare slices, or -1.
func (c *Core) findRun(k int) int32 {
	d := c.d
	for _, l := range [...]*list{&c.clean, &c.spare} {
		i := l.head
		for n := 0; i >= 0 && n < 4*maxScan; n++ {
			pg := i / slicesPerPage
			run := 0
			for j := pg * slicesPerPage; j < (pg+1)*slicesPerPage; j++ {
				if w := d.slices[j].where; w != inClean && w != inSpare && w != inDirty {
					run = 0
					continue
				}
				if run++; run == k {
					return j - int32(k) + 1
				}
			}
			i = d.slices[i].next
		}
	}
	return -1
}

// freeSpan frees the span whose head is slice s.
func (c *Core) freeSpan(s int32) {
	d := c.d
	k := int32(d.slices[s].span)
	if d.slices[s].where != inSpan || k == 0 {
		panic("mem: free of a span that is not live (double free?)")
	}
	r := &c.rows[clsSpan]
	for i := s; i < s+k; i++ {
		sl := &d.slices[i]
		sl.span = 0
		sl.nfree = 1
		r.counts[SliceStateFull]--
		r.counts[SliceStateDirty]++
		sl.state = SliceStateDirty
		c.spare.push(d.slices, i, inSpare)
	}
	d.pages[s/slicesPerPage].busy -= int16(k)
	r.inUse--
	r.frees++
	if invariantsEnabled {
		poison(d.mem[uint64(s)<<sliceShift : uint64(s+k)<<sliceShift])
	}
	c.maybeRelease(int(s / slicesPerPage))
}
