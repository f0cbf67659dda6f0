package tcpconn

import "net/netip"

// Slot is one admitted connection's place in its listener's limits.
type Slot struct {
	l     *Listener
	host  netip.Addr
	seq   uint64
	state slotState // guarded by l.mu
	evict func()    // guarded by l.mu; set by Bind
	prev  *Slot     // guarded by l.mu; the setup list
	next  *Slot
}

type slotState uint8

const (
	slotSetup slotState = iota
	slotEstablished
	slotReleased
)

type slotList struct{ head, tail *Slot }

func (s *slotList) push(x *Slot) {
	x.prev, x.next = s.tail, nil
	if s.tail != nil {
		s.tail.next = x
	} else {
		s.head = x
	}
	s.tail = x
}

func (s *slotList) remove(x *Slot) {
	if x.prev != nil {
		x.prev.next = x.next
	} else {
		s.head = x.next
	}
	if x.next != nil {
		x.next.prev = x.prev
	} else {
		s.tail = x.prev
	}
	x.prev, x.next = nil, nil
}

// admit gives a new connection from host a slot, evicting the oldest connection still
// in setup when a limit is reached, or returns nil (refused) when every connection in
// the way is set up.
func (l *Listener) admit(host netip.Addr) *Slot {
	lim := l.cfg.Limits.Get()
	l.mu.Lock()
	var victims []func()
	if l.perHost[host] >= lim.MaxConnsPerHost {
		if v := l.evictOldestLocked(func(s *Slot) bool { return s.host == host }); v != nil {
			victims = append(victims, v)
		}
	}
	if l.perHost[host] < lim.MaxConnsPerHost && l.live >= lim.MaxConnsPerListener {
		if v := l.evictOldestLocked(func(*Slot) bool { return true }); v != nil {
			victims = append(victims, v)
		}
	}
	if l.perHost[host] >= lim.MaxConnsPerHost || l.live >= lim.MaxConnsPerListener {
		live, perHost := l.live, l.perHost[host]
		l.mu.Unlock()
		l.cfg.Limits.refused.Add(1)
		if l.cfg.Limits.Warn() {
			l.cfg.Logger.Warn("tcpconn: connection refused: limit reached and every connection is set up",
				"listener", l.cfg.Addr.String(), "peer", host.String(), "connections", live,
				"from_peer", perHost, "max_per_listener", lim.MaxConnsPerListener, "max_per_host", lim.MaxConnsPerHost)
		}
		return nil
	}
	l.seq++
	s := &Slot{l: l, host: host, seq: l.seq}
	l.live++
	l.perHost[host]++
	l.setup.push(s)
	l.mu.Unlock()
	for _, v := range victims {
		v()
	}
	return s
}

// evictOldestLocked releases the oldest setup slot that match accepts and returns its
// eviction function (called after the lock is dropped), or nil.
//
// +checklocks:l.mu
func (l *Listener) evictOldestLocked(match func(*Slot) bool) func() {
	for s := l.setup.head; s != nil; s = s.next {
		if !match(s) {
			continue
		}
		l.releaseLocked(s)
		l.cfg.Limits.evicted.Add(1)
		if l.cfg.Limits.Warn() {
			l.cfg.Logger.Warn("tcpconn: connection limit reached; closing the oldest connection still in setup",
				"listener", l.cfg.Addr.String(), "peer", s.host.String())
		}
		if s.evict != nil {
			return s.evict
		}
		return func() {}
	}
	return nil
}

// +checklocks:l.mu
func (l *Listener) releaseLocked(s *Slot) {
	if s.state == slotSetup {
		l.setup.remove(s)
	}
	s.state = slotReleased
	l.live--
	if l.perHost[s.host]--; l.perHost[s.host] == 0 {
		delete(l.perHost, s.host)
	}
}

// Bind sets how the listener evicts this connection: evict must be safe from any
// goroutine (post the close to the connection's reactor). It reports false when the
// slot was already evicted before Bind: the caller closes the connection itself.
func (s *Slot) Bind(evict func()) bool {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.state == slotReleased {
		return false
	}
	s.evict = evict
	return true
}

// Established takes the connection out of the eviction candidates: it finished its
// setup (ICReq and Connect, or login).
func (s *Slot) Established() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.state == slotSetup {
		s.l.setup.remove(s)
		s.state = slotEstablished
	}
}

// Release gives the slot back when the connection closes. It is idempotent.
func (s *Slot) Release() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.state != slotReleased {
		s.l.releaseLocked(s)
	}
}
