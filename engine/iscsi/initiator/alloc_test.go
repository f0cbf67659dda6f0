package initiator_test

import (
	"bytes"
	"runtime"
	"testing"

	"sluice/engine/iscsi/initiator"
)

// TestAsyncZeroAlloc: once warm, the asynchronous path (SubmitRead, SubmitWrite,
// Flush, Reap) allocates nothing per 4 KiB command: with and without digests, with
// immediate data and through R2T, one at a time and 8 deep. testing.AllocsPerRun
// counts every goroutine's allocations, the target's reactors included; the target's
// own data path allocates nothing either (engine/iscsi's TestDataPathAllocatesNothing).
func TestAsyncZeroAlloc(t *testing.T) {
	if testing.Short() {
		t.Skip("counts allocations over a few hundred round trips")
	}
	e := newEnv(t, envOpts{reactors: 1})
	for _, tc := range []struct {
		name string
		o    initiator.Options
	}{
		{"immediate", initiator.Options{}},
		{"immediate digests", initiator.Options{HeaderDigest: initiator.DigestCRC32C, DataDigest: initiator.DigestCRC32C}},
		{"r2t digests", initiator.Options{ImmediateData: boolp(false), HeaderDigest: initiator.DigestCRC32C,
			DataDigest: initiator.DigestCRC32C}},
	} {
		s := e.connect(tc.o)
		const depth = 8
		data := make([][]byte, depth)
		back := make([][]byte, depth)
		for i := range data {
			data[i], back[i] = pattern(4096, uint32(i+1)), make([]byte, 4096)
		}
		cs := make([]initiator.Completion, 2*depth)
		bad := 0
		reap := func(n int) {
			for got := 0; got < n; {
				k, err := s.Reap(cs)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range cs[:k] {
					if c.Err != nil || !c.Good() {
						bad++
					}
				}
				got += k
			}
		}
		run := func(qd int) func() {
			return func() {
				for i := range qd {
					if err := s.SubmitWrite(0, uint64(8*i), 8, data[i], false, uint16(i)); err != nil {
						t.Fatal(err)
					}
				}
				reap(qd)
				for i := range qd {
					if err := s.SubmitRead(0, uint64(8*i), 8, back[i], uint16(depth+i)); err != nil {
						t.Fatal(err)
					}
				}
				reap(qd)
			}
		}
		for _, qd := range []int{1, depth} {
			f := run(qd)
			for range 20 {
				f() // warm: channels opened, timers made, buffers grown
			}
			n := testing.AllocsPerRun(100, f)
			if bad != 0 {
				t.Fatalf("%s qd %d: %d commands not GOOD", tc.name, qd, bad)
			}
			if n != 0 {
				t.Errorf("%s, qd %d: %v allocations per write and read", tc.name, qd, n)
			}
			// AllocsPerRun rounds down; count exactly too, for the record.
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for range 100 {
				f()
			}
			runtime.ReadMemStats(&m1)
			t.Logf("%s, qd %d: AllocsPerRun %v; %d mallocs in all goroutines over 100 runs of %d writes + %d reads",
				tc.name, qd, n, m1.Mallocs-m0.Mallocs, qd, qd)
		}
		for i := range data {
			if !bytes.Equal(back[i], data[i]) {
				t.Fatalf("%s: block %d read back differs", tc.name, i)
			}
		}
	}
}
