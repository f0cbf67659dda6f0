package host

import (
	"context"
	"errors"
	"testing"
	"time"

	"sluice/engine/proto/nvme"
)

// misbehave answers one I/O command wrongly; n is the command's data length.
type misbehave func(fc *fakeConn, sqe *nvme.SQE, n uint32)

// ioViolation connects, then sends one I/O command (a 4-block read, or a write when
// write is set) that the fake answers with bad; it returns the command's error.
func ioViolation(t *testing.T, cfg fakeCfg, o Options, write bool, bad misbehave) (*fakeTarget, error) {
	t.Helper()
	cfg.tolerant = true
	f := newFakeTarget(t, cfg)
	op := uint8(nvme.NVMRead)
	if write {
		op = uint8(nvme.NVMWrite)
	}
	f.cfg.hook = func(fc *fakeConn, sqe *nvme.SQE, data []byte) bool {
		if fc.qid == 0 || sqe.Opcode() != op {
			return false
		}
		bad(fc, sqe, sqe.SGL1().Length)
		return true
	}
	c := connectFake(t, f, o)
	q, err := c.NewIOQueue(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	buf := pattern(4*fakeBlock, 3)
	if write {
		err = q.Write(ctxT(t), 1, 0, 4, buf, false)
	} else {
		err = q.Read(ctxT(t), 1, 0, 4, buf)
	}
	if err == nil {
		t.Fatal("command succeeded")
	}
	if q.Err() == nil {
		t.Errorf("queue still alive after %v", err)
	}
	if err2 := q.Read(ctxT(t), 1, 0, 1, buf[:512]); err2 == nil {
		t.Errorf("queue usable after a violation")
	}
	return f, err
}

func TestViolations(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    fakeCfg
		opts   Options
		write  bool
		bad    misbehave
		fes    nvme.FES
		fei    uint32
		noTerm bool // no H2CTermReq expected (not a framing error)
	}{
		{
			name: "header digest", opts: Options{HeaderDigest: true},
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				b := fc.c2hPDU(sqe.CID(), 0, make([]byte, n), nvme.CHFlagLastPDU)
				b[nvme.DataHLen] ^= 1
				fc.write(b)
			},
			fes: nvme.FESHeaderDigestError, fei: 0,
		},
		{
			name: "data digest", opts: Options{DataDigest: true}, noTerm: true,
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				b := fc.c2hPDU(sqe.CID(), 0, make([]byte, n), nvme.CHFlagLastPDU)
				b[len(b)-1] ^= 1
				fc.write(b)
			},
		},
		{
			name: "c2h datao gap",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.c2hPDU(sqe.CID(), 4, make([]byte, n-4), nvme.CHFlagLastPDU))
			},
			fes: nvme.FESDataOutOfRange, fei: 12,
		},
		{
			name: "c2h beyond buffer",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.c2hPDU(sqe.CID(), 0, make([]byte, n+4), nvme.CHFlagLastPDU))
			},
			fes: nvme.FESDataOutOfRange, fei: 16,
		},
		{
			name: "c2h unknown cid",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.c2hPDU(sqe.CID()+1, 0, make([]byte, n), nvme.CHFlagLastPDU))
			},
			fes: nvme.FESInvalidHeaderField, fei: 8,
		},
		{
			name: "c2h stale cid generation",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.c2hPDU(sqe.CID()^0x1000, 0, make([]byte, n), nvme.CHFlagLastPDU))
			},
			fes: nvme.FESInvalidHeaderField, fei: 8,
		},
		{
			name: "c2h datal disagrees with plen",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				b := fc.c2hPDU(sqe.CID(), 0, make([]byte, n), nvme.CHFlagLastPDU)
				b[16]++
				fc.write(b)
			},
			fes: nvme.FESInvalidHeaderField, fei: 16,
		},
		{
			name: "c2h padded",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				// Framed for a 16-byte HPDA: PDO 32 although the host asked for 0.
				ch := nvme.FrameHeader(nvme.PDUTypeC2HData, nvme.CHFlagLastPDU, n, nvme.LayoutParams{PDA: 3})
				b := make([]byte, ch.PLen)
				ch.Put(b)
				d := nvme.C2HData{CCCID: sqe.CID(), DATAL: n}
				d.Put(b)
				fc.write(b)
			},
			fes: nvme.FESInvalidHeaderField, fei: 3,
		},
		{
			name: "last before all data",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.c2hPDU(sqe.CID(), 0, make([]byte, n/2), nvme.CHFlagLastPDU))
			},
			fes: nvme.FESPDUSequenceError, fei: 0,
		},
		{
			name: "success without last",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.c2hPDU(sqe.CID(), 0, make([]byte, n), nvme.CHFlagSuccess))
			},
			fes: nvme.FESInvalidHeaderField, fei: 1,
		},
		{
			name: "success with sq flow control on",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.c2hPDU(sqe.CID(), 0, make([]byte, n), nvme.CHFlagLastPDU|nvme.CHFlagSuccess))
			},
			fes: nvme.FESInvalidHeaderField, fei: 1,
		},
		{
			name: "resp mid-transfer",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.c2hPDU(sqe.CID(), 0, make([]byte, n/2), 0))
				fc.resp(sqe.CID(), nvme.StatusSuccess, 0, 0)
			},
			fes: nvme.FESPDUSequenceError, fei: 0,
		},
		{
			name: "read success without data",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.resp(sqe.CID(), nvme.StatusSuccess, 0, 0)
			},
			fes: nvme.FESPDUSequenceError, fei: 0,
		},
		{
			name: "resp unknown cid",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.resp(sqe.CID()+3, nvme.StatusSuccess, 0, 0)
			},
			fes: nvme.FESInvalidHeaderField, fei: 20,
		},
		{
			name: "resp wrong sqid",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.qid++
				fc.resp(sqe.CID(), nvme.StatusInvalidField, 0, 0)
			},
			fes: nvme.FESInvalidHeaderField, fei: 18,
		},
		{
			name: "sqhd beyond the queue",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.sqhd = 500
				fc.resp(sqe.CID(), nvme.StatusInvalidField, 0, 0)
			},
			fes: nvme.FESInvalidHeaderField, fei: 16,
		},
		{
			name: "sqhd past submitted entries",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.sqhd += 5
				fc.resp(sqe.CID(), nvme.StatusInvalidField, 0, 0)
			},
			fes: nvme.FESInvalidHeaderField, fei: 16,
		},
		{
			name: "resp hlen",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				b := fc.respPDU(sqe.CID(), nvme.StatusInvalidField, 0, 0)
				b[2] = 23
				fc.write(b)
			},
			fes: nvme.FESInvalidHeaderField, fei: 2,
		},
		{
			name: "h2c type from controller",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				b := fc.c2hPDU(sqe.CID(), 0, make([]byte, n), nvme.CHFlagLastPDU)
				b[0] = byte(nvme.PDUTypeH2CData)
				fc.write(b)
			},
			fes: nvme.FESInvalidHeaderField, fei: 0,
		},
		{
			name: "icresp after init",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.pdu(nvme.PDUTypeICResp, 0, func(b []byte) {
					r := nvme.ICResp{MAXH2CDATA: 8192}
					r.Put(b)
				}, nil))
			},
			fes: nvme.FESPDUSequenceError, fei: 0,
		},
		{
			name: "r2t for a read",
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.r2tPDU(sqe.CID(), 1, 0, n))
			},
			fes: nvme.FESPDUSequenceError, fei: 0,
		},
		{
			name: "r2t offset", write: true, opts: Options{MaxICD: -1},
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.r2tPDU(sqe.CID(), 1, 512, n-512))
			},
			fes: nvme.FESDataOutOfRange, fei: 12,
		},
		{
			name: "r2t beyond buffer", write: true, opts: Options{MaxICD: -1},
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.r2tPDU(sqe.CID(), 1, 0, n+4))
			},
			fes: nvme.FESDataOutOfRange, fei: 16,
		},
		{
			name: "r2t length 0", write: true, opts: Options{MaxICD: -1},
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.r2tPDU(sqe.CID(), 1, 0, 0))
			},
			fes: nvme.FESInvalidHeaderField, fei: 16,
		},
		{
			name: "r2t for in-capsule write", write: true,
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.write(fc.r2tPDU(sqe.CID(), 1, 0, n))
			},
			fes: nvme.FESPDUSequenceError, fei: 0,
		},
		{
			name: "write success before data", write: true, opts: Options{MaxICD: -1},
			bad: func(fc *fakeConn, sqe *nvme.SQE, n uint32) {
				fc.resp(sqe.CID(), nvme.StatusSuccess, 0, 0)
			},
			fes: nvme.FESPDUSequenceError, fei: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ioViolation(t, tc.cfg, tc.opts, tc.write, tc.bad)
			pe := wantViolation(t, err, tc.fes, tc.fei)
			if tc.noTerm {
				if pe.FES != 0 {
					t.Errorf("FES %v for a non-framing violation", pe.FES)
				}
				return
			}
			waitEvent(t, f, "termreq:"+tc.fes.String())
		})
	}
}

func TestC2HTermReq(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	f.cfg.hook = func(fc *fakeConn, sqe *nvme.SQE, data []byte) bool {
		if fc.qid == 0 {
			return false
		}
		tr := nvme.NewTermReq(nvme.PDUTypeC2HTermReq, nvme.FESDataLimitExceeded, 0, make([]byte, 72))
		b := make([]byte, tr.PLen())
		tr.Put(b)
		fc.write(b)
		return true
	}
	c := connectFake(t, f, Options{})
	q, err := c.NewIOQueue(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	err = q.Read(ctxT(t), 1, 0, 1, make([]byte, 512))
	var te *TermReqError
	if !errors.As(err, &te) || te.FES != nvme.FESDataLimitExceeded || len(te.Data) != 72 || !errors.Is(err, ErrTerminated) {
		t.Fatalf("got %v", err)
	}
	if f.sawEvent("termreq:" + nvme.FESDataLimitExceeded.String()) {
		t.Error("host answered a TermReq with a TermReq")
	}
}

func TestICRespValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		resp func(req nvme.ICReq) nvme.ICResp
		fei  uint32
	}{
		{"digest not asked for", Options{}, func(r nvme.ICReq) nvme.ICResp {
			return nvme.ICResp{DGST: nvme.DigestHeader, MAXH2CDATA: 8192}
		}, 11},
		{"digest refused", Options{HeaderDigest: true, DataDigest: true}, func(r nvme.ICReq) nvme.ICResp {
			return nvme.ICResp{DGST: nvme.DigestHeader, MAXH2CDATA: 8192}
		}, 11},
		{"cpda", Options{}, func(r nvme.ICReq) nvme.ICResp {
			return nvme.ICResp{CPDA: 1, MAXH2CDATA: 8192}
		}, 10},
		{"maxh2cdata small", Options{}, func(r nvme.ICReq) nvme.ICResp {
			return nvme.ICResp{MAXH2CDATA: 4092}
		}, 12},
		{"maxh2cdata unaligned", Options{}, func(r nvme.ICReq) nvme.ICResp {
			return nvme.ICResp{MAXH2CDATA: 8190}
		}, 12},
		{"pfv", Options{}, func(r nvme.ICReq) nvme.ICResp {
			return nvme.ICResp{PFV: 1, MAXH2CDATA: 8192}
		}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTarget(t, fakeCfg{icresp: tc.resp, tolerant: true})
			o := tc.opts
			o.KATO = -1
			_, err := Connect(ctxT(t), f.addr(), f.cfg.subnqn, o)
			wantViolation(t, err, nvme.FESInvalidHeaderField, tc.fei)
			waitEvent(t, f, "termreq:"+nvme.FESInvalidHeaderField.String())
		})
	}
}

func TestICRespTimeout(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	f.cfg.icresp = func(nvme.ICReq) nvme.ICResp {
		time.Sleep(300 * time.Millisecond)
		return nvme.ICResp{MAXH2CDATA: 8192}
	}
	_, err := Connect(ctxT(t), f.addr(), f.cfg.subnqn, Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Connect(ctx, f.addr(), f.cfg.subnqn, Options{}); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrTimeout) {
		t.Errorf("ctx deadline: %v", err)
	}
}

func TestIdentifyGates(t *testing.T) {
	for _, tc := range []struct {
		name string
		disc bool
		mod  func(id *nvme.IdentifyController)
	}{
		{"cntlid mismatch", false, func(id *nvme.IdentifyController) { id.CNTLID = 2 }},
		{"kas 0", false, func(id *nvme.IdentifyController) { id.KAS = 0 }},
		{"ioccsz 3", false, func(id *nvme.IdentifyController) { id.IOCCSZ = 3 }},
		{"iorcsz 0", false, func(id *nvme.IdentifyController) { id.IORCSZ = 0 }},
		{"icdoff", false, func(id *nvme.IdentifyController) { id.ICDOFF = 1 }},
		{"sgls none", false, func(id *nvme.IdentifyController) { id.SGLS = nvme.SGLSOffset }},
		{"sgls reserved", false, func(id *nvme.IdentifyController) { id.SGLS = 3 }},
		{"subnqn", false, func(id *nvme.IdentifyController) { nvme.PutNQN(id.SUBNQN[:], "nqn.2024-01.io.sluice:other") }},
		{"ver", false, func(id *nvme.IdentifyController) { id.VER = nvme.VS13 }},
		{"cntrltype", false, func(id *nvme.IdentifyController) { id.CNTRLTYPE = nvme.CntrlTypeDiscovery }},
		{"sqes", false, func(id *nvme.IdentifyController) { id.SQES = 0x77 }},
		{"discovery cntrltype", true, func(id *nvme.IdentifyController) { id.CNTRLTYPE = nvme.CntrlTypeIO }},
		{"discovery icdoff", true, func(id *nvme.IdentifyController) { id.ICDOFF = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fakeCfg{identify: tc.mod, disc: tc.disc}
			if tc.disc {
				cfg.subnqn = nvme.DiscoveryNQN
			}
			f := newFakeTarget(t, cfg)
			_, err := Connect(ctxT(t), f.addr(), f.cfg.subnqn, Options{KATO: -1})
			pe := wantViolation(t, err, 0, 0)
			if pe.FES != 0 {
				t.Errorf("an Identify gate sent a TermReq (fes %v)", pe.FES)
			}
		})
	}
	// The discovery controller is exempt from the I/O controller gates.
	f := newFakeTarget(t, fakeCfg{subnqn: nvme.DiscoveryNQN, disc: true})
	c, err := Connect(ctxT(t), f.addr(), nvme.DiscoveryNQN, Options{KATO: -1})
	if err != nil {
		t.Fatalf("discovery controller: %v", err)
	}
	c.Close()
	if _, err := c.NewIOQueue(ctxT(t)); !errors.Is(err, ErrNoIOQueues) {
		t.Errorf("I/O queue on discovery: %v", err)
	}
}

func TestActiveNamespaceOrder(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	f.cfg.hook = func(fc *fakeConn, sqe *nvme.SQE, data []byte) bool {
		if fc.qid != 0 || sqe.Opcode() != uint8(nvme.AdminIdentify) || sqe.IdentifyCNS() != nvme.CNSActiveNSList {
			return false
		}
		var b [nvme.IdentifyLen]byte
		l := nvme.NSList{N: 2, IDs: [nvme.NSListLen]uint32{5, 3}}
		l.MarshalTo(&b)
		fc.sendData(sqe.CID(), b[:])
		return true
	}
	c := connectFake(t, f, Options{})
	_, err := c.ActiveNamespaces(ctxT(t))
	wantViolation(t, err, 0, 0)
}

func TestConnectFailureStatus(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	f.cfg.hook = func(fc *fakeConn, sqe *nvme.SQE, data []byte) bool {
		if sqe.Opcode() != nvme.OpcodeFabrics || sqe.FCTYPE() != nvme.FCTConnect {
			return false
		}
		fc.resp(sqe.CID(), nvme.StatusConnectInvalidParameters, nvme.ConnectInvalidParamDW0(512, nvme.IATTRData), 0)
		return true
	}
	_, err := Connect(ctxT(t), f.addr(), f.cfg.subnqn, Options{KATO: -1})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != nvme.StatusConnectInvalidParameters {
		t.Fatalf("got %v", err)
	}
	if ipo, iattr := nvme.ConnectInvalidParam(se.DW0); ipo != 512 || iattr != nvme.IATTRData {
		t.Errorf("ipo %d iattr %d", ipo, iattr)
	}
}

func TestAuthRequired(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	f.cfg.hook = func(fc *fakeConn, sqe *nvme.SQE, data []byte) bool {
		if sqe.Opcode() != nvme.OpcodeFabrics || sqe.FCTYPE() != nvme.FCTConnect {
			return false
		}
		fc.resp(sqe.CID(), nvme.StatusSuccess, nvme.ConnectSuccessDW0(1, 1), 0)
		return true
	}
	if _, err := Connect(ctxT(t), f.addr(), f.cfg.subnqn, Options{KATO: -1}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v", err)
	}
}

func TestCommandTimeout(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	f.cfg.hook = func(fc *fakeConn, sqe *nvme.SQE, data []byte) bool {
		// Swallow Get Features and I/O reads.
		return sqe.Opcode() == uint8(nvme.AdminGetFeatures) && fc.qid == 0 ||
			sqe.Opcode() == uint8(nvme.NVMRead) && fc.qid != 0
	}
	c := connectFake(t, f, Options{Timeout: 100 * time.Millisecond})
	if _, err := c.GetFeature(ctxT(t), nvme.FeatArbitration, 0, 0, 0, nil); !errors.Is(err, ErrTimeout) {
		t.Errorf("admin: %v", err)
	}
	// The admin queue survives an abandoned command.
	if err := c.KeepAlive(ctxT(t)); err != nil {
		t.Errorf("admin after timeout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.KeepAlive(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	q, err := c.NewIOQueue(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Read(ctxT(t), 1, 0, 1, make([]byte, 512)); !errors.Is(err, ErrTimeout) {
		t.Errorf("io: %v", err)
	}
	if err := q.SubmitRead(1, 0, 1, make([]byte, 512), 0); !errors.Is(err, ErrTimeout) {
		t.Errorf("queue not dead after timeout: %v", err)
	}
}
