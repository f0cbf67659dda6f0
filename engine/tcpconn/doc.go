// Package tcpconn owns the non-blocking TCP connection machinery that sluice's
// protocol targets share (NVMe/TCP in engine/nvmf, iSCSI in engine/iscsi): sockets
// registered on a reactor's epoll and read and written with raw syscalls, never Go's
// netpoller; a receive buffer that can land a large payload straight in its I/O buffer;
// a send queue flushed with batched writev that tells each request when its last
// byte left; listeners that hand accepted connections to the reactors round robin;
// and the limits that keep one host from starving the others (connections per
// listener and per peer, a setup timeout, a data timeout, a per-connection quota of
// buffers awaiting data), with their counters and rate-limited warnings.
//
// The protocols compose these parts; their state machines (PDU parsing, requests,
// controllers, sessions) stay theirs. Everything here is reactor-owned except the
// listener's limit bookkeeping and the counters, which are safe from any goroutine.
//
// Who may call it: protocol targets and their tests. It must never block a reactor,
// never allocate per I/O, and never know a protocol's wire format.
package tcpconn
