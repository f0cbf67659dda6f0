// Package reactor runs sluice's pinned, polling event loops, in the style of SPDK's
// reactors and threads.
//
// A Reactor is one goroutine locked to one OS thread pinned to one core. Its loop
// drains the reactor's message ring, collects ready file descriptors from its epoll
// instance, runs its active pollers, runs due timed pollers, and accounts the
// iteration as busy or idle. Everything a reactor owns (connections, queue pairs, I/O
// channels) is touched only from that loop; other goroutines reach it by Send, which
// pushes a message on a bounded lock-free MPSC ring. Delivery is reliable: when the
// ring is full a message waits in an overflow list, in order, so that a control
// message (a teardown, a notice, a Connect's answer) is never dropped and its sender
// never blocks (a reactor blocked on another reactor's ring could deadlock with it).
//
// Poll modes: ModeBusy never sleeps; ModeAdaptive (the default) sleeps in epoll_wait
// after it has been idle for IdleSpin, woken by an eventfd when a message arrives or
// by any registered fd; ModeInterrupt sleeps after every idle iteration.
//
// Who may call it: engine packages and the daemon. Pollers and fd handlers must never
// block: a reactor that blocks stalls every connection it owns.
package reactor
