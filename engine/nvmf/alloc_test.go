package nvmf

import (
	"bytes"
	"testing"

	"sluice/engine/proto/nvme"
)

// TestDataPathAllocatesNothing: from the bytes of a 4 KiB read or write arriving on a
// connection to the response bytes written back, including the bdev submit and its
// completion, nothing is allocated on the Go heap. The host side of the loop (socket
// reads and writes into preallocated buffers) allocates nothing either, so the count
// is the target's.
func TestDataPathAllocatesNothing(t *testing.T) {
	for _, module := range []string{"null", "malloc", "malloc+reservation"} {
		t.Run(module, func(t *testing.T) {
			resv := module == "malloc+reservation"
			if resv {
				module = "malloc"
			}
			st := newStepTargetOpts(t, stepOpts{module: module, resv: resv})
			_, io := st.ioPair(false, false, 0)
			if resv {
				// A reservation held by this host: every I/O runs the conflict
				// check's full scan, which must allocate nothing either.
				if s := register(io, nvme.ResvRegister{RREGA: nvme.RREGARegister}, nvme.ResvRegisterData{NRKEY: 1}); !s.Success() {
					t.Fatal(s)
				}
				if s := acquire(io, nvme.ResvAcquire{RACQA: nvme.RACQAAcquire, RTYPE: nvme.RTypeWriteExclusiveRegistrantsOnly},
					nvme.ResvAcquireData{CRKEY: 1}); !s.Success() {
					t.Fatal(s)
				}
			}
			data := make([]byte, 4096)
			for i := range data {
				data[i] = byte(i * 7)
			}
			back := make([]byte, 4096)
			read := rwSQE(nvme.NVMRead, 0, 8, 8, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 4096})
			writeICD := rwSQE(nvme.NVMWrite, 0, 8, 8, nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: 4096})
			writeR2T := rwSQE(nvme.NVMWrite, 0, 16, 8, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 4096})
			ok := func(c nvme.CQE) {
				if !c.Status().Success() {
					t.Fatalf("status %v", c.Status())
				}
			}
			// Warm up every path once: first use opens the bdev channel and
			// fills the allocator's slices.
			ok(io.call(writeICD, data, nil))
			ok(io.call(writeR2T, nil, data))
			ok(io.call(read, nil, back))
			if module == "malloc" && !bytes.Equal(back, data) {
				t.Fatal("read back differs from what was written")
			}
			for name, run := range map[string]func(){
				"read 4k":             func() { read.SetCID(io.nextCID()); ok(io.call(read, nil, back)) },
				"write 4k in capsule": func() { writeICD.SetCID(io.nextCID()); ok(io.call(writeICD, data, nil)) },
				"write 4k via r2t":    func() { writeR2T.SetCID(io.nextCID()); ok(io.call(writeR2T, nil, data)) },
			} {
				if n := testing.AllocsPerRun(500, run); n != 0 {
					t.Errorf("%s: %v allocations per I/O", name, n)
				}
			}
		})
	}
}
