package sim

import (
	"fmt"
	"time"

	"sluice/engine/group"
)

// Network is the in-memory peer network. Every envelope is framed and decoded as on a
// socket; delivery takes a seeded delay in [MinDelay, MaxDelay], keeps FIFO order per
// link (as a TCP connection does), and is lost with probability DropRate or when the link
// is cut.
type Network struct {
	w         *World
	MinDelay  time.Duration
	MaxDelay  time.Duration
	DropRate  float64
	endpoints map[string]*endpoint
	cut       map[[2]uint64]bool
	last      map[[2]string]time.Time
	// Sent, Dropped and Delivered count envelopes.
	Sent, Dropped, Delivered uint64
	// Filter, if set, sees every envelope at send time; false drops it (tests use it
	// to delay or drop one kind of message).
	Filter func(from, to uint64, env *group.Envelope) bool
	// ExtraDelay, if set, adds delay to an envelope (a slow link to one node).
	ExtraDelay func(from, to uint64, env *group.Envelope) time.Duration
}

type endpoint struct {
	id   uint64
	host *Host
	recv func(group.Envelope)
}

// NewNetwork returns a network with delays of 0.2 to 2 ms and no loss.
func NewNetwork(w *World) *Network {
	return &Network{w: w, MinDelay: 200 * time.Microsecond, MaxDelay: 2 * time.Millisecond,
		endpoints: map[string]*endpoint{}, cut: map[[2]uint64]bool{},
		last: map[[2]string]time.Time{}}
}

// Transport returns node id's transport at addr, delivering on host.
func (n *Network) Transport(id uint64, addr string, host *Host) group.Transport {
	return &transport{n: n, id: id, addr: addr, host: host}
}

// Cut blocks the link between a and b both ways; Mend restores it.
func (n *Network) Cut(a, b uint64) {
	n.cut[[2]uint64{a, b}], n.cut[[2]uint64{b, a}] = true, true
}

// Mend restores the link between a and b.
func (n *Network) Mend(a, b uint64) {
	delete(n.cut, [2]uint64{a, b})
	delete(n.cut, [2]uint64{b, a})
}

// Isolate cuts every link of node id to the others in ids.
func (n *Network) Isolate(id uint64, ids []uint64) {
	for _, o := range ids {
		if o != id {
			n.Cut(id, o)
		}
	}
}

// Heal restores every link.
func (n *Network) Heal() { clear(n.cut) }

type transport struct {
	n    *Network
	id   uint64
	addr string
	host *Host
}

func (t *transport) Start(recv func(group.Envelope)) error {
	if e := t.n.endpoints[t.addr]; e != nil && !e.host.dead {
		return fmt.Errorf("sim: address %s in use by node %d", t.addr, e.id)
	}
	t.n.endpoints[t.addr] = &endpoint{id: t.id, host: t.host, recv: recv}
	return nil
}

func (t *transport) Close() error {
	if e := t.n.endpoints[t.addr]; e != nil && e.host == t.host {
		delete(t.n.endpoints, t.addr)
	}
	return nil
}

func (t *transport) Send(addr string, env group.Envelope) {
	n := t.n
	n.Sent++
	dst := n.endpoints[addr]
	if dst == nil || dst.host.dead || t.host.dead || n.cut[[2]uint64{t.id, dst.id}] ||
		(n.DropRate > 0 && n.w.rng.Float64() < n.DropRate) ||
		(n.Filter != nil && !n.Filter(t.id, dst.id, &env)) {
		n.Dropped++
		return
	}
	frame := group.AppendFrame(nil, &env)
	delay := n.MinDelay
	if n.MaxDelay > n.MinDelay {
		delay += time.Duration(n.w.rng.Int64N(int64(n.MaxDelay - n.MinDelay)))
	}
	if n.ExtraDelay != nil {
		delay += n.ExtraDelay(t.id, dst.id, &env)
	}
	at := n.w.Now().Add(delay)
	link := [2]string{t.addr, addr}
	if l := n.last[link]; at.Before(l) {
		at = l
	}
	n.last[link] = at
	tag := "deliver " + env.Kind.String()
	n.w.schedule(dst.host, at, tag, func() {
		got, used, need, err := group.DecodeFrame(frame)
		if err != nil || need != 0 || used != len(frame) {
			panic(fmt.Sprintf("sim: frame does not decode: %v (need %d)", err, need))
		}
		n.Delivered++
		dst.recv(got)
	})
}
