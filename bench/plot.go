package bench

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plots writes the report's figures, each as SVG and PNG, and returns their base names
// (without extension) in the order the report shows them: per workload, IOPS against
// queue depth, latency by percentile at low and high QD, and the target's CPU per I/O.
func Plots(dir string, rows []Row, m *Matrix) ([]string, error) {
	var names []string
	conns := m.Conns[0]
	qds := latencyQDs(m.QDs)
	for _, w := range m.Workloads {
		plots := []namedPlot{{"iops-" + w.Name, iopsPlot(rows, w, conns)}}
		for _, qd := range qds {
			plots = append(plots, namedPlot{fmt.Sprintf("latency-%s-qd%d", w.Name, qd), cdfPlot(rows, w, qd, conns)})
		}
		if len(qds) > 0 {
			plots = append(plots, namedPlot{"cpu-per-io-" + w.Name, cpuPlot(rows, w, qds[len(qds)-1], conns)})
		}
		for _, pl := range plots {
			ok, err := savePlot(dir, pl.name, pl.p)
			if err != nil {
				return names, err
			}
			if ok {
				names = append(names, pl.name)
			}
		}
	}
	return names, nil
}

type namedPlot struct {
	name string
	p    *plot.Plot
}

// latencyQDs: the CDFs are drawn at the smallest QD and at 32 (or the largest fixed
// one): idle latency and latency under load.
func latencyQDs(qds []int) []int {
	var fixed []int
	for _, q := range qds {
		if q != QDMax {
			fixed = append(fixed, q)
		}
	}
	if len(fixed) == 0 {
		return nil
	}
	sort.Ints(fixed)
	hi := fixed[len(fixed)-1]
	for _, q := range fixed {
		if q == 32 {
			hi = 32
		}
	}
	if hi == fixed[0] {
		return fixed[:1]
	}
	return []int{fixed[0], hi}
}

// savePlot writes p as name.svg and name.png; a nil plot (no data) writes nothing.
func savePlot(dir, name string, p *plot.Plot) (bool, error) {
	if p == nil {
		return false, nil
	}
	for _, ext := range []string{".svg", ".png"} {
		if err := p.Save(20*vg.Centimeter, 12*vg.Centimeter, filepath.Join(dir, name+ext)); err != nil {
			return false, fmt.Errorf("plot %s: %w", name+ext, err)
		}
	}
	return true, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return p
}

// laneOrder lists the lanes of rows in first-seen order.
func laneOrder(rows []Row) []string {
	var lanes []string
	seen := map[string]bool{}
	for _, r := range rows {
		l := r.Target + " ← " + r.Initiator
		if !seen[l] {
			seen[l] = true
			lanes = append(lanes, l)
		}
	}
	return lanes
}

func styleLine(l *plotter.Line, s *plotter.Scatter, i int) {
	l.Color = plotutil.Color(i)
	l.Dashes = plotutil.Dashes(i / 7)
	if s != nil {
		s.Color, s.Shape = plotutil.Color(i), plotutil.Shape(i)
	}
}

// iopsPlot: median IOPS against QD, one line per lane.
func iopsPlot(rows []Row, w Workload, conns int) *plot.Plot {
	p := newPlot(fmt.Sprintf("%s, %d connection(s): IOPS vs queue depth", w.Name, conns), "queue depth", "IOPS (median)")
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	n := 0
	for i, lane := range laneOrder(rows) {
		var xys plotter.XYs
		for _, r := range rows {
			if r.Target+" ← "+r.Initiator == lane && r.Point.Workload.Name == w.Name && r.Point.Conns == conns {
				xys = append(xys, plotter.XY{X: float64(r.Point.QD), Y: r.IOPS.Med})
			}
		}
		if len(xys) == 0 {
			continue
		}
		sort.Slice(xys, func(a, b int) bool { return xys[a].X < xys[b].X })
		l, s, _ := plotter.NewLinePoints(xys)
		styleLine(l, s, i)
		p.Add(l, s)
		p.Legend.Add(lane, l, s)
		n++
	}
	if n == 0 {
		return nil
	}
	return p
}

// cdfPlot: latency by percentile, HDR style: the x axis stretches the tail (each
// step right is one more nine), so that p99 and p99.9 are as readable as the median.
func cdfPlot(rows []Row, w Workload, qd, conns int) *plot.Plot {
	p := newPlot(fmt.Sprintf("%s, QD %d, %d connection(s): latency by percentile", w.Name, qd, conns),
		"percentile", "latency (µs)")
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.X.Tick.Marker, p.X.Min, p.X.Max = nines{}, 0, ninesMax
	n := 0
	for i, lane := range laneOrder(rows) {
		for _, r := range rows {
			if r.Target+" ← "+r.Initiator != lane || r.Point.Workload.Name != w.Name || r.Point.QD != qd ||
				r.Point.QDMax || r.Point.Conns != conns || len(r.Latency.CDF) == 0 {
				continue
			}
			var xys plotter.XYs
			for _, c := range r.Latency.CDF {
				if c[1] > 0 {
					xys = append(xys, plotter.XY{X: ninesOf(c[0]), Y: c[1] / 1e3})
				}
			}
			l, s, err := plotter.NewLinePoints(xys)
			if err != nil {
				continue
			}
			styleLine(l, s, i)
			p.Add(l, s)
			p.Legend.Add(lane, l, s)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return p
}

// ninesMax is where the maximum sits on the percentile axis: after 99.999%.
const ninesMax = 5

// ninesOf maps a percentile to its number of nines: 90% → 1, 99% → 2, 100% → the end.
func ninesOf(pct float64) float64 {
	if pct >= 100 {
		return ninesMax
	}
	return min(-math.Log10(1-pct/100), ninesMax)
}

// nines labels the percentile axis.
type nines struct{}

func (nines) Ticks(lo, hi float64) []plot.Tick {
	labels := []struct {
		pct   float64
		label string
	}{{0, "0%"}, {50, "50%"}, {90, "90%"}, {99, "99%"}, {99.9, "99.9%"}, {99.99, "99.99%"}, {100, "max"}}
	var t []plot.Tick
	for _, l := range labels {
		if x := ninesOf(l.pct); x >= lo && x <= hi {
			t = append(t, plot.Tick{Value: x, Label: l.label})
		}
	}
	return t
}

// cpuPlot: the target's CPU µs per I/O for one workload at the largest fixed QD, a bar
// per lane.
func cpuPlot(rows []Row, w Workload, qd, conns int) *plot.Plot {
	p := newPlot(fmt.Sprintf("%s, QD %d, %d connection(s): target CPU per I/O", w.Name, qd, conns),
		"target CPU µs per I/O (polling targets: the whole core over the I/Os it served)", "")
	var labels []string
	var vals plotter.Values
	for _, lane := range laneOrder(rows) {
		for _, r := range rows {
			if r.Target+" ← "+r.Initiator == lane && r.Point.Workload.Name == w.Name && r.Point.QD == qd &&
				!r.Point.QDMax && r.Point.Conns == conns && r.CPUPerMio > 0 {
				labels, vals = append(labels, lane), append(vals, r.CPUPerMio) // s/Mio == µs/I/O
			}
		}
	}
	if len(vals) == 0 {
		return nil
	}
	b, err := plotter.NewBarChart(vals, vg.Points(14))
	if err != nil {
		return nil
	}
	b.Horizontal, b.Color = true, plotutil.Color(1)
	p.Add(b)
	p.NominalY(labels...)
	return p
}
