package group

import (
	"context"
	"fmt"
	"sort"
	"time"

	"sluice/engine/reservation"
)

// call runs start on the loop with a fresh request ID and waits for its answer. If ctx
// ends first, the call is withdrawn: a command still waiting for admission or for a
// leader is dropped (nothing changes) and ctx's error is returned; one already in the log
// returns ErrOutcomeUnknown as well, since it may still apply.
func (n *Node) call(ctx context.Context, what string, start func(c *core, id EntryID, done func(Reply))) (Reply, error) {
	done := make(chan struct{})
	var rep Reply
	var id EntryID
	n.loop.Post(func() {
		c := &n.c
		if !c.usable() {
			rep = replyOf(n.unusable())
			close(done)
			return
		}
		id = c.nextID()
		start(c, id, func(r Reply) {
			rep = r
			close(done)
		})
		c.settle()
	})
	if err := n.wait(ctx, done); err != nil {
		if n.withdraw(&id, done) {
			return Reply{}, fmt.Errorf("%s: %w: %w", what, ErrOutcomeUnknown, err)
		}
		return Reply{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := errorOf(rep.Code, rep.Msg); err != nil {
		return rep, fmt.Errorf("%s: %w", what, err)
	}
	return rep, nil
}

// wait waits on the loop for done, or for ctx, or for Close.
func (n *Node) wait(ctx context.Context, done <-chan struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-n.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := n.loop.Wait(ctx, done)
	if err != nil {
		select {
		case <-n.closed:
			return ErrClosed
		default:
		}
	}
	return err
}

// withdraw drops an abandoned call on the loop and reports whether it may have reached
// the log.
//
// id is read on the loop, where the call's start wrote it.
func (n *Node) withdraw(id *EntryID, done chan struct{}) bool {
	select {
	case <-done: // answered meanwhile: it reached the log if it was proposed at all
		return true
	case <-n.closed:
		return true
	default:
	}
	var started bool
	fin := make(chan struct{})
	n.loop.Post(func() {
		if *id != (EntryID{}) {
			started = n.c.withdraw(*id)
		}
		close(fin)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n.loop.Wait(ctx, fin) != nil {
		return true
	}
	return started
}

// unusable is the error of a closed or failed node. Called on the loop.
func (n *Node) unusable() error {
	if n.c.failed != nil {
		return n.c.failed
	}
	return ErrClosed
}

// request sends a Request through the leader: taken here if this node leads, forwarded
// otherwise. Called on the loop.
func (c *core) request(q Request, id EntryID, done func(Reply)) {
	q.ID, q.ReplyTo, q.ReplyAddr, q.Since = id, c.n.id, c.n.cfg.PeerAddr, c.commit
	if c.isLeader() {
		c.accept(q, done)
		return
	}
	c.forward(q, done, "", c.n.loop.Now().Add(2*c.n.cfg.election()))
}

// Reserve decides a reservation command on volume vol through the group leader and
// returns its result once this node has applied it. A refusal wraps ErrRetryable (the
// reason: ErrNotSynchronized, ErrNoBackup, ErrNoQuorum, ErrNoLeader, ErrNotReady,
// ErrDropped); ErrOutcomeUnknown means the command may or may not have applied. Safe for
// concurrent use; blocks, so never call it on a reactor.
func (n *Node) Reserve(ctx context.Context, vol [16]byte, cmd reservation.Command) (reservation.Result, error) {
	rep, err := n.call(ctx, "reserve", func(c *core, id EntryID, done func(Reply)) {
		c.request(Request{Op: OpReserve, Vol: vol, Cmd: cmd}, id, done)
	})
	return rep.Result, err
}

// ReserveAsync is Reserve without blocking: done runs on the node's loop with the
// result, exactly once. done must not block (hand the result to your own queue); it
// must not call the node's blocking methods.
func (n *Node) ReserveAsync(vol [16]byte, cmd reservation.Command, done func(reservation.Result, error)) {
	n.loop.Post(func() {
		c := &n.c
		if !c.usable() {
			done(reservation.Result{}, n.unusable())
			return
		}
		c.request(Request{Op: OpReserve, Vol: vol, Cmd: cmd}, c.nextID(), func(r Reply) {
			err := errorOf(r.Code, r.Msg)
			if err != nil {
				err = fmt.Errorf("reserve: %w", err)
			}
			done(r.Result, err)
		})
		c.settle()
	})
}

// ClearReservation is the operator's reservation_clear on volume vol: every
// registration and the reservation go (registrants get a Reservation Preempted notice)
// and the generation moves. On a volume with persistence on, it is a persistent change
// and passes the admission rule; force also turns persistence off and bypasses the rule
// (for an operator recovering a group whose BGL is gone).
func (n *Node) ClearReservation(ctx context.Context, vol [16]byte, force bool) error {
	_, err := n.call(ctx, "clear reservation", func(c *core, id EntryID, done func(Reply)) {
		c.request(Request{Op: OpClear, Vol: vol, Force: force}, id, done)
	})
	return err
}

// SetOwner names the node that exports volume vol (0: none) in the group configuration.
func (n *Node) SetOwner(ctx context.Context, vol [16]byte, node uint64) error {
	_, err := n.call(ctx, "set owner", func(c *core, id EntryID, done func(Reply)) {
		c.request(Request{Op: OpSetOwner, Vol: vol, Node: node}, id, done)
	})
	return err
}

// Owner returns the owner of vol as this node has applied it.
func (n *Node) Owner(vol [16]byte) (uint64, bool) {
	v, ok := n.Volume(vol)
	return v.Owner, ok && v.Owner != 0
}

// Volume returns a copy of volume vol's record as this node has applied it, and whether
// the node knows the volume. It never blocks on the loop. Before trusting it after a
// leader change, call Revalidate.
func (n *Node) Volume(vol [16]byte) (VolumeState, bool) {
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	v, ok := n.pubVols[vol]
	if !ok {
		return VolumeState{NGUID: vol}, false
	}
	v.State = v.State.Clone()
	return v, true
}

// Volumes returns every volume this node knows, sorted by NGUID.
func (n *Node) Volumes() []VolumeState {
	n.pubMu.Lock()
	out := make([]VolumeState, 0, len(n.pubVols))
	for _, v := range n.pubVols {
		v.State = v.State.Clone()
		out = append(out, v)
	}
	n.pubMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return string(out[i].NGUID[:]) < string(out[j].NGUID[:]) })
	return out
}

// Revalidate is a linearizable barrier (raft ReadIndex through the current leader): when
// it returns, this node has applied every entry committed before the call, including the
// current leader's incarnation decision, so Volume returns the group's state. The
// manager calls it after Open and after every EventLeader before trusting its cache
// (doc.go, "What the manager must do").
func (n *Node) Revalidate(ctx context.Context) (Validation, error) {
	done := make(chan struct{})
	var val Validation
	var verr error
	var id EntryID
	n.loop.Post(func() {
		c := &n.c
		if !c.usable() {
			verr = n.unusable()
			close(done)
			return
		}
		id = c.nextID()
		c.revalidate(id, func(v Validation, err error) {
			val, verr = v, err
			close(done)
		}, c.n.loop.Now().Add(2*c.n.cfg.election()))
		c.settle()
	})
	if err := n.wait(ctx, done); err != nil {
		n.withdraw(&id, done)
		return Validation{}, fmt.Errorf("revalidate: %w", err)
	}
	if verr != nil {
		return Validation{}, fmt.Errorf("revalidate: %w", verr)
	}
	return val, nil
}

// Status returns this node's view of its group. It never blocks on the loop.
func (n *Node) Status() Status {
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	s := n.pubStatus
	s.Members = append([]MemberStatus(nil), s.Members...)
	if s.BGLSync != nil {
		b := *s.BGLSync
		s.BGLSync = &b
	}
	return s
}

// LeaderStatus returns the group leader's Status (which alone knows the BGL's
// synchronization): this node's own if it leads, else asked of the leader.
func (n *Node) LeaderStatus(ctx context.Context) (Status, error) {
	rep, err := n.call(ctx, "leader status", func(c *core, id EntryID, done func(Reply)) {
		c.request(Request{Op: OpStatus}, id, done)
	})
	if err != nil {
		return Status{}, err
	}
	if rep.Status == nil {
		return Status{}, fmt.Errorf("leader status: empty answer: %w", ErrNoLeader)
	}
	return *rep.Status, nil
}
