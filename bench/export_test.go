package bench

import "testing"

// RoundAllocs primes l with qd I/Os per queue of w and measures the allocations of
// runs rounds of its load loop.
func RoundAllocs(t *testing.T, l *NVMeLoad, w Workload, qd, runs int) float64 {
	t.Helper()
	if err := l.prepare(w, qd); err != nil {
		t.Fatal(err)
	}
	l.measuring = true
	for qi := range l.qs {
		for tag := range qd {
			if err := l.submit(qi, uint16(tag)); err != nil {
				t.Fatal(err)
			}
		}
	}
	allocs := testing.AllocsPerRun(runs, func() {
		if _, err := l.round(true); err != nil {
			t.Fatal(err)
		}
	})
	if err := l.drain(); err != nil {
		t.Fatal(err)
	}
	if l.ios == 0 || l.errs != 0 {
		t.Errorf("%d I/Os completed, %d failed", l.ios, l.errs)
	}
	return allocs
}
