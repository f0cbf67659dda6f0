package reactor

import (
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/internal/sys"
)

// The wait policy: how a reactor that found nothing to do waits for work.
//
// An iteration that finds no work is idle, and consecutive idle iterations make an idle
// run, which ends at the next iteration that finds work. Busy mode polls through every
// idle run. Adaptive mode polls on until it has spent IdleSpin polling in the run, then
// waits in epoll; interrupt mode waits after every idle iteration. Only time spent
// polling counts toward IdleSpin: an iteration counts for at most idlePollCapNs, so a
// reactor thread that the kernel took off its core (another process's turn on a shared
// core) does not come back to find its spin used up and go to sleep at once.
//
// A wait has two depths, because the Go scheduler treats its two syscall entries
// differently:
//
//   - a nap (sys.EpollNap, a raw syscall) keeps the reactor's P. Waking from it costs
//     the kernel's wake-up and nothing more. Naps serve the first napWindowNs of an idle
//     run: the gaps between bursts of a loaded host, which are short and frequent.
//   - a deep sleep (sys.EpollSleep, through the scheduler's syscall entry) lets the
//     scheduler take the P while the reactor sleeps: after a tick (20 µs to 10 ms)
//     sysmon hands it to other goroutines, and a stop-the-world does not wait for the
//     reactor. Waking then costs reacquiring a P, and every retake sets sysmon polling
//     every 20 µs for a millisecond or more, on whichever core it lands. Deep sleeps
//     serve what is left of a long idle run: a quiet host, keep-alives, timed pollers.
//
// A nap holds a P, and a goroutine that needs one waits until the nap ends or sysmon
// preempts it (10 ms). That is harmless while the process has a P to spare for
// everything that is not a reactor, and a stall otherwise: with as many running
// reactors as GOMAXPROCS (or GOMAXPROCS lowered under them, as testing.AllocsPerRun
// does), naps would starve the RPC server, the tunnels and the tests' own goroutines.
// So a reactor naps only while GOMAXPROCS exceeds the number of running reactor
// loops, and otherwise sleeps deeply at once.
//
// A wait that ends without an fd or message (a timed poller's timeout, a signal)
// continues the idle run: the reactor runs its timed pollers and, if they found
// nothing, waits again at once, without spinning IdleSpin anew.
const (
	// idlePollCapNs bounds what one idle iteration adds to the spin: a poll of the
	// ring, epoll and the pollers takes about a microsecond, so an iteration longer
	// than this was interrupted (the kernel ran something else) rather than polling.
	idlePollCapNs = int64(20 * time.Microsecond)
	// napWindowNs is how long into an idle run a reactor naps, keeping its P, before
	// it sleeps deeply. Each nap is also bounded by it, so that with asynchronous
	// preemption off a stop-the-world waits at most this long.
	napWindowNs = int64(10 * time.Millisecond)
)

// idle runs after an iteration that found no work, from start to end.
//
// Preconditions: called on the reactor, from PollOnce.
func (r *Reactor) idle(start, end int64) {
	if r.idleAt < 0 {
		r.idleAt = start
	}
	r.spunNs += min(end-start, idlePollCapNs)
	switch r.cfg.Mode {
	case ModeInterrupt:
		r.wait()
	case ModeAdaptive:
		if r.spunNs >= int64(r.cfg.IdleSpin) {
			r.wait()
		}
	}
}

// wait blocks in epoll until an fd is ready, a message is sent, or the next timed
// poller is due, napping or sleeping deeply as the idle run's length says. The
// sleeping flag is raised before the last look at the ring, and Send checks it after
// pushing, so one of the two always sees the other.
//
// Preconditions: called on the reactor.
func (r *Reactor) wait() {
	r.sleeping.Store(true)
	if r.pendingMessages() || r.stopping.Load() {
		r.sleeping.Store(false)
		return
	}
	start := r.clock()
	timeoutNs := int64(-1)
	if len(r.timed) > 0 {
		if timeoutNs = r.nextTimedDue() - start; timeoutNs <= 0 {
			r.sleeping.Store(false)
			return
		}
	}
	deep := start-r.idleAt >= napWindowNs || !spareP()
	if !deep {
		nap := napWindowNs - (start - r.idleAt)
		if timeoutNs < 0 || nap < timeoutNs {
			timeoutNs = nap
		}
	}
	r.sleeps.Add(1)
	if deep {
		r.deepSleeps.Add(1)
	}
	n, _ := r.waitFn(ceilMs(timeoutNs), deep)
	r.sleeping.Store(false)
	r.nowNs = r.clock()
	r.sleepNs.Add(uint64(r.nowNs - start))
	r.idleNs.Add(uint64(r.nowNs - start))
	if n <= 0 {
		return // the idle run goes on
	}
	r.wakeups.Add(1)
	r.idleAt, r.spunNs = -1, 0
	r.dispatch(n)
}

// running counts the reactor loops running in the process (Start's goroutines; a
// reactor stepped by hand with PollOnce is not counted).
var running atomic.Int32

// spareP reports whether the process has a P beyond those its running reactors may
// hold while napping. GOMAXPROCS(0) takes the scheduler's lock: a few tens of
// nanoseconds, paid once per wait, which is a system call anyway.
func spareP() bool { return runtime.GOMAXPROCS(0) > int(running.Load()) }

// epollWait is the reactor's waitFn: a nap or a deep sleep in its epoll instance.
func (r *Reactor) epollWait(timeoutMs int, deep bool) (int, unix.Errno) {
	if deep {
		return sys.EpollSleep(r.epfd, r.events, timeoutMs)
	}
	return sys.EpollNap(r.epfd, r.events, timeoutMs)
}

// ceilMs rounds a timeout up to epoll's milliseconds; a negative one means forever.
func ceilMs(ns int64) int {
	if ns < 0 {
		return -1
	}
	return int((ns + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

// wake wakes the reactor if it is waiting in epoll, after a message was queued. Only
// the sender that clears the sleeping flag writes the eventfd: a burst of messages to a
// sleeping reactor costs one write, not one per message.
//
// Safe from any goroutine.
func (r *Reactor) wake() {
	if r.sleeping.Load() && r.sleeping.CompareAndSwap(true, false) {
		r.wakeSignals.Add(1)
		sys.SignalEventfd(r.evfd)
	}
}
