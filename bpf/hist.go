package bpf

import "math/bits"

// The histogram layout of sluice.c: values below 8 ns get a bucket each, then each
// power of two is split in 8 equal buckets, so a bucket is at most 12.5% wide.
const (
	subBits   = 3
	subs      = 1 << subBits
	HistSlots = 320
)

// Hist is one latency histogram as the kernel fills it: counts per bucket.
type Hist [HistSlots]uint64

// SlotOf is the bucket of a value in ns, as sluice.c computes it.
func SlotOf(v uint64) int {
	if v < subs {
		return int(v)
	}
	e := bits.Len64(v) - 1
	s := (e-subBits+1)*subs + int((v>>(e-subBits))&(subs-1))
	return min(s, HistSlots-1)
}

// SlotLow is the smallest value (ns) bucket s holds.
func SlotLow(s int) uint64 {
	if s < subs {
		return uint64(s)
	}
	e := s/subs + subBits - 1
	return uint64(subs+s%subs) << (e - subBits)
}

// SlotHigh is the smallest value above bucket s.
func SlotHigh(s int) uint64 { return SlotLow(s + 1) }

// Count is the number of values in h.
func (h *Hist) Count() uint64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	return n
}

// Add adds o's counts into h.
func (h *Hist) Add(o *Hist) {
	for i := range h {
		h[i] += o[i]
	}
}

// Sub is h minus an earlier snapshot of the same histogram (an interval's values).
func (h *Hist) Sub(prev *Hist) Hist {
	var d Hist
	for i := range h {
		if h[i] > prev[i] {
			d[i] = h[i] - prev[i]
		}
	}
	return d
}

// Quantile estimates the q-quantile (0..1) in ns: the middle of the bucket that holds
// it, so within 6.25% of the true value. It is 0 for an empty histogram.
func (h *Hist) Quantile(q float64) uint64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for s, c := range h {
		seen += c
		if seen >= rank {
			lo, hi := SlotLow(s), SlotHigh(s)
			return lo + (hi-lo)/2
		}
	}
	return SlotLow(HistSlots - 1)
}

// Log2 folds h into power-of-two rows, bpftrace's hist(): row 0 holds 0, row i>0
// holds [2^(i-1), 2^i).
func (h *Hist) Log2() [64]uint64 {
	var rows [64]uint64
	for s, c := range h {
		if c == 0 {
			continue
		}
		rows[bits.Len64(SlotLow(s))] += c
	}
	return rows
}
