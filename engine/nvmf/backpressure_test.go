package nvmf

import (
	"bytes"
	"testing"

	"sluice/engine/proto/nvme"
)

// TestOutOfBufferMemoryIsBackPressure: when the buffer domain cannot hold every
// transfer in flight, requests wait for memory (the connection stops reading) and all
// complete, correctly, as earlier ones free theirs; nothing fails and nothing panics.
func TestOutOfBufferMemoryIsBackPressure(t *testing.T) {
	// Two 2 MiB pages: at most a few 512 KiB transfers fit at once.
	st := newStepTargetMem(t, "malloc", 4<<20)
	_, io := st.ioPair(false, false, 0)
	const n, size = 16, 512 << 10
	data := bytes.Repeat([]byte{0xC3}, size)
	if c := io.call(rwSQE(nvme.NVMWrite, io.nextCID(), 0, size/512, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: size}),
		nil, data); !c.Status().Success() {
		t.Fatalf("write: %v", c.Status())
	}
	// Send n reads at once; the target stalls on memory, then drains.
	var batch []byte
	for i := 0; i < n; i++ {
		s := rwSQE(nvme.NVMRead, uint16(100+i), 0, size/512, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: size})
		batch = append(batch, io.capsule(s, nil)...)
	}
	io.send(batch)
	stalled := false
	got := make([]byte, size)
	for done := 0; done < n; {
		if st.pg.conns != nil {
			for c := range st.pg.conns {
				stalled = stalled || c.stalled
			}
		}
		ch, pdu := io.recvPDU()
		switch ch.Type {
		case nvme.PDUTypeC2HData:
			d, _ := nvme.DecodeC2HData(pdu)
			copy(got[d.DATAO:], pdu[ch.PDO:])
			if !bytes.Equal(got[:d.DATAL], data[:d.DATAL]) {
				t.Fatalf("read %d returned wrong data", d.CCCID)
			}
		case nvme.PDUTypeCapsuleResp:
			if s := nvme.CapsuleCQE(pdu).Status(); !s.Success() {
				t.Fatalf("read failed under memory pressure: %v", s)
			}
			done++
		default:
			t.Fatalf("unexpected %v", ch.Type)
		}
	}
	if !stalled {
		t.Fatal("the domain held every transfer at once; the test does not exercise back-pressure")
	}
}
