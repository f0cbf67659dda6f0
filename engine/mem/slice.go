package mem

import "math/bits"

// SliceState is the patent's per-slice usage state (US10733027): it says what allocating
// from the slice would cost and whether its object size may change.
type SliceState uint8

const (
	// SliceStateClean: never used since the domain started. Only NewDomain sets it (M6).
	SliceStateClean SliceState = iota
	// SliceStatePartial: holds live objects and at least the full threshold of free ones.
	SliceStatePartial
	// SliceStateFull: holds live objects and fewer free ones than the full threshold
	// (possibly none).
	SliceStateFull
	// SliceStateDirty: holds no live object but was used before; it keeps its last class
	// and can be re-formatted for any class.
	SliceStateDirty
	numStates
)

// String returns the state's name as the stats RPC spells it.
func (s SliceState) String() string {
	switch s {
	case SliceStateClean:
		return "clean"
	case SliceStatePartial:
		return "partial"
	case SliceStateFull:
		return "full"
	case SliceStateDirty:
		return "dirty"
	}
	return "SliceState(" + string(rune('0'+s)) + ")"
}

// Where a slice is kept. A slice is in exactly one place; lists are intrusive (prev/next
// in the slice record), so moving a slice allocates nothing.
const (
	inPool      uint8 = iota // its page is in the domain's pool or lent whole (a region)
	inCurrent                // the current slice of its class on its core
	inPartial                // the core's partial list of its class
	inFull                   // the core's full list of its class (full, some objects free)
	inExhausted              // the core's exhausted list of its class (full, none free)
	inDirty                  // the core's retained dirty list of its (last) class
	inSpare                  // the core's list of dirty slices beyond the footprint policy
	inClean                  // the core's list of clean slices on pages it holds
	inSpan                   // part of a live multi-slice span
)

// slice is the metadata of one slice, kept in Domain.slices apart from object memory
// (compact layout: object memory carries no header, and a free object costs one bit).
// It holds no pointers, so the GC never scans the array.
//
// Fields other than those read by remote frees belong to the core that owns the page.
type slice struct {
	nobj   uint16 // objects the slice holds in its class
	nfree  uint16 // free objects
	hint   uint16 // lowest bitmap word that may have a free bit
	thresh uint16 // full threshold: the slice is full while nfree < thresh
	cls    uint8  // class (or clsSpan) it is formatted for, clsNone if never
	state  SliceState
	where  uint8
	span   uint8 // span head: number of slices in the span; 0 otherwise
	prev   int32
	next   int32
	// free has a set bit per free object. Bits at or above nobj are always clear.
	free [bitWords]uint64
}

// format prepares the slice for class c: every object free, none handed out yet.
// It touches only metadata; object memory is left as it is (pre-faulted at start).
//
// Preconditions: the slice holds no live object (M5: a slice's class never changes while
// it has live objects).
func (s *slice) format(c int, fullDiv int) {
	if s.state == SliceStatePartial || s.state == SliceStateFull {
		panic("mem: format of a slice with live objects")
	}
	s.clearBits()
	n := int(objsPerSlice[c])
	full := n / 64
	for i := range full {
		s.free[i] = ^uint64(0)
	}
	if r := n % 64; r != 0 {
		s.free[full] = 1<<r - 1
	}
	s.nobj = uint16(n)
	s.nfree = uint16(n)
	s.hint = 0
	s.thresh = uint16(max(1, n/fullDiv))
	s.cls = uint8(c)
	s.span = 0
}

// clearBits clears the free bitmap. Only the words below the old object count can hold a
// set bit (bits at or above nobj are always clear), so a 2-object slice clears one word,
// not 64.
func (s *slice) clearBits() {
	clear(s.free[:(int(s.nobj)+63)/64])
	s.nobj, s.nfree = 0, 0
}

// take removes the lowest free object and returns its index. Taking the lowest keeps
// live objects packed at the start of the slice and of the page.
//
// Preconditions: s.nfree > 0.
func (s *slice) take() int {
	w := int(s.hint)
	for s.free[w] == 0 {
		w++
	}
	b := bits.TrailingZeros64(s.free[w])
	s.free[w] &^= 1 << b
	s.hint = uint16(w)
	s.nfree--
	return w<<6 | b
}

// put marks object idx free. It panics on a double free: a set bit here is a programmer
// error that would otherwise hand one object to two owners; the check is one AND on a
// word the free touches anyway, so it stays on in production.
func (s *slice) put(idx int) {
	w, bit := idx>>6, uint64(1)<<(idx&63)
	if s.free[w]&bit != 0 || idx >= int(s.nobj) {
		panic("mem: double free or free of a foreign object")
	}
	s.free[w] |= bit
	if uint16(w) < s.hint {
		s.hint = uint16(w)
	}
	s.nfree++
}

// live returns the number of objects in use.
func (s *slice) live() int { return int(s.nobj) - int(s.nfree) }

// occupancyState returns the state the slice's occupancy calls for, given that it has
// been used (a never-used slice is clean regardless).
func (s *slice) occupancyState() SliceState {
	switch {
	case s.nfree == s.nobj:
		return SliceStateDirty
	case s.nfree < s.thresh:
		return SliceStateFull
	}
	return SliceStatePartial
}

// list is an intrusive doubly linked list of slices, by index into Domain.slices.
type list struct {
	head int32
	n    int32
}

func newList() list { return list{head: -1} }

func (l *list) push(ss []slice, i int32, where uint8) {
	s := &ss[i]
	s.prev, s.next = -1, l.head
	if l.head >= 0 {
		ss[l.head].prev = i
	}
	l.head = i
	l.n++
	s.where = where
}

func (l *list) remove(ss []slice, i int32) {
	s := &ss[i]
	if s.prev >= 0 {
		ss[s.prev].next = s.next
	} else {
		l.head = s.next
	}
	if s.next >= 0 {
		ss[s.next].prev = s.prev
	}
	s.prev, s.next = -1, -1
	l.n--
}
