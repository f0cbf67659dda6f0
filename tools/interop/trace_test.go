package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/bpf"
	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/nvmf"
	"sluice/engine/nvmf/host"
	"sluice/engine/reactor"
)

// The tracer against the real daemon: sluice/bpf attached by pid to sluiced, our Go
// initiator driving NVMe/TCP writes, and the kernel's histograms checked against the
// latencies the initiator measured. Needs root (BPF, /proc/PID/mem).

func needTraceRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the trace tests need root")
	}
	t.Skip("the trace tests need root")
}

// writeQD1 writes n 4 KiB blocks one at a time and returns the latency of each as the
// initiator measured it (submit to completion).
func writeQD1(t testing.TB, q *host.IOQueue, n int, lba uint64) []time.Duration {
	t.Helper()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	var cs [1]host.Completion
	for i := 0; i < n; i++ {
		buf[0] = byte(i)
		if err := q.SubmitWrite(1, lba+uint64(i%4096)*8, 8, buf, false, 0); err != nil {
			t.Fatalf("submit: %v", err)
		}
		if k, err := q.Reap(cs[:]); err != nil || k != 1 || !cs[0].Status.Success() {
			t.Fatalf("write %d: %v %v", i, err, cs[0].Status)
		}
		lat = append(lat, cs[0].Latency)
	}
	return lat
}

func histOf(lat []time.Duration) (h bpf.Hist, mean float64) {
	var sum float64
	for _, l := range lat {
		h[bpf.SlotOf(uint64(l))]++
		sum += float64(l)
	}
	return h, sum / float64(len(lat))
}

func ioSeries(t *testing.T, snap bpf.Snapshot, vol string) bpf.Series {
	t.Helper()
	var found []bpf.Series
	for _, s := range snap.Series {
		if s.Kind == bpf.KindIO && s.Volume == vol {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one I/O series for %s (one reactor), got %+v", vol, found)
	}
	return found[0]
}

// TestTraceMatchesInitiator: with the tracer attached at 1 in 1, N writes make exactly
// N histogram entries on the volume's series, and the target-side latencies agree with
// the initiator's. Tolerance: each command's target interval (executable → answer
// queued) lies inside its initiator interval (submit → completion read), so every
// target quantile is at most the initiator's plus the buckets' rounding (12.5%); and
// the target's p50, p90 and mean are below the initiator's by at most 150 µs + 30%, the
// loopback round trip plus the host's own scheduling on this shared machine (the p99 is
// left to that machine's mercy). Detaching lowers the semaphore; the daemon serves on.
func TestTraceMatchesInitiator(t *testing.T) {
	needTraceRoot(t)
	d := newDaemon(t)
	pid := d.cmd.Process.Pid
	ctrl, q := connectIO(t, d)
	defer ctrl.Close()
	writeQD1(t, q, 100, 0) // warm up the path (buffers, channel) before attaching

	tr, err := bpf.Attach(pid, bpf.Options{IO: true, SampleIO: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if io, repl, err := bpf.Semaphores(pid); err != nil || io == 0 || repl != 0 {
		t.Fatalf("semaphores with an I/O tracer: io=%d repl=%d %v", io, repl, err)
	}
	const n = 2000
	lat := writeQD1(t, q, n, 1<<16)
	snap, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	s := ioSeries(t, snap, "vol0")
	if s.Count != n || s.Unmatched != 0 || s.Errors != 0 || s.Depth != 0 {
		t.Fatalf("traced %d writes (unmatched %d, errors %d, depth %d), initiator wrote %d",
			s.Count, s.Unmatched, s.Errors, s.Depth, n)
	}
	ih, imean := histOf(lat)
	tmean := float64(s.SumNs) / float64(s.Count)
	t.Logf("mean: target %.1f µs, initiator %.1f µs", tmean/1e3, imean/1e3)
	for _, qt := range []float64{0.5, 0.9, 0.99} {
		tq, iq := float64(s.Hist.Quantile(qt)), float64(ih.Quantile(qt))
		t.Logf("p%v: target %.1f µs, initiator %.1f µs", qt*100, tq/1e3, iq/1e3)
		if tq > iq*1.125 || (qt < 0.99 && tq < iq-(150e3+0.3*iq)) {
			t.Errorf("p%v: target %.1f µs, initiator %.1f µs: outside the tolerance", qt*100, tq/1e3, iq/1e3)
		}
	}
	if tmean > imean || tmean < imean-(150e3+0.3*imean) {
		t.Errorf("mean: target %.1f µs, initiator %.1f µs: outside the tolerance", tmean/1e3, imean/1e3)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if io, repl, err := bpf.Semaphores(pid); err != nil || io != 0 || repl != 0 {
		t.Fatalf("semaphores after detach: io=%d repl=%d %v", io, repl, err)
	}
	writeQD1(t, q, 10, 0)
}

// TestSluicetraceBinary runs the reader itself against the daemon under pipelined load:
// its JSON lines carry the volume's series with a queue depth above 1, and its SVG
// heatmap is written on exit, after which the semaphore is down again.
func TestSluicetraceBinary(t *testing.T) {
	needTraceRoot(t)
	bin := filepath.Join(t.TempDir(), "sluicetrace")
	if out, err := exec.Command("go", "build", "-o", bin, "sluice/tools/sluicetrace").CombinedOutput(); err != nil {
		t.Fatalf("build sluicetrace: %v\n%s", err, out)
	}
	d := newDaemon(t)
	pid := d.cmd.Process.Pid
	ctrl, q := connectIO(t, d)
	defer ctrl.Close()
	svg := filepath.Join(t.TempDir(), "heat.svg")
	cmd := exec.Command(bin, "-p", fmt.Sprint(pid), "-json", "-interval", "300ms", "-duration", "3s",
		"-sample", "1", "-io", "-svg", svg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if io, _, err := bpf.Semaphores(pid); err == nil && io != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluicetrace did not attach: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Pipelined writes, 16 in flight, until the reader exits.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	buf := make([]byte, 4096)
	cs := make([]host.Completion, 16)
	for tag := 0; tag < 16; tag++ {
		if err := q.SubmitWrite(1, uint64(tag*8), 8, buf, false, uint16(tag)); err != nil {
			t.Fatal(err)
		}
	}
	var err error
loop:
	for {
		select {
		case err = <-done:
			break loop
		default:
		}
		k, rerr := q.Reap(cs)
		if rerr != nil {
			t.Fatal(rerr)
		}
		for _, c := range cs[:k] {
			if e := q.SubmitWrite(1, uint64(c.Tag)*8, 8, buf, false, c.Tag); e != nil {
				t.Fatal(e)
			}
		}
	}
	if err != nil {
		t.Fatalf("sluicetrace: %v\n%s", err, stderr.String())
	}
	var maxDepth float64
	var total uint64
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var iv struct {
			Series []struct {
				Kind     string  `json:"kind"`
				Volume   string  `json:"volume"`
				Reactor  int     `json:"reactor"`
				Count    uint64  `json:"count"`
				AvgDepth float64 `json:"avg_depth"`
				P99Ns    uint64  `json:"p99_ns"`
			} `json:"series"`
		}
		if err := json.Unmarshal(sc.Bytes(), &iv); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		for _, s := range iv.Series {
			if s.Kind == "io" && s.Volume == "vol0" {
				total += s.Count
				maxDepth = math.Max(maxDepth, s.AvgDepth)
			}
		}
	}
	t.Logf("sluicetrace: %d writes traced, highest interval average depth %.1f", total, maxDepth)
	if total == 0 || maxDepth < 2 {
		t.Fatalf("sluicetrace saw %d writes, depth %.1f; output:\n%s", total, maxDepth, stdout.String())
	}
	b, err := os.ReadFile(svg)
	if err != nil || !strings.Contains(string(b), "<svg") || !strings.Contains(string(b), "@io[vol0, reactor 0]") {
		t.Fatalf("heatmap: %v\n%.300s", err, b)
	}
	if io, _, err := bpf.Semaphores(pid); err != nil || io != 0 {
		t.Fatalf("semaphore after sluicetrace exited: %d %v", io, err)
	}
}

// pinTo locks the calling goroutine to its thread and the thread to cpu, so that the
// busy-polling initiator keeps off the daemon's reactor core.
func pinTo(tb testing.TB, cpu int) {
	tb.Helper()
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		tb.Logf("pinning the initiator to cpu %d: %v", cpu, err)
	}
}

// loadIOPS keeps qd 4 KiB writes in flight on nsid (512-byte blocks) for d and returns
// the IOPS.
//
// Preconditions: q busy-polls, nothing in flight, on the calling (pinned) goroutine.
func loadIOPS(tb testing.TB, q *host.IOQueue, nsid uint32, qd int, d time.Duration) float64 {
	return loadIOPSBlocks(tb, q, nsid, qd, d, 8)
}

// loadIOPSBlocks is loadIOPS on a namespace whose 4 KiB is blocks blocks.
func loadIOPSBlocks(tb testing.TB, q *host.IOQueue, nsid uint32, qd int, d time.Duration, blocks uint32) float64 {
	tb.Helper()
	buf := make([]byte, 4096)
	cs := make([]host.Completion, qd)
	for tag := 0; tag < qd; tag++ {
		if err := q.SubmitWrite(nsid, uint64(tag)*uint64(blocks), blocks, buf, false, uint16(tag)); err != nil {
			tb.Fatal(err)
		}
	}
	start := time.Now()
	end := start.Add(d)
	done := 0
	for {
		k, err := q.Poll(cs)
		if err != nil {
			tb.Fatal(err)
		}
		done += k
		stop := k > 0 && time.Now().After(end)
		for _, c := range cs[:k] {
			if !c.Status.Success() {
				tb.Fatalf("write: %v", c.Status)
			}
			if !stop {
				if err := q.SubmitWrite(nsid, uint64(c.Tag)*uint64(blocks), blocks, buf, false, c.Tag); err != nil {
					tb.Fatal(err)
				}
			}
		}
		if stop {
			break
		}
	}
	iops := float64(done) / time.Since(start).Seconds()
	for q.Outstanding() > 0 { // drain, so that the next round starts empty
		if _, err := q.Poll(cs); err != nil {
			tb.Fatal(err)
		}
	}
	return iops
}

// BenchmarkTraceOverhead measures, in one daemon and one run, what attaching the tracer
// costs at full load: 4 KiB writes at queue depth 32 to a null namespace (so that the
// target's CPU, where the probes run, is the limit), the initiator busy-polling on the
// other core. Rounds cycle detached → 1 in 64 → 1 in 1, so that drift on this shared
// machine spreads over all three, and the medians are reported: IOPS, and the daemon's
// CPU time per write (from its threads' schedstat; the reactor polls in interrupt mode,
// so idle time costs none). A reactor's capacity is the inverse of its CPU per write,
// so %cost is 1 - cpu(detached)/cpu(traced): what attaching takes from a saturated
// reactor, even where other tenants blur the IOPS. Run it with
//
//	go test -run NONE -bench TraceOverhead -benchtime 1x ./tools/interop
func BenchmarkTraceOverhead(b *testing.B) {
	needTraceRoot(b)
	d := newDaemon(b, "--poll-mode", "interrupt")
	pid := d.cmd.Process.Pid
	var name string
	d.call("bdev_null_create", map[string]any{"name": "null0", "num_blocks": 1 << 21, "block_size": 512}, &name)
	var nsid uint32
	d.call("nvmf_subsystem_add_ns", map[string]any{"nqn": defaultNQN, "namespace": map[string]any{"bdev_name": "null0"}}, &nsid)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctrl, err := host.Connect(ctx, fmt.Sprintf("127.0.0.1:%d", d.nvmfPort), defaultNQN, host.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ctrl.Close()
	q, err := ctrl.NewIOQueue(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := q.BusyPoll(); err != nil {
		b.Fatal(err)
	}
	pinTo(b, 1)
	defer runtime.UnlockOSThread()
	const rounds, qd, span = 7, 32, 1500 * time.Millisecond
	modes := []uint32{0, 64, 1} // 0: detached
	iops, cpu := map[uint32][]float64{}, map[uint32][]float64{}
	loadIOPS(b, q, nsid, qd, span/2) // warm up
	for r := 0; r < rounds; r++ {
		for _, n := range modes {
			var tr *bpf.Tracer
			if n > 0 {
				if tr, err = bpf.Attach(pid, bpf.Options{IO: true, SampleIO: n}); err != nil {
					b.Fatal(err)
				}
			}
			c0 := daemonCPUNs(b, pid)
			v := loadIOPS(b, q, nsid, qd, span)
			iops[n] = append(iops[n], v)
			cpu[n] = append(cpu[n], float64(daemonCPUNs(b, pid)-c0)/(v*span.Seconds()))
			if tr != nil {
				snap, err := tr.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				if s := ioSeries2(snap, "null0"); s == nil || s.Count == 0 {
					b.Fatalf("tracer at 1 in %d saw nothing", n)
				}
				tr.Close()
			}
		}
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	b.Logf("IOPS per round: detached %.0f, 1 in 64 %.0f, 1 in 1 %.0f", iops[0], iops[64], iops[1])
	b.Logf("daemon CPU ns per write: detached %.0f, 1 in 64 %.0f, 1 in 1 %.0f", cpu[0], cpu[64], cpu[1])
	b.ReportMetric(med(iops[0]), "iops-detached")
	b.ReportMetric(med(iops[64]), "iops-n64")
	b.ReportMetric(med(iops[1]), "iops-n1")
	b.ReportMetric(med(cpu[0]), "cpu-ns/io-detached")
	b.ReportMetric(med(cpu[64]), "cpu-ns/io-n64")
	b.ReportMetric(med(cpu[1]), "cpu-ns/io-n1")
	b.ReportMetric(100*(1-med(cpu[0])/med(cpu[64])), "%cost-n64")
	b.ReportMetric(100*(1-med(cpu[0])/med(cpu[1])), "%cost-n1")
	b.ReportMetric(0, "ns/op")
}

// daemonCPUNs is the CPU time pid's threads have run, from /proc/PID/task/*/schedstat
// (nanoseconds, unlike /proc/PID/stat's clock ticks).
func daemonCPUNs(tb testing.TB, pid int) int64 {
	tb.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		tb.Fatalf("schedstat of pid %d: %v", pid, err)
	}
	var sum int64
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that exited
		}
		var ns int64
		if _, err := fmt.Sscan(string(b), &ns); err == nil {
			sum += ns
		}
	}
	return sum
}

func ioSeries2(snap bpf.Snapshot, vol string) *bpf.Series {
	for i := range snap.Series {
		if s := &snap.Series[i]; s.Kind == bpf.KindIO && s.Volume == vol {
			return s
		}
	}
	return nil
}

// BenchmarkWrite4KSites is the write path with the probe sites compiled in and no
// tracer, against the same build with -tags sluice_noprobe (no sites at all): an
// in-process target (one reactor, a null namespace) and the initiator, 4 KiB writes at
// queue depth 32. Besides wall time it reports cpu-ns/op, the process's CPU time per
// write (the reactor sleeps when idle, so it counts work, not spinning), which other
// tenants of a shared machine disturb much less. Compare the two with benchstat:
//
//	go test -run NONE -bench Write4KSites -count 10 ./tools/interop > with.txt
//	go test -tags sluice_noprobe -run NONE -bench Write4KSites -count 10 ./tools/interop > without.txt
func BenchmarkWrite4KSites(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dom, err := mem.NewDomain(mem.DomainConfig{SizeBytes: 32 << 20, Hugepages: mem.HugepagesNever, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer dom.Close()
	mc, err := dom.NewCore(0)
	if err != nil {
		b.Fatal(err)
	}
	g, err := reactor.StartGroup(reactor.GroupConfig{Cores: []int{0}, Mode: reactor.ModeInterrupt})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Stop()
	bm := bdev.NewManager()
	defer bm.CloseAll()
	if _, err := bdev.CreateNull(bm, bdev.NullParams{Name: "null0", NumBlocks: 1 << 21, BlockSize: 512}); err != nil {
		b.Fatal(err)
	}
	tgt, err := nvmf.NewTarget(nvmf.Config{Reactors: g, Bdevs: bm, Mem: func(int) *mem.Core { return mc }, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tgt.Shutdown(ctx)
	}()
	const nqn = "nqn.2026-11.dev.sluice:bench"
	if err := tgt.CreateSubsystem(nvmf.SubsystemParams{NQN: nqn, AllowAnyHost: true}); err != nil {
		b.Fatal(err)
	}
	if _, err := tgt.AddNamespace(nqn, nvmf.NamespaceParams{BdevName: "null0"}); err != nil {
		b.Fatal(err)
	}
	port := freePort(b)
	if err := tgt.AddListener(nqn, nvmf.ListenAddress{TrAddr: "127.0.0.1", TrSvcID: fmt.Sprint(port)}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctrl, err := host.Connect(ctx, fmt.Sprintf("127.0.0.1:%d", port), nqn, host.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ctrl.Close()
	q, err := ctrl.NewIOQueue(ctx)
	if err != nil {
		b.Fatal(err)
	}
	const qd = 32
	buf := make([]byte, 4096)
	cs := make([]host.Completion, qd)
	submitted := 0
	for ; submitted < min(qd, b.N); submitted++ {
		if err := q.SubmitWrite(1, uint64(submitted*8), 8, buf, false, uint16(submitted)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNs()
	for done := 0; done < b.N; {
		k, err := q.Reap(cs)
		if err != nil {
			b.Fatal(err)
		}
		done += k
		for _, c := range cs[:k] {
			if submitted < b.N {
				if err := q.SubmitWrite(1, uint64(c.Tag)*8, 8, buf, false, c.Tag); err != nil {
					b.Fatal(err)
				}
				submitted++
			}
		}
	}
	b.ReportMetric(float64(cpuNs()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuNs is the process's user and system CPU time.
func cpuNs() int64 {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
