package nvmf

import (
	"bytes"
	"encoding/binary"
	"testing"

	"sluice/engine/proto/nvme"
)

// expectTermReq reads the C2HTermReq the target must send and checks that the
// connection is then closed.
func (h *stepHost) expectTermReq(fes nvme.FES, fei uint32) {
	h.st.t.Helper()
	ch, pdu := h.recvPDU()
	if ch.Type != nvme.PDUTypeC2HTermReq {
		h.st.t.Fatalf("got %v, want C2HTermReq", ch.Type)
	}
	tr, err := nvme.DecodeTermReq(pdu)
	if err != nil {
		h.st.t.Fatal(err)
	}
	if tr.FES != fes || tr.FEI != fei {
		h.st.t.Fatalf("TermReq FES %v FEI %d, want FES %v FEI %d", tr.FES, tr.FEI, fes, fei)
	}
	h.expectEOF()
}

// checkAlive proves that an unrelated connection still does I/O byte-exact.
func checkAlive(t *testing.T, io *stepHost, seed byte) {
	t.Helper()
	data := bytes.Repeat([]byte{seed}, 8192)
	back := make([]byte, 8192)
	w := rwSQE(nvme.NVMWrite, io.nextCID(), 100, 16, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 8192})
	if c := io.call(w, nil, data); !c.Status().Success() {
		t.Fatalf("healthy connection write: %v", c.Status())
	}
	r := rwSQE(nvme.NVMRead, io.nextCID(), 100, 16, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 8192})
	if c := io.call(r, nil, back); !c.Status().Success() || !bytes.Equal(back, data) {
		t.Fatalf("healthy connection read: %v", c.Status())
	}
}

// TestMalformedPDUsTerminateOnlyTheirConnection sends each kind of broken input on
// its own connection and checks the TermReq (FES, FEI) and the close, while another
// connection keeps doing I/O.
func TestMalformedPDUsTerminateOnlyTheirConnection(t *testing.T) {
	st := newStepTarget(t, "malloc")
	_, good := st.ioPair(false, false, 0)
	checkAlive(t, good, 1)

	running := func(hdgst bool) *stepHost {
		h := st.connect()
		h.icreq(hdgst, false)
		return h
	}
	hdr := func(typ nvme.PDUType, flags, hlen, pdo uint8, plen uint32) []byte {
		b := make([]byte, plen)
		nvme.CommonHeader{Type: typ, Flags: flags, HLen: hlen, PDO: pdo, PLen: plen}.Put(b)
		return b
	}
	cases := []struct {
		name string
		run  func(h *stepHost)
		fes  nvme.FES
		fei  uint32
	}{
		{"reserved pdu type", func(h *stepHost) { h.send(hdr(0x0F, 0, 24, 0, 24)) }, nvme.FESInvalidHeaderField, 0},
		{"controller-to-host type from host", func(h *stepHost) {
			h.send(hdr(nvme.PDUTypeCapsuleResp, 0, 24, 0, 24))
		}, nvme.FESInvalidHeaderField, 0},
		{"capsule hlen wrong", func(h *stepHost) {
			h.send(hdr(nvme.PDUTypeCapsuleCmd, 0, 64, 0, 72))
		}, nvme.FESInvalidHeaderField, 2},
		{"plen shorter than header", func(h *stepHost) {
			h.send(hdr(nvme.PDUTypeCapsuleCmd, 0, 72, 0, 40)[:8])
		}, nvme.FESInvalidHeaderField, 4},
		{"second ICReq", func(h *stepHost) {
			b := make([]byte, nvme.ICReqLen)
			nvme.CommonHeader{Type: nvme.PDUTypeICReq, HLen: nvme.ICReqLen, PLen: nvme.ICReqLen}.Put(b)
			h.send(b)
		}, nvme.FESPDUSequenceError, 0},
		{"header digest mismatch", func(h *stepHost) {
			b := h.capsule(rwSQE(nvme.NVMRead, 1, 0, 1, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 512}), nil)
			b[nvme.CapsuleCmdHLen] ^= 0xFF
			h.send(b)
		}, nvme.FESHeaderDigestError, 0},
		{"in-capsule data above the limit", func(h *stepHost) {
			// Before Connect the admin limit (8 KiB) applies.
			h.send(h.capsule(rwSQE(nvme.NVMWrite, 1, 0, 32, nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: 16384}),
				make([]byte, 16384)))
		}, nvme.FESDataLimitExceeded, 0},
		{"oversize plen", func(h *stepHost) {
			b := hdr(nvme.PDUTypeCapsuleCmd, 0, 72, 72, 72)
			binary.LittleEndian.PutUint32(b[4:], 0xFFFFFFF0)
			h.send(b)
		}, nvme.FESDataLimitExceeded, 0},
		{"H2CData with unknown transfer tag", func(h *stepHost) {
			b := hdr(nvme.PDUTypeH2CData, nvme.CHFlagLastPDU, 24, 24, 24+512)
			(&nvme.H2CData{CCCID: 1, TTAG: 999, DATAO: 0, DATAL: 512}).Put(b)
			h.send(b)
		}, nvme.FESInvalidHeaderField, 10},
		{"H2CData without an R2T", func(h *stepHost) {
			b := hdr(nvme.PDUTypeH2CData, nvme.CHFlagLastPDU, 24, 24, 24+512)
			(&nvme.H2CData{CCCID: 1, TTAG: 0, DATAO: 0, DATAL: 512}).Put(b)
			h.send(b)
		}, nvme.FESPDUSequenceError, 0},
		{"H2CData out of order", func(h *stepHost) {
			// Handshake first: an admin-less queue cannot run I/O, so use a
			// Connect with a transport SGL to get an R2T.
			s := connectSQE(h.nextCID(), 0, 32, 0)
			s.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: nvme.ConnectDataLen})
			h.send(h.capsule(s, nil))
			ch, pdu := h.recvPDU()
			if ch.Type != nvme.PDUTypeR2T {
				st.t.Fatalf("want R2T, got %v", ch.Type)
			}
			r2t, _ := nvme.DecodeR2T(pdu)
			b := hdr(nvme.PDUTypeH2CData, 0, 24, 24, 24+512)
			(&nvme.H2CData{CCCID: r2t.CCCID, TTAG: r2t.TTAG, DATAO: 512, DATAL: 512}).Put(b)
			h.send(b)
		}, nvme.FESDataOutOfRange, 0},
		{"H2CData beyond the transfer", func(h *stepHost) {
			s := connectSQE(h.nextCID(), 0, 32, 0)
			s.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: nvme.ConnectDataLen})
			h.send(h.capsule(s, nil))
			_, pdu := h.recvPDU()
			r2t, _ := nvme.DecodeR2T(pdu)
			b := hdr(nvme.PDUTypeH2CData, 0, 24, 24, 24+2048)
			(&nvme.H2CData{CCCID: r2t.CCCID, TTAG: r2t.TTAG, DATAO: 0, DATAL: 2048}).Put(b)
			h.send(b)
		}, nvme.FESDataOutOfRange, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st.t = t
			h := running(tc.name == "header digest mismatch")
			tc.run(h)
			h.expectTermReq(tc.fes, tc.fei)
			checkAlive(t, good, byte(i+2))
		})
	}

	t.Run("in-capsule data above the I/O queue limit", func(t *testing.T) {
		st.t = t
		_, io := st.ioPair(false, false, 0)
		io.send(io.capsule(rwSQE(nvme.NVMWrite, io.nextCID(), 0, 16, nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: 8192}),
			make([]byte, 8192)))
		io.expectTermReq(nvme.FESDataLimitExceeded, 0)
		checkAlive(t, good, 49)
	})

	t.Run("capsule before ICReq", func(t *testing.T) {
		st.t = t
		h := st.connect()
		h.send(h.capsule(connectSQE(1, 0, 32, 0), make([]byte, nvme.ConnectDataLen)))
		h.expectTermReq(nvme.FESPDUSequenceError, 0)
		checkAlive(t, good, 50)
	})

	t.Run("data digest error fails the command, not the connection", func(t *testing.T) {
		st.t = t
		admin := st.connect()
		admin.icreq(false, false)
		admin.connectQueue(0, nvme.CNTLIDDynamic, 0)
		io := st.connect()
		io.icreq(true, true)
		io.connectQueue(1, admin.cntlid, 0)
		b := io.capsule(rwSQE(nvme.NVMWrite, io.nextCID(), 0, 1, nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: 512}),
			bytes.Repeat([]byte{9}, 512))
		b[len(b)-1] ^= 0xFF
		io.send(b)
		ch, pdu := io.recvPDU()
		if ch.Type != nvme.PDUTypeCapsuleResp {
			t.Fatalf("got %v", ch.Type)
		}
		if s := nvme.CapsuleCQE(pdu).Status(); s.Code() != nvme.StatusTransientTransportError.Code() || s.DNR() {
			t.Fatalf("status %v, want retryable transient transport error", s)
		}
		checkAlive(t, io, 51)
		checkAlive(t, good, 52)
	})

	t.Run("command ID reused while in flight", func(t *testing.T) {
		st.t = t
		_, io := st.ioPair(false, false, 0)
		w := rwSQE(nvme.NVMWrite, 77, 0, 1, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 512})
		io.send(io.capsule(w, nil))
		if ch, _ := io.recvPDU(); ch.Type != nvme.PDUTypeR2T {
			t.Fatalf("want R2T, got %v", ch.Type)
		}
		c := io.call(rwSQE(nvme.NVMRead, 77, 0, 1, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 512}), nil, make([]byte, 512))
		if c.Status().Code() != nvme.StatusCIDConflict.Code() {
			t.Fatalf("status %v, want command ID conflict", c.Status())
		}
	})

	t.Run("bad commands get statuses", func(t *testing.T) {
		st.t = t
		_, io := st.ioPair(false, false, 0)
		buf := make([]byte, 8192)
		for _, tc := range []struct {
			name string
			sqe  *nvme.SQE
			want nvme.Status
		}{
			{"lba out of range", rwSQE(nvme.NVMRead, 0, 1<<16, 1, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 512}), nvme.StatusLBAOutOfRange},
			{"sgl shorter than nlb", rwSQE(nvme.NVMRead, 0, 0, 4, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 512}), nvme.StatusDataSGLLengthInvalid},
			{"sgl above mdts", rwSQE(nvme.NVMRead, 0, 0, 1, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 1 << 30}), nvme.StatusDataSGLLengthInvalid},
			{"keyed sgl", rwSQE(nvme.NVMRead, 0, 0, 1, nvme.SGLDescriptor{ID: 0x40, Length: 512}), nvme.StatusSGLDescriptorTypeInvalid},
			{"bad opcode", func() *nvme.SQE { s := rwSQE(0x7E, 0, 0, 1, nvme.SGLDescriptor{}); return s }(), nvme.StatusInvalidOpcode},
		} {
			tc.sqe.SetCID(io.nextCID())
			c := io.call(tc.sqe, nil, buf)
			if c.Status().Code() != tc.want.Code() {
				t.Errorf("%s: %v, want %v", tc.name, c.Status(), tc.want)
			}
		}
		s := rwSQE(nvme.NVMRead, io.nextCID(), 0, 1, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 512})
		s.SetNSID(5)
		if c := io.call(s, nil, buf); c.Status().Code() != nvme.StatusInvalidNamespaceOrFormat.Code() {
			t.Errorf("inactive namespace: %v", c.Status())
		}
		checkAlive(t, io, 60)
	})
}
