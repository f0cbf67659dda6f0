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

// TestTakeoverByBGL: after the leader dies, the BGL becomes leader well within 10 s with
// every admitted persistent registration, designates a new BGL among the synchronized
// members, and admits persistent commands again.
func TestTakeoverByBGL(t *testing.T) {
	c, l := newGroup(t, 5, 2, sim.Options{})
	bgl := c.Node(l).Status().BGL
	var admitted []reservation.Identity
	for i := range 20 {
		h := reservation.NVMeHost([16]byte{0x40, byte(i)})
		id := c.IDs[i%5]
		if _, err := c.Node(id).Reserve(context.Background(), volA, registerPTPL(h, uint64(i+1))); err == nil {
			admitted = append(admitted, h)
		}
	}
	if len(admitted) != 20 {
		t.Fatalf("%d of 20 admitted in a healthy group", len(admitted))
	}
	events, cancel := c.Node(bgl).Subscribe()
	defer cancel()

	c.Crash(l)
	killedAt := c.W.Elapsed()
	newL := c.ReadyLeader(30 * time.Second)
	took := c.W.Elapsed() - killedAt
	t.Logf("leader %d killed; %d leads after %v", l, newL, took)
	if newL != bgl {
		t.Errorf("new leader %d, want the BGL %d", newL, bgl)
	}
	if took > 7*time.Second {
		t.Errorf("failover took %v", took)
	}
	v, _ := c.Node(newL).Volume(volA)
	for _, h := range admitted {
		if !v.State.Registered(h) {
			t.Errorf("admitted registration of %v lost in the takeover", h)
		}
	}
	sawLeader := false
	for len(events) > 0 {
		ev := <-events
		sawLeader = sawLeader || (ev.Kind == group.EventLeader && ev.Leader == newL)
	}
	if !sawLeader {
		t.Errorf("no leader-change event for the new leader")
	}
	c.RunUntil("a new BGL", 5*time.Second, func() bool {
		b := c.Node(newL).Status().BGL
		return b != 0 && b != newL && b != l
	})
	reserve(t, c, other(c, newL), volA, registerPTPL(hostX, 0xEE))
	t.Logf("new BGL %d; failover to the first admitted persistent command: %v",
		c.Node(newL).Status().BGL, c.W.Elapsed()-killedAt)
}

// TestPartitionedLeaderStopsAdmitting: a leader cut off from the majority stops
// admitting within an election timeout (its lease lapses; CheckQuorum makes it step
// down); the majority elects the BGL, and the old leader's refused commands changed
// nothing anywhere.
func TestPartitionedLeaderStopsAdmitting(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	bgl := c.Node(l).Status().BGL
	c.Net.Isolate(l, c.IDs)
	c.Run(6 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), c.W.Now().Add(time.Minute))
	defer cancel()
	_, err := c.Node(l).Reserve(ctx, volB, register(hostZ, 0xCC))
	if err == nil {
		t.Fatal("a partitioned leader admitted a command")
	}
	if !errors.Is(err, group.ErrRetryable) && !errors.Is(err, group.ErrOutcomeUnknown) {
		t.Errorf("partitioned leader: %v, want a refusal", err)
	}
	newL := c.ReadyLeader(10 * time.Second)
	if newL != bgl {
		t.Errorf("majority elected %d, want the BGL %d", newL, bgl)
	}
	reserve(t, c, newL, volA, register(hostX, 0xAA))
	c.Net.Heal()
	c.Run(3 * time.Second)
	for _, id := range c.IDs {
		if registered(c, id, volB, hostZ) {
			t.Errorf("node %d applied the partitioned leader's command", id)
		}
		if !registered(c, id, volA, hostX) {
			t.Errorf("node %d lacks the majority's command after healing", id)
		}
	}
}

// TestLeaderHandsOverToBGL: a leader that is not the BGL (the BGL was paused when the
// old leader died) hands leadership to the BGL once it is back and synchronized.
func TestLeaderHandsOverToBGL(t *testing.T) {
	c, l := newGroup(t, 5, 2, sim.Options{})
	bgl := c.Node(l).Status().BGL
	c.Pause(bgl)
	c.Crash(l)
	interim := c.ReadyLeader(30 * time.Second)
	if interim == bgl {
		t.Fatalf("the paused BGL leads")
	}
	c.Resume(bgl)
	c.RunUntil("leadership handed to the BGL", 20*time.Second, func() bool {
		return c.Leader() == bgl && c.Node(bgl).Status().Decided
	})
}

// TestForwardFromOwner: the volume's owner is not the leader; its command is forwarded,
// and when the call returns the owner's own state already includes it.
func TestForwardFromOwner(t *testing.T) {
	c, l := newGroup(t, 3, 2, sim.Options{})
	owner := other(c, l)
	if err := c.Node(l).SetOwner(context.Background(), volA, owner); err != nil {
		t.Fatal(err)
	}
	c.Run(time.Second)
	if o, ok := c.Node(owner).Owner(volA); !ok || o != owner {
		t.Fatalf("owner %d %v, want %d", o, ok, owner)
	}
	for i, cmd := range []reservation.Command{registerPTPL(hostX, 0xAA), acquireWE(hostX, 0xAA)} {
		res := reserve(t, c, owner, volA, cmd)
		v, _ := c.Node(owner).Volume(volA) // no simulation ran since the call returned
		if !v.State.Registered(hostX) || (i == 1 && !v.State.Holds(hostX)) {
			t.Errorf("owner's state lacks command %d right after it returned: %+v", i, v.State)
		}
		_ = res
	}
	// A conflicting command is answered with its status, not an error.
	res, err := c.Node(owner).Reserve(context.Background(), volA, acquireWE(hostY, 0xBB))
	if err != nil || res.Status != reservation.StatusConflict {
		t.Errorf("conflicting acquire: %v %v, want reservation conflict", res.Status, err)
	}
	if s := c.Node(owner).Status(); s.Counters.Forwarded < 3 {
		t.Errorf("owner forwarded %d commands", s.Counters.Forwarded)
	}
}
