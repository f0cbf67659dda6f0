package iscsi

import (
	"bytes"
	"testing"
	"time"
)

// TestDataPathAllocatesNothing: a 4 KiB READ(16), a 4 KiB WRITE(16) with immediate data
// and one through an R2T, from the command's bytes reaching the target to the response
// bytes it writes back (receive machine, CmdSN window, task slot, slab buffer, SCSI
// layer, malloc bdev, Data-In or SCSI Response, send queue), allocate nothing on the Go
// heap. testing.AllocsPerRun counts every goroutine's allocations, the reactors'
// included; the initiator side of the loop (preallocated buffers, one fixed socket
// deadline) allocates nothing either, so the count is the target's.
func TestDataPathAllocatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("counts allocations over a few hundred round trips")
	}
	e := newEnv(t, envOpts{reactors: 1})
	for _, digests := range []bool{false, true} {
		in := connect(t, e.addr, loginOpts{hd: digests, dd: digests})
		data := pattern(4096, 101)
		back := make([]byte, 4096)
		read := cmdSpec{cdb: read16(8, 8), read: true, edtl: 4096, in: back}
		write := cmdSpec{cdb: write16(8, 8), write: true, edtl: 4096, out: data}
		writeR2T := cmdSpec{cdb: write16(16, 8), write: true, edtl: 4096, out: data, noImmediate: true}
		// Warm every path once: the first use opens channels and fills the allocator.
		for range 3 {
			in.exec(write).good(t, "write")
			in.exec(writeR2T).good(t, "write via R2T")
			in.exec(read).good(t, "read")
		}
		if !bytes.Equal(back, data) {
			t.Fatal("read back differs")
		}
		in.fixedDeadline = true
		in.c.SetDeadline(time.Now().Add(time.Minute))
		for _, tc := range []struct {
			name string
			s    cmdSpec
		}{{"read 4k", read}, {"write 4k immediate", write}, {"write 4k via r2t", writeR2T}} {
			var bad result
			n := testing.AllocsPerRun(300, func() {
				if r := in.exec(tc.s); r.status != 0 {
					bad = r
				}
			})
			if bad.status != 0 {
				t.Fatalf("%s: status %#x", tc.name, bad.status)
			}
			if n != 0 {
				t.Errorf("digests %v, %s: %v allocations per I/O", digests, tc.name, n)
			}
		}
		in.fixedDeadline = false
	}
}
