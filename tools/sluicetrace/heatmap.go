package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"sort"

	"sluice/bpf"
)

// writeHeatmap draws one panel per series: time on x (one column per interval),
// power-of-two latency rows on y, and the count of each cell as colour on a log scale,
// so that a latency mode that moves or a tail that grows shows at a glance.
func writeHeatmap(w io.Writer, r *recorder) error {
	keys := map[bpf.SeriesKey]bool{}
	for _, iv := range r.intervals {
		for _, s := range iv.Series {
			if s.Count > 0 {
				keys[s.SeriesKey] = true
			}
		}
	}
	order := make([]bpf.SeriesKey, 0, len(keys))
	for k := range keys {
		order = append(order, k)
	}
	sort.Slice(order, func(i, j int) bool { return lessKey(order[i], order[j]) })
	cols := max(len(r.intervals), 1)
	cellW := math.Max(3, math.Min(24, 960/float64(cols)))
	const cellH, left, top, gap = 12.0, 80.0, 40.0, 56.0
	width := math.Max(480, left+cellW*float64(cols)+40)
	panels := make([]panel, 0, len(order))
	height := top
	for _, k := range order {
		p := makePanel(r, k)
		p.y = height
		height += float64(p.hi-p.lo+1)*cellH + gap
		panels = append(panels, p)
	}
	height = math.Max(height, top+gap)
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="monospace" font-size="10">`+"\n", width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="%.0f" y="20" font-size="14">sluice latency heatmap, ns (%d intervals)</text>`+"\n", left, len(r.intervals))
	if len(panels) == 0 {
		fmt.Fprintf(w, `<text x="%.0f" y="%.0f">no traced operations</text>`+"\n", left, top+12)
	}
	for _, p := range panels {
		p.draw(w, r, left, cellW, cellH)
	}
	_, err := fmt.Fprintln(w, "</svg>")
	return err
}

type panel struct {
	key    bpf.SeriesKey
	cells  [][64]uint64 // per interval, per log2 row
	lo, hi int          // rows shown
	most   uint64
	total  uint64
	y      float64
}

func makePanel(r *recorder, k bpf.SeriesKey) panel {
	p := panel{key: k, lo: 64, hi: -1}
	for _, iv := range r.intervals {
		var rows [64]uint64
		for _, s := range iv.Series {
			if s.SeriesKey == k {
				rows = s.Hist.Log2()
				p.total += s.Count
			}
		}
		for i, c := range rows {
			if c > 0 {
				p.lo, p.hi = min(p.lo, i), max(p.hi, i)
				p.most = max(p.most, c)
			}
		}
		p.cells = append(p.cells, rows)
	}
	return p
}

func (p panel) draw(w io.Writer, r *recorder, left, cellW, cellH float64) {
	fmt.Fprintf(w, `<text x="%.0f" y="%.0f" font-size="12">%s: %d traced</text>`+"\n",
		left, p.y-6, html.EscapeString(label(p.key)), p.total)
	rows := p.hi - p.lo + 1
	for i := p.lo; i <= p.hi; i++ {
		y := p.y + float64(p.hi-i)*cellH
		fmt.Fprintf(w, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-4, y+cellH-2, bound(rowLow(i)))
	}
	for c, cell := range p.cells {
		x := left + float64(c)*cellW
		for i := p.lo; i <= p.hi; i++ {
			if cell[i] == 0 {
				continue
			}
			y := p.y + float64(p.hi-i)*cellH
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d</title></rect>`+"\n",
				x, y, cellW, cellH, heat(cell[i], p.most), cell[i])
		}
	}
	bottom := p.y + float64(rows)*cellH
	fmt.Fprintf(w, `<rect x="%.0f" y="%.0f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n",
		left, p.y, cellW*float64(len(p.cells)), float64(rows)*cellH)
	if len(r.intervals) == 0 {
		return
	}
	t0 := r.intervals[0].At
	step := max(1, len(p.cells)/10)
	for c := 0; c < len(p.cells); c += step {
		fmt.Fprintf(w, `<text x="%.1f" y="%.0f">%.0fs</text>`+"\n",
			left+float64(c)*cellW, bottom+12, r.intervals[c].At.Sub(t0).Seconds())
	}
}

// rowLow is the smallest ns of a log2 row (row 0 holds 0).
func rowLow(i int) uint64 {
	if i == 0 {
		return 0
	}
	return 1 << (i - 1)
}

// heat maps a count to a colour from pale yellow to dark red, on a log scale.
func heat(c, most uint64) string {
	f := 1.0
	if most > 1 {
		f = math.Log1p(float64(c)) / math.Log1p(float64(most))
	}
	stops := [][3]float64{{255, 255, 204}, {253, 141, 60}, {189, 0, 38}, {64, 0, 13}}
	pos := f * float64(len(stops)-1)
	i := min(int(pos), len(stops)-2)
	t := pos - float64(i)
	var rgb [3]int
	for j := range rgb {
		rgb[j] = int(stops[i][j] + (stops[i+1][j]-stops[i][j])*t + 0.5)
	}
	return fmt.Sprintf("#%02x%02x%02x", rgb[0], rgb[1], rgb[2])
}
