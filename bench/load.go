package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"sluice/engine/nvmf/host"
)

// InitiatorGo names the project's own NVMe/TCP initiator in reports.
const InitiatorGo = "sluice-go (busy-poll)"

// NVMeLoad is the Go initiator set up against one namespace: an association with one
// busy-polling I/O queue per connection, a buffer per tag, and the namespace geometry
// read from Identify Namespace. Everything the load loop touches is allocated here.
type NVMeLoad struct {
	ctrl    *host.Controller
	qs      []*host.IOQueue
	bufs    [][][]byte // [queue][tag]
	comps   []host.Completion
	nsid    uint32
	LBASize int    // from Identify Namespace (FLBAS → LBADS)
	NSZE    uint64 // namespace size in LBAs
	MaxQD   int    // largest QD a queue accepts (its size less one)

	w      Workload
	qd     int
	nlb    uint32
	slots  uint64   // I/O-sized slots in the namespace
	cursor []uint64 // sequential position per queue
	rng    rng

	hist      *hdrhistogram.Histogram
	measuring bool
	ios, errs uint64
	idleNs    int64 // measured time spent in rounds that completed nothing
}

// DialNVMe connects conns I/O queues to nsid of subnqn at addr and switches them to
// busy polling. The host NQN is this machine's default one, as nvme-cli's would be.
func DialNVMe(ctx context.Context, addr, subnqn string, nsid uint32, conns int) (*NVMeLoad, error) {
	// SPDK's target puts SQID 0 in every completion; the Linux host does not look.
	ctrl, err := host.Connect(ctx, addr, subnqn, host.Options{DisableSQFlow: true,
		QueueSize: host.MaxQueueSize, NumIOQueues: conns, KATO: -1, AcceptAnySQID: true})
	if err != nil {
		return nil, err
	}
	l := &NVMeLoad{ctrl: ctrl, nsid: nsid, rng: rng(0x9E3779B97F4A7C15)}
	if err := l.identify(ctx); err != nil {
		ctrl.Close()
		return nil, err
	}
	for range conns {
		q, err := ctrl.NewIOQueue(ctx)
		if err == nil {
			err = q.BusyPoll()
		}
		if err != nil {
			ctrl.Close()
			return nil, fmt.Errorf("i/o queue %d of %d: %w", len(l.qs)+1, conns, err)
		}
		l.qs = append(l.qs, q)
	}
	l.MaxQD = l.qs[0].Size() - 1
	return l, nil
}

func (l *NVMeLoad) identify(ctx context.Context) error {
	ns, err := l.ctrl.IdentifyNamespace(ctx, l.nsid)
	if err != nil {
		return fmt.Errorf("identify namespace %d: %w", l.nsid, err)
	}
	l.LBASize, l.NSZE = int(ns.BlockSize()), ns.NSZE
	if l.LBASize < 512 || l.NSZE == 0 {
		return fmt.Errorf("namespace %d: %d blocks of %d bytes", l.nsid, l.NSZE, l.LBASize)
	}
	return nil
}

// Close ends the association.
func (l *NVMeLoad) Close() error { return l.ctrl.Close() }

// prepare sizes buffers and counters for one point.
func (l *NVMeLoad) prepare(w Workload, qd int) error {
	if qd > l.MaxQD {
		return fmt.Errorf("qd %d above the queue's %d", qd, l.MaxQD)
	}
	if w.BlockSize%l.LBASize != 0 {
		return fmt.Errorf("%s: %d-byte I/Os on %d-byte blocks", w.Name, w.BlockSize, l.LBASize)
	}
	l.w, l.qd = w, qd
	l.nlb = uint32(w.BlockSize / l.LBASize)
	l.slots = l.NSZE / uint64(l.nlb)
	if l.slots == 0 {
		return fmt.Errorf("namespace of %d blocks is smaller than one %s I/O", l.NSZE, w.Name)
	}
	l.bufs = make([][][]byte, len(l.qs))
	for i := range l.bufs {
		l.bufs[i] = make([][]byte, qd)
		for t := range l.bufs[i] {
			l.bufs[i][t] = make([]byte, w.BlockSize)
		}
	}
	l.cursor = make([]uint64, len(l.qs))
	for i := range l.cursor {
		l.cursor[i] = uint64(i) * l.slots / uint64(len(l.qs))
	}
	l.comps = make([]host.Completion, qd)
	l.hist = newHist()
	l.measuring, l.ios, l.errs, l.idleNs = false, 0, 0, 0
	return nil
}

// submit starts the next I/O of the workload under tag on queue qi.
func (l *NVMeLoad) submit(qi int, tag uint16) error {
	var slot uint64
	if l.w.Seq {
		slot = l.cursor[qi]
		l.cursor[qi] = (slot + 1) % l.slots
	} else {
		slot = l.rng.next() % l.slots
	}
	lba := slot * uint64(l.nlb)
	buf := l.bufs[qi][tag]
	if l.w.ReadPct == 100 || (l.w.ReadPct > 0 && int(l.rng.next()%100) < l.w.ReadPct) {
		return l.qs[qi].SubmitRead(l.nsid, lba, l.nlb, buf, tag)
	}
	return l.qs[qi].SubmitWrite(l.nsid, lba, l.nlb, buf, false, tag)
}

// round polls every queue once, records what completed and resubmits it. It is the
// load loop's body and allocates nothing.
func (l *NVMeLoad) round(resubmit bool) (int, error) {
	total := 0
	for qi, q := range l.qs {
		n, err := q.Poll(l.comps)
		if err != nil {
			return total, err
		}
		for _, c := range l.comps[:n] {
			if l.measuring {
				l.ios++
				recordNs(l.hist, int64(c.Latency))
				if !c.Status.Success() {
					l.errs++
				}
			}
			if resubmit {
				if err := l.submit(qi, c.Tag); err != nil {
					return total, err
				}
			}
		}
		total += n
	}
	return total, nil
}

// Run drives one point: QD I/Os in flight on each queue for the warm-up, then the
// measured window; pid is the target process whose CPU time is sampled.
//
// Preconditions: the calling goroutine has the OS thread to itself (Run locks it);
// the process is pinned away from the target's cores.
func (l *NVMeLoad) Run(ctx context.Context, w Workload, qd int, tm Timing, pid int) (Sample, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := l.prepare(w, qd); err != nil {
		return Sample{}, err
	}
	for qi := range l.qs {
		for t := range qd {
			if err := l.submit(qi, uint16(t)); err != nil {
				return Sample{}, err
			}
		}
	}
	s, err := l.loop(ctx, tm, pid)
	if derr := l.drain(); err == nil {
		err = derr
	}
	s.Latency = summarize(l.hist)
	s.finish(w.BlockSize)
	return s, err
}

// loop runs rounds until the window closes. The clock is read once per round.
func (l *NVMeLoad) loop(ctx context.Context, tm Timing, pid int) (Sample, error) {
	var s Sample
	start := time.Now()
	measureAt, end := start.Add(tm.Warmup), start.Add(tm.Warmup+tm.Duration)
	var t0 time.Time
	var cpu0 time.Duration
	prev := start
	for i := 0; ; i++ {
		n, err := l.round(true)
		if err != nil {
			return s, err
		}
		now := time.Now()
		if l.measuring && n == 0 {
			l.idleNs += int64(now.Sub(prev))
		}
		prev = now
		if !l.measuring && !now.Before(measureAt) {
			l.measuring, t0, cpu0 = true, now, processCPU(pid)
		}
		if !now.Before(end) {
			s.ElapsedNs = int64(now.Sub(t0))
			s.TargetCPUNs = int64(processCPU(pid) - cpu0)
			break
		}
		if i%4096 == 0 && ctx.Err() != nil {
			return s, ctx.Err()
		}
	}
	s.IOs, s.Errors = l.ios, l.errs
	s.InitiatorIdle = float64(l.idleNs) / float64(max(s.ElapsedNs, 1))
	l.measuring = false
	return s, nil
}

// drain lets every queue's outstanding I/O complete, so that the next point starts
// clean, within a bound.
func (l *NVMeLoad) drain() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := 0
		for _, q := range l.qs {
			out += q.Outstanding()
		}
		if out == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("i/o still outstanding 30 s after the run")
		}
		if _, err := l.round(false); err != nil {
			return err
		}
	}
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
