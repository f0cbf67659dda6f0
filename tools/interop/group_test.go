//go:build grouptest

package interop

import (
	"context"
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"

	"sluice/engine/group"
	"sluice/engine/proto/nvme"
	"sluice/engine/rpc"
)

// A storage group of three real sluiced processes on 127.0.0.2, .3 and .4 (Linux routes
// all of 127/8 to loopback; each daemon listens for NVMe/TCP, discovery, iSCSI and its
// group peers on its own address), with the group's default timings: a 100 ms tick, a
// heartbeat every 5 ticks (500 ms), an election timeout of 50 ticks (5 s). Each daemon
// runs one reactor in interrupt mode, so three of them and the test fit on two shared
// cores.
//
// Behind the grouptest build tag so that `make interop`, which boots qemu guests, never
// runs it: `make group-test` does (and `make test` after interop). The same tag holds
// BenchmarkGroupReservations, run by `make bench-resv`.

// groupNode is one daemon of the group.
type groupNode struct {
	*daemon
	ip   string // its listen address, 127.0.0.N
	peer string // its group peer address
	id   uint64
}

func (n *groupNode) addr() string { return n.nvmfAddr(n.ip) }

func (n *groupNode) signal(s syscall.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(s); err != nil {
		n.t.Fatalf("node %d: %v: %v", n.id, s, err)
	}
}

// testGroup is the three nodes.
type testGroup struct {
	tb    testing.TB
	nodes []*groupNode
}

// startGroup starts three standalone daemons, creates group "g-interop" on the first
// and joins the other two to it, then waits until the leader reports a synchronized BGL.
func startGroup(tb testing.TB) *testGroup {
	tb.Helper()
	g := &testGroup{tb: tb}
	for i := range 3 {
		ip := fmt.Sprintf("127.0.0.%d", i+2)
		peer := fmt.Sprintf("%s:%d", ip, freePort(tb))
		d := newDaemon(tb, "--poll-mode", "interrupt", "--listen-addr", ip, "--group-addr", peer)
		n := &groupNode{daemon: d, ip: ip, peer: peer}
		n.id = d.groupStatus().NodeID
		g.nodes = append(g.nodes, n)
	}
	start := time.Now()
	var ok bool
	g.nodes[0].call("group_create", map[string]string{"name": "g-interop"}, &ok)
	for _, n := range g.nodes[1:] {
		if err := tryCallResult(n.daemon, "group_join", map[string]string{"peer_address": g.nodes[0].peer}, &ok); err != nil {
			tb.Fatalf("node %d: group_join %s: %v", n.id, g.nodes[0].peer, err)
		}
	}
	took := eventually(tb, "a leader with a synchronized BGL and three voters", time.Minute, func() bool {
		s, ok := g.leaderStatus(g.nodes...)
		return ok && s.BGLSync != nil && s.BGLSync.Synchronized && voters(s) == 3
	})
	tb.Logf("group of 3 formed %v after group_create (BGL synchronized %v after the joins)",
		time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
	return g
}

func voters(s group.Status) int {
	n := 0
	for _, m := range s.Members {
		if !m.Learner {
			n++
		}
	}
	return n
}

// node returns the node with ID id.
func (g *testGroup) node(id uint64) *groupNode {
	for _, n := range g.nodes {
		if n.id == id {
			return n
		}
	}
	g.tb.Fatalf("no node %d in the group", id)
	return nil
}

// leaderStatus asks the given (running, not stopped) nodes who leads and returns the
// leader's own status, which alone holds the BGL's synchronization.
func (g *testGroup) leaderStatus(ask ...*groupNode) (group.Status, bool) {
	for _, n := range ask {
		var s group.Status
		if callWithin(n.daemon, time.Second, "group_get_status", nil, &s) != nil || s.Leader == 0 {
			continue
		}
		for _, l := range ask {
			if l.id != s.Leader {
				continue
			}
			var ls group.Status
			if callWithin(l.daemon, time.Second, "group_get_status", nil, &ls) == nil && ls.Leader == l.id && ls.Decided {
				return ls, true
			}
		}
	}
	return group.Status{}, false
}

// callWithin is one RPC bounded by limit, its error returned: for polls that must not
// wait on a node whose group call is stuck (group_get_status on a follower asks the
// leader, and a dead leader's request waits out the forward deadline).
func callWithin(d *daemon, limit time.Duration, method string, params, result any) error {
	c, err := rpc.Dial(d.sock)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return c.Call(ctx, method, params, result)
}

// roles names the group leader, the backup group leader and the third node.
func (g *testGroup) roles() (gl, bgl, other *groupNode) {
	g.tb.Helper()
	s, ok := g.leaderStatus(g.nodes...)
	if !ok || s.BGL == 0 {
		g.tb.Fatalf("no leader with a BGL: %+v", s)
	}
	gl, bgl = g.node(s.Leader), g.node(s.BGL)
	for _, n := range g.nodes {
		if n != gl && n != bgl {
			other = n
		}
	}
	return gl, bgl, other
}

// TestGroupReservations: the admission rule (patent US10733066) between real processes.
// The default volume's owner is set to the node that is neither GL nor BGL, and our Go
// NVMe host connects to it, so every command is forwarded to the GL. A persistent
// register is admitted while the BGL is in sync; with the BGL stopped (SIGSTOP) the next
// persistent command gets Command Interrupted with DNR clear and changes nothing, while a
// non-persistent one on another volume is admitted; after SIGCONT the BGL catches up and
// persistent commands are admitted again. kill -9 of the GL: the BGL takes over with
// every admitted persistent registration. Stopping and restarting all three keeps the
// persistent volume's reservation state and drops the other's.
func TestGroupReservations(t *testing.T) {
	g := startGroup(t)
	gl, bgl, owner := g.roles()
	t.Logf("GL %d (%s), BGL %d (%s), owner %d (%s)", gl.id, gl.ip, bgl.id, bgl.ip, owner.id, owner.ip)
	vol0 := owner.defaultNGUID()

	t.Run("the owner is named in the group configuration", func(t *testing.T) {
		var ok bool
		gl.call("volume_set_owner", map[string]any{"nguid": vol0, "node_id": owner.id}, &ok)
		for _, n := range g.nodes {
			eventually(t, fmt.Sprintf("node %d to apply the owner", n.id), time.Minute, func() bool {
				return n.owner(vol0) == owner.id
			})
		}
		// Every node exports vol0 (the default config) and claims volumes without an
		// owner every ownerClaimPeriod; none takes this one from its owner.
		time.Sleep(ownerClaimPeriod + time.Second)
		for _, n := range g.nodes {
			if o := n.owner(vol0); o != owner.id {
				t.Fatalf("node %d says owner %d after a claim period, want %d", n.id, o, owner.id)
			}
		}
	})

	// nsid 2 on the owner: a second volume whose reservations never ask to persist.
	addVolatileNamespace(t, owner.daemon)
	m1 := owner.bdevNGUID("m1")
	a, b := newResvHost(t, "A", 1), newResvHost(t, "B", 2)
	a.connect(owner.addr())
	b.connect(owner.addr())
	defer a.close()
	defer b.close()

	t.Run("persistent register admitted while the BGL is in sync", func(t *testing.T) {
		wantStatus(t, "A register CPTPL=11b", a.register(1, 0xA1, nvme.CPTPLSet), nvme.StatusSuccess)
		wantStatus(t, "A acquire write exclusive", a.acquire(1, 0xA1, nvme.RTypeWriteExclusive), nvme.StatusSuccess)
		wantStatus(t, "A register on the volatile volume", a.register(2, 0xA1, nvme.CPTPLNoChange), nvme.StatusSuccess)
		if info := gl.reservation(vol0); !info.PTPL || info.Holder == nil || info.Holder.HostID != a.hostID() {
			t.Fatalf("GL's reservation_get: %+v", info)
		}
	})

	t.Run("BGL stopped: persistent refused with Command Interrupted, volatile admitted", func(t *testing.T) {
		bgl.signal(syscall.SIGSTOP)
		stopped := time.Now()
		defer func() {
			if bgl.cmd != nil && t.Failed() {
				bgl.signal(syscall.SIGCONT)
			}
		}()
		took := eventually(t, "the GL to judge the BGL out of sync", time.Minute, func() bool {
			s, ok := g.leaderStatus(gl, owner)
			return ok && s.BGLSync != nil && !s.BGLSync.Synchronized
		})
		t.Logf("GL judged the stopped BGL out of sync %v after SIGSTOP", took.Round(time.Millisecond))
		before := gl.groupStatus().Counters

		sent := time.Now()
		st := b.register(1, 0xB2, nvme.CPTPLNoChange) // PTPL is on: it asks to persist
		if st.SCT() != 0 || st.SC() != uint8(nvme.StatusCommandInterrupted) || st.DNR() {
			t.Fatalf("persistent register with the BGL stopped: status %#04x (%v), want SCT 0 SC 21h "+
				"(Command Interrupted) with DNR clear", uint16(st), st)
		}
		t.Logf("refused with %v after %v", st, time.Since(sent).Round(time.Millisecond))
		mid := gl.groupStatus().Counters
		if mid.RefusedNotSynchronized != before.RefusedNotSynchronized+1 || mid.SyncQueries != before.SyncQueries+1 {
			t.Errorf("counters before %+v after %+v: want one more sync query and one more not-synchronized refusal",
				before, mid)
		}
		if info := gl.reservation(vol0); registered(info, b.hostID(), 0xB2) {
			t.Fatalf("the refused registration applied: %+v", info)
		}

		wantStatus(t, "B register on the volatile volume", b.register(2, 0xB2, nvme.CPTPLNoChange), nvme.StatusSuccess)
		after := gl.groupStatus().Counters
		if after.SyncQueries != mid.SyncQueries || after.AdmittedOther != mid.AdmittedOther+1 {
			t.Errorf("a volatile command: counters %+v → %+v; want no sync query and one more admitted",
				mid, after)
		}
		if info := owner.reservation(m1); !registered(info, b.hostID(), 0xB2) {
			t.Fatalf("owner's reservation_get of the volatile volume: %+v", info)
		}
		t.Logf("BGL stopped for %v", time.Since(stopped).Round(time.Millisecond))
	})

	t.Run("BGL continued: caught up, persistent admitted again", func(t *testing.T) {
		bgl.signal(syscall.SIGCONT)
		took := eventually(t, "the BGL to catch up", time.Minute, func() bool {
			s, ok := g.leaderStatus(gl, owner)
			return ok && s.BGLSync != nil && s.BGLSync.Synchronized
		})
		t.Logf("BGL synchronized %v after SIGCONT", took.Round(time.Millisecond))
		wantStatus(t, "B register (persistent)", b.register(1, 0xB2, nvme.CPTPLNoChange), nvme.StatusSuccess)
		if info := gl.reservation(vol0); !registered(info, b.hostID(), 0xB2) || !registered(info, a.hostID(), 0xA1) {
			t.Fatalf("GL's reservation_get: %+v", info)
		}
	})

	t.Run("kill -9 of the GL: the BGL takes over with every persistent registration", func(t *testing.T) {
		killed := time.Now()
		gl.kill()
		// The group's own readiness, apart from what a host sees: the old BGL leads,
		// has decided, and has a synchronized BGL of its own.
		ready := make(chan time.Duration, 1)
		go func() {
			for time.Since(killed) < 2*time.Minute {
				if s, ok := g.leaderStatus(bgl, owner); ok && s.Leader == bgl.id && s.BGLSync != nil &&
					s.BGLSync.Synchronized {
					ready <- time.Since(killed)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			ready <- -1
		}()
		var attempts []string
		var admitted time.Duration
		eventually(t, "a persistent command admitted after the GL died", time.Minute, func() bool {
			sent := time.Now()
			st := b.register(1, 0xB2, nvme.CPTPLNoChange) // the same key again: idempotent
			attempts = append(attempts, fmt.Sprintf("%v after %v", st, time.Since(sent).Round(time.Millisecond)))
			if st.Success() {
				admitted = time.Since(killed)
				return true
			}
			if st.Code() != nvme.StatusCommandInterrupted || st.DNR() {
				t.Fatalf("during failover: %v; want Command Interrupted, DNR clear, until a leader admits", st)
			}
			return false
		})
		groupReady := <-ready
		if groupReady < 0 {
			t.Fatal("the old BGL never led with a synchronized BGL of its own")
		}
		t.Logf("failover: first persistent command admitted %v after kill -9 of the GL (attempts: %v)",
			admitted.Round(time.Millisecond), attempts)
		t.Logf("failover: the old BGL %d led, decided, with its own BGL synchronized, %v after the kill",
			bgl.id, groupReady.Round(time.Millisecond))
		for _, n := range []*groupNode{bgl, owner} {
			info := n.reservation(vol0)
			if !info.PTPL || info.Holder == nil || info.Holder.HostID != a.hostID() ||
				!registered(info, a.hostID(), 0xA1) || !registered(info, b.hostID(), 0xB2) {
				t.Fatalf("node %d after failover: reservation_get %+v", n.id, info)
			}
		}
		h, regs := a.report(1)
		if _, ok := a.registrant(regs); !ok || h.REGCTL != 2 || h.PTPLS != 1 || h.RTYPE != nvme.RTypeWriteExclusive {
			t.Fatalf("host A's report after failover: %+v %+v", h, regs)
		}
		if s, ok := g.leaderStatus(bgl, owner); !ok || s.Leader != bgl.id || s.BGL != owner.id {
			t.Errorf("after failover: leader %d BGL %d, want the old BGL %d leading and the owner %d as BGL",
				s.Leader, s.BGL, bgl.id, owner.id)
		}
	})

	t.Run("whole-group restart keeps persistent state and drops the rest", func(t *testing.T) {
		bgl.stop()
		owner.stop()
		start := time.Now()
		// The owner is the BGL since the failover and campaigns soonest: started first,
		// it leads as soon as a second voter is up. Each start waits for the group's
		// state a bounded time (tools/sluiced startupRevalidateLimit), so the first one,
		// alone, takes that long.
		order := append([]*groupNode(nil), g.nodes...)
		sort.Slice(order, func(i, j int) bool { return order[i] == owner && order[j] != owner })
		for _, n := range order {
			n.start()
		}
		took := eventually(t, "a leader after the restart", 2*time.Minute, func() bool {
			_, ok := g.leaderStatus(g.nodes...)
			return ok
		})
		t.Logf("restarted all three in %v; a decided leader %v later", time.Since(start).Round(time.Millisecond)-took,
			took.Round(time.Millisecond))
		for _, n := range g.nodes {
			eventually(t, fmt.Sprintf("node %d to apply the restart decision", n.id), time.Minute, func() bool {
				var s group.Status
				return tryCallResult(n.daemon, "group_get_status", nil, &s) == nil && s.Decided &&
					len(n.reservation(m1).Registrants) == 0
			})
			info := n.reservation(vol0)
			if !info.PTPL || info.Holder == nil || info.Holder.HostID != a.hostID() ||
				!registered(info, a.hostID(), 0xA1) || !registered(info, b.hostID(), 0xB2) || info.Owner != owner.id {
				t.Fatalf("node %d after the whole-group restart: reservation_get %+v", n.id, info)
			}
		}
		a.connect(owner.addr())
		b.connect(owner.addr())
		h, regs := a.report(1)
		if h.REGCTL != 2 || h.PTPLS != 1 || h.RTYPE != nvme.RTypeWriteExclusive || len(regs) != 2 {
			t.Fatalf("host A's report after the restart: %+v %+v", h, regs)
		}
		wantStatus(t, "B write under A's kept reservation", b.write4K(1, defaultBlock), nvme.StatusReservationConflict)
		wantStatus(t, "B register after the restart (persistent)", b.register(1, 0xB2, nvme.CPTPLNoChange),
			nvme.StatusSuccess)
	})
}

// BenchmarkGroupReservations: register and acquire latency through the three-node
// group, persistent and volatile, from a host on the owner, which is not the GL: every
// command is forwarded to the GL, admitted (a persistent one only with the BGL in sync
// and answered once the BGL holds it), committed by a quorum and applied on the owner
// before the host hears back.
func BenchmarkGroupReservations(b *testing.B) {
	g := startGroup(b)
	_, _, owner := g.roles()
	var ok bool
	owner.call("volume_set_owner", map[string]any{"nguid": owner.defaultNGUID(), "node_id": owner.id}, &ok)
	addVolatileNamespace(b, owner.daemon)
	h := newResvHost(b, "A", 1)
	h.connect(owner.addr())
	defer h.close()
	benchResvLatency(b, h, defaultNSID, 2)
}
