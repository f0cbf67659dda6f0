package group

import (
	"sluice/engine/reservation"
)

// Status is a node's view of its group, for group_get_status and tests. The backup
// group leader's synchronization is known only at the group leader (it alone tracks raft
// Progress); elsewhere BGLSync is nil (the RPC asks the leader: LeaderStatus).
type Status struct {
	NodeID     uint64 `json:"node_id"`
	PeerAddr   string `json:"peer_address"`
	Group      string `json:"group,omitempty"`
	Standalone bool   `json:"standalone"`
	// RaftState is leader, follower, candidate or pre-candidate.
	RaftState string         `json:"raft_state"`
	Leader    uint64         `json:"leader"`
	BGL       uint64         `json:"bgl"`
	Members   []MemberStatus `json:"members"`
	Term      uint64         `json:"term"`
	Commit    uint64         `json:"commit_index"`
	Applied   uint64         `json:"applied_index"`
	// Incarnation is the group incarnation this node has applied; HeldIncarnation the one
	// it holds in memory (0 until a live leader confirmed one to it since it started).
	Incarnation     uint64 `json:"incarnation"`
	HeldIncarnation uint64 `json:"held_incarnation"`
	// Decided: the current leader's incarnation decision is applied here, so the local
	// reservation state is the group's (see Revalidate).
	Decided bool        `json:"decided"`
	BGLSync *SyncStatus `json:"bgl_sync,omitempty"`
	// Failed is the storage error that stopped the node, if any.
	Failed   string   `json:"failed,omitempty"`
	Counters Counters `json:"counters"`
}

// MemberStatus is one member in a Status. Match and LastAckMs are known at the leader.
type MemberStatus struct {
	ID      uint64 `json:"id"`
	Addr    string `json:"addr"`
	Learner bool   `json:"learner,omitempty"`
	Match   uint64 `json:"match,omitempty"`
	// LastAckMs is how long ago the member last answered the leader, in milliseconds (-1:
	// never, or not the leader's view).
	LastAckMs int64 `json:"last_ack_ms"`
}

// SyncStatus is the backup group leader's synchronization as the group leader judges it
// (DESIGN.md, the admission rule).
type SyncStatus struct {
	Synchronized bool `json:"synchronized"`
	// Lacks is how many committed entries the BGL has not acknowledged (commit - Match).
	Lacks uint64 `json:"lacks_entries"`
	// LastAckMs is how long ago the BGL last answered, in milliseconds (-1: never).
	LastAckMs int64 `json:"last_ack_ms"`
}

// Counters count admission decisions at this node (the group leader makes them; a
// follower counts what it forwarded).
type Counters struct {
	// SyncQueries counts admission decisions that asked for the BGL's synchronization
	// state: one per command that asks to persist, none for the others (patent US10733066
	// claim 1; PROTOCOLS.md P4).
	SyncQueries uint64 `json:"sync_queries"`
	// Refused counts refusals, by reason; Refusals is their sum.
	RefusedNotSynchronized uint64 `json:"refused_not_synchronized"`
	RefusedNoBackup        uint64 `json:"refused_no_backup"`
	RefusedNoQuorum        uint64 `json:"refused_no_quorum"`
	RefusedNoLeader        uint64 `json:"refused_no_leader"`
	RefusedNotReady        uint64 `json:"refused_not_ready"`
	Refusals               uint64 `json:"refusals"`
	// AdmittedPersistent and AdmittedOther count proposals the leader admitted.
	AdmittedPersistent uint64 `json:"admitted_persistent"`
	AdmittedOther      uint64 `json:"admitted_other"`
	// Forwarded counts commands this node sent to the group leader; Resent those it sent
	// again to a new leader because the one it had asked was lost before answering.
	Forwarded uint64 `json:"forwarded"`
	Resent    uint64 `json:"resent"`
	// AlreadyApplied counts commands the leader answered from the record of applied
	// commands instead of proposing them (a re-sent command whose first copy committed);
	// Duplicates counts log entries this node skipped at apply because their command had
	// applied already (none, while every leader checks the record before proposing).
	AlreadyApplied uint64 `json:"already_applied"`
	Duplicates     uint64 `json:"duplicates"`
}

// count records a refusal.
func (c *Counters) count(err error) {
	switch codeOf(err) {
	case CodeNotSynchronized:
		c.RefusedNotSynchronized++
	case CodeNoBackup:
		c.RefusedNoBackup++
	case CodeNoQuorum:
		c.RefusedNoQuorum++
	case CodeNoLeader:
		c.RefusedNoLeader++
	case CodeNotReady:
		c.RefusedNotReady++
	default:
		return
	}
	c.Refusals++
}

// VolumeState is a volume's record as this node has applied it.
type VolumeState struct {
	NGUID [16]byte
	State reservation.State
	// Owner is the node that exports the volume (0: not set).
	Owner uint64
	// Index is the log index of the entry that last changed the record, and Incarnation
	// the group incarnation it was applied in: a manager that cached (Index, Incarnation)
	// knows its copy is current when both match (see Revalidate).
	Index       uint64
	Incarnation uint64
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventVolume: an applied entry changed a volume's record (Volume, Result, Cause).
	EventVolume EventKind = iota + 1
	// EventLeader: the group leader changed or was lost (Leader, Term). Cached
	// reservation data must be revalidated (Revalidate).
	EventLeader
	// EventResync: the local state was replaced wholesale (a snapshot arrived, the node
	// joined or left a group) or events were lost because the subscriber fell behind:
	// re-read every volume.
	EventResync
)

// Cause says why a volume changed.
type Cause uint8

// Causes.
const (
	CauseCommand Cause = iota + 1
	CauseClear
	CauseOwner
	CausePowerCycle
)

// Event is one change a subscriber hears of, in apply order.
type Event struct {
	Kind   EventKind
	Volume VolumeState
	// Result is the reservation result of the entry that changed the volume: the notices
	// to deliver and the subjects to abort. Every node computes the same Result; the
	// volume's owner delivers it.
	Result reservation.Result
	Cause  Cause
	Leader uint64
	Term   uint64
}
