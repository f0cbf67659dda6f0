// Package reservation owns the reservation state of one volume: NVMe reservations (Base
// §8.19; Reservation Register / Acquire / Release / Report, the Reservation Persistence
// feature) and SCSI-3 persistent reservations (SPC-4 §5.13; PERSISTENT RESERVE OUT and IN,
// APTPL), plus the SCSI-2 RESERVE/RELEASE(6/10) reservation and the SPC-4 §5.13.3 ("CRH")
// rules for how it meets them. One [State] serves both protocols, because a volume exported over
// NVMe/TCP and iSCSI at once has one reservation: a SCSI holder blocks an unregistered NVMe
// host's writes and the other way round.
//
// What it owns:
//   - [State]: registrants in registration order, the reservation type and its holder, the
//     generation counter, persistence through power loss, the SCSI-2 holder.
//   - [State.Apply]: the only way to change a State. It is a pure function of the state and
//     a [Command]: the same sequence of commands gives the same state on every node, which is
//     what lets engine/group replicate commands as raft log entries. A command that fails
//     changes nothing. The [Result] says what to put on the wire ([Status], mapped to NVMe
//     status and SCSI sense by [Status.NVMe] and [Status.SCSI]), whom to notify ([Notice]:
//     NVMe Reservation Notification log entries, SCSI unit attentions) and, for
//     preempt-and-abort, whose in-flight commands to abort.
//   - [View]: an immutable, allocation-free conflict checker for the I/O path, published
//     per volume through an atomic pointer and read by every reactor.
//   - The report builders: NVMe Reservation Report data (through engine/proto/nvme) and the
//     SCSI PERSISTENT RESERVE IN data as plain values for engine/proto/scsi to encode.
//   - [AsksToPersist] (the admission question of DESIGN.md "Reservations and the group")
//     and [State.AfterPowerLoss].
//
// Identity mapping. A registrant is a [Subject]: an [Identity] plus how widely it matches.
//   - NVMe: the 128-bit host identifier from Connect. All controllers of one host share its
//     registration, and registrations outlive controllers (no controller IDs are kept, so
//     nothing dangles when one disconnects; spdk/spdk#1928).
//   - SCSI: the I_T nexus — initiator port (iSCSI name plus ISID) and target port (the
//     relative target port identifier). ALL_TG_PT widens a registration to every target
//     port. [State.IgnoreISID] (LIO's enforce_pr_isids=0, SCST's SKIP_ISID) matches
//     initiators by name only, so an open-iscsi re-login with a new ISID keeps its
//     registration (spdk/spdk#989); the price is that two sessions of one initiator share one
//     registration.
//   - The two kinds never match each other: a host that reaches the volume over both
//     protocols registers on both, as a SCSI initiator registers each I_T nexus. They meet
//     through keys and the reservation: a PREEMPT's key removes NVMe and SCSI registrants
//     alike, a SCSI holder's reservation gates NVMe I/O, and notices go to whichever
//     protocol the affected registrant uses.
//   - The reservation type is unified ([Type]); NVMe and SCSI number the same six types
//     differently ([TypeFromNVMe], [TypeFromSCSI]).
//
// Who may call it. The node's reservation manager (engine/group's leader side) owns each
// volume's State and is its only writer: it applies admitted commands in log order, then
// publishes a fresh View. Reactors read Views; they never call Apply. State is not safe for
// concurrent use; a View is immutable and safe for any number of concurrent readers.
//
// What it must never do: I/O, clocks, goroutines, locks, logging, randomness, or map
// iteration anywhere that decides a result; import anything but the standard library and
// engine/proto. Decisions depend only on the State and the Command, so that replicas agree.
package reservation
