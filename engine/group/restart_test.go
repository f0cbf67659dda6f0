package group_test

import (
	"context"
	"testing"
	"time"

	"sluice/engine/reservation"
	"sluice/engine/sim"
)

// seedVolumes puts a persistent reservation on volA (two registrants, X holds Write
// Exclusive) and a non-persistent one on volB.
func seedVolumes(t *testing.T, c *sim.Cluster, at uint64) {
	t.Helper()
	reserve(t, c, at, volA, registerPTPL(hostX, 0xAA))
	reserve(t, c, at, volA, register(hostY, 0xBB))
	reserve(t, c, at, volA, acquireWE(hostX, 0xAA))
	reserve(t, c, at, volB, register(hostZ, 0xCC))
	reserve(t, c, at, volB, acquireWE(hostZ, 0xCC))
}

// checkKept checks volA kept its persistent state and volB per keptB.
func checkKept(t *testing.T, c *sim.Cluster, id uint64, keptB bool) {
	t.Helper()
	a, _ := c.Node(id).Volume(volA)
	if !a.State.PTPL || !a.State.Registered(hostX) || !a.State.Registered(hostY) ||
		!a.State.Holds(hostX) || a.State.Type != reservation.WriteExclusive {
		t.Errorf("node %d: persistent volume lost state: %+v", id, a.State)
	}
	b, _ := c.Node(id).Volume(volB)
	if got := b.State.Registered(hostZ) && b.State.Holds(hostZ); got != keptB {
		t.Errorf("node %d: non-persistent volume kept=%v, want %v: %+v", id, got, keptB, b.State)
	}
}

// TestWholeGroupRestart: every node stops and restarts: the persistent volume keeps its
// registrations and reservation (generation reset to 0), the other loses everything, and
// the incarnation moves on.
func TestWholeGroupRestart(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	seedVolumes(t, c, other(c, l))
	c.Run(time.Second)
	inc := c.Node(l).Status().Incarnation
	for _, id := range c.IDs {
		c.Crash(id)
	}
	c.Run(10 * time.Second)
	for _, id := range c.IDs {
		c.Start(id)
	}
	nl := c.ReadyLeader(30 * time.Second)
	for _, id := range c.IDs {
		if _, err := c.Node(id).Revalidate(context.Background()); err != nil {
			t.Fatalf("node %d: revalidate: %v", id, err)
		}
		checkKept(t, c, id, false)
		if a, _ := c.Node(id).Volume(volA); a.State.Generation != 0 {
			t.Errorf("node %d: generation %d after power loss, want 0", id, a.State.Generation)
		}
	}
	if got := c.Node(nl).Status().Incarnation; got != inc+1 {
		t.Errorf("incarnation %d, want %d", got, inc+1)
	}
	reserve(t, c, nl, volB, register(hostZ, 0xCC)) // the group serves again
}

// TestSingleNodeRestart: restarting one node at a time, the leader included, and then
// every node in turn (a rolling restart) loses nothing: the group never lost its state.
func TestSingleNodeRestart(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	seedVolumes(t, c, l)
	inc := c.Node(l).Status().Incarnation
	order := append([]uint64{l}, c.IDs...)
	for _, id := range order {
		c.Restart(id)
		nl := c.ReadyLeader(30 * time.Second)
		c.Run(3 * time.Second)
		if _, err := c.Node(id).Revalidate(context.Background()); err != nil {
			t.Fatalf("node %d: revalidate: %v", id, err)
		}
		for _, x := range c.IDs {
			checkKept(t, c, x, true)
		}
		if got := c.Node(nl).Status().Incarnation; got != inc {
			t.Fatalf("after restarting node %d: incarnation %d, want %d", id, got, inc)
		}
		if s := c.Node(id).Status(); s.HeldIncarnation != inc {
			t.Errorf("restarted node %d holds incarnation %d, want %d", id, s.HeldIncarnation, inc)
		}
	}
}

// TestRestartWithMemberDown: the whole group lost power and one member stays down: the
// others decide the power cycle after an election timeout of waiting for its report.
func TestRestartWithMemberDown(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	seedVolumes(t, c, l)
	for _, id := range c.IDs {
		c.Crash(id)
	}
	c.Start(1)
	c.Start(2)
	nl := c.ReadyLeader(60 * time.Second)
	if _, err := c.Node(nl).Revalidate(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkKept(t, c, nl, false)
}

// TestStandaloneRestart: a standalone node admits persistent commands and, across a
// restart (a power cycle of a group of one), keeps the persistent volume's state only.
func TestStandaloneRestart(t *testing.T) {
	c := sim.NewCluster(t, sim.Seed(t), sim.Options{Nodes: 1})
	seedVolumes(t, c, 1)
	if s := c.Node(1).Status(); !s.Standalone || s.Counters.Refusals != 0 {
		t.Fatalf("status %+v", s)
	}
	c.Restart(1)
	if _, err := c.Node(1).Revalidate(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkKept(t, c, 1, false)
}
