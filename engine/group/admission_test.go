package group_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"sluice/engine/group"
	"sluice/engine/reservation"
	"sluice/engine/sim"
)

// TestAdmitWhileSynchronized (P1): persistent registrations sent to the leader and to
// followers are admitted while the BGL is in sync, and every node holds them.
func TestAdmitWhileSynchronized(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	hosts := []reservation.Identity{hostX, hostY, hostZ}
	for i, id := range c.IDs {
		reserve(t, c, id, volA, registerPTPL(hosts[i], uint64(0xA0+i)))
	}
	c.Run(time.Second)
	for _, id := range c.IDs {
		v, _ := c.Node(id).Volume(volA)
		if len(v.State.Registrants) != 3 || !v.State.PTPL {
			t.Errorf("node %d: %d registrants, PTPL %v; want 3 and on", id, len(v.State.Registrants), v.State.PTPL)
		}
	}
	s := c.Node(l).Status()
	if s.Counters.Refusals != 0 || s.Counters.AdmittedPersistent != 3 || s.Counters.SyncQueries != 3 {
		t.Errorf("leader counters %+v: want 3 admitted persistent, 3 queries, no refusal", s.Counters)
	}
	if s.BGLSync == nil || !s.BGLSync.Synchronized || s.BGLSync.Lacks != 0 {
		t.Errorf("leader's BGL sync %+v: want synchronized", s.BGLSync)
	}
}

// TestHealthyGroupNeverRefuses: many persistent commands in flight at once (each
// committing before the BGL acknowledged the one before) are all admitted: the catch-up
// grace covers a BGL that is merely a pipelined append behind.
func TestHealthyGroupNeverRefuses(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	c.Net.MinDelay, c.Net.MaxDelay = time.Millisecond, 20*time.Millisecond
	const n = 60
	done, failed := 0, 0
	for i := range n {
		id := c.IDs[i%3]
		h := reservation.NVMeHost([16]byte{byte(i + 1)})
		c.Node(id).ReserveAsync(volA, registerPTPL(h, uint64(i+1)), func(r reservation.Result, err error) {
			done++
			if err != nil || r.Status != reservation.StatusOK {
				failed++
				t.Errorf("command %d at node %d: %v %v", i, id, r.Status, err)
			}
		})
		c.Run(time.Duration(c.W.Rand().IntN(5)) * time.Millisecond)
	}
	c.RunUntil("all answered", 30*time.Second, func() bool { return done == n })
	if s := c.Node(l).Status(); s.Counters.Refusals != 0 || failed != 0 {
		t.Fatalf("refusals %d, failures %d in a healthy group", s.Counters.Refusals, failed)
	}
}

// TestRefuseWhileBGLStalled (P2, P3, P4): with the BGL paused (SIGSTOP), a persistent
// command is refused within one heartbeat and changes nothing; a non-persistent command
// is admitted and does not query the sync state; after the BGL resumes and catches up,
// persistent commands are admitted again.
func TestRefuseWhileBGLStalled(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	bgl := c.Node(l).Status().BGL
	f := other(c, l, bgl)
	reserve(t, c, f, volA, registerPTPL(hostX, 0xAA))
	c.Run(time.Second)
	before, _ := c.Node(l).Volume(volA)
	q0 := c.Node(l).Status().Counters.SyncQueries

	c.Pause(bgl)
	c.Run(700 * time.Millisecond) // past the heartbeat window
	start := c.W.Elapsed()
	_, err := c.Node(f).Reserve(context.Background(), volA, registerPTPL(hostY, 0xBB))
	mustRefuse(t, err, group.ErrNotSynchronized)
	if took := c.W.Elapsed() - start; took > 600*time.Millisecond {
		t.Errorf("refusal took %v, want within one heartbeat", took)
	}
	c.Run(time.Second)
	for _, id := range []uint64{l, f} {
		v, _ := c.Node(id).Volume(volA)
		if v.State.Generation != before.State.Generation || len(v.State.Registrants) != 1 || v.Index != before.Index {
			t.Errorf("node %d: refused command changed the state: %+v", id, v.State)
		}
	}
	s := c.Node(l).Status()
	if s.Counters.RefusedNotSynchronized != 1 || s.Counters.SyncQueries != q0+1 {
		t.Errorf("counters %+v: want 1 refusal, %d queries", s.Counters, q0+1)
	}
	if s.BGLSync == nil || s.BGLSync.Synchronized {
		t.Errorf("status says the stalled BGL is synchronized: %+v", s.BGLSync)
	}

	// P3/P4: a command that does not ask to persist, on a volume without persistence, is
	// admitted and queries nothing.
	reserve(t, c, f, volB, register(hostY, 0xBB))
	if q := c.Node(l).Status().Counters.SyncQueries; q != q0+1 {
		t.Errorf("non-persistent command queried the sync state: %d queries, want %d", q, q0+1)
	}
	// On a volume with persistence on, every command asks to persist.
	_, err = c.Node(f).Reserve(context.Background(), volA, acquireWE(hostX, 0xAA))
	mustRefuse(t, err, group.ErrNotSynchronized)

	c.Resume(bgl)
	c.Run(2 * time.Second)
	reserve(t, c, f, volA, registerPTPL(hostY, 0xBB))
	c.Run(time.Second) // the BGL held the entry when the command was answered; now applied
	if !registered(c, bgl, volA, hostY) {
		t.Errorf("BGL %d does not hold the admitted registration", bgl)
	}
}

// TestRefuseWhileBGLLagging: a BGL whose appends are delayed (its heartbeats are not)
// lags behind a committed persistent entry: the next persistent command is refused, and
// the one it lags behind is answered only once the BGL holds it.
func TestRefuseWhileBGLLagging(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	bgl := c.Node(l).Status().BGL
	c.Net.ExtraDelay = func(from, to uint64, env *group.Envelope) time.Duration {
		if to == bgl && from == l && env.Kind == group.EnvRaft && len(env.Raft) > 64 {
			return 3 * time.Second // appends with entries crawl; small messages do not
		}
		return 0
	}
	var firstAt time.Duration
	var firstErr error
	answered := false
	start := c.W.Elapsed()
	c.Node(l).ReserveAsync(volA, registerPTPL(hostX, 0xAA), func(_ reservation.Result, err error) {
		answered, firstErr, firstAt = true, err, c.W.Elapsed()-start
	})
	c.Run(100 * time.Millisecond) // committed through the third node, not yet at the BGL
	_, err := c.Node(l).Reserve(context.Background(), volA, registerPTPL(hostY, 0xBB))
	mustRefuse(t, err, group.ErrNotSynchronized)
	c.RunUntil("first command answered", 10*time.Second, func() bool { return answered })
	if firstErr != nil || firstAt < 2*time.Second {
		t.Errorf("first command: %v after %v; want success once the BGL held it (~3 s)", firstErr, firstAt)
	}
	if registered(c, l, volA, hostY) {
		t.Errorf("refused registration applied")
	}
}

// TestRefuseWhenNoBGL (P2): the BGL gone (crashed), a persistent command is refused; a
// named group of one (no BGL possible) refuses at once; a standalone node admits.
func TestRefuseWhenNoBGL(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	bgl := c.Node(l).Status().BGL
	c.Crash(bgl)
	c.Run(time.Second)
	_, err := c.Node(l).Reserve(context.Background(), volA, registerPTPL(hostX, 0xAA))
	mustRefuse(t, err, group.ErrNotSynchronized)
	reserve(t, c, l, volA, register(hostX, 0xAA)) // the quorum still commits the others

	s := sim.NewCluster(t, sim.Seed(t), sim.Options{Nodes: 1})
	n := s.Node(1)
	start := s.W.Elapsed()
	reserve(t, s, 1, volA, registerPTPL(hostX, 0xAA)) // standalone: admitted
	if took := s.W.Elapsed() - start; took > time.Second {
		t.Errorf("a standalone node took %v to answer a persistent command (no BGL to wait for)", took)
	}
	if err := n.Create(context.Background(), "solo"); err != nil {
		t.Fatal(err)
	}
	start = s.W.Elapsed()
	_, err = n.Reserve(context.Background(), volA, registerPTPL(hostY, 0xBB))
	mustRefuse(t, err, group.ErrNoBackup)
	if took := s.W.Elapsed() - start; took > 10*time.Millisecond {
		t.Errorf("a group of one waited %v to refuse", took)
	}
}

// TestRemovedBGLReplaced: removing the BGL makes the leader designate a synchronized
// member, and persistent commands are admitted again.
func TestRemovedBGLReplaced(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	bgl := c.Node(l).Status().BGL
	if err := c.Node(l).RemoveMember(context.Background(), bgl); err != nil {
		t.Fatal(err)
	}
	c.Crash(bgl)
	c.RunUntil("new BGL", 10*time.Second, func() bool {
		b := c.Node(l).Status().BGL
		return b != 0 && b != bgl
	})
	reserve(t, c, l, volA, registerPTPL(hostX, 0xAA))
}

// TestCancelWhileWaiting: a persistent command whose caller gives up while it waits for
// the BGL is withdrawn: the caller gets its context's error, and nothing changes.
func TestCancelWhileWaiting(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	bgl := c.Node(l).Status().BGL
	c.Pause(bgl)
	c.Run(time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), c.W.Now().Add(100*time.Millisecond))
	defer cancel()
	_, err := c.Node(l).Reserve(ctx, volA, registerPTPL(hostX, 0xAA))
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, group.ErrOutcomeUnknown) {
		t.Fatalf("got %v, want the deadline and a known outcome", err)
	}
	c.Run(2 * time.Second)
	if registered(c, l, volA, hostX) || c.Node(l).Status().Counters.Refusals != 0 {
		t.Errorf("withdrawn command changed something: %+v", c.Node(l).Status().Counters)
	}
}
