package group_test

import (
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"sluice/engine/group"
	"sluice/engine/reservation"
	"sluice/engine/sim"
)

// leaderDeath is where the group leader is when it dies holding a command the volume's
// owner forwarded to it.
type leaderDeath int

const (
	// diesBeforeReplicating: the leader proposed the entry and died before any member
	// received it.
	diesBeforeReplicating leaderDeath = iota
	// diesUncommittedOnBGL: the BGL holds the entry, the leader never learned it (so it
	// was not committed); the BGL, taking over, commits it with its first entry.
	diesUncommittedOnBGL
	// diesCommittedOwnerUnaware: the leader and the BGL committed and applied the entry;
	// the owner neither holds it nor heard the answer.
	diesCommittedOwnerUnaware
	// diesCommittedAnswerLost: the entry committed and the owner applied it; the leader's
	// answer was lost.
	diesCommittedAnswerLost
)

// failoverRun is what one forwarded-command-versus-leader-death scenario measured.
type failoverRun struct {
	err                error
	res                reservation.Result
	answered           bool
	killed, elected    time.Duration // virtual time of the kill and of the new leader's election
	answeredAt         time.Duration
	genBefore          uint32
	gens               map[uint64]uint32 // the volume's generation at every live node, after
	registered         map[uint64]bool
	resent, duplicates uint64
	alreadyApplied     uint64 // commands a leader answered from its record of applied ones
	hash               uint64
}

// raftType returns the type of the raft message an envelope carries, or -1.
func raftType(env *group.Envelope) raftpb.MessageType {
	if env.Kind != group.EnvRaft {
		return -1
	}
	var m raftpb.Message
	if m.Unmarshal(env.Raft) != nil {
		return -1
	}
	return m.Type
}

// leaderLoss is one scenario of runLeaderDeath.
type leaderLoss struct {
	death leaderDeath
	vol   [16]byte
	cmd   reservation.Command
	// ownerIsBGL: the owner is the BGL (else the third member); isolate: the leader is
	// cut off from the others instead of killed, and the cut heals once the owner's
	// caller is answered.
	ownerIsBGL, isolate bool
}

// runLeaderDeath starts a three-node group, makes a member other than the leader the
// owner of the scenario's volume, has the owner forward the command to the leader, kills
// (or isolates) the leader at the point the scenario names, and runs until the owner's
// caller is answered.
func runLeaderDeath(t *testing.T, seed uint64, sc leaderLoss) failoverRun {
	t.Helper()
	death, vol, cmd := sc.death, sc.vol, sc.cmd
	c := sim.NewCluster(t, seed, sim.Options{Nodes: 3, Group: "g1", BGL: 2})
	l := c.ReadyLeader(30 * time.Second)
	c.Run(2 * time.Second)
	bgl := c.Node(l).Status().BGL
	owner := other(c, l, bgl)
	if sc.ownerIsBGL {
		owner = bgl
	}
	if bgl == 0 || owner == 0 {
		t.Fatalf("leader %d, bgl %d, owner %d", l, bgl, owner)
	}
	if err := c.Node(l).SetOwner(t.Context(), vol, owner); err != nil {
		t.Fatal(err)
	}
	reserve(t, c, owner, vol, register(hostY, 0xBB)) // a first registration, generation 1
	c.Run(time.Second)
	var out failoverRun
	before, _ := c.Node(owner).Volume(vol)
	out.genBefore = before.State.Generation

	// The filter sees every envelope as it is sent: it arms when the owner forwards the
	// command, then drops what the scenario says the dying leader never got across.
	armed := false
	c.Net.Filter = func(from, to uint64, env *group.Envelope) bool {
		if env.Kind == group.EnvRequest && from == owner && to == l && env.Request.Op == group.OpReserve {
			armed = true
		}
		if !armed {
			return true
		}
		rt := raftType(env)
		switch death {
		case diesBeforeReplicating:
			return !(from == l && rt == raftpb.MsgApp)
		case diesUncommittedOnBGL:
			return !(from == l && to != bgl && rt == raftpb.MsgApp) &&
				!(from == bgl && to == l && rt == raftpb.MsgAppResp)
		case diesCommittedOwnerUnaware:
			return !(from == l && to == owner && (rt == raftpb.MsgApp || env.Kind == group.EnvReply))
		case diesCommittedAnswerLost:
			return !(from == l && to == owner && env.Kind == group.EnvReply)
		}
		return true
	}
	c.Node(owner).ReserveAsync(vol, cmd, func(r reservation.Result, err error) {
		out.answered, out.res, out.err, out.answeredAt = true, r, err, c.W.Elapsed()
	})
	switch death {
	case diesBeforeReplicating, diesUncommittedOnBGL:
		c.RunUntil("the command forwarded", time.Second, func() bool { return armed })
		c.Run(20 * time.Millisecond) // the leader proposed it (and sent it to the BGL)
	case diesCommittedOwnerUnaware:
		c.RunUntil("the leader applied the command", time.Second, func() bool {
			return registered(c, l, vol, cmd.From)
		})
	case diesCommittedAnswerLost:
		c.RunUntil("the owner applied the command", time.Second, func() bool {
			return registered(c, owner, vol, cmd.From)
		})
	}
	if out.answered {
		t.Fatalf("the owner's caller was answered before the leader died: %v %v", out.res.Status, out.err)
	}
	if sc.isolate {
		c.Net.Isolate(l, c.IDs)
	} else {
		c.Crash(l)
	}
	out.killed = c.W.Elapsed()
	c.RunUntil("the owner's caller answered", 30*time.Second, func() bool {
		if out.elected == 0 {
			if nl := c.Leader(); nl != 0 && nl != l {
				out.elected = c.W.Elapsed()
			}
		}
		return out.answered
	})
	c.Net.Heal()
	c.Run(3 * time.Second) // every live member applies what the new leader committed
	out.gens, out.registered = map[uint64]uint32{}, map[uint64]bool{}
	for _, id := range c.IDs {
		if n := c.Node(id); n != nil {
			v, _ := n.Volume(vol)
			out.gens[id] = v.State.Generation
			out.registered[id] = v.State.Registered(cmd.From)
			s := n.Status()
			out.duplicates += s.Counters.Duplicates
			out.alreadyApplied += s.Counters.AlreadyApplied
		}
	}
	out.resent = c.Node(owner).Status().Counters.Resent
	out.hash = c.W.Hash()
	return out
}

// TestForwardedCommandOutlivesLeader: a command the volume's owner forwarded to the group
// leader is answered soon after the leader dies, wherever the leader was with it: at
// once if it never got out (re-sent to the new leader, which proposes it), once the new
// leader has applied it if it did (the re-sent copy finds it in the record of applied
// commands), never at the 10 s forwarding deadline; it applies exactly once (the
// generation moves by one on every member); and the persistent command is answered only
// once the new BGL holds it.
func TestForwardedCommandOutlivesLeader(t *testing.T) {
	persistent, other := registerPTPL(hostX, 0xAA), register(hostX, 0xAA)
	cases := []struct {
		name string
		sc   leaderLoss
		// resent: the owner sends the command again to the new leader (itself, if it is
		// the BGL); fromRecord: which finds that its first copy applied.
		resent, fromRecord bool
	}{
		{"before replicating", leaderLoss{death: diesBeforeReplicating, vol: volA, cmd: persistent}, true, false},
		{"before replicating, not persistent", leaderLoss{death: diesBeforeReplicating, vol: volB, cmd: other}, true, false},
		{"uncommitted on the BGL", leaderLoss{death: diesUncommittedOnBGL, vol: volA, cmd: persistent}, true, true},
		{"committed, owner unaware", leaderLoss{death: diesCommittedOwnerUnaware, vol: volA, cmd: persistent}, true, true},
		{"committed, answer lost", leaderLoss{death: diesCommittedAnswerLost, vol: volA, cmd: persistent}, false, false},
		{"owner is the BGL, before replicating",
			leaderLoss{death: diesBeforeReplicating, vol: volA, cmd: persistent, ownerIsBGL: true}, true, false},
		{"owner is the BGL, uncommitted",
			leaderLoss{death: diesUncommittedOnBGL, vol: volA, cmd: persistent, ownerIsBGL: true}, true, true},
		// The old leader lives on, cut off, with its copy in its log; once the cut heals
		// that copy is overwritten, and its late refusal answers nobody.
		{"leader isolated, before replicating",
			leaderLoss{death: diesBeforeReplicating, vol: volA, cmd: persistent, isolate: true}, true, false},
	}
	const election = time.Duration(group.DefaultElectionTicks) * group.DefaultTickInterval
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runLeaderDeath(t, sim.Seed(t), tc.sc)
			took := r.answeredAt - r.killed
			var afterElection time.Duration // 0: answered before a new leader was elected
			if r.elected != 0 {
				afterElection = r.answeredAt - r.elected
			}
			t.Logf("answered %v after the kill, %v after the new leader's election: %v %v; resent %d",
				took, afterElection, r.res.Status, r.err, r.resent)
			if r.err != nil || r.res.Status != reservation.StatusOK {
				t.Errorf("answer %v %v, want success", r.res.Status, r.err)
			}
			// The BGL campaigns ElectionTicks+2 ticks after the leader's last heartbeat;
			// the answer follows the new leader's first entries, its incarnation
			// decision and (persistent commands) its designation of a new BGL: a few
			// ticks, nowhere near the 10 s forwarding deadline. (An owner that applied
			// the entry answers as soon as its lease on the dead leader ends.)
			if took > election+time.Second || afterElection > 5*group.DefaultTickInterval {
				t.Errorf("answered %v after the kill, %v after the new leader's election; want within %v and %v",
					took, afterElection, election+time.Second, 5*group.DefaultTickInterval)
			}
			for id, g := range r.gens {
				if g != r.genBefore+1 || !r.registered[id] {
					t.Errorf("node %d: generation %d (was %d), registered %v: want one application",
						id, g, r.genBefore, r.registered[id])
				}
			}
			if r.duplicates != 0 {
				t.Errorf("%d duplicate entries reached the log", r.duplicates)
			}
			if (r.resent != 0) != tc.resent || (r.alreadyApplied != 0) != tc.fromRecord {
				t.Errorf("resent %d, answered from the record %d; want resent %v, from the record %v",
					r.resent, r.alreadyApplied, tc.resent, tc.fromRecord)
			}
		})
	}
}

// TestForwardedCommandOutlivesLeaderDeterministic: one seed, one run, re-send included.
func TestForwardedCommandOutlivesLeaderDeterministic(t *testing.T) {
	seed := sim.Seed(t)
	for _, death := range []leaderDeath{diesBeforeReplicating, diesUncommittedOnBGL} {
		sc := leaderLoss{death: death, vol: volA, cmd: registerPTPL(hostX, 0xAA)}
		a, b := runLeaderDeath(t, seed, sc), runLeaderDeath(t, seed, sc)
		if a.hash != b.hash || a.answeredAt != b.answeredAt {
			t.Errorf("death %d: same seed, different runs: %x at %v != %x at %v",
				death, a.hash, a.answeredAt, b.hash, b.answeredAt)
		}
	}
}
