package probe

import "testing"

// The cost of a site with no tracer, per call. BenchmarkGate is what the data path
// pays (the semaphore's load and branch); BenchmarkStub is a stub called anyway (the
// ABI wrapper, the NOP5 and the return), what a site would cost with no gate.

var sinkKey uint64

func BenchmarkGate(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if IOEnabled() {
			IOStart("vol0", 0, uint64(i), int64(i), 0)
		}
	}
}

func BenchmarkStub(b *testing.B) {
	for i := 0; i < b.N; i++ {
		ioStart("vol0", 0, uint64(i), int64(i), 0)
	}
}

// BenchmarkSampledOut is a traced process's cost for a command outside the sample (the
// gate open, the hash, no stub).
func BenchmarkSampledOut(b *testing.B) {
	n := 0
	for i := 0; i < b.N; i++ {
		if sampled(uint64(i), uint64(i)*977, 0) {
			n++
		}
	}
	sinkKey = uint64(n)
}

// TestSitesAllocateNothing: a site allocates nothing, traced or not (the stub is
// called directly for the traced case: nothing listens, but the call is the same).
func TestSitesAllocateNothing(t *testing.T) {
	vol := "vol0"
	for name, f := range map[string]func(){
		"gated io":   func() { IOStart(vol, 1, 2, 3, 4); IODone(vol, 1, 2, 3, 0) },
		"gated repl": func() { ReplSend(vol, "p", 1); ReplAck(vol, "p", 1); JournalEnqueue(vol, 1); JournalDequeue(vol, 1) },
		"stubs":      func() { ioStart(vol, 1, 2, 3, 4); ioDone(vol, 1, 2, 3, 0); replSend(vol, "p", 1) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}

// TestSampledRate: the hash keeps about 1 in N of consecutive keys at the same time
// and of one key at consecutive times, and all of them at N=1.
func TestSampledRate(t *testing.T) {
	thresh := uint32((uint64(1)<<32)/64) - 1
	byKey, byTime := 0, 0
	for i := uint64(0); i < 64000; i++ {
		if sampled(i, 5e9, thresh) {
			byKey++
		}
		if sampled(12<<16, 5e9+i*1000, thresh) {
			byTime++
		}
		if !sampled(i, i, ^uint32(0)) {
			t.Fatal("N=1 must keep every key")
		}
	}
	for _, n := range []int{byKey, byTime} {
		if n < 850 || n > 1150 {
			t.Errorf("1 in 64 of 64000 kept %d (by key %d, by time %d)", n, byKey, byTime)
		}
	}
}
