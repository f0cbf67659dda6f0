package reactor

import (
	"fmt"
	"sync/atomic"
)

// cacheLine keeps producer and consumer indices on separate cache lines, so the two
// sides of a ring do not invalidate each other's line on every push and pop.
const cacheLine = 64

type pad [cacheLine]byte

// SPSC is a bounded lock-free ring for exactly one producer goroutine and exactly one
// consumer goroutine. Each side keeps a private copy of the other side's index and
// rereads the shared one only when its copy says the ring is full or empty, so a
// steady stream costs one atomic store per operation.
//
// Concurrency: Push from one goroutine, Pop from one (possibly other) goroutine.
type SPSC[T any] struct {
	_          pad
	head       atomic.Uint64 // next slot to pop; written by the consumer
	cachedTail uint64        // consumer's copy of tail
	_          pad
	tail       atomic.Uint64 // next slot to push; written by the producer
	cachedHead uint64        // producer's copy of head
	_          pad
	mask       uint64
	slots      []T
}

// NewSPSC makes a ring with room for size items; size must be a power of two.
func NewSPSC[T any](size int) *SPSC[T] {
	mustPow2(size)
	return &SPSC[T]{mask: uint64(size - 1), slots: make([]T, size)}
}

// Push appends v and reports false when the ring is full.
//
// Preconditions: called by the ring's single producer.
func (r *SPSC[T]) Push(v T) bool {
	t := r.tail.Load()
	if t-r.cachedHead > r.mask {
		r.cachedHead = r.head.Load()
		if t-r.cachedHead > r.mask {
			return false
		}
	}
	r.slots[t&r.mask] = v
	r.tail.Store(t + 1) // publishes the slot write
	return true
}

// Pop removes the oldest item and reports false when the ring is empty.
//
// Preconditions: called by the ring's single consumer.
func (r *SPSC[T]) Pop() (T, bool) {
	var zero T
	h := r.head.Load()
	if h == r.cachedTail {
		r.cachedTail = r.tail.Load()
		if h == r.cachedTail {
			return zero, false
		}
	}
	i := h & r.mask
	v := r.slots[i]
	r.slots[i] = zero // drop references so the GC can collect them
	r.head.Store(h + 1)
	return v, true
}

// Len is a snapshot of the number of queued items; exact only when both sides are quiet.
func (r *SPSC[T]) Len() int { return int(r.tail.Load() - r.head.Load()) }

// Cap is the ring's capacity.
func (r *SPSC[T]) Cap() int { return len(r.slots) }

// MPSC is a bounded lock-free ring for many producers and one consumer. Each slot
// carries a sequence number (Vyukov's bounded queue): a producer claims a slot with a
// CAS on tail, writes it, then publishes it by storing the slot's sequence; the single
// consumer needs no CAS at all.
//
// Concurrency: Push from any goroutine; Pop from one goroutine only.
type MPSC[T any] struct {
	_     pad
	tail  atomic.Uint64 // next position producers claim
	_     pad
	head  uint64 // next position the consumer reads; consumer-private
	_     pad
	mask  uint64
	slots []mpscSlot[T]
}

type mpscSlot[T any] struct {
	seq atomic.Uint64
	val T
}

// NewMPSC makes a ring with room for size items; size must be a power of two.
func NewMPSC[T any](size int) *MPSC[T] {
	mustPow2(size)
	r := &MPSC[T]{mask: uint64(size - 1), slots: make([]mpscSlot[T], size)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// Push appends v and reports false when the ring is full.
func (r *MPSC[T]) Push(v T) bool {
	for {
		t := r.tail.Load()
		s := &r.slots[t&r.mask]
		seq := s.seq.Load()
		switch {
		case seq == t:
			if r.tail.CompareAndSwap(t, t+1) {
				s.val = v
				s.seq.Store(t + 1)
				return true
			}
		case seq < t:
			// The slot still holds an item from one lap ago: the ring is full.
			return false
		}
		// Another producer claimed t first; retry with the new tail.
	}
}

// Pop removes the oldest item and reports false when the ring is empty or the oldest
// item is still being written by its producer.
//
// Preconditions: called by the ring's single consumer.
func (r *MPSC[T]) Pop() (T, bool) {
	var zero T
	s := &r.slots[r.head&r.mask]
	if s.seq.Load() != r.head+1 {
		return zero, false
	}
	v := s.val
	s.val = zero
	s.seq.Store(r.head + r.mask + 1) // hand the slot to the producer one lap ahead
	r.head++
	return v, true
}

// Empty reports whether nothing is visible to the consumer; producers may be mid-push.
//
// Preconditions: called by the ring's single consumer.
func (r *MPSC[T]) Empty() bool {
	return r.slots[r.head&r.mask].seq.Load() != r.head+1
}

// Cap is the ring's capacity.
func (r *MPSC[T]) Cap() int { return len(r.slots) }

func mustPow2(size int) {
	if size < 2 || size&(size-1) != 0 {
		panic(fmt.Sprintf("reactor: ring size %d is not a power of two >= 2", size))
	}
}
