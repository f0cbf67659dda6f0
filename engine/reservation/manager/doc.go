// Package manager is a node's reservation service: the protocol targets' reactors never
// change reservation state themselves. They put each reservation command on the
// manager's control ring; the manager has its Decider decide it (the storage group,
// engine/group, whose group leader applies the backup leader's admission rule; or a
// standalone node's store), publishes the volume's new snapshot, waits until every
// reactor has run a step after the publication (so a fenced host's next I/O is refused),
// drains the in-flight commands of hosts a preempt-and-abort removed, delivers the
// notices through the targets' Sinks, and sends the answer back to the reactor the
// command came from.
//
// The I/O path reads a Volume's View through an atomic pointer: no lock, no allocation.
// One Volume per volume (keyed by the bdev's NGUID) is shared by every protocol that
// exports it, so that a reservation taken through one protocol binds the other.
//
// Who may call it: protocol targets (Submit, on their reactors) and the daemon's wiring
// (New, Refresh after the group reports a change). It must never block a reactor:
// answers, barriers and drains are reactor messages.
package manager
