package bench

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency summarises a point's latency distribution. Source says where it comes from:
// "hdr" (an HDR histogram of every measured I/O, this harness's initiators), the
// initiator's own percentiles (spdk_nvme_perf -L), or "none" (iscsi-perf reports
// none).
type Latency struct {
	Source string  `json:"source"`
	MeanNs float64 `json:"mean_ns"`
	P50Ns  int64   `json:"p50_ns"`
	P99Ns  int64   `json:"p99_ns"`
	P999Ns int64   `json:"p99_9_ns"`
	MaxNs  int64   `json:"max_ns"`
	// CDF is (percentile, ns) pairs for the latency plots.
	CDF [][2]float64 `json:"cdf,omitempty"`
}

// Known reports whether the initiator measured latency at all.
func (l Latency) Known() bool { return l.Source != "" && l.Source != "none" }

// latencyLimit is the largest latency the histograms track; slower I/Os are clamped
// to it (and so still counted) rather than dropped.
const latencyLimit = int64(60 * time.Second)

// newHist makes the per-run histogram: 1 ns resolution at the bottom, 3 significant
// digits, up to a minute. It is allocated once per point, before the load starts.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, latencyLimit, 3) }

// recordNs adds one latency without allocating.
func recordNs(h *hdrhistogram.Histogram, ns int64) {
	if ns > latencyLimit {
		ns = latencyLimit
	}
	if ns < 1 {
		ns = 1
	}
	_ = h.RecordValue(ns)
}

// cdfPercentiles are where the plots sample the distribution: dense in the tail.
var cdfPercentiles = []float64{0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 99, 99.5, 99.9, 99.95, 99.99, 100}

// summarize turns a histogram into a Latency.
func summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{Source: "none"}
	}
	l := Latency{
		Source: "hdr",
		MeanNs: h.Mean(),
		P50Ns:  h.ValueAtPercentile(50),
		P99Ns:  h.ValueAtPercentile(99),
		P999Ns: h.ValueAtPercentile(99.9),
		MaxNs:  h.Max(),
	}
	for _, p := range cdfPercentiles {
		v := h.ValueAtPercentile(p)
		if p == 0 {
			v = h.Min()
		}
		l.CDF = append(l.CDF, [2]float64{p, float64(v)})
	}
	return l
}
