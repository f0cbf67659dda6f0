// Package group is the storage group (DESIGN.md, "Reservations and the group"; patent
// US10733066): several sluice daemons keep one replicated reservation database and one
// group configuration through raft (go.etcd.io/raft/v3). The raft leader is the group
// leader (GL); one designated member is the backup group leader (BGL), its preferred
// successor. A daemon with no group is a standalone node: a group of one with no name,
// its own leader with no backup.
//
// # What it owns
//
//   - Consensus: a raft.RawNode driven by the node's Loop (no goroutine of its own; ticks,
//     messages and proposals are functions run on the Loop), its log, HardState and
//     snapshots in a Storage (bbolt in production, storage_bolt.go), its messages in
//     msgpack Envelopes over a Transport (TCP in production, transport_tcp.go; frames are
//     a 4-byte big-endian length and one msgpack Envelope, codec.go). CheckQuorum and
//     PreVote are on. The log is compacted by snapshots of the applied state every
//     SnapshotEntries entries (and on every membership change, so that a joining node
//     gets a snapshot that names it).
//   - The replicated state (state.go): the group name, members and their peer
//     addresses, the BGL, the incarnation, per volume (NGUID) its reservation.State
//     and owner, and a record of the last commands applied (AppliedID), so that each
//     applies at most once. It changes only by applying committed entries (entry.go: a
//     reservation.Command, an operator clear, an owner, a designation, a name, an
//     incarnation decision; membership through raft conf changes), deterministically, so
//     every node computes the same reservation.Result for every entry.
//   - The admission rule (request.go), failover and BGL designation (elect.go), the
//     whole-group restart decision (incarnation.go), forwarding to the GL (and to the
//     next one, below) and the ReadIndex barrier (forward.go), the RPC methods (rpc.go).
//
// # The admission rule
//
// A reservation command reaches the GL (forwarded by the node it arrived at). The GL asks
// reservation.AsksToPersist of the volume's state as it will be once the proposals in
// flight apply. A command that does not ask to persist is proposed at once and never
// queries the sync state. One that asks is counted in Counters.SyncQueries and proposed
// only while the BGL is synchronized:
//
//	synchronized = BGL.Match >= lastPersist  (raft Progress: it acknowledged every
//	                                          committed entry admitted as persistent)
//	             && BGL answered (MsgAppResp/MsgHeartbeatResp) within the heartbeat
//	                window (HeartbeatTicks ticks)
//
// If it is not, the command waits up to one heartbeat window for the BGL to catch up (a
// BGL that is one pipelined append behind, or whose last answer is a moment older than
// the window, catches up well within it, so a healthy group never refuses), then is
// refused with ErrNotSynchronized; with no BGL (none designated, or it is the GL itself)
// it is refused with ErrNoBackup, at once if the group has no other voter. A refusal
// wraps ErrRetryable, is counted by reason, and changes nothing: the command never
// reached the log. An admitted persistent command is answered only once the BGL's Match
// covers its own entry; should the BGL fall silent right after admission, the GL answers
// with the applied result after an election timeout (the entry is committed everywhere
// by then; never answering would not undo it). Whatever it asks, the GL admits nothing
// while it has not heard from a quorum within an election timeout (ErrNoQuorum: the
// leader lease), nor before it has decided the incarnation (ErrNotReady). A standalone
// node admits persistent commands (it persists locally); a named group with no BGL
// refuses them. The operator's ClearReservation obeys the rule on a volume with
// persistence on unless forced.
//
// # Failover
//
// The driver (elect.go) replaces raft's randomized election timer, which reads
// crypto/rand: followers count quiet ticks; after ElectionTicks the lease is over
// (ForgetLeader); the BGL campaigns two ticks later, the others after a seeded 1.5 to 2
// election timeouts. So the BGL wins: about 5.2 s after the GL's last heartbeat with the
// default timings. A new leader that is not the BGL hands leadership to it (raft
// TransferLeader) once it is synchronized, or, if it stays silent for an election
// timeout, designates another. A leader that is the BGL, or whose BGL left the group,
// designates the lowest-ID synchronized voter. The BGL is not replaced while the GL lives
// and it is merely stalled: persistent commands are refused until it returns or the
// operator designates another (DesignateBGL).
//
// # A command in flight when the leader dies
//
// A command forwarded to a GL that dies before answering is not left to its forwarding
// deadline (two election timeouts): as soon as the forwarding node sees another leader,
// it sends the command again (Request.Resent), or takes it itself if it leads. Every
// command carries its EntryID, and the new leader admits nothing before it has applied
// every entry before its term. Then a copy of the command that committed under the old
// GL has applied and is in the record of applied commands: the leader answers its
// outcome (a persistent one once the BGL holds that copy's entry, as always) instead of
// proposing it. A copy that is not in the record is not in the leader's log, and can
// never commit beside what the leader commits (raft's log matching), so the leader
// proposes the command and it applies once. Should a second copy reach the log anyway,
// apply skips it. The record keeps the last appliedIDsKept commands; a command older than
// what it covers (Request.Since) is answered ErrOutcomeUnknown. An attempt is good only
// in the raft term it was sent in (Request.Term), so a copy of it can only be made by
// that term's leader. The forwarding node trusts a refusal only from the leader it
// asked last (Request.Try) and only when that leader checked the record, so that no copy
// can still commit; otherwise it asks again, and at the deadline answers
// ErrOutcomeUnknown. So a host with a command in flight sees the failover take about as
// long as the election: its answer comes a few ticks after the new GL's.
//
// # Whole-group restart
//
// Reservations that do not persist through power loss must vanish when the whole group
// loses power, and nothing may vanish when some nodes restart while others keep running.
// The raft log is on every disk either way, so the group tells the two apart by memory:
// every node holds, in memory only, the incarnation it has seen alive. It is 0 after the
// process starts and becomes the group's current incarnation when a live leader confirms
// it (EnvConfirm, in answer to the node's EnvReport) or when the node is that leader.
// The rule, run by every new leader once it has applied everything before its term and
// before it admits anything:
//
//   - if the leader itself, or any member reporting to it, holds the current
//     incarnation, the group survived: the leader commits EntryConfirm;
//   - if every voter reported not holding it, or an election timeout passed and a quorum
//     of voters (the leader included) did so with no report of holding it, the whole
//     group restarted: the leader commits EntryPowerCycle, which moves the incarnation on
//     and takes every volume through reservation.State.AfterPowerLoss (PTPL state kept
//     with generation 0, the rest dropped).
//
// Why it is right: a node can hold the incarnation only if, since it started, a live
// holder confirmed it, so holding is passed from memory to memory and lost only when
// every holder stopped; a rolling restart (one node at a time, each rejoining before the
// next stops) therefore never looks like a power loss. A survivor always reports holding
// (reports repeat every heartbeat until confirmed), so one reachable survivor is enough
// to keep the state. The quorum-after-timeout clause lets a group whose member stays
// dead (or boots slowly) decide: a survivor the leader cannot reach for an election
// timeout is partitioned from the group and, its manager revalidating before trusting its
// cache (below), serves nothing from it; when it returns it applies the power cycle. A
// standalone node is a group of one, so its every restart is a power cycle: persistent
// state survives a daemon restart, the rest does not.
//
// # What the manager must do (patent claim 2, PROTOCOLS.md P5)
//
//  1. After Open, Subscribe first, then call Revalidate before publishing any View: it
//     returns once this node has applied the current leader's incarnation decision and
//     every entry committed before the call (raft ReadIndex), so Volume returns the
//     group's state (after a whole-group restart, already without non-persistent state).
//  2. Reservation commands go to Reserve (or ReserveAsync) from the manager's goroutine,
//     never from a reactor; when it returns, the local state includes the command. Map
//     an error wrapping ErrRetryable, or ErrOutcomeUnknown, to NVMe Command Interrupted
//     (SCT 0, SC 21h) with DNR clear / SCSI BUSY; never to Reservation Conflict.
//  3. On EventVolume, install the event's VolumeState as the volume's View (on every node
//     that exports it) and deliver the Result's notices and aborts (the owner does).
//  4. On EventLeader (the GL changed or was lost) and on EventResync, treat every cached
//     View as unvalidated: keep serving I/O conflict checks from it (only the owner's own
//     commands, an operator clear or a power cycle change a volume, and the latter two
//     arrive as events), hold new reservation commands, call Revalidate, and then, for
//     each volume, compare the cached (Index, Incarnation) with Volume's: if they differ,
//     clear the cached reservation data and reload it from Volume. Retry Revalidate while
//     it fails (no leader, no quorum).
//  5. Never call a blocking method of Node on a reactor or while holding a lock a reactor
//     takes; ReserveAsync's callback runs on the group's loop and must only hand the
//     result to the manager's own queue.
//
// # Who may call it
//
// The node's reservation manager (Reserve, Volume, Subscribe, Revalidate), the daemon's
// wiring (Open, Close, RegisterRPC) and the RPC handlers. engine/sim drives it in tests.
//
// # What it must never do
//
// Read the wall clock or an unseeded random source in a decision (only Loop.Now and the
// seeded rng); iterate a map where the order changes messages, proposals or answers;
// block its loop on the network, a reactor or a caller (Transport.Send queues, callbacks
// must not block); hold a lock while it waits on the network; answer a persistent
// command before the BGL holds it (but for the silent-BGL timeout above); change
// reservation state except by applying committed entries.
package group
