// Package initiator is sluice's Go iSCSI initiator (RFC 7143) for tests, load
// generation and benchmarks: it logs in to an iSCSI target over TCP and runs SCSI
// commands and task management on one connection per session (MaxConnections=1,
// ErrorRecoveryLevel=0).
//
// What it owns:
//   - the login (login.go): normal and discovery sessions, SecurityNegotiation with
//     CHAP and mutual CHAP (MD5, SHA-1, SHA-256, SHA3-256), LoginOperationalNegotiation
//     of HeaderDigest, DataDigest, MaxRecvDataSegmentLength, MaxBurstLength,
//     FirstBurstLength, ImmediateData, InitialR2T and MaxOutstandingR2T, every answer
//     checked against the key's result function, C-bit continuations both ways;
//   - the command path (io.go): tags with a generation in the ITT, the CmdSN window
//     (commands wait in CmdSN order until ExpCmdSN <= CmdSN <= MaxCmdSN admits them),
//     immediate data, unsolicited Data-Out, R2Ts answered as they arrive (any number
//     outstanding), Data-In placed straight into the caller's buffer, status in the
//     last Data-In (phase collapse) or in the SCSI Response with sense and residuals;
//   - the receive machine (recv.go, conn.go): framing, digests, and the checks below;
//   - control requests (ctl.go): NOP-Out pings and answers to the target's NOP-In
//     pings, task management (ABORT TASK, LOGICAL UNIT RESET, any function raw),
//     Text and SendTargets with continuations, Logout;
//   - SCSI helpers (scsi.go): READ(16), WRITE(16) with FUA, SYNCHRONIZE CACHE, TEST
//     UNIT READY, READ CAPACITY(16), and Exec for any CDB.
//
// Two APIs share a session. The synchronous helpers run one command or request at a
// time. The asynchronous API (SubmitRead, SubmitWrite, Submit, Flush, Reap, Poll) is
// pipelined and allocation-free once warm: it spawns no goroutine, takes no lock,
// writes each batch with one writev from the caller's buffers and reads Data-In into
// them. A session belongs to one goroutine at a time; Close and Reset may come from
// any.
//
// It is strict on purpose: everything the target sends is checked, and any violation
// is a *ProtocolError (errors.Is ErrProtocol) that closes the connection: PDU framing
// and both digests; opcodes, reserved tags and the fixed bits of byte 1; StatSN on
// every PDU that carries or reports one; ExpCmdSN and MaxCmdSN never moving back or
// past the commands sent; Data-In ITT, DataSN, BufferOffset, length within the
// Expected Data Transfer Length and MaxBurstLength per sequence, F with S, no residual
// bits without S, no CHECK CONDITION by phase collapse; R2T ITT, LUN, TTT, R2TSN, in
// order offsets, length within MaxBurstLength and EDTL; residual flags and counts
// against the data that moved; ExpDataSN; sense data with every CHECK CONDITION; no
// PDU for a command after the task management response that ended it (RFC 7143
// §11.5.1); the NOP-In echo; Text F, C and TTT; nothing after the Logout Response.
// Login answers outside what was offered, an unanswered offer, or a refused required
// digest fail the login.
//
// Who may call it: tests (engine/iscsi's own external tests, tools/interop), load
// generators and benchmarks. It never imports the target (engine/iscsi): only its
// external tests start one. It must never be taken for the proof of
// interoperability: passing against it shows the target agrees with a second reading
// of RFC 7143 by the same team; open-iscsi and libiscsi are the interop proof.
//
// Tests: harness_test.go starts the real target (engine/iscsi over a malloc or delay
// bdev) the way engine/iscsi's own tests do; target_test.go drives it (negotiation,
// CHAP, discovery, the data paths, the window, residuals, pings, task management,
// logout, reinstatement); targetbug_test.go holds the target bugs found, failing until
// fixed; alloc_test.go counts allocations of the asynchronous path against the target;
// script_test.go plays a target from scripted bytes, for violation_test.go (each check
// above, one case each) and fuzz_test.go (FuzzRecv, the receive path).
package initiator
