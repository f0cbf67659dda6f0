package bench

import (
	"slices"
	"sort"
)

// Spread is a median with the range it came from.
type Spread struct {
	Med float64 `json:"median"`
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

func spreadOf(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Spread{Med: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// Row is one lane at one point, over its repetitions: what the report's tables show.
type Row struct {
	Initiator string  `json:"initiator"`
	Target    string  `json:"target"`
	Family    string  `json:"family"`
	Backend   string  `json:"backend,omitempty"`
	Protocol  string  `json:"protocol"`
	Point     Point   `json:"point"`
	IOPS      Spread  `json:"iops"`
	MBps      float64 `json:"mb_per_s"`
	Latency   Latency `json:"latency"` // medians over repetitions; the CDF of the median run
	CPUPerMio float64 `json:"target_cpu_s_per_mio"`
	Bound     string  `json:"bound"`
	// Contention is the median share of time other tasks waited for a CPU (-1: unknown).
	Contention float64 `json:"contention"`
	// VsLimit is the paired ratio IOPS/limit IOPS of the same repetition and point.
	VsLimit Spread `json:"vs_limit"`
	// VsPeer is the paired ratio to each peer target driven by the same initiator on the
	// same backend (sluice rows only).
	VsPeer map[string]Spread `json:"vs_peer,omitempty"`
}

type sampleKey struct{ initiator, target, point string }

type pairKey struct {
	rep   int
	point string
}

// Aggregate groups samples into rows, in the order the lanes first appear.
func Aggregate(samples []Sample) []Row {
	groups := map[sampleKey][]Sample{}
	var order []sampleKey
	limit := map[pairKey]float64{}
	for _, s := range samples {
		k := sampleKey{s.Initiator, s.Target, s.Point.Key()}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], s)
		if s.Family == "limit" {
			limit[pairKey{s.Rep, s.Point.Key()}] = s.IOPS
		}
	}
	rows := make([]Row, 0, len(order))
	for _, k := range order {
		rows = append(rows, makeRow(groups[k], samples, limit))
	}
	return rows
}

func makeRow(g, all []Sample, limit map[pairKey]float64) Row {
	first := g[0]
	r := Row{Initiator: first.Initiator, Target: first.Target, Family: first.Family, Backend: first.Backend,
		Protocol: first.Protocol, Point: first.Point}
	var iops, mbps, cpu, p50, p99, p999, mx, vsl, cont []float64
	bound := map[string]int{}
	for _, s := range g {
		iops, mbps, cpu = append(iops, s.IOPS), append(mbps, s.MBps), append(cpu, s.CPUPerMillion())
		p50, p99 = append(p50, float64(s.Latency.P50Ns)), append(p99, float64(s.Latency.P99Ns))
		p999, mx = append(p999, float64(s.Latency.P999Ns)), append(mx, float64(s.Latency.MaxNs))
		bound[s.Bound]++
		cont = append(cont, s.Contention)
		if lim := limit[pairKey{s.Rep, s.Point.Key()}]; lim > 0 && s.Family != "limit" {
			vsl = append(vsl, s.IOPS/lim)
		}
	}
	r.IOPS, r.MBps, r.CPUPerMio = spreadOf(iops), spreadOf(mbps).Med, spreadOf(cpu).Med
	r.Latency = medianRun(g).Latency
	r.Latency.P50Ns, r.Latency.P99Ns = int64(spreadOf(p50).Med), int64(spreadOf(p99).Med)
	r.Latency.P999Ns, r.Latency.MaxNs = int64(spreadOf(p999).Med), int64(spreadOf(mx).Med)
	r.VsLimit, r.Contention = spreadOf(vsl), spreadOf(cont).Med
	for b, n := range bound {
		if n > bound[r.Bound] || (n == bound[r.Bound] && b < r.Bound) {
			r.Bound = b
		}
	}
	if r.Family == "sluice" {
		r.VsPeer = peerRatios(g, all)
	}
	return r
}

// medianRun is the repetition whose IOPS is the median: its CDF stands for the row.
func medianRun(g []Sample) Sample {
	s := slices.Clone(g)
	sort.Slice(s, func(i, j int) bool { return s[i].IOPS < s[j].IOPS })
	return s[len(s)/2]
}

// peerRatios pairs each sluice sample with every peer sample of the same repetition,
// point, initiator and backend.
func peerRatios(g, all []Sample) map[string]Spread {
	ratios := map[string][]float64{}
	for _, s := range g {
		for _, p := range all {
			if p.Family == "sluice" || p.Family == "limit" || p.Rep != s.Rep || p.Initiator != s.Initiator ||
				p.Backend != s.Backend || p.Point.Key() != s.Point.Key() || p.IOPS == 0 {
				continue
			}
			ratios[p.Target] = append(ratios[p.Target], s.IOPS/p.IOPS)
		}
	}
	out := map[string]Spread{}
	for t, v := range ratios {
		out[t] = spreadOf(v)
	}
	return out
}
