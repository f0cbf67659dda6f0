package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"sluice/bench"
)

// build compiles the daemon and the harness's command into dir.
func build(t *testing.T, dir string) (sluiced, sluicebench string) {
	t.Helper()
	out, err := exec.Command("go", "build", "-o", dir+"/", "sluice/tools/sluiced", "sluice/bench/cmd/sluicebench").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "sluiced"), filepath.Join(dir, "sluicebench")
}

func clientCPU() int { return min(1, runtime.NumCPU()-1) }

// TestQuickHarness runs `sluicebench -quick` end to end against a real sluiced and
// checks that every report file exists and that its figures are the run's own: the
// report's numbers are read back from results.json, not expected values.
func TestQuickHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts the daemon")
	}
	dir := t.TempDir()
	sluiced, sb := build(t, dir)
	out := filepath.Join(dir, "results")
	cmd := exec.Command(sb, "-quick", "-out", out, "-sluiced", sluiced, "-client-cpu", fmt.Sprint(clientCPU()))
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluicebench -quick: %v\n%s", err, res)
	}
	t.Logf("sluicebench -quick:\n%s", res)
	var rep bench.Report
	b := readFile(t, filepath.Join(out, "results.json"))
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	checkRows(t, &rep)
	md := string(readFile(t, filepath.Join(out, "report.md")))
	checkReport(t, &rep, md)
	checkFiles(t, out, &rep)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return b
}

// checkRows: every lane measured something at every point, with latencies.
func checkRows(t *testing.T, rep *bench.Report) {
	t.Helper()
	targets := map[string]bool{}
	for _, r := range rep.Rows {
		targets[r.Target] = true
		if r.IOPS.Med <= 0 || r.IOPS.N < 2 {
			t.Errorf("%s %s: no figures: %+v", r.Target, r.Point.Key(), r)
		}
		// iscsi-perf reports no latency (Source "none"); every other initiator must.
		if r.Latency.Known() && (r.Latency.P50Ns <= 0 || r.Latency.P99Ns < r.Latency.P50Ns) ||
			!r.Latency.Known() && r.Initiator != bench.InitiatorISCSIPerf {
			t.Errorf("%s %s: no latency: %+v", r.Target, r.Point.Key(), r.Latency)
		}
		if r.Family == "sluice" && (r.VsLimit.N == 0 || r.VsLimit.Med <= 0) {
			t.Errorf("%s %s: no paired ratio to the limit", r.Target, r.Point.Key())
		}
		if r.CPUPerMio <= 0 {
			t.Errorf("%s %s: no target CPU time", r.Target, r.Point.Key())
		}
	}
	if !targets["sluice-null"] || !targets["limit"] {
		t.Errorf("targets measured: %v; want sluice-null and the limit", targets)
	}
	for _, s := range rep.Samples {
		if s.Errors != 0 {
			t.Errorf("%s %s rep %d: %d I/O errors", s.Target, s.Point.Key(), s.Rep, s.Errors)
		}
	}
}

// checkReport: the Markdown holds the run's figures, machine facts and plots.
func checkReport(t *testing.T, rep *bench.Report, md string) {
	t.Helper()
	for _, r := range rep.Rows {
		cell := fmt.Sprintf("| %.0f [%.0f, %.0f] |", r.IOPS.Med, r.IOPS.Min, r.IOPS.Max)
		if !strings.Contains(md, cell) {
			t.Errorf("report.md lacks %s's IOPS %s", r.Target, cell)
		}
	}
	for _, fact := range []string{rep.Machine.CPUModel, rep.Machine.Kernel, rep.Machine.GoVersion, "## Headline"} {
		if fact == "" || !strings.Contains(md, fact) {
			t.Errorf("report.md lacks %q", fact)
		}
	}
	for _, p := range rep.Plots {
		if !strings.Contains(md, "]("+p+".svg)") {
			t.Errorf("report.md does not show plot %s", p)
		}
	}
}

// checkFiles: one JSON file per sample, the plots in both formats, benchstat input.
func checkFiles(t *testing.T, out string, rep *bench.Report) {
	t.Helper()
	points, _ := filepath.Glob(filepath.Join(out, "points", "*.json"))
	if len(points) != len(rep.Samples) || len(points) == 0 {
		t.Errorf("%d point files for %d samples", len(points), len(rep.Samples))
	}
	for _, p := range points {
		var s bench.Sample
		if err := json.Unmarshal(readFile(t, p), &s); err != nil || s.IOPS <= 0 || s.IOs == 0 {
			t.Errorf("%s: %v, %+v", p, err, s)
		}
	}
	if len(rep.Plots) < 3 {
		t.Errorf("plots: %v", rep.Plots)
	}
	for _, p := range rep.Plots {
		svg := string(readFile(t, filepath.Join(out, p+".svg")))
		png := readFile(t, filepath.Join(out, p+".png"))
		if !strings.Contains(svg, "<svg") || string(png[1:4]) != "PNG" {
			t.Errorf("plot %s is not SVG and PNG", p)
		}
	}
	txt := string(readFile(t, filepath.Join(out, "results.txt")))
	if strings.Count(txt, "\nBenchmarkHarness/") != len(rep.Samples) {
		t.Errorf("results.txt has no line per sample:\n%s", txt)
	}
}

// TestLoadZeroAlloc: the Go initiator's load loop (poll, record, resubmit) allocates
// nothing per I/O against the real daemon.
func TestLoadZeroAlloc(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts the daemon")
	}
	dir := t.TempDir()
	sluiced, _ := build(t, dir)
	env := &bench.Env{ServerCPU: 0, ClientCPU: clientCPU(), SizeBytes: 64 << 20, BlockSize: 512, Dir: dir,
		Sluiced: sluiced, PollMode: "adaptive", MemSize: "64M"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tg := bench.NewSluice(env, bench.BackendNull)
	ep, err := tg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Stop()
	l, err := bench.DialNVMe(ctx, ep.Addr, ep.Name, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.LBASize != 512 || l.NSZE != 64<<20/512 {
		t.Errorf("identify: %d blocks of %d bytes", l.NSZE, l.LBASize)
	}
	w, _ := bench.WorkloadByName("randrw70-4k")
	if allocs := bench.RoundAllocs(t, l, w, 8, 200); allocs != 0 {
		t.Errorf("%v allocations per round of the load loop, want 0", allocs)
	}
}
