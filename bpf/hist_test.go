package bpf

import "testing"

// TestSlotBounds: every value falls in the bucket whose bounds hold it, buckets are
// contiguous, and none is wider than 1/8 of its lower bound (above the exact ones).
func TestSlotBounds(t *testing.T) {
	for s := 0; s < HistSlots-1; s++ {
		lo, hi := SlotLow(s), SlotHigh(s)
		if hi <= lo {
			t.Fatalf("slot %d: [%d, %d)", s, lo, hi)
		}
		if s >= subs && (hi-lo)*subs > lo {
			t.Fatalf("slot %d: [%d, %d) wider than 1/8", s, lo, hi)
		}
		for _, v := range []uint64{lo, hi - 1, lo + (hi-lo)/2} {
			if got := SlotOf(v); got != s {
				t.Fatalf("SlotOf(%d) = %d, want %d", v, got, s)
			}
		}
	}
	if SlotOf(^uint64(0)) != HistSlots-1 {
		t.Fatal("huge values must land in the last bucket")
	}
}

func TestQuantile(t *testing.T) {
	var h Hist
	for v := uint64(1000); v < 101000; v += 1000 { // 1 µs .. 100 µs, 100 values
		h[SlotOf(v)]++
	}
	for _, c := range []struct {
		q    float64
		want uint64
	}{{0.5, 50000}, {0.99, 99000}, {0.999, 100000}} {
		got := h.Quantile(c.q)
		if d := float64(got)/float64(c.want) - 1; d > 0.0625 || d < -0.0625 {
			t.Errorf("q%.3f = %d, want %d within 6.25%%", c.q, got, c.want)
		}
	}
	var empty Hist
	if empty.Quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
	rows := h.Log2()
	var n uint64
	for _, r := range rows {
		n += r
	}
	if n != 100 || rows[10] == 0 || rows[17] == 0 {
		t.Errorf("log2 rows %v", rows[:20])
	}
}
