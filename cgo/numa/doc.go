// Package numa is sluice's thin binding to libnuma: it answers which NUMA nodes exist,
// which node a CPU belongs to, and binds a range of memory to one node.
//
// What it owns: nothing but the libnuma calls. It keeps no state of its own.
//
// Who may call it: setup code only (engine/mem when a domain maps its memory, the reactor
// when it pins itself). A cgo call costs about 30 ns, so these functions are never on an
// I/O path; each is called once per domain or once per reactor.
//
// What it must never do: allocate or touch the memory it binds (binding happens before
// the caller pre-faults, so that the first touch lands on the right node), hold Go
// pointers across the C boundary (addresses are passed as uintptr of memory the caller
// mapped outside the Go heap), or be imported by anything outside engine/{mem,reactor}.
//
// Without cgo (CGO_ENABLED=0) the package reports a single node 0 and Bind is a no-op
// that returns ErrNotSupported, so the rest of sluice builds and runs unbound.
package numa
