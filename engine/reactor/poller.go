package reactor

import "time"

// Poller is a function the reactor calls on every iteration (active) or at a period
// (timed). It returns true when it did work, which counts the iteration as busy.
type Poller struct {
	name     string
	fn       func() bool
	periodNs int64
	dueNs    int64
	id       uint64
	removed  bool
}

// Name is the poller's name, for stats and traces.
func (p *Poller) Name() string { return p.name }

// AddPoller registers an active poller.
//
// Preconditions: called on the reactor (or before Start). fn must not block.
func (r *Reactor) AddPoller(name string, fn func() bool) *Poller {
	r.nextPoller++
	p := &Poller{name: name, fn: fn, id: r.nextPoller}
	r.pollers = append(r.pollers, p)
	r.npollers.Add(1)
	return p
}

// AddTimedPoller registers a poller that runs about every period. In adaptive and
// interrupt modes the reactor wakes from sleep for it, with millisecond resolution.
//
// Preconditions: called on the reactor (or before Start). fn must not block.
func (r *Reactor) AddTimedPoller(name string, period time.Duration, fn func() bool) *Poller {
	if period <= 0 {
		panic("reactor: timed poller period must be positive")
	}
	r.nextPoller++
	p := &Poller{name: name, fn: fn, periodNs: int64(period), id: r.nextPoller}
	p.dueNs = r.clock() + p.periodNs
	r.timed = append(r.timed, p)
	r.npollers.Add(1)
	return p
}

// RemovePoller unregisters p. It is safe to call from inside a poller, including p:
// p never runs again, not even later in the iteration that removed it.
//
// Preconditions: called on the reactor.
func (r *Reactor) RemovePoller(p *Poller) {
	p.removed = true
	list := &r.pollers
	if p.periodNs > 0 {
		list = &r.timed
	}
	for i, q := range *list {
		if q == p {
			// Copy into a new slice so that a range loop in progress over the old
			// one is not disturbed.
			n := make([]*Poller, 0, len(*list)-1)
			n = append(n, (*list)[:i]...)
			n = append(n, (*list)[i+1:]...)
			*list = n
			r.npollers.Add(-1)
			return
		}
	}
}

func (r *Reactor) runTimed(now int64) bool {
	busy := false
	for _, p := range r.timed {
		if p.removed || now < p.dueNs {
			continue
		}
		// Schedule from now rather than from the old due time, so that a reactor
		// that slept long does not run a burst of catch-up calls.
		p.dueNs = now + p.periodNs
		if p.fn() {
			busy = true
		}
	}
	return busy
}

func (r *Reactor) nextTimedDue() int64 {
	due := r.timed[0].dueNs
	for _, p := range r.timed[1:] {
		if p.dueNs < due {
			due = p.dueNs
		}
	}
	return due
}
