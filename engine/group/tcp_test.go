package group_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"sluice/engine/group"
	"sluice/engine/reservation"
)

// freeAddrs returns n loopback addresses with free ports.
func freeAddrs(t *testing.T, n int) []string {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ln.Addr().String())
		defer ln.Close()
	}
	return out
}

// eventually polls cond every 10 ms for up to d of wall time.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTCPGroup runs three nodes over real sockets on 127.0.0.1, with short timings
// (10 ms ticks, 50 ms heartbeat, 500 ms election timeout): forwarding from a follower,
// admission, failover to the BGL, and refusal once the new BGL is gone.
func TestTCPGroup(t *testing.T) {
	addrs := freeAddrs(t, 3)
	b := &group.Bootstrap{Name: "tcp", BGL: 2}
	for i, a := range addrs {
		b.Members = append(b.Members, group.Member{ID: uint64(i + 1), Addr: a})
	}
	nodes := map[uint64]*group.Node{}
	for i, a := range addrs {
		n, err := group.Open(group.Config{NodeID: uint64(i + 1), DataDir: t.TempDir(), PeerAddr: a,
			TickInterval: 10 * time.Millisecond, NoSync: true, Bootstrap: b})
		if err != nil {
			t.Fatal(err)
		}
		nodes[uint64(i+1)] = n
		defer n.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader := func() uint64 {
		for id, n := range nodes {
			if s := n.Status(); s.RaftState == "leader" && s.Decided {
				return id
			}
		}
		return 0
	}
	eventually(t, "a leader", 10*time.Second, func() bool { return leader() != 0 })
	l := leader()
	eventually(t, "a BGL other than the leader", 5*time.Second, func() bool {
		s := nodes[l].Status()
		return s.BGL != 0 && s.BGL != l && s.BGLSync != nil && s.BGLSync.Synchronized
	})
	bgl := nodes[l].Status().BGL
	third := 6 - l - bgl

	// Forwarding from a follower, and admission of persistent commands.
	var admitted []reservation.Identity
	for i := range 5 {
		h := reservation.NVMeHost([16]byte{0x50, byte(i)})
		if _, err := nodes[third].Reserve(ctx, volA, registerPTPL(h, uint64(i+1))); err != nil {
			t.Fatalf("forwarded persistent register %d: %v", i, err)
		}
		admitted = append(admitted, h)
	}
	if v, _ := nodes[third].Volume(volA); len(v.State.Registrants) != 5 {
		t.Fatalf("follower's state has %d registrants right after its calls", len(v.State.Registrants))
	}

	// Failover: the leader dies; the BGL takes over with every admitted registration.
	killed := time.Now()
	nodes[l].Close()
	delete(nodes, l)
	eventually(t, "the BGL leads", 10*time.Second, func() bool { return leader() == bgl })
	t.Logf("failover with a 500 ms election timeout took %v", time.Since(killed))
	v, _ := nodes[bgl].Volume(volA)
	for _, h := range admitted {
		if !v.State.Registered(h) {
			t.Errorf("registration of %v lost in the failover", h)
		}
	}
	eventually(t, "a new BGL", 5*time.Second, func() bool { return nodes[bgl].Status().BGL == third })
	if _, err := nodes[third].Reserve(ctx, volA, registerPTPL(hostX, 0xAA)); err != nil {
		t.Fatalf("persistent register after failover: %v", err)
	}

	// The new BGL dies: a persistent command is refused (the group of two keeps no
	// quorum either way, so the refusal is the BGL's or the lease's).
	nodes[third].Close()
	delete(nodes, third)
	time.Sleep(100 * time.Millisecond)
	_, err := nodes[bgl].Reserve(ctx, volA, registerPTPL(hostY, 0xBB))
	if err == nil {
		t.Fatal("persistent command admitted with the BGL gone")
	}
	if !isRefusal(err) {
		t.Errorf("got %v, want a retryable refusal", err)
	}
}

func isRefusal(err error) bool {
	return err != nil && (errors.Is(err, group.ErrNotSynchronized) || errors.Is(err, group.ErrNoQuorum) ||
		errors.Is(err, group.ErrNoLeader))
}
