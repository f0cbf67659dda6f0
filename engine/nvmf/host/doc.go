// Package host is sluice's Go NVMe/TCP initiator: it connects to an NVMe-oF controller
// over TCP, brings it up the way the Linux host does, and issues admin and I/O
// commands.
//
// What it owns:
//   - the host end of the NVMe/TCP transport (TCP §3): ICReq/ICResp, PDU framing and
//     digests, in-capsule data, R2T answered with H2CData, C2HData reassembly
//     (conn.go, queue.go);
//   - the admin queue and the controller bring-up sequence of PROTOCOLS.md §1.5:
//     Fabrics Connect, Property Get CAP/VS, Property Set CC, CSTS.RDY, Identify
//     Controller with the Linux hard gates, Set Features Number of Queues, keep-alive
//     and asynchronous events (controller.go, admin.go);
//   - the discovery client (discovery.go);
//   - I/O queues, with synchronous helpers for tests and an asynchronous, pipelined,
//     allocation-free API for the benchmark (ioqueue.go);
//   - reservation commands on an I/O queue: Register, Acquire, Release and Report
//     (EDS), returning the completion's status as sent, DNR included, so that a test
//     tells a retryable refusal (Command Interrupted) from Reservation Conflict
//     (resv.go);
//   - busy polling (busypoll.go): BusyPoll moves a queue off Go's netpoller onto raw
//     non-blocking syscalls on the caller's thread, waiting on a private epoll
//     instance with SPDK's socket buffer sizes, and Poll reaps without waiting, so
//     that one pinned thread drives several queues the way spdk_nvme_perf does;
//   - RawConn, a bare connection for robustness tests that send malformed PDUs and
//     read the termination request that comes back (raw.go).
//
// It is strict on purpose: everything the target sends is validated (ICResp fields as
// Linux checks them, PDU layouts, header and data digests, CIDs, SQID and SQHD,
// C2HData offsets, SUCCESS only with LAST_PDU and only when SQ flow control is off,
// R2T offsets and windows, the Identify Controller gates; the CQE SQID unless
// Options.AcceptAnySQID, for SPDK's target) and any violation is a typed
// error (*ProtocolError, *TermReqError, *StatusError), so that tests catch target bugs.
// After a transport-level violation the host sends an H2CTermReq naming the field
// (FES, FEI) and closes the connection, as TCP §3.6.2.4 asks.
//
// Who may call it: tests (engine/nvmf and the end-to-end suites), the benchmark
// (bench/), and the command-line tools. The controller and its admin queue are safe
// for concurrent use; an IOQueue belongs to one goroutine at a time.
//
// What it must never be: the proof of interoperability. It speaks the same wire
// protocol as the Linux host and applies the same gates, but passing against this
// package proves only that the target agrees with another reading of the spec by the
// same team; the Linux kernel host (nvme-tcp, under qemu) is the interop proof. It
// also never runs inside the target process's reactors, never imports the target
// (engine/nvmf; only its external tests in package host_test start one), and never
// allocates or spawns goroutines on the asynchronous I/O path (SubmitRead,
// SubmitWrite, Flush, Reap, Poll).
//
// Tests: fake_test.go is a scripted in-package controller on a loopback listener
// (with hooks that break it on purpose) for what needs no target; violation_test.go
// holds the strictness table; integration_test.go drives the real target;
// busypoll_test.go checks the busy-polling path (no allocation, timeouts, the
// synchronous helpers on top of it).
package host
