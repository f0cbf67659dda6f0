package group_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"sluice/engine/group"
	"sluice/engine/reservation"
	"sluice/engine/sim"
)

// TestSnapshotCatchUp: with a small snapshot threshold the log is compacted; a node that
// was down through it catches up from a snapshot, and every node ends with the same
// state.
func TestSnapshotCatchUp(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{SnapshotEntries: 16, SnapshotKeep: 4})
	late := other(c, l, c.Node(l).Status().BGL)
	c.Crash(late)
	for i := range 60 {
		h := reservation.NVMeHost([16]byte{0x60, byte(i)})
		reserve(t, c, l, volB, register(h, uint64(i+1)))
	}
	events := 0
	c.Start(late)
	ch, cancel := c.Node(late).Subscribe()
	defer cancel()
	c.RunUntil("catch up", 30*time.Second, func() bool {
		return c.Node(late).Status().Applied >= c.Node(l).Status().Commit
	})
	for len(ch) > 0 {
		if ev := <-ch; ev.Kind == group.EventResync {
			events++
		}
	}
	if events == 0 {
		t.Errorf("node %d caught up without a snapshot", late)
	}
	want, _ := c.Node(l).Volume(volB)
	for _, id := range c.IDs {
		got, _ := c.Node(id).Volume(volB)
		if !reflect.DeepEqual(got.State, want.State) {
			t.Errorf("node %d diverges: %d registrants, want %d", id, len(got.State.Registrants), len(want.State.Registrants))
		}
	}
	// The caught-up node serves as a follower: a forwarded command from it works.
	reserve(t, c, late, volB, register(hostX, 0xAA))
}

// TestJoinLeaveReplace: a standalone node joins by a member's address and becomes a
// voter; a member leaves and turns standalone; a failed member is replaced.
func TestJoinLeaveReplace(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{SnapshotEntries: 8, SnapshotKeep: 2})
	ctx := context.Background()
	reserve(t, c, l, volA, registerPTPL(hostX, 0xAA))
	n4 := c.AddNode(4)
	if err := n4.Join(ctx, sim.Addr(other(c, l, 4))); err != nil {
		t.Fatalf("join: %v", err)
	}
	s := n4.Status()
	if s.Group != "g1" || s.Standalone || !registered(c, 4, volA, hostX) {
		t.Fatalf("joined node: %+v", s)
	}
	if err := n4.Join(ctx, sim.Addr(l)); !errors.Is(err, group.ErrExists) {
		t.Errorf("second join: %v, want ErrExists", err)
	}

	// Leave: a follower leaves and is standalone again, empty.
	leaver := other(c, l, c.Node(l).Status().BGL)
	if err := c.Node(leaver).Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if s := c.Node(leaver).Status(); !s.Standalone || registered(c, leaver, volA, hostX) {
		t.Errorf("left node: %+v", s)
	}
	c.Run(time.Second)
	for _, m := range c.Node(l).Status().Members {
		if m.ID == leaver {
			t.Errorf("leader still lists %d", leaver)
		}
	}

	// Replace: node 4 fails; node 5 takes its place.
	c.Crash(4)
	n5 := c.AddNode(5)
	if err := c.Node(l).ReplaceMember(ctx, 4, 5, sim.Addr(5)); err != nil {
		t.Fatalf("replace: %v", err)
	}
	c.RunUntil("node 5 votes", 30*time.Second, func() bool {
		for _, m := range c.Node(l).Status().Members {
			if m.ID == 5 && !m.Learner {
				return true
			}
		}
		return false
	})
	c.Run(time.Second)
	if !registered(c, 5, volA, hostX) || n5.Status().Group != "g1" {
		t.Errorf("replacement node lacks the group's state: %+v", n5.Status())
	}
	reserve(t, c, 5, volA, registerPTPL(hostY, 0xBB))
}

// TestDesignateBGL: the operator designates another member; the old one is not the
// BGL anymore and a non-member is refused.
func TestDesignateBGL(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	ctx := context.Background()
	old := c.Node(l).Status().BGL
	next := other(c, l, old)
	if err := c.Node(old).DesignateBGL(ctx, next); err != nil {
		t.Fatal(err)
	}
	if b := c.Node(l).Status().BGL; b != next {
		t.Fatalf("BGL %d, want %d", b, next)
	}
	if err := c.Node(l).DesignateBGL(ctx, 99); !errors.Is(err, group.ErrInvalid) {
		t.Errorf("designating a non-member: %v", err)
	}
	reserve(t, c, l, volA, registerPTPL(hostX, 0xAA))
}

// TestClearReservation: the operator's clear removes registrations and the reservation
// and notifies; on a persistent volume it obeys the admission rule unless forced.
func TestClearReservation(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	ctx := context.Background()
	seedVolumes(t, c, l)
	ch, cancel := c.Node(l).Subscribe()
	defer cancel()
	if err := c.Node(l).ClearReservation(ctx, volB, false); err != nil {
		t.Fatal(err)
	}
	ev := <-ch
	if ev.Kind != group.EventVolume || ev.Cause != group.CauseClear || len(ev.Result.Notices) != 1 {
		t.Errorf("clear event %+v", ev)
	}
	bgl := c.Node(l).Status().BGL
	c.Pause(bgl)
	c.Run(time.Second)
	err := c.Node(l).ClearReservation(ctx, volA, false)
	mustRefuse(t, err, group.ErrNotSynchronized)
	if err := c.Node(l).ClearReservation(ctx, volA, true); err != nil {
		t.Fatalf("forced clear: %v", err)
	}
	if v, _ := c.Node(l).Volume(volA); v.State.PTPL || len(v.State.Registrants) != 0 {
		t.Errorf("after forced clear: %+v", v.State)
	}
}

// TestDeterministic: one seed, one run: two runs of a scenario with faults produce the
// same event history.
func TestDeterministic(t *testing.T) {
	seed := sim.Seed(t)
	run := func() uint64 {
		c := sim.NewCluster(t, seed, sim.Options{Nodes: 3, Group: "g1", BGL: 2})
		c.Net.DropRate = 0.05
		l := c.ReadyLeader(60 * time.Second)
		for i := range 10 {
			h := reservation.NVMeHost([16]byte{0x70, byte(i)})
			c.Node(c.IDs[i%3]).ReserveAsync(volA, registerPTPL(h, uint64(i+1)), func(reservation.Result, error) {})
			c.Run(50 * time.Millisecond)
		}
		c.Crash(l)
		c.Run(20 * time.Second)
		return c.W.Hash()
	}
	if a, b := run(), run(); a != b {
		t.Fatalf("same seed, different runs: %x != %x", a, b)
	}
}
