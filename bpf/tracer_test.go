package bpf

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The synthetic driver (internal/probedriver) fires the probe sites with known timings
// in a process of its own; these tests attach to it by pid, as sluicetrace does to the
// daemon.

var (
	driverOnce sync.Once
	driverBin  string
	driverErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if driverBin != "" {
		os.RemoveAll(filepath.Dir(driverBin))
	}
	os.Exit(code)
}

// needRoot skips where BPF cannot be loaded (not root); under CI=true it fails
// instead, so that CI never passes by skipping.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the tracer tests need root")
	}
	t.Skip("the tracer tests need root")
}

type driver struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

type driverResult struct {
	Count  int    `json:"count"`
	SumNs  int64  `json:"sum_ns"`
	MinNs  int64  `json:"min_ns"`
	MaxNs  int64  `json:"max_ns"`
	CPUNs  int64  `json:"cpu_ns"`
	IO     bool   `json:"io"`
	Repl   bool   `json:"repl"`
	Failed string `json:"error"`
}

func startDriver(t *testing.T) *driver {
	t.Helper()
	driverOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-probedriver")
		if err != nil {
			driverErr = err
			return
		}
		driverBin = filepath.Join(dir, "probedriver")
		out, err := exec.Command("go", "build", "-o", driverBin, "sluice/bpf/internal/probedriver").CombinedOutput()
		if err != nil {
			driverErr = fmt.Errorf("build probedriver: %v\n%s", err, out)
		}
	})
	if driverErr != nil {
		t.Fatal(driverErr)
	}
	d := &driver{t: t, cmd: exec.Command(driverBin)}
	var err error
	if d.in, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.out = bufio.NewScanner(stdout)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.in.Close()
		_ = d.cmd.Wait()
	})
	return d
}

func (d *driver) do(format string, args ...any) driverResult {
	d.t.Helper()
	if _, err := fmt.Fprintf(d.in, format+"\n", args...); err != nil {
		d.t.Fatal(err)
	}
	if !d.out.Scan() {
		d.t.Fatalf("driver: no answer: %v", d.out.Err())
	}
	var r driverResult
	if err := json.Unmarshal(d.out.Bytes(), &r); err != nil || r.Failed != "" {
		d.t.Fatalf("driver: %s %v", d.out.Bytes(), err)
	}
	return r
}

func attach(t *testing.T, pid int, o Options) *Tracer {
	t.Helper()
	tr, err := Attach(pid, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func find(t *testing.T, snap Snapshot, k SeriesKey) Series {
	t.Helper()
	for _, s := range snap.Series {
		if s.SeriesKey == k {
			return s
		}
	}
	t.Fatalf("no series %+v in %d series", k, len(snap.Series))
	return Series{}
}

// agree checks the kernel's mean latency against the driver's: the driver's clock
// brackets both site calls, so it reads longer, by about one probe hit (a few µs) and
// whatever preemption falls between its clock and a probe (hence the slack).
func agree(t *testing.T, what string, s Series, r driverResult) {
	t.Helper()
	if s.Count != uint64(r.Count) {
		t.Fatalf("%s: kernel counted %d, driver ran %d", what, s.Count, r.Count)
	}
	kmean := float64(s.SumNs) / float64(s.Count)
	dmean := float64(r.SumNs) / float64(r.Count)
	if math.Abs(kmean-dmean) > 0.1*dmean+20e3 || kmean > dmean {
		t.Errorf("%s: mean latency %.1f µs in the kernel, %.1f µs in the driver", what, kmean/1e3, dmean/1e3)
	}
	if p50 := float64(s.Hist.Quantile(0.5)); p50 < float64(r.MinNs)*0.9 || p50 > float64(r.MaxNs)*1.1 {
		t.Errorf("%s: p50 %.1f µs outside the driver's [%.1f, %.1f] µs", what, p50/1e3, float64(r.MinNs)/1e3, float64(r.MaxNs)/1e3)
	}
	t.Logf("%s: %d ops, mean %.1f µs (driver %.1f µs), p50 %.1f µs p99 %.1f µs", what, s.Count,
		kmean/1e3, dmean/1e3, float64(s.Hist.Quantile(0.5))/1e3, float64(s.Hist.Quantile(0.99))/1e3)
}

func checkSemaphores(t *testing.T, pid int, wantIO, wantRepl bool) {
	t.Helper()
	io, repl, err := Semaphores(pid)
	if err != nil {
		t.Fatal(err)
	}
	if (io != 0) != wantIO || (repl != 0) != wantRepl {
		t.Fatalf("semaphores io=%d repl=%d, want io raised=%v repl raised=%v", io, repl, wantIO, wantRepl)
	}
}

// Outlier thresholds on bucket boundaries, so that the events of a series must equal
// its histogram's tail exactly.
var (
	ioOutlier   = time.Duration(SlotLow(SlotOf(300e3)))
	replOutlier = time.Duration(SlotLow(SlotOf(400e3)))
)

func seriesName(k SeriesKey) string {
	if k.Peer != "" {
		return k.Volume + "→" + k.Peer
	}
	return k.Volume
}

// checkOutliers reads every outlier event and checks, per series, that there are as
// many as the histogram holds at or above the threshold, and at least least[series].
func checkOutliers(t *testing.T, tr *Tracer, snap Snapshot, thr time.Duration, least map[string]int) {
	t.Helper()
	got := map[SeriesKey]uint64{}
	tr.SetEventDeadline(time.Now().Add(200 * time.Millisecond))
	for {
		e, err := tr.ReadEvent()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Latency < thr {
			t.Fatalf("outlier below the threshold: %+v", e)
		}
		got[e.SeriesKey]++
	}
	for _, s := range snap.Series {
		var tail uint64
		for i := SlotOf(uint64(thr)); i < HistSlots; i++ {
			tail += s.Hist[i]
		}
		if got[s.SeriesKey] != tail || got[s.SeriesKey] < uint64(least[seriesName(s.SeriesKey)]) {
			t.Errorf("%s: %d outlier events, histogram holds %d at or above %v (want at least %d)",
				seriesName(s.SeriesKey), got[s.SeriesKey], tail, thr, least[seriesName(s.SeriesKey)])
		}
	}
	if snap.EventDrops != 0 {
		t.Errorf("%d events dropped", snap.EventDrops)
	}
}

func TestIOSites(t *testing.T) {
	needRoot(t)
	d := startDriver(t)
	pid := d.cmd.Process.Pid
	checkSemaphores(t, pid, false, false)
	if r := d.do("enabled"); r.IO || r.Repl {
		t.Fatal("gates open before any tracer")
	}
	tr := attach(t, pid, Options{IO: true, IOOutlier: ioOutlier})
	checkSemaphores(t, pid, true, false)
	if r := d.do("enabled"); !r.IO || r.Repl {
		t.Fatalf("gates io=%v repl=%v with an I/O tracer", r.IO, r.Repl)
	}
	fast := d.do("io 400 vol-fast 3 20")
	slow := d.do("io 40 vol-slow 1 500")
	snap, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	agree(t, "vol-fast", find(t, snap, SeriesKey{Kind: KindIO, Reactor: 3, Volume: "vol-fast"}), fast)
	s := find(t, snap, SeriesKey{Kind: KindIO, Reactor: 1, Volume: "vol-slow"})
	agree(t, "vol-slow", s, slow)
	if s.Depth != 0 || s.Unmatched != 0 || s.Lost != 0 || s.DepthNs == 0 {
		t.Errorf("vol-slow depth %d (integral %d), unmatched %d, lost %d", s.Depth, s.DepthNs, s.Unmatched, s.Lost)
	}
	// Every slow command is an outlier; a fast one is only when this shared machine
	// preempted the driver, and then the histogram shows it too.
	checkOutliers(t, tr, snap, ioOutlier, map[string]int{"vol-slow": slow.Count})
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	checkSemaphores(t, pid, false, false)
	if r := d.do("enabled"); r.IO || r.Repl {
		t.Fatal("gates still open after Close")
	}
}

// TestReplicationSites drives the replication sites that engine/replication will call:
// send→ack per volume and partner, and journal residence per volume.
func TestReplicationSites(t *testing.T) {
	needRoot(t)
	d := startDriver(t)
	pid := d.cmd.Process.Pid
	tr := attach(t, pid, Options{Repl: true, ReplOutlier: replOutlier, JournalOutlier: replOutlier})
	checkSemaphores(t, pid, false, true)
	a := d.do("repl 200 vol0 nodeA 30")
	b := d.do("repl 50 vol0 nodeB 600")
	j := d.do("journal 100 vol0 80")
	io := d.do("io 10 vol0 0 10") // not attached: must not count
	if io.Count != 10 {
		t.Fatal(io)
	}
	snap, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	agree(t, "vol0→nodeA", find(t, snap, SeriesKey{Kind: KindRepl, Reactor: -1, Volume: "vol0", Peer: "nodeA"}), a)
	agree(t, "vol0→nodeB", find(t, snap, SeriesKey{Kind: KindRepl, Reactor: -1, Volume: "vol0", Peer: "nodeB"}), b)
	agree(t, "journal vol0", find(t, snap, SeriesKey{Kind: KindJournal, Reactor: -1, Volume: "vol0"}), j)
	for _, s := range snap.Series {
		if s.Kind == KindIO {
			t.Fatalf("I/O series %+v with only replication attached", s.SeriesKey)
		}
	}
	checkOutliers(t, tr, snap, replOutlier, map[string]int{"vol0→nodeB": b.Count})
	tr.Close()
	checkSemaphores(t, pid, false, false)
}

// TestSampling: at 1 in 64 about 1/64 of the commands are traced, and starts and ends
// agree (nothing unmatched, nothing left in flight).
func TestSampling(t *testing.T) {
	needRoot(t)
	d := startDriver(t)
	tr := attach(t, d.cmd.Process.Pid, Options{IO: true, SampleIO: 64})
	const n = 64000
	d.do("io %d v 0 0", n)
	snap, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	s := find(t, snap, SeriesKey{Kind: KindIO, Volume: "v"})
	// Binomial: mean 1000, sd ~31.
	if s.Count < 850 || s.Count > 1150 || s.Unmatched != 0 || s.Depth != 0 {
		t.Fatalf("1 in 64 of %d: counted %d, unmatched %d, depth %d", n, s.Count, s.Unmatched, s.Depth)
	}
	if tr.Sample(KindIO) != 64 {
		t.Fatal(tr.Sample(KindIO))
	}
}

// TestTwoTracers: a second tracer on the same process shares the sites; closing one
// leaves the other working and the semaphore up.
func TestTwoTracers(t *testing.T) {
	needRoot(t)
	d := startDriver(t)
	pid := d.cmd.Process.Pid
	t1 := attach(t, pid, Options{IO: true})
	t2 := attach(t, pid, Options{IO: true})
	d.do("io 10 v 0 0")
	t1.Close()
	checkSemaphores(t, pid, true, false)
	d.do("io 10 v 0 0")
	snap, err := t2.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if s := find(t, snap, SeriesKey{Kind: KindIO, Volume: "v"}); s.Count != 20 {
		t.Fatalf("second tracer counted %d, want 20", s.Count)
	}
	t2.Close()
	checkSemaphores(t, pid, false, false)
}

// BenchmarkSiteHit measures what a traced I/O site costs the process that hits it:
// the uprobe on the stub's NOP5, the BPF program, and the return, per site (a command
// hits two). "detached" is the same loop with the semaphore down (the gate's branch);
// "sampled-64" traces 1 site pair in 64, and pays the hash on the others.
func BenchmarkSiteHit(b *testing.B) {
	t := &testing.T{}
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	for _, mode := range []string{"detached", "attached", "sampled-64"} {
		b.Run(mode, func(b *testing.B) {
			d := startDriver(t)
			defer func() { d.in.Close(); _ = d.cmd.Wait() }()
			if mode != "detached" {
				n := uint32(1)
				if mode == "sampled-64" {
					n = 64
				}
				tr, err := Attach(d.cmd.Process.Pid, Options{IO: true, SampleIO: n})
				if err != nil {
					b.Fatal(err)
				}
				defer tr.Close()
			}
			d.t = t
			r := d.do("hits %d", b.N)
			b.ReportMetric(float64(r.SumNs)/float64(2*b.N), "ns/hit")
			b.ReportMetric(float64(r.CPUNs)/float64(2*b.N), "cpu-ns/hit")
			b.ReportMetric(0, "ns/op")
		})
	}
}
