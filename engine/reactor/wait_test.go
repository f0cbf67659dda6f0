package reactor

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The wait policy's tests step a reactor by hand on a clock that advances a fixed step
// per reading, with the blocking wait replaced by a stand-in that records each call and
// moves the clock on by its timeout: every count below is exact, and nothing is timed.

const stepNs = int64(time.Microsecond) // one clock reading: about one idle iteration

type waitCall struct {
	timeoutMs int
	deep      bool
}

type waitRig struct {
	t     *testing.T
	r     *Reactor
	nowNs int64
	waits []waitCall
	// events, when set, is what the next wait returns: the tokens made ready.
	events []int32
}

func newWaitRig(t *testing.T, mode Mode, idleSpin time.Duration) *waitRig {
	t.Helper()
	g := &waitRig{t: t}
	r, err := New(Config{Core: -1, Mode: mode, IdleSpin: idleSpin,
		Clock: func() int64 { g.nowNs += stepNs; return g.nowNs }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.closeFDs)
	r.waitFn = g.wait
	g.r = r
	return g
}

func (g *waitRig) wait(timeoutMs int, deep bool) (int, unix.Errno) {
	g.waits = append(g.waits, waitCall{timeoutMs, deep})
	if len(g.events) > 0 {
		n := copy(g.r.events, make([]unix.EpollEvent, len(g.events)))
		for i, tok := range g.events {
			g.r.events[i] = unix.EpollEvent{Events: unix.EPOLLIN, Fd: tok}
		}
		g.events = nil
		return n, 0
	}
	if timeoutMs < 0 {
		g.t.Fatal("the reactor waited forever with nothing to wake it")
	}
	g.nowNs += int64(timeoutMs) * int64(time.Millisecond)
	return 0, 0
}

// idleUntilWait steps idle iterations until one waits, and returns how many it took.
func (g *waitRig) idleUntilWait(limit int) int {
	g.t.Helper()
	before := len(g.waits)
	for i := 1; i <= limit; i++ {
		if g.r.PollOnce() {
			g.t.Fatalf("idle iteration %d reported work", i)
		}
		if len(g.waits) > before {
			return i
		}
	}
	g.t.Fatalf("no wait in %d idle iterations", limit)
	return 0
}

// TestAdaptiveWaitsAfterIdleSpinOfPolling: an adaptive reactor polls IdleSpin's worth
// of idle iterations, then waits.
func TestAdaptiveWaitsAfterIdleSpinOfPolling(t *testing.T) {
	g := newWaitRig(t, ModeAdaptive, 100*time.Microsecond)
	if n := g.idleUntilWait(1000); n != 100 {
		t.Fatalf("waited after %d idle iterations of 1 µs, want 100", n)
	}
}

// TestIdleSpinExcludesTimeOffCore: time the reactor's thread spent off its core (the
// kernel ran something else in the middle of an idle iteration) does not count as
// spinning. Counting it sent a reactor on a shared core to sleep the moment it got the
// core back, paying a wake-up for the next request.
func TestIdleSpinExcludesTimeOffCore(t *testing.T) {
	g := newWaitRig(t, ModeAdaptive, 100*time.Microsecond)
	for i := 0; i < 9; i++ {
		g.r.PollOnce()
	}
	g.nowNs += int64(5 * time.Millisecond) // descheduled during the tenth
	g.r.PollOnce()
	if len(g.waits) != 0 {
		t.Fatal("a 5 ms gap off the core counted as spinning: the reactor went to sleep")
	}
	// 9 µs + one capped iteration (20 µs) so far: 71 more 1 µs iterations to go.
	if n := g.idleUntilWait(1000); n != 71 {
		t.Fatalf("waited after %d more idle iterations, want 71", n)
	}
}

// TestTimedWakeWithoutWorkWaitsAgain: a wait that ends on a timed poller's timeout,
// when the poller finds nothing, continues the idle run: the reactor waits again in
// the same iteration instead of spinning IdleSpin anew (200 µs of a core for every
// housekeeping tick of an idle daemon).
func TestTimedWakeWithoutWorkWaitsAgain(t *testing.T) {
	g := newWaitRig(t, ModeAdaptive, 100*time.Microsecond)
	ticks := 0
	g.r.AddTimedPoller("tick", time.Millisecond, func() bool { ticks++; return false })
	g.idleUntilWait(1000)
	for i := 1; i <= 5; i++ {
		g.r.PollOnce()
		if ticks != i || len(g.waits) != 1+i {
			t.Fatalf("after timed wake %d: %d ticks, %d waits; want %d and %d",
				i, ticks, len(g.waits), i, 1+i)
		}
	}
	if s := g.r.Stats(); s.Sleeps != 6 || s.Wakeups != 0 {
		t.Fatalf("stats %+v: want 6 sleeps, no wake-ups", s)
	}
}

// TestTimedPollerWorkEndsIdleRun: a timed poller that did work ends the idle run, like
// any other work: the reactor spins again before its next wait.
func TestTimedPollerWorkEndsIdleRun(t *testing.T) {
	g := newWaitRig(t, ModeAdaptive, 100*time.Microsecond)
	g.r.AddTimedPoller("tick", time.Millisecond, func() bool { return true })
	g.idleUntilWait(1000)
	if !g.r.PollOnce() {
		t.Fatal("the iteration that ran a busy timed poller reported idle")
	}
	if n := g.idleUntilWait(1000); n != 100 {
		t.Fatalf("waited after %d idle iterations, want 100", n)
	}
}

// TestWaitNapsThenSleepsDeep: the first napWindowNs of an idle run are napped through,
// keeping the P; what is left of a long idle run is slept deeply.
func TestWaitNapsThenSleepsDeep(t *testing.T) {
	g := newWaitRig(t, ModeAdaptive, 100*time.Microsecond)
	g.idleUntilWait(1000)
	want := []waitCall{{ceilMs(napWindowNs - 100*stepNs), false}, {-1, true}}
	if len(g.waits) != 1 || g.waits[0] != want[0] {
		t.Fatalf("waits %v, want %v first", g.waits, want[0])
	}
	// The nap timed out: the idle run goes on, and it is long now. The deep sleep
	// ends on the wake eventfd (token 0).
	g.events = []int32{0}
	g.r.PollOnce()
	if len(g.waits) != 2 || g.waits[1] != want[1] {
		t.Fatalf("waits %v, want %v", g.waits, want)
	}
	s := g.r.Stats()
	if s.Sleeps != 2 || s.DeepSleeps != 1 || s.Wakeups != 1 {
		t.Fatalf("stats %+v: want 2 sleeps, 1 deep, 1 wake-up", s)
	}
	// A wake-up by an fd or a message ends the idle run: spin, then nap again.
	if n := g.idleUntilWait(1000); n != 100 || g.waits[2].deep {
		t.Fatalf("after the wake-up: waited after %d idle iterations (want 100), deep %v",
			n, g.waits[2].deep)
	}
}

// TestNapEndsAtTimedPoller: a nap never outlasts the next timed poller.
func TestNapEndsAtTimedPoller(t *testing.T) {
	g := newWaitRig(t, ModeAdaptive, 100*time.Microsecond)
	g.r.AddTimedPoller("tick", 3*time.Millisecond, func() bool { return false })
	g.idleUntilWait(1000)
	if w := g.waits[0]; w.deep || w.timeoutMs != 3 {
		t.Fatalf("first wait %+v, want a 3 ms nap", w)
	}
}

// TestInterruptWaitsEveryIdleIteration: interrupt mode waits once per idle iteration
// and never after one that found work; each iteration polls epoll exactly once.
func TestInterruptWaitsEveryIdleIteration(t *testing.T) {
	g := newWaitRig(t, ModeInterrupt, 0)
	work := 0
	g.r.AddPoller("work", func() bool { work--; return work >= 0 })
	for round := 1; round <= 3; round++ {
		work = 4
		for i := 0; i < 4; i++ {
			g.r.PollOnce()
		}
		if len(g.waits) != round-1 {
			t.Fatalf("round %d: %d waits after busy iterations, want %d", round, len(g.waits), round-1)
		}
		g.r.PollOnce()
		if len(g.waits) != round {
			t.Fatalf("round %d: %d waits after an idle iteration, want %d", round, len(g.waits), round)
		}
	}
	if s := g.r.Stats(); s.EpollPolls != s.Iterations {
		t.Fatalf("%d epoll polls in %d iterations, want one each", s.EpollPolls, s.Iterations)
	}
}

// TestSendSignalsOncePerSleep: a burst of messages to a sleeping reactor writes its
// eventfd once, not once per message; all of them run.
func TestSendSignalsOncePerSleep(t *testing.T) {
	g := newWaitRig(t, ModeInterrupt, 0)
	ran := 0
	fn := func(any) { ran++ }
	g.r.sleeping.Store(true) // as wait() leaves it while in epoll_wait
	for i := 0; i < 100; i++ {
		if err := g.r.Send(fn, nil); err != nil {
			t.Fatal(err)
		}
	}
	if s := g.r.Stats(); s.WakeSignals != 1 {
		t.Fatalf("%d eventfd writes for 100 messages to one sleep, want 1", s.WakeSignals)
	}
	g.r.PollOnce()
	if ran != 100 {
		t.Fatalf("%d of 100 messages ran", ran)
	}
	_ = g.r.Send(fn, nil) // awake: no signal at all
	if s := g.r.Stats(); s.WakeSignals != 1 {
		t.Fatalf("a message to an awake reactor wrote the eventfd (%d writes)", s.WakeSignals)
	}
}

// TestNapWakesOnSend runs the real waits: a reactor napping in epoll, and one sleeping
// deeply past the nap window, each wake for a message.
func TestNapWakesOnSend(t *testing.T) {
	r, err := New(Config{Core: -1, Mode: ModeAdaptive, IdleSpin: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	for _, deep := range []bool{false, true} {
		for r.Stats().Sleeps == 0 || (deep && r.Stats().DeepSleeps == 0) {
			time.Sleep(time.Millisecond)
		}
		ran := make(chan struct{})
		if err := r.Send(func(any) { close(ran) }, nil); err != nil {
			t.Fatal(err)
		}
		<-ran // a lost wake-up hangs here until the test's deadline
	}
}

// TestNoNapWithoutSpareP: with as many running reactor loops as GOMAXPROCS, a reactor
// sleeps deeply from its first wait, giving its P back: a nap would hold the only P
// that other goroutines could run on (testing.AllocsPerRun runs on one P, and the
// iSCSI allocation test took 26 s of 10 ms naps before this rule).
func TestNoNapWithoutSpareP(t *testing.T) {
	g := newWaitRig(t, ModeAdaptive, 100*time.Microsecond)
	g.r.AddTimedPoller("tick", time.Second, func() bool { return false }) // bounds each wait
	g.idleUntilWait(1000)
	if w := g.waits[len(g.waits)-1]; w.deep {
		t.Fatalf("first wait of an idle run with a spare P: %+v, want a nap", w)
	}
	g.r.idleAt, g.r.spunNs = -1, 0 // a new idle run
	procs := runtime.GOMAXPROCS(0)
	running.Add(int32(procs))
	defer running.Add(-int32(procs))
	g.idleUntilWait(1000)
	if w := g.waits[len(g.waits)-1]; !w.deep {
		t.Fatalf("first wait with %d running reactors and GOMAXPROCS %d: %+v, want a deep sleep", procs, procs, w)
	}
}
