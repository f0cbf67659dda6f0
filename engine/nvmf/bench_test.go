package nvmf

import (
	"testing"

	"sluice/engine/proto/nvme"
)

// BenchmarkTargetRead4K measures the target's cost per 4 KiB read on a null bdev,
// end to end through a socketpair, with batches of qd reads in flight: the host side
// is one write of qd capsules and reads of the responses, so ns/op is dominated by
// the target's receive, execution and send path (and its syscalls).
func BenchmarkTargetRead4K(b *testing.B) {
	for _, qd := range []int{1, 32} {
		b.Run("qd="+itoa(qd), func(b *testing.B) {
			st := newStepTarget(b, "null")
			_, io := st.ioPair(false, false, nvme.CATTRDisableSQFlowCtrl)
			capsules := make([]byte, 0, qd*nvme.CapsuleCmdHLen)
			for i := 0; i < qd; i++ {
				s := rwSQE(nvme.NVMRead, uint16(i), uint64(i*8), 8, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 4096})
				capsules = append(capsules, io.capsule(s, nil)...)
			}
			respLen := qd * (nvme.TermReqHLen + 4096) // C2HData with SUCCESS, no CapsuleResp
			b.SetBytes(4096)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += qd {
				io.send(capsules)
				io.recv(respLen)
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}
