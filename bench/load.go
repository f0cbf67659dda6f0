package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/nvmf/host"
)

// Result is one measured run.
type Result struct {
	Target    string        `json:"target"` // "sluice" or "raw-limit"
	Mode      string        `json:"mode"`   // reactor poll mode; "busy-spin" for the limit
	QD        int           `json:"qd"`
	Rep       int           `json:"rep"` // repetition: runs of one rep ran back to back
	IOs       uint64        `json:"ios"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	IOPS      float64       `json:"iops"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	ServerCPU time.Duration `json:"server_cpu_ns"` // target process user+system time in the window
}

// CPUPerMillion is the target's CPU seconds per million I/Os.
func (r Result) CPUPerMillion() float64 {
	if r.IOs == 0 {
		return 0
	}
	return r.ServerCPU.Seconds() / float64(r.IOs) * 1e6
}

// Load describes one run.
type Load struct {
	QD       int
	Warmup   time.Duration
	Duration time.Duration
	// Blocks is how many 4 KiB blocks reads are spread over.
	Blocks uint64
	// ClientCPU pins the load generator's thread; -1 leaves it alone.
	ClientCPU int
	// ServerPID is sampled for CPU time during the measured window.
	ServerPID int
}

// latencies collects per-I/O latencies into a preallocated slice: recording is an
// index increment, so the client adds no garbage per I/O.
type latencies struct {
	v []time.Duration
	n int
}

func newLatencies(max int) *latencies { return &latencies{v: make([]time.Duration, max)} }

func (l *latencies) add(d time.Duration) {
	if l.n < len(l.v) {
		l.v[l.n] = d
		l.n++
	}
}

func (l *latencies) quantiles() (p50, p99 time.Duration) {
	s := l.v[:l.n]
	if len(s) == 0 {
		return 0, 0
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*50/100], s[len(s)*99/100]
}

func pinClient(cpu int) (func(), error) {
	runtime.LockOSThread()
	if cpu < 0 {
		return runtime.UnlockOSThread, nil
	}
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, err
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("pin client to cpu %d: %w", cpu, err)
	}
	return func() { _ = unix.SchedSetaffinity(0, &old); runtime.UnlockOSThread() }, nil
}

// rng is xorshift64*: random LBAs without the math/rand lock or allocation.
type rng uint64

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return x * 2685821657736338717
}

// window is the measured part of a run: it starts after the warm-up, ends after the
// duration, records latencies in between and samples the target's CPU time at both
// ends.
type window struct {
	l         Load
	measureAt time.Time
	end       time.Time
	measuring bool
	t0        time.Time
	cpu0      time.Duration
	ios       uint64
	lat       *latencies
}

func newWindow(l Load) *window {
	now := time.Now()
	return &window{l: l, measureAt: now.Add(l.Warmup), end: now.Add(l.Warmup + l.Duration), lat: newLatencies(8 << 20)}
}

// record counts one completed I/O.
func (w *window) record(d time.Duration) {
	if w.measuring {
		w.ios++
		w.lat.add(d)
	}
}

// tick moves the window along and reports whether the run is over.
func (w *window) tick(now time.Time) bool {
	if !w.measuring && now.After(w.measureAt) {
		w.measuring, w.t0 = true, now
		w.cpu0 = processCPU(w.l.ServerPID)
	}
	return now.After(w.end)
}

func (w *window) result(target, mode string, now time.Time) Result {
	r := Result{Target: target, Mode: mode, QD: w.l.QD, IOs: w.ios, Elapsed: now.Sub(w.t0)}
	r.ServerCPU = processCPU(w.l.ServerPID) - w.cpu0
	r.IOPS = float64(w.ios) / r.Elapsed.Seconds()
	r.P50, r.P99 = w.lat.quantiles()
	return r
}

// RunNVMe drives 4 KiB random reads through one NVMe/TCP I/O queue with the Go
// initiator (SQ flow control disabled, so the target may answer with C2H SUCCESS,
// as Linux's connect-all would arrange).
func RunNVMe(ctx context.Context, addr, subnqn string, l Load) (Result, error) {
	unpin, err := pinClient(l.ClientCPU)
	if err != nil {
		return Result{}, err
	}
	defer unpin()
	ctrl, err := host.Connect(ctx, addr, subnqn, host.Options{DisableSQFlow: true, QueueSize: max(l.QD+1, 32),
		NumIOQueues: 1})
	if err != nil {
		return Result{}, err
	}
	defer ctrl.Close()
	q, err := ctrl.NewIOQueue(ctx)
	if err != nil {
		return Result{}, err
	}
	bufs := make([][]byte, l.QD)
	for i := range bufs {
		bufs[i] = make([]byte, 4096)
	}
	tags := make([]uint16, l.QD) // slot → buffer index
	r := rng(0x9E3779B97F4A7C15)
	submit := func(i int) error {
		lba := r.next() % l.Blocks
		return q.SubmitRead(1, lba, 1, bufs[i], uint16(i))
	}
	for i := 0; i < l.QD; i++ {
		if err := submit(i); err != nil {
			return Result{}, err
		}
		tags[i] = uint16(i)
	}
	comps := make([]host.Completion, l.QD)
	w := newWindow(l)
	for {
		n, err := q.Reap(comps)
		if err != nil {
			return Result{}, fmt.Errorf("reap: %w", err)
		}
		for _, c := range comps[:n] {
			if !c.Status.Success() {
				return Result{}, fmt.Errorf("read failed: %v", c.Status)
			}
			w.record(c.Latency)
		}
		if now := time.Now(); w.tick(now) {
			res := w.result("sluice", "", now)
			// Let the queue drain before closing.
			for q.Outstanding() > 0 {
				if _, err := q.Reap(comps); err != nil {
					break
				}
			}
			return res, nil
		}
		for _, c := range comps[:n] {
			if err := submit(int(c.Tag) % l.QD); err != nil {
				return Result{}, err
			}
		}
	}
}

// RunRaw drives the raw-socket limit server with the same pipelining: QD requests of
// 72 bytes in flight, each answered by 4 KiB, in order.
func RunRaw(ctx context.Context, addr string, l Load) (Result, error) {
	unpin, err := pinClient(l.ClientCPU)
	if err != nil {
		return Result{}, err
	}
	defer unpin()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetNoDelay(true)
	req := make([]byte, RawReqSize*l.QD)
	in := make([]byte, RawRespSize*l.QD)
	sent := make([]time.Time, l.QD) // FIFO of submit times
	head, tail := 0, 0
	for i := 0; i < l.QD; i++ {
		sent[tail%l.QD] = time.Now()
		tail++
	}
	if _, err := conn.Write(req); err != nil {
		return Result{}, err
	}
	w := newWindow(l)
	partial := 0
	for {
		n, err := conn.Read(in[partial:])
		if err != nil {
			if err == io.EOF {
				return Result{}, fmt.Errorf("raw server closed the connection")
			}
			return Result{}, err
		}
		now := time.Now()
		total := partial + n
		done := total / RawRespSize
		partial = total % RawRespSize
		for i := 0; i < done; i++ {
			w.record(now.Sub(sent[head%l.QD]))
			head++
		}
		if w.tick(now) {
			return w.result("raw-limit", "busy-spin", now), nil
		}
		if done > 0 {
			for i := 0; i < done; i++ {
				sent[tail%l.QD] = now
				tail++
			}
			if _, err := conn.Write(req[:done*RawReqSize]); err != nil {
				return Result{}, err
			}
		}
	}
}
