// Package iscsi is sluice's iSCSI target (RFC 7143): portal groups that listen,
// initiator groups that say who may log in from where, target nodes that export bdevs
// as LUNs through the SCSI command layer (engine/scsi), CHAP secrets, discovery
// (SendTargets), sessions and their connections, and the data movement of the full
// feature phase: SCSI commands with immediate and unsolicited data, R2T and Data-Out,
// Data-In segmented at the initiator's MaxRecvDataSegmentLength and bursts at
// MaxBurstLength with the status in the last PDU, NOP pings both ways, task management,
// text negotiation and logout.
//
// Layout: target.go (the object model and its control plane), rpc.go (SPDK's iscsi_*
// methods), conn.go (a connection's PDU receive and send machine on engine/tcpconn),
// login.go (the login phase, driving engine/proto/iscsi's login state machine through
// its hooks), session.go (sessions, the CmdSN window, reinstatement), task.go (SCSI
// commands and their data), mgmt.go (NOP, text, logout, task management).
//
// Threading: like the NVMe/TCP target, each connection lives on one reactor and is read
// and written there with non-blocking syscalls; a session lives on the reactor of its
// leading connection, and connections added to it are placed on that reactor, so the
// CmdSN window and the tasks need no lock. The object model (portal and initiator
// groups, target nodes, the session table) is control-plane state under Target.mu, read
// on reactors at login only. Nothing waits on a reactor while holding Target.mu.
//
// Who may call it: the daemon (tools/sluiced) and tests. It must never block a reactor
// and never allocate per I/O on the data path.
package iscsi
