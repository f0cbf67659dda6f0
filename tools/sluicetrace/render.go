package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"sluice/bpf"
)

// recorder turns cumulative snapshots into intervals and keeps them for the heatmap.
type recorder struct {
	opts      bpf.Options
	prev      map[bpf.SeriesKey]bpf.Series
	prevMono  uint64
	intervals []interval
}

// interval is what happened between two snapshots, per series.
type interval struct {
	At     time.Time
	Secs   float64
	Series []seriesDelta
	Drops  uint64 // outlier events lost so far
}

type seriesDelta struct {
	bpf.SeriesKey
	Sample   uint32   // 1 in Sample operations traced
	Hist     bpf.Hist // latencies ended in the interval
	Count    uint64
	SumNs    uint64
	AvgDepth float64 // sampled operations in flight on average, times Sample
	Depth    int64   // in flight at the snapshot, times Sample
	Total    uint64  // traced since attach
	Errors   uint64
}

func newRecorder(o bpf.Options) *recorder {
	return &recorder{opts: o, prev: map[bpf.SeriesKey]bpf.Series{}}
}

func (r *recorder) sample(k bpf.Kind) uint32 {
	if k == bpf.KindIO {
		return max(r.opts.SampleIO, 1)
	}
	return max(r.opts.SampleRepl, 1)
}

// add computes the interval since the previous snapshot (or since attach).
func (r *recorder) add(s bpf.Snapshot) interval {
	iv := interval{At: s.At, Drops: s.EventDrops}
	var span uint64
	if r.prevMono != 0 && s.MonoNs > r.prevMono {
		span = s.MonoNs - r.prevMono
	}
	iv.Secs = float64(span) / 1e9
	for _, cur := range s.Series {
		p := r.prev[cur.SeriesKey]
		n := float64(r.sample(cur.Kind))
		d := seriesDelta{SeriesKey: cur.SeriesKey, Sample: r.sample(cur.Kind), Hist: cur.Hist.Sub(&p.Hist),
			Count: cur.Count - p.Count, SumNs: cur.SumNs - p.SumNs, Depth: cur.Depth * int64(n),
			Total: cur.Count, Errors: cur.Errors - p.Errors}
		if span > 0 {
			prevInt := uint64(0)
			if p.LastNs != 0 {
				prevInt = p.DepthIntegral(r.prevMono)
			}
			d.AvgDepth = float64(cur.DepthIntegral(s.MonoNs)-prevInt) / float64(span) * n
		}
		iv.Series = append(iv.Series, d)
		r.prev[cur.SeriesKey] = cur
	}
	sort.Slice(iv.Series, func(i, j int) bool { return lessKey(iv.Series[i].SeriesKey, iv.Series[j].SeriesKey) })
	r.prevMono = s.MonoNs
	r.intervals = append(r.intervals, iv)
	return iv
}

func lessKey(a, b bpf.SeriesKey) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.Volume != b.Volume {
		return a.Volume < b.Volume
	}
	if a.Peer != b.Peer {
		return a.Peer < b.Peer
	}
	return a.Reactor < b.Reactor
}

// label names a series the way bpftrace names a map entry.
func label(k bpf.SeriesKey) string {
	switch k.Kind {
	case bpf.KindIO:
		return fmt.Sprintf("@io[%s, reactor %d]", k.Volume, k.Reactor)
	case bpf.KindRepl:
		return fmt.Sprintf("@repl[%s -> %s]", k.Volume, k.Peer)
	}
	return fmt.Sprintf("@%s[%s]", k.Kind, k.Volume)
}

// dur prints ns with three significant digits: 850ns, 12.3µs, 4.56ms, 1.20s.
func dur(ns uint64) string {
	v, unit := float64(ns), "ns"
	switch {
	case ns >= 1e9:
		v, unit = v/1e9, "s"
	case ns >= 1e6:
		v, unit = v/1e6, "ms"
	case ns >= 1e3:
		v, unit = v/1e3, "µs"
	default:
		return fmt.Sprintf("%dns", ns)
	}
	prec := 0
	switch {
	case v < 9.995:
		prec = 2
	case v < 99.95:
		prec = 1
	}
	return strconv.FormatFloat(v, 'f', prec, 64) + unit
}

// bound prints a power of two of ns as bpftrace does: 0, 1, 512, 1K, 256K, 2M, 1G.
func bound(ns uint64) string {
	switch {
	case ns >= 1<<30 && ns%(1<<30) == 0:
		return fmt.Sprintf("%dG", ns>>30)
	case ns >= 1<<20 && ns%(1<<20) == 0:
		return fmt.Sprintf("%dM", ns>>20)
	case ns >= 1<<10 && ns%(1<<10) == 0:
		return fmt.Sprintf("%dK", ns>>10)
	}
	return fmt.Sprintf("%d", ns)
}

// writeHist prints h as bpftrace's hist() does: one row per power of two of ns, from
// the first nonempty row to the last, with a bar of @ scaled to the fullest row.
func writeHist(w io.Writer, h *bpf.Hist) {
	rows := h.Log2()
	lo, hi := -1, -1
	var most uint64
	for i, c := range rows {
		if c == 0 {
			continue
		}
		if lo < 0 {
			lo = i
		}
		hi = i
		most = max(most, c)
	}
	if lo < 0 {
		return
	}
	const width = 52
	for i := lo; i <= hi; i++ {
		var from, to uint64
		if i > 0 {
			from, to = 1<<(i-1), 1<<i
		} else {
			to = 1
		}
		bar := int(rows[i] * width / most)
		rng := "[" + bound(from) + ", " + bound(to) + ")"
		fmt.Fprintf(w, "%-16s %8d |%-*s|\n", rng, rows[i], width, strings.Repeat("@", bar))
	}
}

func writeText(w io.Writer, iv interval, events []bpf.Event) error {
	fmt.Fprintf(w, "\n%s", iv.At.Format("15:04:05"))
	if iv.Drops > 0 {
		fmt.Fprintf(w, "  (%d outlier events lost)", iv.Drops)
	}
	fmt.Fprintln(w)
	for _, s := range iv.Series {
		if s.Count == 0 && s.Depth == 0 {
			continue
		}
		rate := ""
		if iv.Secs > 0 {
			rate = fmt.Sprintf(", %.0f/s", float64(s.Count)*float64(s.Sample)/iv.Secs)
		}
		fmt.Fprintf(w, "%s (ns): %d traced%s (1 in %d), avg depth %.1f, p50 %s p99 %s p99.9 %s",
			label(s.SeriesKey), s.Count, rate, s.Sample, s.AvgDepth,
			dur(s.Hist.Quantile(0.5)), dur(s.Hist.Quantile(0.99)), dur(s.Hist.Quantile(0.999)))
		if s.Errors > 0 {
			fmt.Fprintf(w, ", %d errors", s.Errors)
		}
		fmt.Fprintln(w)
		writeHist(w, &s.Hist)
	}
	for _, e := range events {
		fmt.Fprintf(w, "outlier %s: %s, depth %d, status %#x, id %#x\n",
			label(e.SeriesKey), dur(uint64(e.Latency)), e.Depth, e.Status, e.ID)
	}
	return nil
}

type jsonSeries struct {
	bpf.SeriesKey
	Sample   uint32   `json:"sample"`
	Count    uint64   `json:"count"`
	Rate     float64  `json:"rate_per_s"`
	MeanNs   uint64   `json:"mean_ns"`
	P50Ns    uint64   `json:"p50_ns"`
	P99Ns    uint64   `json:"p99_ns"`
	P999Ns   uint64   `json:"p999_ns"`
	AvgDepth float64  `json:"avg_depth"`
	Depth    int64    `json:"depth"`
	Errors   uint64   `json:"errors"`
	Total    uint64   `json:"total_traced"`
	Log2     []uint64 `json:"log2_hist"` // row 0: 0 ns; row i: [2^(i-1), 2^i) ns
}

func writeJSON(w io.Writer, iv interval, events []bpf.Event) error {
	out := struct {
		Time   time.Time    `json:"time"`
		Secs   float64      `json:"interval_s"`
		Drops  uint64       `json:"event_drops"`
		Series []jsonSeries `json:"series"`
		Events []bpf.Event  `json:"outliers"`
	}{Time: iv.At, Secs: iv.Secs, Drops: iv.Drops, Series: []jsonSeries{}, Events: events}
	for _, s := range iv.Series {
		js := jsonSeries{SeriesKey: s.SeriesKey, Sample: s.Sample, Count: s.Count,
			P50Ns: s.Hist.Quantile(0.5), P99Ns: s.Hist.Quantile(0.99), P999Ns: s.Hist.Quantile(0.999),
			AvgDepth: s.AvgDepth, Depth: s.Depth, Errors: s.Errors, Total: s.Total}
		if s.Count > 0 {
			js.MeanNs = s.SumNs / s.Count
		}
		if iv.Secs > 0 {
			js.Rate = float64(s.Count) * float64(s.Sample) / iv.Secs
		}
		rows := s.Hist.Log2()
		n := len(rows)
		for n > 0 && rows[n-1] == 0 {
			n--
		}
		js.Log2 = rows[:n]
		out.Series = append(out.Series, js)
	}
	if out.Events == nil {
		out.Events = []bpf.Event{}
	}
	return json.NewEncoder(w).Encode(out)
}
