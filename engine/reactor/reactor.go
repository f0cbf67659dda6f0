package reactor

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/internal/sys"
)

// Mode says how a reactor waits when it has nothing to do.
type Mode uint8

const (
	// ModeAdaptive spins while work keeps arriving and sleeps in epoll after IdleSpin
	// of continuous idleness. It trades a little latency after a pause for a core that
	// is not burnt when the target is quiet.
	ModeAdaptive Mode = iota
	// ModeBusy never sleeps: lowest latency, one full core per reactor.
	ModeBusy
	// ModeInterrupt sleeps after every idle iteration.
	ModeInterrupt
)

func (m Mode) String() string {
	switch m {
	case ModeAdaptive:
		return "adaptive"
	case ModeBusy:
		return "busy"
	case ModeInterrupt:
		return "interrupt"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode maps a mode name to a Mode.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "adaptive", "":
		return ModeAdaptive, nil
	case "busy":
		return ModeBusy, nil
	case "interrupt":
		return ModeInterrupt, nil
	}
	return 0, fmt.Errorf("poll mode %q: want busy, adaptive or interrupt", s)
}

// ErrStopped is returned by Send and Do once the reactor has stopped: the message was
// not queued and will never run.
var ErrStopped = errors.New("reactor stopped")

// Msg is a unit of work sent to a reactor. Fn runs on the reactor with Arg. Callers on
// hot paths use long-lived Fn values (functions or method values bound at setup) and
// pointer Args so that sending allocates nothing.
type Msg struct {
	Fn  func(arg any)
	Arg any
}

// FDHandler receives epoll events for a file descriptor registered on a reactor.
//
// Preconditions: OnEvents runs on the owning reactor and must not block.
type FDHandler interface {
	OnEvents(events uint32)
}

// Config describes one reactor.
type Config struct {
	ID       int           // index in the reactor group
	Core     int           // CPU to pin to; -1 leaves the thread unpinned (tests)
	Mode     Mode          // how to wait when idle
	IdleSpin time.Duration // adaptive mode: idle time before sleeping
	RingSize int           // message ring capacity, power of two
	// Clock, when set, replaces the monotonic clock (nanoseconds, never decreasing):
	// tests that step a reactor by hand use it to make timers fire deterministically.
	Clock func() int64
}

// DefaultIdleSpin keeps an adaptive reactor awake through the gaps between requests
// of a queue-depth-1 stream (tens of microseconds) while still sleeping within a
// fraction of a millisecond once the host goes quiet.
const DefaultIdleSpin = 200 * time.Microsecond

// maxMsgsPerIteration bounds how long message handling can starve pollers.
const maxMsgsPerIteration = 256

// Reactor is a pinned polling loop. All fields below the atomics are owned by the
// reactor's goroutine.
type Reactor struct {
	cfg  Config
	msgs *MPSC[Msg]

	// overflow holds messages sent while the ring was full, in send order. While it
	// holds any (overflowN > 0) every sender queues there too, so that a sender's
	// messages keep their order whichever path each took; the reactor takes from it
	// only once the ring is empty. It is the rare path: a mutex and an append are fine.
	overflowN  atomic.Int64
	overflowMu sync.Mutex
	overflow   []Msg // +checklocks:overflowMu
	spill      []Msg // the reactor's batch taken from overflow; reactor-owned
	overflowed atomic.Uint64

	sleeping atomic.Bool   // set while the loop is (about to be) in epoll_wait
	stopping atomic.Bool   // Stop was called
	stopped  chan struct{} // closed when the loop has exited

	epfd int
	evfd int

	busyNs      atomic.Uint64
	idleNs      atomic.Uint64
	iterations  atomic.Uint64
	sleeps      atomic.Uint64
	deepSleeps  atomic.Uint64
	wakeups     atomic.Uint64
	sleepNs     atomic.Uint64
	epollPolls  atomic.Uint64
	wakeSignals atomic.Uint64
	npollers    atomic.Int64

	pollers    []*Poller
	timed      []*Poller
	nextPoller uint64
	handlers   []FDHandler // indexed by the token stored in the epoll event
	freeTokens []int32
	events     []unix.EpollEvent

	base  time.Time
	now   func() int64 // Config.Clock, or the monotonic clock since base
	nowNs int64
	tid   atomic.Int32

	// The wait policy's state (wait.go).
	idleAt int64 // when the current idle run started; -1 while busy
	spunNs int64 // time spent polling in the current idle run, descheduling excluded
	// waitFn blocks in epoll: epollWait, or a test's stand-in.
	waitFn func(timeoutMs int, deep bool) (int, unix.Errno)
}

// New makes a reactor without starting its loop. Tests step it with PollOnce; the
// daemon calls Start.
func New(cfg Config) (*Reactor, error) {
	if cfg.RingSize == 0 {
		cfg.RingSize = 4096
	}
	if cfg.IdleSpin == 0 {
		cfg.IdleSpin = DefaultIdleSpin
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("reactor %d: epoll_create: %w", cfg.ID, err)
	}
	evfd, err := sys.NewEventfd()
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("reactor %d: %w", cfg.ID, err)
	}
	r := &Reactor{
		cfg:     cfg,
		msgs:    NewMPSC[Msg](cfg.RingSize),
		stopped: make(chan struct{}),
		epfd:    epfd,
		evfd:    evfd,
		events:  make([]unix.EpollEvent, 128),
		base:    time.Now(),
		idleAt:  -1,
	}
	r.waitFn = r.epollWait
	r.now = cfg.Clock
	if r.now == nil {
		r.now = func() int64 { return int64(time.Since(r.base)) }
	}
	if _, err := r.AddFD(evfd, unix.EPOLLIN, wakeHandler{evfd}); err != nil {
		r.closeFDs()
		return nil, err
	}
	r.nowNs = r.clock()
	return r, nil
}

type wakeHandler struct{ fd int }

func (w wakeHandler) OnEvents(uint32) { sys.DrainEventfd(w.fd) }

// ID is the reactor's index in its group.
func (r *Reactor) ID() int { return r.cfg.ID }

// Core is the CPU the reactor is pinned to, or -1.
func (r *Reactor) Core() int { return r.cfg.Core }

// Mode is the reactor's poll mode.
func (r *Reactor) Mode() Mode { return r.cfg.Mode }

// TID is the OS thread id of the running loop (0 before Start), for tracing and tests.
func (r *Reactor) TID() int { return int(r.tid.Load()) }

// Now is the reactor's clock in nanoseconds since it was created, read once per
// iteration so that pollers share one cheap timestamp.
//
// Preconditions: called on the reactor.
func (r *Reactor) Now() int64 { return r.nowNs }

func (r *Reactor) clock() int64 { return r.now() }

// Epoch is the wall-clock instant the reactor's clock counts from (Now is nanoseconds
// since it), so that several reactors' clocks can be put on one timebase.
func (r *Reactor) Epoch() time.Time { return r.base }

// Start runs the loop on a new goroutine locked to a pinned OS thread. It returns once
// the thread is pinned, or with the pinning error.
func (r *Reactor) Start() error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is never unlocked: it exits with the goroutine, so a pinned
		// thread never goes back to the scheduler's pool.
		if r.cfg.Core >= 0 {
			if err := sys.PinThread(r.cfg.Core); err != nil {
				errc <- fmt.Errorf("reactor %d: %w", r.cfg.ID, err)
				close(r.stopped)
				return
			}
		}
		r.tid.Store(int32(unix.Gettid()))
		errc <- nil
		r.run()
	}()
	return <-errc
}

func (r *Reactor) run() {
	defer close(r.stopped)
	defer r.closeFDs()
	running.Add(1)
	defer running.Add(-1)
	for !r.stopping.Load() {
		r.PollOnce()
	}
	// Late messages still run, so that a Do issued before Stop gets its answer.
	for r.drainMessages() {
	}
}

// Stop asks the loop to exit and waits for it.
func (r *Reactor) Stop() {
	if r.stopping.Swap(true) {
		<-r.stopped
		return
	}
	sys.SignalEventfd(r.evfd)
	<-r.stopped
}

func (r *Reactor) closeFDs() {
	unix.Close(r.evfd)
	unix.Close(r.epfd)
}

// PollOnce runs one iteration of the loop and reports whether it did any work. The
// running loop calls it; tests call it directly to step a reactor deterministically.
//
// Preconditions: called on the reactor (or by a test that owns a reactor not started).
func (r *Reactor) PollOnce() bool {
	// One clock read per iteration: this one starts where the last one ended (or
	// where a sleep woke up), which is also the timestamp pollers see.
	start := r.nowNs
	busy := r.drainMessages()
	if r.pollFDs() {
		busy = true
	}
	for _, p := range r.pollers {
		// A poller removed by an earlier one in this iteration must not run: its
		// owner may already have freed what it polls.
		if !p.removed && p.fn() {
			busy = true
		}
	}
	if len(r.timed) > 0 && r.runTimed(start) {
		busy = true
	}
	end := r.clock()
	r.nowNs = end
	r.iterations.Add(1)
	if busy {
		r.busyNs.Add(uint64(end - start))
		r.idleAt, r.spunNs = -1, 0
		return true
	}
	r.idleNs.Add(uint64(end - start))
	r.idle(start, end)
	return false
}

func (r *Reactor) drainMessages() bool {
	n := 0
	for n < maxMsgsPerIteration {
		m, ok := r.msgs.Pop()
		if !ok {
			break
		}
		m.Fn(m.Arg)
		n++
	}
	if n < maxMsgsPerIteration && r.overflowN.Load() > 0 && r.msgs.Empty() {
		n += r.drainOverflow(maxMsgsPerIteration - n)
	}
	return n > 0
}

// drainOverflow runs up to max messages from the overflow list, oldest first. The
// count drops only after a message ran, so that senders keep queueing behind it until
// the list is empty.
func (r *Reactor) drainOverflow(max int) int {
	r.overflowMu.Lock()
	k := min(max, len(r.overflow))
	r.spill = append(r.spill[:0], r.overflow[:k]...)
	rest := copy(r.overflow, r.overflow[k:])
	clear(r.overflow[rest:])
	r.overflow = r.overflow[:rest]
	r.overflowMu.Unlock()
	for i := range r.spill {
		m := r.spill[i]
		r.spill[i] = Msg{}
		m.Fn(m.Arg)
		r.overflowN.Add(-1)
	}
	return k
}

// pendingMessages reports whether anything waits in the ring or the overflow list.
//
// Preconditions: called on the reactor.
func (r *Reactor) pendingMessages() bool {
	return !r.msgs.Empty() || r.overflowN.Load() > 0
}

func (r *Reactor) pollFDs() bool {
	r.epollPolls.Add(1)
	n, errno := sys.EpollPoll(r.epfd, r.events)
	if errno != 0 || n <= 0 {
		return false
	}
	r.dispatch(n)
	return true
}

func (r *Reactor) dispatch(n int) {
	for i := 0; i < n; i++ {
		ev := &r.events[i]
		tok := ev.Fd
		if int(tok) < len(r.handlers) && r.handlers[tok] != nil {
			r.handlers[tok].OnEvents(ev.Events)
		}
	}
}

// Send queues fn(arg) to run on the reactor. Delivery is reliable and never blocks:
// when the ring is full the message goes to an overflow list, and the messages of one
// sender run in the order it sent them. It fails only once the reactor is stopping.
// It is safe from any goroutine, including other reactors and the reactor itself
// (the message runs in a later step, never inside the caller), and allocates nothing
// while the ring has room, when fn is long-lived and arg a pointer.
func (r *Reactor) Send(fn func(any), arg any) error {
	if r.stopping.Load() {
		return ErrStopped
	}
	m := Msg{Fn: fn, Arg: arg}
	if r.overflowN.Load() > 0 || !r.msgs.Push(m) {
		r.pushOverflow(m)
	}
	r.wake()
	return nil
}

func (r *Reactor) pushOverflow(m Msg) {
	r.overflowMu.Lock()
	r.overflowN.Add(1)
	r.overflow = append(r.overflow, m)
	r.overflowMu.Unlock()
	r.overflowed.Add(1)
}

// Post queues fn to run on the reactor, with Send's delivery guarantees. It allocates
// a closure, so it serves the control path (teardown, notices, connects), never per
// I/O; a message that must be sent per I/O uses Send with a long-lived fn.
func (r *Reactor) Post(fn func()) error {
	return r.Send(func(any) { fn() }, nil)
}

// Do runs fn on the reactor and waits for it: the control plane's way to read or
// change reactor-owned state. It allocates and may wait, so it is never used on the
// I/O path, never called on a reactor, and never called while holding a lock that a
// reactor may take (the reactor would wait for the lock, and the lock for the reactor).
func (r *Reactor) Do(fn func()) error {
	done := make(chan struct{})
	if err := r.Send(func(any) { fn(); close(done) }, nil); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-r.stopped:
		// The loop drains its ring before exiting, so fn ran if it was queued.
		select {
		case <-done:
			return nil
		default:
			return ErrStopped
		}
	}
}

// AddFD registers fd with the reactor's epoll instance. It returns a token for
// ModifyFD and RemoveFD.
//
// Preconditions: called on the reactor (or before Start).
func (r *Reactor) AddFD(fd int, events uint32, h FDHandler) (int32, error) {
	var tok int32
	if n := len(r.freeTokens); n > 0 {
		tok = r.freeTokens[n-1]
		r.freeTokens = r.freeTokens[:n-1]
		r.handlers[tok] = h
	} else {
		tok = int32(len(r.handlers))
		r.handlers = append(r.handlers, h)
	}
	ev := unix.EpollEvent{Events: events, Fd: tok}
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.handlers[tok] = nil
		r.freeTokens = append(r.freeTokens, tok)
		return -1, fmt.Errorf("reactor %d: epoll add fd %d: %w", r.cfg.ID, fd, err)
	}
	return tok, nil
}

// ModifyFD changes the events watched for fd.
//
// Preconditions: called on the reactor; tok came from AddFD for this fd.
func (r *Reactor) ModifyFD(fd int, tok int32, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: tok}
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_MOD, fd, &ev); err != nil {
		return fmt.Errorf("reactor %d: epoll mod fd %d: %w", r.cfg.ID, fd, err)
	}
	return nil
}

// RemoveFD stops watching fd. Call it before closing fd.
//
// Preconditions: called on the reactor; tok came from AddFD for this fd.
func (r *Reactor) RemoveFD(fd int, tok int32) {
	_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	if tok >= 0 && int(tok) < len(r.handlers) && r.handlers[tok] != nil {
		r.handlers[tok] = nil
		r.freeTokens = append(r.freeTokens, tok)
	}
}

// Stats is a snapshot of a reactor's counters.
type Stats struct {
	ID         int    `json:"id"`
	Core       int    `json:"core"`
	Mode       string `json:"mode"`
	BusyNs     uint64 `json:"busy_ns"`
	IdleNs     uint64 `json:"idle_ns"`
	Iterations uint64 `json:"iterations"`
	// Sleeps counts waits in epoll_wait that could block, from the moment the
	// reactor enters one; DeepSleeps those of them that let the Go scheduler take the
	// reactor's P (wait.go). Wakeups counts the waits that ended because an fd was
	// ready or a message was sent, rather than on a timer's timeout or a signal;
	// SleepNs is the time spent in finished waits.
	Sleeps     uint64 `json:"sleeps"`
	DeepSleeps uint64 `json:"deep_sleeps"`
	Wakeups    uint64 `json:"wakeups"`
	SleepNs    uint64 `json:"sleep_ns"`
	// EpollPolls counts non-blocking epoll_wait calls: one per iteration.
	EpollPolls uint64 `json:"epoll_polls"`
	// WakeSignals counts eventfd writes by senders that found the reactor asleep:
	// at most one per sleep.
	WakeSignals uint64 `json:"wake_signals"`
	Pollers     int    `json:"pollers"`
	TID         int    `json:"tid"`
	// Overflowed counts messages that found the ring full and took the overflow
	// list: nonzero means the ring is too small for the bursts it gets.
	Overflowed uint64 `json:"overflowed_msgs"`
}

// Stats reads the reactor's counters. Safe from any goroutine.
func (r *Reactor) Stats() Stats {
	return Stats{
		ID: r.cfg.ID, Core: r.cfg.Core, Mode: r.cfg.Mode.String(),
		BusyNs: r.busyNs.Load(), IdleNs: r.idleNs.Load(),
		Iterations: r.iterations.Load(), Sleeps: r.sleeps.Load(),
		DeepSleeps: r.deepSleeps.Load(), Wakeups: r.wakeups.Load(), SleepNs: r.sleepNs.Load(),
		EpollPolls: r.epollPolls.Load(), WakeSignals: r.wakeSignals.Load(),
		Pollers: int(r.npollers.Load()), TID: r.TID(),
		Overflowed: r.overflowed.Load(),
	}
}
