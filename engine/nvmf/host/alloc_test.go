package host

import (
	"io"
	"testing"

	"sluice/engine/proto/nvme"
)

// benchLoop answers Reads (C2HData, then a CapsuleResp or SUCCESS) and Writes
// (in-capsule, or R2T then H2CData) from preallocated buffers, with the negotiated
// digests, so that AllocsPerRun, which counts every goroutine's allocations, sees
// only the host's.
func (c *fakeConn) benchLoop() {
	var ch [nvme.CHLen]byte
	in := make([]byte, 1<<20)
	out := make([]byte, 2*nvme.MaxHLen+(1<<20))
	p := c.sendParams()
	success := c.sqflowOff && c.f.cfg.success
	readPDU := func() bool {
		if _, err := io.ReadFull(c.br, ch[:]); err != nil {
			return false
		}
		h, _ := nvme.DecodeCommonHeader(ch[:])
		if h.PLen > uint32(len(in)) {
			c.f.t.Errorf("bench: %+v", h)
			return false
		}
		copy(in, ch[:])
		_, err := io.ReadFull(c.br, in[nvme.CHLen:h.PLen])
		return err == nil
	}
	finish := func(b []byte, ch nvme.CommonHeader, dataLen int) int {
		ch.Put(b)
		if ch.Flags&nvme.CHFlagHDGSTF != 0 {
			nvme.SetHeaderDigest(b, int(ch.HLen))
		}
		if ch.Flags&nvme.CHFlagDDGSTF != 0 {
			pdo := int(ch.PDO)
			nvme.PutDigest(b[pdo+dataLen:], nvme.CRC32C(b[pdo:pdo+dataLen]))
		}
		return int(ch.PLen)
	}
	var want, got [MaxQueueSize]uint32 // R2T writes in flight, by CID slot
	resp := func(b []byte, cid uint16) int {
		h := nvme.FrameHeader(nvme.PDUTypeCapsuleResp, 0, 0, p)
		nvme.CapsuleCQE(b).Fill(cid, c.qid, uint16(c.sqhd), 0, 0, nvme.StatusSuccess)
		return finish(b, h, 0)
	}
	for {
		if !readPDU() {
			return
		}
		n := 0
		switch nvme.PDUType(in[0]) {
		case nvme.PDUTypeH2CData:
			d, _ := nvme.DecodeH2CData(in)
			i := d.CCCID & slotMask
			if d.DATAO != got[i] || got[i]+d.DATAL > want[i] || d.TTAG != i {
				c.f.t.Errorf("bench: H2CData %+v, want %d got %d", d, want[i], got[i])
				return
			}
			if got[i] += d.DATAL; got[i] < want[i] {
				continue
			}
			n = resp(out, d.CCCID)
		case nvme.PDUTypeCapsuleCmd:
			sqe := nvme.CapsuleSQE(in)
			cid := sqe.CID()
			c.sqhd = (c.sqhd + 1) % c.sqsize
			dl := sqe.SGL1().Length
			switch {
			case sqe.Opcode() == uint8(nvme.NVMRead):
				flags := nvme.CHFlagLastPDU
				if success {
					flags |= nvme.CHFlagSuccess
				}
				h := nvme.FrameHeader(nvme.PDUTypeC2HData, flags, dl, p)
				d := nvme.C2HData{CCCID: cid, DATAL: dl}
				d.Put(out)
				for i := range dl {
					out[uint32(h.PDO)+i] = byte(i)
				}
				n = finish(out, h, int(dl))
				if !success {
					n += resp(out[n:], cid)
				}
			case sqe.SGL1().ID == nvme.SGLIDTransport:
				i := cid & slotMask
				want[i], got[i] = dl, 0
				h := nvme.FrameHeader(nvme.PDUTypeR2T, 0, 0, p)
				r := nvme.R2T{CCCID: cid, TTAG: i, R2TL: dl}
				r.Put(out)
				n = finish(out, h, 0)
			default:
				n = resp(out, cid)
			}
		default:
			c.f.t.Errorf("bench: pdu type %d", in[0])
			return
		}
		if _, err := c.nc.Write(out[:n]); err != nil {
			return
		}
	}
}

// TestAsyncZeroAlloc: the pipelined path (submit, flush, reap) allocates nothing per
// I/O: reads land in caller buffers (in place when larger than the receive buffer),
// writes go in-capsule or through R2T and H2CData, with or without digests.
func TestAsyncZeroAlloc(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  fakeCfg
		opts Options
	}{
		{"icd", fakeCfg{ioccsz: (64 + 8192) / 16}, Options{}},
		{"r2t digests success", fakeCfg{maxH2C: 4096, success: true},
			Options{MaxICD: -1, HeaderDigest: true, DataDigest: true, DisableSQFlow: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.benchIO = true
			f := newFakeTarget(t, tc.cfg)
			tc.opts.QueueSize = 64
			c := connectFake(t, f, tc.opts)
			q, err := c.NewIOQueue(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			const depth = 32
			bufs := make([][]byte, depth)
			for i := range bufs {
				bufs[i] = make([]byte, 8192)
			}
			big := make([]byte, 64<<10) // larger than the receive buffer: read in place
			dst := make([]Completion, depth)
			run := func() {
				for i := range depth {
					var err error
					if i%2 == 0 {
						err = q.SubmitRead(1, uint64(i), 16, bufs[i], uint16(i))
					} else {
						err = q.SubmitWrite(1, uint64(i), 16, bufs[i], false, uint16(i))
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if err := q.SubmitRead(1, 0, 128, big, depth); err != nil {
					t.Fatal(err)
				}
				if err := q.Flush(); err != nil {
					t.Fatal(err)
				}
				for q.Outstanding() > 0 {
					n, err := q.Reap(dst)
					if err != nil {
						t.Fatal(err)
					}
					for _, cpl := range dst[:n] {
						if !cpl.Status.Success() {
							t.Fatalf("completion %+v", cpl)
						}
					}
				}
			}
			if allocs := testing.AllocsPerRun(50, run); allocs != 0 {
				t.Errorf("%v allocations per %d I/Os, want 0", allocs, depth+1)
			}
			if k := 1001; big[k] != byte(k) {
				t.Errorf("read data not delivered")
			}
		})
	}
}

// BenchmarkAsyncRead4K measures the host's pipelined read path against the fake's
// allocation-free responder (the fake's cost is included).
func BenchmarkAsyncRead4K(b *testing.B) {
	f := newFakeTarget(b, fakeCfg{benchIO: true})
	c := connectFake(b, f, Options{QueueSize: 64})
	q, err := c.NewIOQueue(ctxTB(b))
	if err != nil {
		b.Fatal(err)
	}
	const depth = 32
	bufs := make([][]byte, depth)
	for i := range bufs {
		bufs[i] = make([]byte, 4096)
	}
	dst := make([]Completion, depth)
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	submitted := 0
	for i := range min(depth, b.N) {
		q.SubmitRead(1, 0, 8, bufs[i], uint16(i))
		submitted++
	}
	for q.Outstanding() > 0 {
		n, err := q.Reap(dst)
		if err != nil {
			b.Fatal(err)
		}
		for _, cpl := range dst[:n] {
			if submitted < b.N {
				q.SubmitRead(1, 0, 8, bufs[cpl.Tag], cpl.Tag)
				submitted++
			}
		}
	}
}
