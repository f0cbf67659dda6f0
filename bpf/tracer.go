package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"sluice/engine/probe"
)

// Kind is what a series or an event measures.
type Kind uint32

// The kinds, as sluice.c numbers them.
const (
	KindIO      Kind = 1 // I/O command: start (executable) → done (answer queued)
	KindRepl    Kind = 2 // replication frame: send → partner ack
	KindJournal Kind = 3 // journal entry: enqueue → dequeue
)

func (k Kind) String() string {
	switch k {
	case KindIO:
		return "io"
	case KindRepl:
		return "repl"
	case KindJournal:
		return "journal"
	}
	return fmt.Sprintf("kind%d", uint32(k))
}

// Options choose what a Tracer attaches to and how much it samples.
type Options struct {
	// IO and Repl select the site groups; with neither set, both are attached.
	IO, Repl bool
	// SampleIO and SampleRepl trace 1 operation in N (0 or 1: every one).
	SampleIO, SampleRepl uint32
	// Operations slower than these become outlier events (0: none of that kind).
	IOOutlier, ReplOutlier, JournalOutlier time.Duration
}

// Tracer is the eBPF programs attached to one sluice process. Its methods are safe for
// concurrent use, except Close, which ends every other call.
type Tracer struct {
	pid    int
	tgt    *target
	opts   Options
	coll   *ebpf.Collection
	links  []link.Link
	events *ringbuf.Reader

	closeOnce sync.Once
	closeErr  error
}

// Attach loads the programs and attaches them to pid's probe sites. It first writes
// the sampling thresholds into the process, then attaches the uprobes with the group's
// semaphore as their ref_ctr_offset, so that the kernel raises the semaphore (and the
// sites start firing) only once the programs are in place.
//
// Postconditions: the caller owes Close, which detaches and lowers the semaphores.
func Attach(pid int, o Options) (*Tracer, error) {
	if !o.IO && !o.Repl {
		o.IO, o.Repl = true, true
	}
	o.SampleIO, o.SampleRepl = max(o.SampleIO, 1), max(o.SampleRepl, 1)
	// Kernels from 5.11 charge BPF memory to the memory cgroup and ignore
	// RLIMIT_MEMLOCK; on older ones raising it needs CAP_SYS_RESOURCE. Where it
	// cannot be raised, loading still works on the kernels that do not need it.
	_ = rlimit.RemoveMemlock()
	if err := preflight(); err != nil {
		return nil, err
	}
	tgt, err := openTarget(pid)
	if err != nil {
		if errors.Is(err, ErrNoProbes) {
			return nil, err
		}
		return nil, explain("open the process", err)
	}
	spec, err := loadSluice()
	if err != nil {
		return nil, err
	}
	for name, d := range map[string]time.Duration{sluiceVarIoOutlierNs: o.IOOutlier,
		sluiceVarReplOutlierNs: o.ReplOutlier, sluiceVarJournalOutlierNs: o.JournalOutlier} {
		if err := spec.Variables[name].Set(uint64(max(d, 0))); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, explain("load BPF programs", err)
	}
	t := &Tracer{pid: pid, tgt: tgt, opts: o, coll: coll}
	if err := t.attach(); err != nil {
		t.Close()
		return nil, explain("attach", err)
	}
	if t.events, err = ringbuf.NewReader(coll.Maps[sluiceMapEvents]); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Tracer) attach() error {
	var b [4]byte
	for _, g := range []struct {
		on     bool
		off    uint64
		sample uint32
	}{{t.opts.IO, probe.OffsetIOThresh, t.opts.SampleIO}, {t.opts.Repl, probe.OffsetReplThresh, t.opts.SampleRepl}} {
		if !g.on {
			continue
		}
		binary.LittleEndian.PutUint32(b[:], threshold(g.sample))
		if err := t.tgt.write(g.off, b[:]); err != nil {
			return err
		}
	}
	ex, err := link.OpenExecutable(t.tgt.exe)
	if err != nil {
		return err
	}
	for _, site := range probe.Sites {
		sem := uint64(probe.OffsetIOSem)
		if site.Group == probe.GroupRepl {
			if !t.opts.Repl {
				continue
			}
			sem = probe.OffsetReplSem
		} else if !t.opts.IO {
			continue
		}
		prog := t.coll.Programs[site.Name]
		if prog == nil {
			return fmt.Errorf("no BPF program for site %s", site.Name)
		}
		// Never a uretprobe: Go moves stacks and walks return addresses, and a
		// uretprobe's trampoline address breaks both.
		l, err := ex.Uprobe(site.Symbol, prog, &link.UprobeOptions{PID: t.pid, RefCtrOffset: t.tgt.stateOff + sem})
		if err != nil {
			return fmt.Errorf("attach %s in pid %d: %w", site.Symbol, t.pid, err)
		}
		t.links = append(t.links, l)
	}
	return nil
}

// Pid is the traced process.
func (t *Tracer) Pid() int { return t.pid }

// Options are the options the tracer runs with, defaults filled in.
func (t *Tracer) Options() Options { return t.opts }

// Sample is the N of "1 in N" for a kind.
func (t *Tracer) Sample(k Kind) uint32 {
	if k == KindIO {
		return t.opts.SampleIO
	}
	return t.opts.SampleRepl
}

// Close detaches every probe (the kernel lowers the semaphores as it removes them) and
// frees the programs and maps. A second Close returns the first one's result.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() {
		var errs []error
		for _, l := range t.links {
			errs = append(errs, l.Close())
		}
		if t.events != nil {
			errs = append(errs, t.events.Close())
		}
		t.coll.Close()
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

// SeriesKey names one histogram: a kind, the reactor (-1 for replication and the
// journal), the volume and, for replication, the partner.
type SeriesKey struct {
	Kind    Kind   `json:"kind"`
	Reactor int    `json:"reactor"`
	Volume  string `json:"volume"`
	Peer    string `json:"peer,omitempty"`
}

// Series is one histogram and its counters as the kernel holds them. Counts are of
// sampled operations: multiply by the tracer's Sample for estimates of the whole.
type Series struct {
	SeriesKey
	Hist      Hist
	Count     uint64
	SumNs     uint64
	MaxNs     uint64
	Depth     int64  // sampled operations in flight
	DepthNs   uint64 // integral of Depth over time, up to LastNs
	LastNs    uint64 // CLOCK_MONOTONIC of the last depth change
	Unmatched uint64 // ends whose start was not seen
	Lost      uint64 // starts never ended (their key was reused)
	Errors    uint64 // I/O answered with a nonzero status
}

// DepthIntegral is the integral of the depth up to monoNs (CLOCK_MONOTONIC, the clock
// of bpf_ktime_get_ns): the difference of two, divided by the time between them, is
// the average depth over that time.
func (s *Series) DepthIntegral(monoNs uint64) uint64 {
	if monoNs > s.LastNs && s.Depth > 0 {
		return s.DepthNs + uint64(s.Depth)*(monoNs-s.LastNs)
	}
	return s.DepthNs
}

// Snapshot is every series at one instant.
type Snapshot struct {
	At         time.Time
	MonoNs     uint64 // CLOCK_MONOTONIC at the snapshot
	Series     []Series
	EventDrops uint64 // outlier events lost to a full ring buffer
}

// MonoNow is CLOCK_MONOTONIC in ns, the clock of the kernel's timestamps.
func MonoNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Snapshot reads every series. The kernel keeps updating them meanwhile, so a series
// is consistent only to within the operations that ended while it was read.
func (t *Tracer) Snapshot() (Snapshot, error) {
	snap := Snapshot{At: time.Now(), MonoNs: MonoNow()}
	var k sluiceSeriesKey
	var v sluiceSeries
	it := t.coll.Maps[sluiceMapStats].Iterate()
	for it.Next(&k, &v) {
		snap.Series = append(snap.Series, Series{
			SeriesKey: SeriesKey{Kind: Kind(k.Kind), Reactor: int(k.Reactor), Volume: cstr(k.Vol[:]), Peer: cstr(k.Peer[:])},
			Hist:      v.Slots, Count: v.Count, SumNs: v.SumNs, MaxNs: v.MaxNs,
			Depth: v.Depth, DepthNs: v.DepthNs, LastNs: v.LastNs,
			Unmatched: v.Unmatched, Lost: v.Lost, Errors: v.Errors,
		})
	}
	if err := it.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("read stats: %w", err)
	}
	var z uint32
	if err := t.coll.Maps[sluiceMapEventDrops].Lookup(&z, &snap.EventDrops); err != nil {
		return Snapshot{}, fmt.Errorf("read event drops: %w", err)
	}
	return snap, nil
}

func cstr(b []int8) string {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	s := make([]byte, n)
	for i := range s {
		s[i] = byte(b[i])
	}
	return string(s)
}

// Event is an operation slower than its kind's outlier threshold.
type Event struct {
	SeriesKey
	MonoNs  uint64        `json:"mono_ns"` // when it ended (CLOCK_MONOTONIC)
	Latency time.Duration `json:"latency_ns"`
	ID      uint64        `json:"id"`     // the I/O command's key, or the sequence
	Depth   int64         `json:"depth"`  // sampled operations in flight when it ended
	Status  int64         `json:"status"` // I/O status, 0 for success
}

// ErrClosed is returned by ReadEvent once the tracer is closed.
var ErrClosed = os.ErrClosed

// ReadEvent waits for the next outlier event, until the deadline set by
// SetEventDeadline (os.ErrDeadlineExceeded) or Close (ErrClosed).
func (t *Tracer) ReadEvent() (Event, error) {
	rec, err := t.events.Read()
	if err != nil {
		return Event{}, err
	}
	var e sluiceEvent
	if err := binary.Read(bytes.NewReader(rec.RawSample), binary.LittleEndian, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	return Event{
		SeriesKey: SeriesKey{Kind: Kind(e.Kind), Reactor: int(e.Reactor), Volume: cstr(e.Vol[:]), Peer: cstr(e.Peer[:])},
		MonoNs:    e.TsNs, Latency: time.Duration(e.LatNs), ID: e.Id, Depth: e.Depth, Status: e.Status,
	}, nil
}

// SetEventDeadline bounds ReadEvent's wait; the zero time waits for ever.
func (t *Tracer) SetEventDeadline(d time.Time) { t.events.SetDeadline(d) }

// MarshalText names the kind in JSON ("io", "repl", "journal").
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
