package group

import (
	"go.etcd.io/raft/v3"
)

// publish copies what other goroutines may read (Status, Volume) out of the loop's
// state. Called by the loop after every settle; it holds pubMu only to swap values.
func (n *Node) publish() {
	c := &n.c
	if c.st == nil {
		return
	}
	s := c.status()
	var vols map[[16]byte]VolumeState
	if c.dirtyAll {
		vols = make(map[[16]byte]VolumeState, len(c.st.vols))
		for k := range c.st.vols {
			vols[k] = c.volumeState(k)
		}
	}
	n.pubMu.Lock()
	n.pubStatus = s
	if vols != nil {
		n.pubVols = vols
	} else {
		for k := range c.dirty {
			n.pubVols[k] = c.volumeState(k)
		}
	}
	n.pubMu.Unlock()
	c.dirtyAll = false
	clear(c.dirty)
}

var raftStateNames = map[raft.StateType]string{raft.StateFollower: "follower",
	raft.StateCandidate: "candidate", raft.StateLeader: "leader",
	raft.StatePreCandidate: "pre-candidate"}

// status computes this node's Status. Called on the loop.
func (c *core) status() Status {
	s := Status{NodeID: c.n.id, PeerAddr: c.n.cfg.PeerAddr, Group: c.groupName(),
		Standalone: c.standalone(), RaftState: raftStateNames[c.soft.RaftState],
		Leader: c.soft.Lead, BGL: c.st.bgl, Term: c.term, Commit: c.commit, Applied: c.applied,
		Incarnation: c.st.incarnation, HeldIncarnation: c.held,
		Decided:  c.soft.Lead != raft.None && c.st.decisionTerm == c.term,
		Counters: c.counters}
	if c.failed != nil {
		s.Failed = c.failed.Error()
	}
	leader := c.isLeader()
	now := c.n.loop.Now()
	for _, m := range c.st.members {
		ms := MemberStatus{ID: m.ID, Addr: m.Addr, Learner: m.Learner, LastAckMs: -1}
		if leader {
			pr, _ := c.progress(m.ID)
			ms.Match = pr.Match
			if t, ok := c.lastAck[m.ID]; ok {
				ms.LastAckMs = now.Sub(t).Milliseconds()
			}
			if m.ID == c.n.id {
				ms.LastAckMs = 0
			}
		}
		s.Members = append(s.Members, ms)
	}
	if bgl := c.st.bgl; leader && bgl != 0 && bgl != c.n.id && c.st.isVoter(bgl) {
		pr, _ := c.progress(bgl)
		sync := &SyncStatus{Synchronized: c.synced(bgl, c.commit), LastAckMs: -1}
		if pr.Match < c.commit {
			sync.Lacks = c.commit - pr.Match
		}
		if t, ok := c.lastAck[bgl]; ok {
			sync.LastAckMs = now.Sub(t).Milliseconds()
		}
		s.BGLSync = sync
	}
	return s
}
