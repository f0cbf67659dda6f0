package nvmf

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/proto/nvme"
	"sluice/engine/tcpconn"
)

// The hardening issue's "one host cannot starve the others": a host that never sends
// the data it asked to write pins at most its quota of buffers, and is cut after the
// data timeout; a socket that never finishes its setup is closed after the setup
// timeout and costs little memory meanwhile; a refused host is let go at once.

// r2tWrite sends a write whose data goes through R2T, and returns the R2T.
func (h *stepHost) r2tWriteNoData(slba uint64, n uint32) {
	sqe := rwSQE(nvme.NVMWrite, h.nextCID(), slba, uint16(n/512), nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: n})
	h.send(h.capsule(sqe, nil))
}

// r2ts reads the R2Ts the target sent so far (stepping it a little).
func (h *stepHost) r2ts(want int) []nvme.R2T {
	var out []nvme.R2T
	for len(out) < want {
		ch, pdu := h.recvPDU()
		if ch.Type != nvme.PDUTypeR2T {
			h.st.t.Fatalf("got %v, want R2T", ch.Type)
		}
		r, _ := nvme.DecodeR2T(pdu)
		out = append(out, r)
	}
	return out
}

// noMorePDUs checks that the target sends nothing more for a while.
func (h *stepHost) noMorePDUs() {
	h.st.t.Helper()
	h.st.poll(200)
	var b [1]byte
	if n, _ := readNonBlock(h.fd, b[:]); n > 0 {
		h.st.t.Fatal("the target sent a PDU it should have held back")
	}
}

func TestAwaitedDataQuotaHoldsBackR2Ts(t *testing.T) {
	st := newStepTargetOpts(t, stepOpts{module: "malloc", limits: tcpconn.Limits{MaxAwaitedDataBytes: 16 << 10}})
	_, io := st.ioPair(false, false, 0)
	for i := 0; i < 10; i++ {
		io.r2tWriteNoData(uint64(i)*16, 8192)
	}
	first := io.r2ts(2) // 2 × 8 KiB fill the 16 KiB quota
	io.noMorePDUs()
	if n := st.tgt.limits.Stats().QuotaWaits; n != 8 {
		t.Fatalf("quota waits %d, want 8", n)
	}
	// Each write's data lets the next one ask for its own.
	data := bytes.Repeat([]byte{0x42}, 8192)
	pending := first
	done := 0
	for len(pending) > 0 {
		r := pending[0]
		pending = pending[1:]
		io.h2c(r, data)
		for {
			ch, pdu := io.recvPDU()
			if ch.Type == nvme.PDUTypeCapsuleResp {
				if c := nvme.CapsuleCQE(pdu); !c.Status().Success() {
					t.Fatalf("write: %v", c.Status())
				}
				done++
				break
			}
			r2t, _ := nvme.DecodeR2T(pdu)
			pending = append(pending, r2t)
		}
	}
	if done != 10 {
		t.Fatalf("%d of 10 writes completed", done)
	}
	checkAlive(t, io, 7)
}

func TestDataTimeoutCutsAHostThatNeverSendsData(t *testing.T) {
	st := newStepTargetOpts(t, stepOpts{module: "malloc", fakeClock: true,
		limits: tcpconn.Limits{DataTimeoutMs: 5000}})
	admin, io := st.ioPair(false, false, 0)
	for i := 0; i < 4; i++ {
		io.r2tWriteNoData(uint64(i)*16, 8192)
	}
	io.r2ts(4)
	st.advance(4 * time.Second)
	st.poll(10)
	if len(st.pg.conns) != 2 {
		t.Fatal("a connection was cut before its data timeout")
	}
	st.advance(2 * time.Second)
	io.drainUntilEOF()
	if n := st.tgt.limits.Stats().DataTimeouts; n != 1 {
		t.Fatalf("data timeouts %d, want 1", n)
	}
	_ = admin
	st.settle(1)
	st.checkNoLeaksBut(1)
}

// checkNoLeaksBut checks that the buffers in use are only what keep connections need
// (none: admin queues hold no data buffers while idle).
func (st *stepTarget) checkNoLeaksBut(keep int) {
	st.t.Helper()
	st.pg.mem.Reclaim()
	st.pg.mem.PublishStats()
	if used := st.dom.Stats().Cores[0].BytesInUse; used != 0 {
		st.t.Fatalf("%d bytes of data buffers still in use with %d idle connections", used, keep)
	}
}

func TestSetupTimeoutClosesSocketsThatNeverSetUp(t *testing.T) {
	st := newStepTargetOpts(t, stepOpts{module: "malloc", fakeClock: true,
		limits: tcpconn.Limits{SetupTimeoutMs: 2000}})
	idle := st.connect() // never sends ICReq
	half := st.connect()
	half.icreq(false, false) // ICReq, but never Connect
	for c := range st.pg.conns {
		if c.state == connStateAwaitICReq && (len(c.reqs) != 0 || c.cidBusy != nil) {
			t.Fatal("a connection that has not sent ICReq holds request slots")
		}
	}
	st.advance(3 * time.Second)
	idle.expectEOF()
	half.expectEOF()
	if n := st.tgt.limits.Stats().SetupTimeouts; n != 2 {
		t.Fatalf("setup timeouts %d, want 2", n)
	}
	st.freshIO()
}

func TestRefusedHostIsDisconnectedAtOnce(t *testing.T) {
	st := newStepTarget(t, "malloc")
	if err := st.tgt.SetAllowAnyHost(testNQN, false); err != nil {
		t.Fatal(err)
	}
	h := st.connect()
	h.icreq(false, false)
	if c := h.connectQueue(0, nvme.CNTLIDDynamic, 0); c.Status() != nvme.StatusConnectInvalidHost.WithDNR() {
		t.Fatalf("unlisted host: %v", c.Status())
	}
	h.expectEOF()
	u := st.connect()
	u.icreq(false, false)
	cd := nvme.ConnectData{HostID: testHostID, CNTLID: nvme.CNTLIDDynamic, SubNQN: "nqn.2026-11.dev.sluice:none", HostNQN: testHostNQN}
	var b [nvme.ConnectDataLen]byte
	_ = cd.MarshalTo(&b)
	if c := u.call(connectSQE(u.nextCID(), 0, 32, 0), b[:], nil); c.Status().Code() != nvme.StatusConnectInvalidParameters.Code() {
		t.Fatalf("unknown subsystem: %v", c.Status())
	}
	u.expectEOF()
}

func readNonBlock(fd int, b []byte) (int, error) { return unix.Read(fd, b) }
