package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is everything a run produced, as results.json holds it.
type Report struct {
	Command string    `json:"command"`
	Machine Machine   `json:"machine"`
	Matrix  MatrixDoc `json:"matrix"`
	Rows    []Row     `json:"rows"`
	Samples []Sample  `json:"samples"`
	Skipped []string  `json:"skipped,omitempty"`
	Failed  []string  `json:"failed,omitempty"`
	Plots   []string  `json:"plots"`
	Micro   string    `json:"micro,omitempty"` // benchstat against the baseline
	Notes   []string  `json:"notes,omitempty"`
}

// MatrixDoc is the matrix as reports describe it.
type MatrixDoc struct {
	Lanes     []string `json:"lanes"`
	Workloads []string `json:"workloads"`
	QDs       []string `json:"qds"`
	Conns     []int    `json:"conns"`
	Count     int      `json:"count"`
	Timing    Timing   `json:"timing"`
	ServerCPU int      `json:"server_cpu"`
	ClientCPU int      `json:"client_cpu"`
	SizeBytes int64    `json:"backing_bytes"`
	BlockSize int      `json:"block_size"`
	// MaxContention and Retries: when a point is measured again.
	MaxContention float64 `json:"max_contention"`
	Retries       int     `json:"retries"`
}

// Doc describes m for the report.
func (m *Matrix) Doc(env *Env) MatrixDoc {
	d := MatrixDoc{Conns: m.Conns, Count: m.Count, Timing: m.Timing, ServerCPU: env.ServerCPU,
		ClientCPU: env.ClientCPU, SizeBytes: env.SizeBytes, BlockSize: env.BlockSize,
		MaxContention: m.MaxContention, Retries: m.Retries}
	for _, l := range m.Lanes {
		d.Lanes = append(d.Lanes, l.Name())
	}
	for _, w := range m.Workloads {
		d.Workloads = append(d.Workloads, w.Name)
	}
	for _, q := range m.QDs {
		d.QDs = append(d.QDs, Point{QD: q, QDMax: q == QDMax}.QDLabel())
	}
	return d
}

// Write writes results.json, results.txt (benchstat input) and report.md into dir.
func (r *Report) Write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.txt"), []byte(r.benchstat()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644)
}

// benchstat renders one Go benchmark line per sample, so that two runs' results.txt
// compare with benchstat.
func (r *Report) benchstat() string {
	var b strings.Builder
	fmt.Fprintf(&b, "goos: linux\ngoarch: %s\npkg: sluice/bench\ncpu: %s\n", runtime.GOARCH, r.Machine.CPUModel)
	for _, s := range r.Samples {
		if s.IOPS == 0 {
			continue
		}
		fmt.Fprintf(&b, "BenchmarkHarness/%s/target=%s/initiator=%s/qd=%s/conns=%d 1 %.0f ns/op %.0f iops %.1f MB/s",
			s.Point.Workload.Name, s.Target, slug(s.Initiator), s.Point.QDLabel(), s.Point.Conns, 1e9/s.IOPS, s.IOPS, s.MBps)
		if s.Latency.Known() {
			fmt.Fprintf(&b, " %d p50-ns %d p99-ns %d p99.9-ns", s.Latency.P50Ns, s.Latency.P99Ns, s.Latency.P999Ns)
		}
		fmt.Fprintf(&b, " %.3f cpu-s/Mio\n", s.CPUPerMillion())
	}
	return b.String()
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# sluice benchmark report\n\nMade %s with:\n\n```sh\n%s\n```\n\n", r.Machine.Date.Format(time.RFC3339), r.Command)
	r.machineSection(&b)
	r.howToRead(&b)
	b.WriteString("## Headline\n\n")
	r.table(&b, r.headlineRows())
	r.initiatorCheck(&b)
	b.WriteString("\n## Plots\n\n")
	for _, p := range r.Plots {
		fmt.Fprintf(&b, "![%s](%s.svg)\n\n", p, p)
	}
	b.WriteString("## Every point\n\n")
	for _, w := range r.Matrix.Workloads {
		fmt.Fprintf(&b, "### %s\n\n", w)
		var rows []Row
		for _, row := range r.Rows {
			if row.Point.Workload.Name == w {
				rows = append(rows, row)
			}
		}
		r.table(&b, rows)
		b.WriteString("\n")
	}
	r.tail(&b)
	return b.String()
}

func (r *Report) machineSection(b *strings.Builder) {
	m, x := r.Machine, r.Matrix
	fmt.Fprintf(b, "## Machine and matrix\n\n| | |\n|---|---|\n")
	for _, kv := range [][2]string{
		{"CPU", fmt.Sprintf("%s (%s family %d model %d, %d MHz), %d logical / %d physical cores, %d online",
			m.CPUModel, m.CPUVendor, m.CPUFamily, m.CPUModelNum, m.CPUMHz, m.LogicalCPUs, m.Physical, m.Online)},
		{"Kernel", m.Kernel}, {"Hugepages", m.Hugepages}, {"Go", m.GoVersion}, {"Commit", m.Commit},
		{"Load average at start", m.LoadAvg},
		{"Cores", fmt.Sprintf("targets on cpu %d, initiators on cpu %d", x.ServerCPU, x.ClientCPU)},
		{"Backing", fmt.Sprintf("%d MiB, %d-byte blocks (null, malloc and file backends alike)", x.SizeBytes>>20, x.BlockSize)},
		{"Points", fmt.Sprintf("%s warm-up then %s measured, %d repetition(s); QD %s per connection; connections %v; "+
			"measured again up to %d time(s) above %.0f%% CPU contention", x.Timing.Warmup, x.Timing.Duration, x.Count,
			strings.Join(x.QDs, ", "), x.Conns, x.Retries, 100*x.MaxContention)},
	} {
		fmt.Fprintf(b, "| %s | %s |\n", kv[0], kv[1])
	}
	fmt.Fprintf(b, "\n<details><summary>CPU flags (cpuid)</summary>\n\n%s\n\n</details>\n\n", strings.Join(m.CPUFlags, " "))
}

func (r *Report) howToRead(b *strings.Builder) {
	b.WriteString(`## How to read it

- **IOPS** is the median of the repetitions, with their range. **p50/p99/p99.9/max** are
  medians of each repetition's percentiles: from an HDR histogram of every measured I/O
  for this harness's initiators, from spdk_nvme_perf's own -L summary for it, and not
  measured (—) by iscsi-perf.
- **CPU** is the target process's user+system time per million I/Os (/proc/<pid>/stat)
  over the measured window. Polling targets burn their core whether busy or not, so
  this is the cost of the whole core divided by the work it did.
- **vs limit** is the paired ratio to the raw-socket limit (one core answering each
  request with its payload over loopback TCP, driven by a raw-syscall client: the
  ceiling of this machine), of the same repetition and point; **vs peer** likewise to
  the peer on the same backend driven by the same initiator. Median [min, max].
- **contention** is the share of the two benchmark cores' time that went to processes
  the harness did not start (/proc/stat less the CPU time of the harness's own process
  tree): on a shared machine, other people's work. A point above the run's threshold is
  measured again and the least contended measurement kept; the column shows the median
  of what was kept.
- **bound**: "initiator" when the initiator waited for completions less than 5% of the
  measured time (its own speed limited the figure), "target" otherwise, "unknown" for external
  initiators that do not say.

`)
}

// headlineRows: 4 KiB random read and write (or the first workload when the matrix has
// neither) at QD 1 and 32 (or the matrix's smallest and largest fixed QD), over the
// first connection count.
func (r *Report) headlineRows() []Row {
	qds := map[int]bool{}
	var fixed []int
	for _, row := range r.Rows {
		if !row.Point.QDMax && !qds[row.Point.QD] {
			qds[row.Point.QD] = true
			fixed = append(fixed, row.Point.QD)
		}
	}
	sort.Ints(fixed)
	pick := latencyQDs(fixed)
	var out []Row
	names := []string{"randread-4k", "randwrite-4k"}
	if !slices.Contains(r.Matrix.Workloads, names[0]) && !slices.Contains(r.Matrix.Workloads, names[1]) &&
		len(r.Matrix.Workloads) > 0 {
		names = r.Matrix.Workloads[:1]
	}
	for _, w := range names {
		for _, qd := range pick {
			for _, row := range r.Rows {
				if row.Point.Workload.Name == w && row.Point.QD == qd && !row.Point.QDMax &&
					row.Point.Conns == r.Matrix.Conns[0] {
					out = append(out, row)
				}
			}
		}
	}
	return out
}

func (r *Report) table(b *strings.Builder, rows []Row) {
	b.WriteString("| workload | QD | conns | target | initiator | IOPS median [min, max] | MB/s | p50 | p99 | p99.9 | max | CPU s/Mio | vs limit | vs peer | bound | contention |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range rows {
		l := row.Latency
		qd := row.Point.QDLabel()
		if row.Point.QDMax {
			qd = fmt.Sprintf("max (%d)", row.Point.QD)
		}
		fmt.Fprintf(b, "| %s | %s | %d | %s | %s | %.0f [%.0f, %.0f] | %.0f | %s | %s | %s | %s | %.2f | %s | %s | %s | %s |\n",
			row.Point.Workload.Name, qd, row.Point.Conns, row.Target, row.Initiator, row.IOPS.Med, row.IOPS.Min,
			row.IOPS.Max, row.MBps, fmtNs(l.P50Ns, l.Known()), fmtNs(l.P99Ns, l.Known()),
			fmtNs(l.P999Ns, l.Known()), fmtNs(l.MaxNs, l.Known()), row.CPUPerMio, ratio(row.VsLimit),
			peers(row.VsPeer), row.Bound, pct(row.Contention))
	}
}

func pct(v float64) string {
	if v < 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100*v)
}

func ratio(s Spread) string {
	if s.N == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f [%.2f, %.2f]", s.Med, s.Min, s.Max)
}

func peers(m map[string]Spread) string {
	if len(m) == 0 {
		return "—"
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+" "+ratio(m[k]))
	}
	return strings.Join(parts, "; ")
}

func (r *Report) tail(b *strings.Builder) {
	if len(r.Skipped) > 0 {
		b.WriteString("## Skipped\n\n")
		for _, s := range r.Skipped {
			fmt.Fprintf(b, "- %s\n", s)
		}
		b.WriteString("\n")
	}
	if len(r.Failed) > 0 {
		b.WriteString("## Failed\n\n")
		for _, s := range r.Failed {
			fmt.Fprintf(b, "- %s\n", s)
		}
		b.WriteString("\n")
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	if r.Micro != "" {
		fmt.Fprintf(b, "## Microbenchmarks (benchstat: baseline vs this run)\n\n```\n%s```\n", r.Micro)
	}
	b.WriteString("\nRaw data: `results.json` (every sample and row), `points/*.json` (one file per point), `results.txt` (benchstat input).\n")
}

// initiatorCheck compares the project's initiator with spdk_nvme_perf on the same
// target, point and repetition: the Go initiator must not be what limits sluice's
// figures, so this ratio should be near 1 or above wherever the target is the bound.
func (r *Report) initiatorCheck(b *strings.Builder) {
	type key struct {
		target, point string
		rep           int
	}
	perf := map[key]float64{}
	for _, s := range r.Samples {
		if s.Initiator == InitiatorSPDK && s.IOPS > 0 {
			perf[key{s.Target, s.Point.Key(), s.Rep}] = s.IOPS
		}
	}
	if len(perf) == 0 {
		return
	}
	ratios := map[[2]string][]float64{}
	var order [][2]string
	for _, s := range r.Samples {
		p := perf[key{s.Target, s.Point.Key(), s.Rep}]
		if s.Initiator != InitiatorGo || p == 0 {
			continue
		}
		k := [2]string{s.Target, s.Point.Key()}
		if _, ok := ratios[k]; !ok {
			order = append(order, k)
		}
		ratios[k] = append(ratios[k], s.IOPS/p)
	}
	b.WriteString("\n## Initiator check: " + InitiatorGo + " vs " + InitiatorSPDK + "\n\n")
	b.WriteString("IOPS of the project's initiator over spdk_nvme_perf's on the same target and point, " +
		"paired within each repetition: median [min, max].\n\n| target | point | ratio |\n|---|---|---|\n")
	for _, k := range order {
		fmt.Fprintf(b, "| %s | %s | %s |\n", k[0], k[1], ratio(spreadOf(ratios[k])))
	}
}
