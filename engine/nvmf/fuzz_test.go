package nvmf

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"sluice/engine/proto/nvme"
)

// FuzzConnInput feeds arbitrary bytes to a connection in each state it can be in
// (before ICReq, after ICReq, as a connected I/O queue) and checks that the target
// survives: no panic, no leaked request slot, and an unrelated connection still
// does I/O afterwards.
func FuzzConnInput(f *testing.F) {
	h := &stepHost{out: make([]byte, 1<<20)}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), h.capsule(rwSQE(nvme.NVMRead, 1, 0, 1, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 512}), nil))
	f.Add(uint8(2), append([]byte(nil), h.capsule(rwSQE(nvme.NVMWrite, 2, 0, 1,
		nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: 512}), make([]byte, 512))...))
	f.Add(uint8(2), append([]byte(nil), h.capsule(rwSQE(nvme.NVMWrite, 3, 0, 1,
		nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 512}), nil)...))
	var icreq [nvme.ICReqLen]byte
	nvme.CommonHeader{Type: nvme.PDUTypeICReq, HLen: nvme.ICReqLen, PLen: nvme.ICReqLen}.Put(icreq[:])
	f.Add(uint8(0), icreq[:])
	var term [nvme.TermReqHLen]byte
	nvme.CommonHeader{Type: nvme.PDUTypeH2CTermReq, HLen: nvme.TermReqHLen, PLen: nvme.TermReqHLen}.Put(term[:])
	f.Add(uint8(1), term[:])

	st := newStepTarget(f, "malloc")
	_, good := st.ioPair(false, false, 0)
	f.Fuzz(func(t *testing.T, state uint8, input []byte) {
		st.t = t
		good.st.t = t
		var h, admin *stepHost
		switch state % 3 {
		case 0:
			h = st.connect()
		case 1:
			h = st.connect()
			h.icreq(false, false)
		case 2:
			admin, h = st.ioPair(false, false, 0)
		}
		for len(input) > 0 {
			n, err := unix.Write(h.fd, input)
			if err == unix.EAGAIN {
				st.poll(1)
				continue
			}
			if err != nil {
				break // the target closed the connection
			}
			input = input[n:]
		}
		st.poll(50)
		unix.Close(h.fd)
		if admin != nil {
			unix.Close(admin.fd)
		}
		st.poll(50)
		checkAlive(t, good, byte(len(input)))
		// Only the healthy pair may be left: everything the input touched is gone.
		if n := len(st.pg.conns); n > 2 {
			var states []string
			for c := range st.pg.conns {
				states = append(states, fmt.Sprintf("%s/stalled=%v/inflight=%d/sq=%d/reason=%q",
					c.state, c.stalled, c.inflight, c.sq.Len(), c.reason))
			}
			t.Fatalf("%d connections left after the fuzzed ones closed: %v", n, states)
		}
	})
}
