package group_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"sluice/engine/group"
	"sluice/engine/proto/nvme"
	"sluice/engine/reservation"
	"sluice/engine/sim"
)

// Test fixtures: volumes and hosts.
var (
	volA  = [16]byte{0xA1}
	volB  = [16]byte{0xB2}
	hostX = reservation.NVMeHost([16]byte{0x01})
	hostY = reservation.NVMeHost([16]byte{0x02})
	hostZ = reservation.NVMeHost([16]byte{0x03})
)

// registerPTPL is an NVMe Register with CPTPL=11b: it asks to persist.
func registerPTPL(h reservation.Identity, key uint64) reservation.Command {
	return reservation.Command{Action: reservation.NVMeRegister, From: h, ServiceKey: key,
		CPTPL: nvme.CPTPLSet}
}

// register is an NVMe Register that does not ask to persist.
func register(h reservation.Identity, key uint64) reservation.Command {
	return reservation.Command{Action: reservation.NVMeRegister, From: h, ServiceKey: key}
}

// acquireWE is an NVMe Acquire of a Write Exclusive reservation.
func acquireWE(h reservation.Identity, key uint64) reservation.Command {
	return reservation.Command{Action: reservation.NVMeAcquire, From: h, Key: key,
		Type: reservation.WriteExclusive}
}

// newGroup starts a bootstrapped simulated group of n nodes with BGL bgl and waits for a
// ready leader.
func newGroup(t *testing.T, n int, bgl uint64, o sim.Options) (*sim.Cluster, uint64) {
	t.Helper()
	o.Nodes, o.Group, o.BGL = n, "g1", bgl
	c := sim.NewCluster(t, sim.Seed(t), o)
	l := c.ReadyLeader(30 * time.Second)
	c.Run(2 * time.Second) // followers confirmed, BGL settled
	return c, l
}

// reserve runs a blocking Reserve on node id and fails the test on an unexpected error.
func reserve(t *testing.T, c *sim.Cluster, id uint64, vol [16]byte, cmd reservation.Command) reservation.Result {
	t.Helper()
	res, err := c.Node(id).Reserve(context.Background(), vol, cmd)
	if err != nil {
		t.Fatalf("node %d: reserve %v: %v (virtual %v)", id, cmd.Action, err, c.W.Elapsed())
	}
	if res.Status != reservation.StatusOK {
		t.Fatalf("node %d: reserve %v: status %v", id, cmd.Action, res.Status)
	}
	return res
}

// registered reports whether host h is registered on vol at node id.
func registered(c *sim.Cluster, id uint64, vol [16]byte, h reservation.Identity) bool {
	v, _ := c.Node(id).Volume(vol)
	return v.State.Registered(h)
}

// mustRefuse checks that err is a refusal with reason want.
func mustRefuse(t *testing.T, err error, want error) {
	t.Helper()
	if err == nil || !errors.Is(err, group.ErrRetryable) || !errors.Is(err, want) {
		t.Fatalf("got %v, want a refusal wrapping %v", err, want)
	}
}

// other returns a running node that is neither of the given ones.
func other(c *sim.Cluster, not ...uint64) uint64 {
	for _, id := range c.IDs {
		skip := c.Node(id) == nil
		for _, x := range not {
			skip = skip || id == x
		}
		if !skip {
			return id
		}
	}
	return 0
}
