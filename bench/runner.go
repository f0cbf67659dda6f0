package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Lane is one initiator driving one target: a row of the report.
type Lane struct {
	Initiator Initiator
	Target    Target
}

// Name is "target ← initiator".
func (l Lane) Name() string { return l.Target.Name() + " ← " + l.Initiator.Name() }

// Matrix is what a run measures.
type Matrix struct {
	Lanes     []Lane
	Workloads []Workload
	QDs       []int // QDMax: the target's largest
	Conns     []int
	Count     int // repetitions
	Timing    Timing
	// MaxContention is the CPU contention (see Sample.Contention) above which a point
	// is measured again, up to Retries times; the least contended measurement is kept.
	MaxContention float64
	Retries       int
}

// points is the number of points one repetition measures, for the progress display.
func (m *Matrix) points() int {
	n := 0
	for _, w := range m.Workloads {
		for _, l := range m.Lanes {
			if ok, _ := l.Initiator.Supports(l.Target.Protocol(), w); ok {
				n += len(m.QDs) * len(m.Conns)
			}
		}
	}
	return n
}

// Runner runs a matrix and keeps every sample.
type Runner struct {
	M        Matrix
	Out      string    // results directory: points/ gets one JSON file per sample
	Progress io.Writer // one line per point
	Cores    []int     // the targets' and initiators' cores, watched for other work
	Samples  []Sample
	Skipped  []string // lanes that could not run, and why
	Failed   []string // blocks that failed part-way: the run goes on without them

	done, total int
	started     time.Time
	dead        map[string]bool // lanes whose target is unavailable
}

// Run measures the matrix; it stops early only when ctx ends. Order: repetition, workload, lane, connections, QD; each
// target is started for a workload's block of points and stopped after it, so that a
// sluice point and its limit and peer points of the same repetition are minutes
// apart at most, and every target starts from the same state.
func (r *Runner) Run(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(r.Out, "points"), 0o755); err != nil {
		return err
	}
	r.total, r.started, r.dead = r.M.points()*r.M.Count, time.Now(), map[string]bool{}
	for rep := range r.M.Count {
		for _, w := range r.M.Workloads {
			for _, lane := range r.M.Lanes {
				err := r.runBlock(ctx, rep, w, lane)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil {
					// One broken lane must not cost an hour's run: note it, go on.
					msg := strings.Join(strings.Fields(fmt.Sprintf("rep %d %s %s: %v", rep+1, w.Name, lane.Name(), err)), " ")
					r.Failed = append(r.Failed, msg)
					fmt.Fprintf(r.Progress, "FAILED %s\n", msg)
				}
			}
		}
	}
	return nil
}

func (r *Runner) runBlock(ctx context.Context, rep int, w Workload, lane Lane) error {
	if ok, _ := lane.Initiator.Supports(lane.Target.Protocol(), w); !ok || r.dead[lane.Name()] {
		return nil
	}
	ep, err := lane.Target.Start(ctx)
	if errors.Is(err, ErrUnavailable) {
		r.dead[lane.Name()] = true
		r.Skipped = append(r.Skipped, fmt.Sprintf("%s: %v", lane.Name(), err))
		r.total -= r.blocksLeft(rep, w, lane) * len(r.M.QDs) * len(r.M.Conns)
		fmt.Fprintf(r.Progress, "skip %s: %v\n", lane.Name(), err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: start: %w", lane.Target.Name(), err)
	}
	defer lane.Target.Stop()
	before := r.done
	defer func() { r.total -= len(r.M.QDs)*len(r.M.Conns) - (r.done - before) }()
	for _, conns := range r.M.Conns {
		if err := r.runConns(ctx, rep, w, lane, ep, conns); err != nil {
			return fmt.Errorf("%s %s c%d: %w", lane.Name(), w.Name, conns, err)
		}
	}
	return nil
}

// blocksLeft counts the blocks of lane from (rep, w) on, this one included.
func (r *Runner) blocksLeft(rep int, w Workload, lane Lane) int {
	n, started := 0, false
	for i := rep; i < r.M.Count; i++ {
		for _, x := range r.M.Workloads {
			started = started || x.Name == w.Name
			if ok, _ := lane.Initiator.Supports(lane.Target.Protocol(), x); ok && started {
				n++
			}
		}
	}
	return n
}

func (r *Runner) runConns(ctx context.Context, rep int, w Workload, lane Lane, ep Endpoint, conns int) error {
	sess, err := lane.Initiator.Open(ctx, ep, conns)
	if err != nil {
		return err
	}
	defer sess.Close()
	for _, qd := range r.M.QDs {
		pt := Point{Workload: w, QD: qd, Conns: conns}
		if qd == QDMax {
			pt.QD, pt.QDMax = sess.MaxQD(), true
			if ep.MaxQD > 0 && ep.MaxQD < pt.QD {
				pt.QD = ep.MaxQD
			}
		}
		started := time.Now()
		s, err := r.measure(ctx, sess, w, pt.QD)
		if err != nil {
			return fmt.Errorf("qd %d: %w", pt.QD, err)
		}
		s.Initiator, s.Target, s.Protocol = lane.Initiator.Name(), lane.Target.Name(), lane.Target.Protocol()
		s.Family, s.Backend = lane.Target.Family(), lane.Target.Backend()
		s.Point, s.Rep, s.StartedAt = pt, rep, started
		if err := r.keep(s); err != nil {
			return err
		}
	}
	return nil
}

// measure runs a point, again while another workload shared the cores, and keeps the
// least contended measurement.
func (r *Runner) measure(ctx context.Context, sess Session, w Workload, qd int) (Sample, error) {
	var best Sample
	for try := 0; try <= r.M.Retries; try++ {
		c := startContention(r.Cores)
		s, err := sess.Run(ctx, w, qd, r.M.Timing)
		if err != nil {
			return s, err
		}
		s.Contention = c.share()
		if try == 0 || s.Contention < best.Contention {
			best = s
		}
		best.Retries = try
		if best.Contention <= r.M.MaxContention {
			break
		}
	}
	return best, nil
}

// keep records a sample, writes its JSON file and reports progress with an ETA.
func (r *Runner) keep(s Sample) error {
	r.Samples = append(r.Samples, s)
	r.done++
	b, _ := json.MarshalIndent(s, "", "  ")
	name := fmt.Sprintf("r%d_%s_%s_%s.json", s.Rep, slug(s.Target), slug(s.Initiator),
		strings.ReplaceAll(s.Point.Key(), "/", "_"))
	if err := os.WriteFile(filepath.Join(r.Out, "points", name), b, 0o644); err != nil {
		return err
	}
	el := time.Since(r.started)
	eta := time.Duration(float64(el) / float64(r.done) * float64(r.total-r.done)).Round(time.Second)
	fmt.Fprintf(r.Progress, "[%3d/%d] rep %d %-14s %-18s %-22s qd=%-4s c=%d %10.0f IOPS  p99 %s  contention %.0f%%  ETA %v\n",
		r.done, r.total, s.Rep+1, s.Point.Workload.Name, s.Target, s.Initiator, s.Point.QDLabel(), s.Point.Conns,
		s.IOPS, fmtNs(s.Latency.P99Ns, s.Latency.Known()), 100*s.Contention, eta)
	return nil
}

func slug(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, s)
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "-")
	}
	return strings.Trim(s, "-")
}

// fmtNs prints a latency in µs, or "—" when the initiator does not measure it.
func fmtNs(ns int64, known bool) string {
	if !known {
		return "—"
	}
	return fmt.Sprintf("%.1f µs", float64(ns)/1e3)
}
