package sim

import (
	"container/heap"
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"sluice/engine/group"
)

// epoch is the virtual clock's origin: a fixed instant, so that runs print the same times.
var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Seed returns the simulation seed: $SEED if set, else one drawn from the wall clock (the
// one place the simulator reads it). It is logged, and printed again if the test fails.
func Seed(t testing.TB) uint64 {
	t.Helper()
	var seed uint64
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: %v", s, err)
		}
		seed = v
	} else {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("simulation seed %d", seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with SEED=%d go test -run '^%s$'", seed, t.Name())
		}
	})
	return seed
}

// World is the virtual clock and event queue.
type World struct {
	rng *rand.Rand

	mu sync.Mutex
	// +checklocks:mu
	now time.Time
	// +checklocks:mu
	q eventQueue
	// +checklocks:mu
	seq uint64
	// +checklocks:mu
	hash uint64
	// +checklocks:mu
	steps uint64

	// MaxWait bounds how much virtual time one blocking call may run the simulation
	// before it gives up (context.DeadlineExceeded).
	MaxWait time.Duration
}

// NewWorld returns a world at the epoch, seeded.
func NewWorld(seed uint64) *World {
	return &World{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: epoch,
		MaxWait: 10 * time.Minute}
}

// Rand is the world's seeded random source. Use it from the simulation goroutine only.
func (w *World) Rand() *rand.Rand { return w.rng }

// Now returns the virtual time.
func (w *World) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

// Elapsed returns the virtual time since the epoch.
func (w *World) Elapsed() time.Duration { return w.Now().Sub(epoch) }

// Hash summarises every event run so far: two runs with one seed have one hash.
func (w *World) Hash() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hash
}

// Steps returns how many events have run.
func (w *World) Steps() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.steps
}

type event struct {
	at        time.Time
	seq       uint64
	host      *Host
	fn        func()
	tag       string
	cancelled bool
	ran       bool
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// schedule queues fn on host at time at.
func (w *World) schedule(h *Host, at time.Time, tag string, fn func()) *event {
	w.mu.Lock()
	defer w.mu.Unlock()
	if at.Before(w.now) {
		at = w.now
	}
	w.seq++
	e := &event{at: at, seq: w.seq, host: h, fn: fn, tag: tag}
	heap.Push(&w.q, e)
	return e
}

// Step runs the next event; false if the queue is empty.
func (w *World) Step() bool {
	for {
		w.mu.Lock()
		if w.q.Len() == 0 {
			w.mu.Unlock()
			return false
		}
		e := heap.Pop(&w.q).(*event)
		if e.cancelled || (e.host != nil && e.host.dead) {
			w.mu.Unlock()
			continue
		}
		if e.host != nil && e.host.paused {
			e.host.held = append(e.host.held, e)
			w.mu.Unlock()
			continue
		}
		w.now = e.at
		w.steps++
		w.hash = mix(w.hash, uint64(e.at.Sub(epoch)), e.host.id(), e.tag)
		e.ran = true
		w.mu.Unlock()
		e.fn()
		return true
	}
}

func mix(h, t, id uint64, tag string) uint64 {
	f := fnv.New64a()
	var b [24]byte
	for i := range 8 {
		b[i], b[8+i], b[16+i] = byte(h>>(8*i)), byte(t>>(8*i)), byte(id>>(8*i))
	}
	f.Write(b[:])
	f.Write([]byte(tag))
	return f.Sum64()
}

// RunFor runs the simulation for d of virtual time.
func (w *World) RunFor(d time.Duration) {
	end := w.Now().Add(d)
	w.RunUntil(func() bool { return false }, end)
	w.mu.Lock()
	if w.now.Before(end) {
		w.now = end
	}
	w.mu.Unlock()
}

// RunUntil runs events until cond holds (checked before each event) or virtual time
// would pass end; it reports whether cond held.
func (w *World) RunUntil(cond func() bool, end time.Time) bool {
	for {
		if cond() {
			return true
		}
		w.mu.Lock()
		next := time.Time{}
		if w.q.Len() > 0 {
			next = w.q[0].at
		}
		w.mu.Unlock()
		if next.IsZero() || next.After(end) {
			return cond()
		}
		w.Step()
	}
}

// Host is one node incarnation's group.Loop: its events run on the world's queue. A
// crashed host's events never run; a paused host's wait until it resumes.
type Host struct {
	w      *World
	nodeID uint64
	dead   bool
	paused bool
	held   []*event
}

// NewHost returns a loop for node id.
func (w *World) NewHost(id uint64) *Host { return &Host{w: w, nodeID: id} }

func (h *Host) id() uint64 {
	if h == nil {
		return 0
	}
	return h.nodeID
}

// Now implements group.Loop.
func (h *Host) Now() time.Time { return h.w.Now() }

// Post implements group.Loop.
func (h *Host) Post(fn func()) { h.w.schedule(h, h.w.Now(), "post", fn) }

// After implements group.Loop.
func (h *Host) After(d time.Duration, fn func()) func() bool {
	e := h.w.schedule(h, h.w.Now().Add(d), "timer", fn)
	return func() bool {
		h.w.mu.Lock()
		defer h.w.mu.Unlock()
		if e.ran || e.cancelled {
			return false
		}
		e.cancelled = true
		return true
	}
}

// ErrStuck is returned by Wait when the simulation cannot answer a call within MaxWait of
// virtual time.
var ErrStuck = errors.New("sim: call not answered within the virtual time limit")

// Wait implements group.Loop: it runs the simulation until done is closed.
func (h *Host) Wait(ctx context.Context, done <-chan struct{}) error {
	closed := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	end, virtual := h.w.Now().Add(h.w.MaxWait), false
	if dl, ok := ctx.Deadline(); ok && dl.Before(end) && dl.After(epoch) {
		end, virtual = dl, true // a deadline in virtual time
	}
	if h.w.RunUntil(func() bool { return closed() || ctx.Err() != nil }, end) {
		if closed() {
			return nil
		}
		return ctx.Err()
	}
	if virtual {
		return context.DeadlineExceeded
	}
	return ErrStuck
}

// kill makes the host's pending and future events never run.
func (h *Host) kill() {
	h.w.mu.Lock()
	h.dead, h.held = true, nil
	h.w.mu.Unlock()
}

func (h *Host) pause() {
	h.w.mu.Lock()
	h.paused = true
	h.w.mu.Unlock()
}

// resume runs the held events from now on, in their order.
func (h *Host) resume() {
	h.w.mu.Lock()
	held := h.held
	h.paused, h.held = false, nil
	h.w.mu.Unlock()
	for _, e := range held {
		if !e.cancelled {
			h.w.schedule(h, h.w.Now(), e.tag, e.fn)
		}
	}
}

var _ group.Loop = (*Host)(nil)
