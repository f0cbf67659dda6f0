package mem

import (
	"fmt"
	"math/bits"
	"strings"
	"sync/atomic"
)

// poisonByte fills free object memory under the invariants tag.
const poisonByte = 0xdb

// invState is the invariants-only record of which objects are live. It is indexed like
// slice bitmaps (slice s, object i at bit s*maxObjects+i) and updated atomically, so
// that a free on any core can check it.
type invState struct {
	live []atomic.Uint64
}

func newInvState(nslices int) *invState {
	return &invState{live: make([]atomic.Uint64, nslices*bitWords)}
}

func (v *invState) word(s int32, idx int) (*atomic.Uint64, uint64) {
	return &v.live[int(s)*bitWords+idx/64], 1 << (idx % 64)
}

// alloc records object idx of slice s live, after checking that nobody wrote to it while
// it was free (its poison is intact). size 0 skips the poison check (spans).
func (v *invState) alloc(d *Domain, s int32, idx int, off uint64, size int) {
	w, bit := v.word(s, idx)
	if w.Or(bit)&bit != 0 {
		panic(fmt.Sprintf("mem: allocating object at %#x which is already live", off))
	}
	obj := d.mem[off : off+uint64(size)]
	for i, b := range obj {
		if b != poisonByte {
			panic(fmt.Sprintf("mem: use after free: object at %#x (class %d B) was written at "+
				"byte %d while free", off, size, i))
		}
	}
}

// free checks that b is live, marks it free and poisons it.
func (v *invState) free(d *Domain, b Buf) {
	if b.cls() == clsPages {
		return // checked by giveBackRun under the domain lock
	}
	s, idx := int32(b.off()>>sliceShift), int(b.idx())
	if b.cls() == clsSpan {
		idx = 0
	}
	w, bit := v.word(s, idx)
	if w.And(^bit)&bit == 0 {
		panic(fmt.Sprintf("mem: double free of %v", b))
	}
	if b.cls() < numClasses {
		poison(d.mem[b.off() : b.off()+uint64(classSizes[b.cls()])])
	}
}

// checkLive panics when b is not live.
func (v *invState) checkLive(d *Domain, b Buf) {
	if d.closed.Load() {
		panic(fmt.Sprintf("mem: use of %v after its domain was closed", b))
	}
	if b.cls() == clsPages {
		return
	}
	s, idx := int32(b.off()>>sliceShift), int(b.idx())
	if b.cls() == clsSpan {
		idx = 0
	}
	if w, bit := v.word(s, idx); w.Load()&bit == 0 {
		panic(fmt.Sprintf("mem: use after free of %v", b))
	}
}

func poison(b []byte) {
	for i := range b {
		b[i] = poisonByte
	}
}

// LeakError reports what was still allocated when a domain closed.
type LeakError struct {
	Node    int
	Objects int   // live objects and spans
	Bytes   int64 // their class sizes
	Pages   int   // pages still lent as regions or page buffers
	// Detail lists up to maxLeakDetail live objects; filled only under the invariants tag.
	Detail []string
}

const maxLeakDetail = 32

func (e *LeakError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "mem: domain on node %d closed with %d live objects (%d bytes) and %d lent pages",
		e.Node, e.Objects, e.Bytes, e.Pages)
	for _, s := range e.Detail {
		sb.WriteString("\n\tleak: ")
		sb.WriteString(s)
	}
	return sb.String()
}

// leaks builds the LeakError for the domain, or returns nil.
//
// Preconditions: no core runs.
func (d *Domain) leaks() *LeakError {
	e := &LeakError{Node: d.node}
	for s := range d.slices {
		sl := &d.slices[s]
		switch {
		case sl.where == inSpan && sl.span > 0:
			e.Objects++
			e.Bytes += int64(sl.span) * SliceSize
		case sl.state == SliceStatePartial || sl.state == SliceStateFull:
			e.Objects += sl.live()
			e.Bytes += int64(sl.live()) * int64(classSizes[sl.cls])
		}
	}
	d.mu.Lock()
	e.Pages = d.pagesRegion
	d.mu.Unlock()
	if invariantsEnabled {
		e.Detail = d.leakDetail()
	}
	if e.Objects == 0 && e.Pages == 0 {
		return nil
	}
	return e
}

// leakDetail lists live objects from the invariants record.
func (d *Domain) leakDetail() []string {
	var out []string
	for wi := range d.inv.live {
		w := d.inv.live[wi].Load()
		for w != 0 && len(out) < maxLeakDetail {
			bit := w & -w
			w &^= bit
			idx := (wi%bitWords)*64 + bits.TrailingZeros64(bit)
			s := wi / bitWords
			sl := &d.slices[s]
			size := uint64(sl.span) * SliceSize
			if sl.cls < numClasses {
				size = uint64(classSizes[sl.cls])
			}
			off := uint64(s)<<sliceShift + uint64(idx)*size
			out = append(out, fmt.Sprintf("object at %#x, %d B (class %s), core %d",
				off, size, rowName(min(int(sl.cls), clsSpan)), d.ownerID(d.pageOwner[s/slicesPerPage])))
		}
	}
	return out
}

func (d *Domain) ownerID(idx int32) int {
	if idx < 0 || d.cores[idx] == nil {
		return -1
	}
	return d.cores[idx].id
}
