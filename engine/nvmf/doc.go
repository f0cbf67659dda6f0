// Package nvmf is sluice's NVMe over Fabrics target: subsystems, namespaces,
// controllers, the discovery service, and the NVMe/TCP transport.
//
// Layout follows Linux nvmet and SPDK: subsystem.go (the object model and its control
// plane), ctrlr.go (controller state), fabrics_cmd.go, admin_cmd.go, io_cmd.go and
// discovery.go (command executors that parse the SQE, act, and complete the request
// with an NVMe status), tcp*.go (the transport: listeners, connections, PDU state
// machines, data movement), and rpc.go (the JSON-RPC methods).
//
// Threading: every connection, and the queue pair it carries, lives on one reactor
// and is read and written with non-blocking syscalls from that reactor's loop. A
// controller lives on the reactor of its admin queue; its I/O queues may live on other
// reactors and reach it by reactor messages (Connect, reset, keep-alive teardown).
// Namespaces are published to I/O queues as an immutable snapshot (atomic pointer), so
// the I/O path takes no lock. Subsystem membership (controllers, hosts, listeners) is
// control-plane state under a mutex, touched at connect time and by RPCs only.
//
// Who may call it: the daemon (tools/sluiced) and tests. It must never block a reactor
// and never allocate per I/O on the data path.
package nvmf
