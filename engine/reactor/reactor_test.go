package reactor

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newTestReactor(t *testing.T, mode Mode) *Reactor {
	t.Helper()
	r, err := New(Config{Core: -1, Mode: mode, IdleSpin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func startTestReactor(t *testing.T, mode Mode) *Reactor {
	t.Helper()
	r := newTestReactor(t, mode)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func TestSendRunsOnReactorInOrder(t *testing.T) {
	r := startTestReactor(t, ModeAdaptive)
	var got []int
	for i := 0; i < 100; i++ {
		i := i
		if err := r.Send(func(any) { got = append(got, i) }, nil); err != nil {
			t.Fatal(err)
		}
	}
	var tid int
	if err := r.Do(func() { tid = unix.Gettid() }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 {
		t.Fatalf("ran %d messages, want 100", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("message %d ran as %d", i, v)
		}
	}
	if tid != r.TID() {
		t.Fatalf("message ran on thread %d, reactor thread is %d", tid, r.TID())
	}
}

func TestPinnedToCore(t *testing.T) {
	r, err := New(Config{Core: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	status, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", r.TID()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "Cpus_allowed_list:\t0\n") {
		t.Fatalf("reactor thread not pinned to cpu 0:\n%s", status)
	}
}

func TestAdaptiveSleepsAndWakes(t *testing.T) {
	r := startTestReactor(t, ModeAdaptive)
	// Idle for well beyond IdleSpin: the reactor must be asleep, not spinning.
	deadline := time.Now().Add(2 * time.Second)
	for !r.sleeping.Load() {
		if time.Now().After(deadline) {
			t.Fatal("adaptive reactor never went to sleep")
		}
		time.Sleep(time.Millisecond)
	}
	before := r.Stats().Iterations
	time.Sleep(20 * time.Millisecond)
	if d := r.Stats().Iterations - before; d > 5 {
		t.Fatalf("asleep reactor ran %d iterations in 20ms", d)
	}
	ran := make(chan struct{})
	if err := r.Send(func(any) { close(ran) }, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(2 * time.Second):
		t.Fatal("sleeping reactor was not woken by Send")
	}
	if r.Stats().Sleeps == 0 {
		t.Fatal("sleep counter not incremented")
	}
}

func TestBusyNeverSleeps(t *testing.T) {
	r := startTestReactor(t, ModeBusy)
	time.Sleep(20 * time.Millisecond)
	s := r.Stats()
	if s.Sleeps != 0 {
		t.Fatalf("busy reactor slept %d times", s.Sleeps)
	}
	if s.Iterations < 100 {
		t.Fatalf("busy reactor ran only %d iterations in 20ms", s.Iterations)
	}
	if s.IdleNs == 0 {
		t.Fatal("idle iterations not accounted")
	}
}

func TestInterruptSleepsWhenIdle(t *testing.T) {
	r := startTestReactor(t, ModeInterrupt)
	time.Sleep(20 * time.Millisecond)
	if s := r.Stats(); s.Iterations > 20 {
		t.Fatalf("interrupt-mode reactor spun %d iterations while idle", s.Iterations)
	}
}

func TestTimedPollerWakesSleepingReactor(t *testing.T) {
	r := startTestReactor(t, ModeInterrupt)
	var n atomic.Int32
	if err := r.Do(func() {
		r.AddTimedPoller("tick", 5*time.Millisecond, func() bool { n.Add(1); return true })
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if got := n.Load(); got < 4 || got > 14 {
		t.Fatalf("5ms timed poller ran %d times in 60ms", got)
	}
}

func TestActivePollerBusyAccounting(t *testing.T) {
	r := newTestReactor(t, ModeBusy)
	defer r.closeFDs()
	work := 3
	p := r.AddPoller("work", func() bool {
		if work > 0 {
			work--
			return true
		}
		return false
	})
	for i := 0; i < 3; i++ {
		if !r.PollOnce() {
			t.Fatalf("iteration %d with work reported idle", i)
		}
	}
	if r.PollOnce() {
		t.Fatal("iteration without work reported busy")
	}
	r.RemovePoller(p)
	if s := r.Stats(); s.Pollers != 0 || s.Iterations != 4 {
		t.Fatalf("stats after removal: %+v", s)
	}
}

type pipeHandler struct {
	fd  int
	got []byte
}

func (h *pipeHandler) OnEvents(uint32) {
	var b [64]byte
	n, _ := unix.Read(h.fd, b[:])
	if n > 0 {
		h.got = append(h.got, b[:n]...)
	}
}

func TestFDEventsWakeAndDispatch(t *testing.T) {
	r := startTestReactor(t, ModeInterrupt)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	h := &pipeHandler{fd: p[0]}
	var tok int32
	var err error
	if derr := r.Do(func() { tok, err = r.AddFD(p[0], unix.EPOLLIN, h) }); derr != nil || err != nil {
		t.Fatal(derr, err)
	}
	time.Sleep(5 * time.Millisecond) // let it fall asleep
	if _, err := unix.Write(p[1], []byte("hello")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		var got string
		_ = r.Do(func() { got = string(h.got) })
		if got == "hello" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler got %q", got)
		}
		time.Sleep(time.Millisecond)
	}
	_ = r.Do(func() { r.RemoveFD(p[0], tok) })
}

func TestSendAfterStop(t *testing.T) {
	r := newTestReactor(t, ModeAdaptive)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if err := r.Send(func(any) {}, nil); err != ErrStopped {
		t.Fatalf("Send after Stop: %v", err)
	}
	r.Stop() // idempotent
}

// TestSendOverflowKeepsEveryMessageInOrder: a full ring never loses a message, and
// each sender's messages run in the order it sent them, whichever path each took.
func TestSendOverflowKeepsEveryMessageInOrder(t *testing.T) {
	// Busy mode: the loop below steps the reactor once more after the senders are
	// done, and an adaptive reactor with no timed poller may then wait forever.
	r, err := New(Config{Core: -1, RingSize: 4, Mode: ModeBusy})
	if err != nil {
		t.Fatal(err)
	}
	defer r.closeFDs()
	const senders, perSender = 4, 500
	var got [senders][]int
	fn := func(arg any) {
		m := arg.([2]int)
		got[m[0]] = append(got[m[0]], m[1])
	}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perSender; i++ {
				if err := r.Send(fn, [2]int{s, i}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		r.PollOnce()
	}
	for r.PollOnce() {
	}
	for s := 0; s < senders; s++ {
		if len(got[s]) != perSender {
			t.Fatalf("sender %d: %d of %d messages ran", s, len(got[s]), perSender)
		}
		for i, v := range got[s] {
			if v != i {
				t.Fatalf("sender %d: message %d ran in place %d", s, v, i)
			}
		}
	}
	if r.Stats().Overflowed == 0 {
		t.Fatal("a 4-slot ring never overflowed: the test did not exercise the overflow list")
	}
}

// TestSendFromMessageDuringOverflow: a message that sends to its own reactor while the
// overflow list is in use is queued behind it, not lost and not run inline.
func TestSendFromMessageDuringOverflow(t *testing.T) {
	r, err := New(Config{Core: -1, RingSize: 2, Mode: ModeBusy}) // stepped: never wait
	if err != nil {
		t.Fatal(err)
	}
	defer r.closeFDs()
	var order []int
	var self func(any)
	self = func(arg any) {
		n := arg.(int)
		order = append(order, n)
		if n < 10 {
			_ = r.Send(self, n+10)
		}
	}
	for i := 0; i < 5; i++ {
		_ = r.Send(self, i)
	}
	for i := 0; i < 20; i++ {
		r.PollOnce()
	}
	if len(order) != 10 {
		t.Fatalf("ran %v, want 10 messages", order)
	}
	for i := 0; i < 5; i++ {
		if order[i] != i || order[5+i] != 10+i {
			t.Fatalf("order %v", order)
		}
	}
}

// TestPollerRemovedDuringIterationDoesNotRun: a poller that removes a later one (as a
// bdev channel closed from a completion removes its own poller) must not see it run
// again in the same iteration.
func TestPollerRemovedDuringIterationDoesNotRun(t *testing.T) {
	r := newTestReactor(t, ModeBusy)
	defer r.closeFDs()
	var second *Poller
	ranAfterRemoval := false
	removed := false
	r.AddPoller("first", func() bool {
		if !removed {
			r.RemovePoller(second)
			removed = true
		}
		return false
	})
	second = r.AddPoller("second", func() bool {
		if removed {
			ranAfterRemoval = true
		}
		return false
	})
	var timed *Poller
	timedRan := false
	r.AddPoller("third", func() bool { r.RemovePoller(timed); return false })
	timed = r.AddTimedPoller("timed", time.Nanosecond, func() bool { timedRan = true; return false })
	time.Sleep(time.Millisecond)
	r.PollOnce()
	r.PollOnce()
	if ranAfterRemoval || timedRan {
		t.Fatalf("removed pollers ran: active %v timed %v", ranAfterRemoval, timedRan)
	}
}

func TestSendAllocatesNothing(t *testing.T) {
	r := newTestReactor(t, ModeBusy)
	defer r.closeFDs()
	fn := func(any) {}
	arg := new(int)
	if n := testing.AllocsPerRun(1000, func() {
		_ = r.Send(fn, arg)
		r.PollOnce()
	}); n != 0 {
		t.Fatalf("Send+PollOnce allocates %v per run", n)
	}
}

func TestParseCores(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{"0", []int{0}, false},
		{"0-3", []int{0, 1, 2, 3}, false},
		{"0,2,4-5", []int{0, 2, 4, 5}, false},
		{"0x5", []int{0, 2}, false},
		{"", nil, true},
		{"3-1", nil, true},
		{"0,0", nil, true},
		{"a", nil, true},
		{"0x0", nil, true},
		{"-1", nil, true},
	} {
		got, err := ParseCores(tc.in)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCores(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{ModeAdaptive, ModeBusy, ModeInterrupt} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMode("spin"); err == nil {
		t.Error("ParseMode(spin) accepted")
	}
}

func TestGroup(t *testing.T) {
	g, err := StartGroup(GroupConfig{Cores: []int{0, 1}, Mode: ModeAdaptive})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if g.Len() != 2 || len(g.Stats()) != 2 {
		t.Fatalf("group of %d", g.Len())
	}
	for i, r := range g.Reactors() {
		if r.ID() != i || r.Core() != i {
			t.Fatalf("reactor %d: id %d core %d", i, r.ID(), r.Core())
		}
	}
}
