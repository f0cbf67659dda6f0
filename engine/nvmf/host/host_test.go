package host

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"sluice/engine/proto/nvme"
)

func ctxT(t *testing.T) context.Context { return ctxTB(t) }

func ctxTB(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i>>9)
	}
	return b
}

// wantViolation checks err is a *ProtocolError with fes/fei (fes 0: any framing).
func wantViolation(t *testing.T, err error, fes nvme.FES, fei uint32) *ProtocolError {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a *ProtocolError", err)
	}
	if !errors.Is(err, ErrProtocol) {
		t.Errorf("errors.Is(%v, ErrProtocol) = false", err)
	}
	if fes != 0 && (pe.FES != fes || pe.FEI != fei) {
		t.Errorf("got fes %v fei %d (%v), want fes %v fei %d", pe.FES, pe.FEI, err, fes, fei)
	}
	return pe
}

// waitEvent polls the fake's event log (the fake runs on other goroutines).
func waitEvent(t *testing.T, f *fakeTarget, ev string) {
	t.Helper()
	for range 200 {
		if f.sawEvent(ev) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("fake never saw %q; events %v", ev, f.events)
}

func TestConnectBringUp(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	c := connectFake(t, f, Options{QueueSize: 256})
	if c.CNTLID() != 1 {
		t.Errorf("CNTLID %d", c.CNTLID())
	}
	if got := c.NumIOQueues(); got != 4 {
		t.Errorf("NumIOQueues %d, want 4 (granted)", got)
	}
	if got := c.IOQueueSize(); got != 128 {
		t.Errorf("IOQueueSize %d, want 128 (MQES+1 and MAXCMD)", got)
	}
	if got := c.IOMaxICD(); got != 4096 {
		t.Errorf("IOMaxICD %d", got)
	}
	if c.Version() != nvme.VS14 || c.CAP().MQES != 127 {
		t.Errorf("VS %#x CAP %+v", c.Version(), c.CAP())
	}
	id := c.IdentifyData()
	if id.KAS != 10 {
		t.Errorf("identify %+v", id)
	}
	f.mu.Lock()
	cc := f.cc
	f.mu.Unlock()
	if !cc.EN || cc.IOSQES != 6 || cc.IOCQES != 4 || cc.MPS != 0 || cc.CSS != 0 {
		t.Errorf("CC %+v", cc)
	}
	for _, ev := range []string{"connect:0", "cc", "setfeat:7"} {
		waitEvent(t, f, ev)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err %v", err)
	}
}

func TestAdminCommands(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	c := connectFake(t, f, Options{})
	ctx := ctxT(t)

	ns, err := c.ActiveNamespaces(ctx)
	if err != nil || len(ns) != 2 || ns[0] != 1 || ns[1] != 7 {
		t.Errorf("ActiveNamespaces %v %v", ns, err)
	}
	idns, err := c.IdentifyNamespace(ctx, 1)
	if err != nil || idns.NSZE != 256 || idns.BlockSize() != 512 {
		t.Errorf("IdentifyNamespace %+v %v", idns, err)
	}
	ds, err := c.NamespaceDescriptors(ctx, 1)
	if err != nil || len(ds) != 1 || ds[0].NIDT != nvme.NIDTNGUID {
		t.Errorf("NamespaceDescriptors %v %v", ds, err)
	}
	lp, err := c.GetLogPage(ctx, nvme.LogCommandEffects, 0, 0, 4096, false)
	if err != nil || lp[0] != byte(nvme.LogCommandEffects) {
		t.Errorf("GetLogPage %v", err)
	}
	lp, err = c.GetLogPage(ctx, nvme.LogCommandEffects, 0, 4, 8, true)
	if err != nil || len(lp) != 8 || lp[0] != 0 {
		t.Errorf("GetLogPage offset %v %v", lp, err)
	}
	if _, err := c.GetLogPage(ctx, nvme.LogSMART, 0, 2, 8, false); !errors.Is(err, ErrBadLength) {
		t.Errorf("unaligned offset: %v", err)
	}
	if _, err := c.SMARTLog(ctx); err != nil {
		t.Errorf("SMARTLog %v", err)
	}
	es, err := c.ErrorLog(ctx)
	if err != nil || len(es) != 4 {
		t.Errorf("ErrorLog %d %v", len(es), err)
	}
	dw0, err := c.GetFeature(ctx, nvme.FeatVolatileWriteCache, 0, nvme.SELCurrent, 0, nil)
	if err != nil || dw0 != 0x1234 {
		t.Errorf("GetFeature %#x %v", dw0, err)
	}
	if err := c.KeepAlive(ctx); err != nil {
		t.Errorf("KeepAlive %v", err)
	}
	v, err := c.PropertyGet(ctx, nvme.PropCAP)
	if err != nil || nvme.DecodeCAP(v).MQES != 127 {
		t.Errorf("PropertyGet CAP %#x %v", v, err)
	}
	// The raw path returns failing statuses as completions.
	var sqe nvme.SQE
	sqe.SetOpcode(0xC1)
	cqe, err := c.AdminExec(ctx, &sqe, nil)
	if err != nil || cqe.Status().Code() != nvme.StatusInvalidOpcode {
		t.Errorf("AdminExec %v %v", cqe.Status(), err)
	}
	// And the typed path as *StatusError.
	_, err = c.Identify(ctx, nvme.CNSNVMSetList, 0, 0, 0)
	if !IsStatus(err, nvme.StatusInvalidField) || !errors.Is(err, &StatusError{Status: nvme.StatusInvalidField.WithDNR()}) {
		t.Errorf("Identify bad CNS: %v", err)
	}
	if errors.Is(err, &StatusError{Status: nvme.StatusInvalidOpcode}) {
		t.Errorf("status errors.Is matched a different code")
	}
}

func TestShutdown(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	c := connectFake(t, f, Options{})
	q, err := c.NewIOQueue(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(ctxT(t)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	f.mu.Lock()
	shn := f.cc.SHN
	f.mu.Unlock()
	if shn != nvme.SHNNormal {
		t.Errorf("CC.SHN %d", shn)
	}
	if err := q.Read(ctxT(t), 1, 0, 1, make([]byte, 512)); !errors.Is(err, ErrClosed) {
		t.Errorf("read after shutdown: %v", err)
	}
	if err := c.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("Err after shutdown: %v", err)
	}
	if _, err := c.NewIOQueue(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("NewIOQueue after close: %v", err)
	}
}

func TestIOReadWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hd, dd bool
		cfg    fakeCfg
		opts   Options
	}{
		{name: "plain"},
		{name: "digests", hd: true, dd: true},
		{name: "header digest", hd: true},
		{name: "multi-pdu read", dd: true, cfg: fakeCfg{c2hChunk: 1000}},
		{name: "r2t split", hd: true, dd: true, cfg: fakeCfg{maxH2C: 4096, r2tChunk: 6144}, opts: Options{MaxICD: -1}},
		{name: "sqflow off success", cfg: fakeCfg{success: true}, opts: Options{DisableSQFlow: true}},
		{name: "sqflow off no success", opts: Options{DisableSQFlow: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTarget(t, tc.cfg)
			o := tc.opts
			o.HeaderDigest, o.DataDigest = tc.hd, tc.dd
			c := connectFake(t, f, o)
			ctx := ctxT(t)
			q, err := c.NewIOQueue(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if q.QID() != 1 || q.Size() != 128 {
				t.Errorf("qid %d size %d", q.QID(), q.Size())
			}
			for _, nlb := range []uint32{1, 8, 40} {
				w := pattern(int(nlb)*fakeBlock, byte(nlb))
				if err := q.Write(ctx, 1, 3, nlb, w, nlb == 8); err != nil {
					t.Fatalf("write %d: %v", nlb, err)
				}
				r := make([]byte, len(w))
				if err := q.Read(ctx, 1, 3, nlb, r); err != nil {
					t.Fatalf("read %d: %v", nlb, err)
				}
				if !bytes.Equal(r, w) {
					t.Fatalf("read back %d blocks differs", nlb)
				}
			}
			if err := q.FlushCache(ctx, 1); err != nil {
				t.Error(err)
			}
			if err := q.WriteZeroes(ctx, 1, 0, 8, true); err != nil {
				t.Error(err)
			}
			if err := q.Deallocate(ctx, 1, []nvme.DSMRange{{SLBA: 0, NLB: 8}, {SLBA: 64, NLB: 1}}); err != nil {
				t.Error(err)
			}
			err = q.Read(ctx, 1, 250, 8, make([]byte, 8*fakeBlock))
			if !IsStatus(err, nvme.StatusLBAOutOfRange) {
				t.Errorf("read beyond the end: %v", err)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Status.Code() != nvme.StatusLBAOutOfRange {
				t.Errorf("errors.As StatusError: %v", err)
			}
		})
	}
}

func TestInCapsuleAndR2T(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{maxH2C: 4096, ioccsz: (64 + 1024) / 16})
	c := connectFake(t, f, Options{})
	ctx := ctxT(t)
	q, err := c.NewIOQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The I/O Connect data (1024 bytes) fits the 1024-byte ICD exactly.
	f.mu.Lock()
	n := len(f.h2c)
	f.mu.Unlock()
	if n != 0 {
		t.Fatalf("connect used R2T (%d H2CData PDUs)", n)
	}
	if err := q.Write(ctx, 1, 0, 2, pattern(1024, 1), false); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	n = len(f.h2c)
	f.mu.Unlock()
	if n != 0 {
		t.Errorf("1 KiB write used R2T")
	}
	if err := q.Write(ctx, 1, 0, 20, pattern(20*fakeBlock, 2), false); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	h2c := append([]nvme.H2CData(nil), f.h2c...)
	f.mu.Unlock()
	// 10 KiB in one R2T, at most 4 KiB per H2CData.
	if len(h2c) != 3 || h2c[0].DATAL != 4096 || h2c[1].DATAO != 4096 || h2c[2].DATAL != 2048 {
		t.Errorf("H2CData PDUs %+v", h2c)
	}
}

func TestIOConnectThroughR2T(t *testing.T) {
	// IOCCSZ 4: no in-capsule data on I/O queues, so even Connect's 1024 bytes go
	// through R2T, as the Linux host sends them.
	f := newFakeTarget(t, fakeCfg{ioccsz: 4})
	c := connectFake(t, f, Options{})
	q, err := c.NewIOQueue(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if q.MaxICD() != 0 {
		t.Errorf("MaxICD %d", q.MaxICD())
	}
	f.mu.Lock()
	h2c := append([]nvme.H2CData(nil), f.h2c...)
	f.mu.Unlock()
	if len(h2c) != 1 || h2c[0].DATAL != nvme.ConnectDataLen {
		t.Errorf("connect H2CData %+v", h2c)
	}
}

func TestIOQueueLimit(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	c := connectFake(t, f, Options{NumIOQueues: 2})
	ctx := ctxT(t)
	q1, err := c.NewIOQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q2, err := c.NewIOQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if q1.QID() != 1 || q2.QID() != 2 {
		t.Errorf("qids %d %d", q1.QID(), q2.QID())
	}
	if _, err := c.NewIOQueue(ctx); !errors.Is(err, ErrNoIOQueues) {
		t.Errorf("third queue: %v", err)
	}
	q1.Close()
	q3, err := c.NewIOQueue(ctx)
	if err != nil || q3.QID() != 1 {
		t.Errorf("reused qid: %v", err)
	}
}

func TestAsyncPipelined(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{c2hChunk: 512})
	c := connectFake(t, f, Options{QueueSize: 32})
	q, err := c.NewIOQueue(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = pattern(2*fakeBlock, byte(i))
		if err := q.SubmitWrite(1, uint64(2*i), 2, bufs[i], false, uint16(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.SubmitWrite(1, 0, 1, bufs[0], false, 0); !errors.Is(err, ErrTagBusy) {
		t.Errorf("busy tag: %v", err)
	}
	if err := q.SubmitRead(1, 0, 1, bufs[0], n); !errors.Is(err, ErrTagRange) {
		t.Errorf("tag range: %v", err)
	}
	if err := q.Read(ctxT(t), 1, 0, 1, bufs[0]); !errors.Is(err, ErrBusy) {
		t.Errorf("sync while async outstanding: %v", err)
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	reap := func() {
		seen := map[uint16]bool{}
		dst := make([]Completion, 8)
		for q.Outstanding() > 0 {
			k, err := q.Reap(dst)
			if err != nil {
				t.Fatal(err)
			}
			if k == 0 {
				t.Fatal("Reap returned no completion")
			}
			for _, cpl := range dst[:k] {
				if seen[cpl.Tag] || !cpl.Status.Success() {
					t.Fatalf("completion %+v (seen %v)", cpl, seen[cpl.Tag])
				}
				seen[cpl.Tag] = true
			}
		}
		if len(seen) != n {
			t.Fatalf("%d completions", len(seen))
		}
	}
	reap()
	rbufs := make([][]byte, n)
	for i := range rbufs {
		rbufs[i] = make([]byte, 2*fakeBlock)
		if err := q.SubmitRead(1, uint64(2*i), 2, rbufs[i], uint16(i)); err != nil {
			t.Fatal(err)
		}
	}
	reap() // Reap flushes
	for i := range rbufs {
		if !bytes.Equal(rbufs[i], bufs[i]) {
			t.Fatalf("tag %d read back differs", i)
		}
	}
	if _, err := q.Reap(make([]Completion, 1)); !errors.Is(err, ErrNothingOutstanding) {
		t.Errorf("reap idle: %v", err)
	}
	if err := q.SubmitRead(1, 0, 0, rbufs[0], 0); !errors.Is(err, ErrBadLength) {
		t.Errorf("nlb 0: %v", err)
	}
}

func TestAsyncEvents(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	c := connectFake(t, f, Options{})
	if err := c.EnableAsyncEvents(ctxT(t), nvme.AECNSAttribute); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, f, "aer")
	waitEvent(t, f, "setfeat:11")
	admin := f.conns[0]
	if !admin.aen(nvme.AENNSAttributeChanged) {
		t.Fatal("no AER outstanding")
	}
	select {
	case ev := <-c.AsyncEvents():
		if ev != nvme.AENNSAttributeChanged {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	// The AER is resubmitted.
	for range 200 {
		admin.wmu.Lock()
		n := len(admin.aers)
		admin.wmu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !admin.aen(nvme.AENANAChange) {
		t.Fatal("AER not resubmitted")
	}
	if ev := <-c.AsyncEvents(); ev != nvme.AENANAChange {
		t.Errorf("event %+v", ev)
	}
	// Admin commands still work around the outstanding AER.
	if err := c.KeepAlive(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, ok := <-c.AsyncEvents(); ok {
		t.Error("events channel open after Close")
	}
}

func TestKeepAliveGoroutine(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	c := connectFake(t, f, Options{KATO: 100 * time.Millisecond})
	waitEvent(t, f, "keepalive")
	c.Close()
}

func TestDiscover(t *testing.T) {
	es := []nvme.DiscoveryLogEntry{
		{TRTYPE: nvme.TRTypeTCP, ADRFAM: nvme.AdrFamIPv4, SUBTYPE: nvme.SubTypeNVMe, PORTID: 1, CNTLID: 0xFFFF},
		{TRTYPE: nvme.TRTypeTCP, ADRFAM: nvme.AdrFamIPv4, SUBTYPE: nvme.SubTypeCurrentDiscovery, PORTID: 2},
	}
	nvme.PutNQN(es[0].SUBNQN[:], "nqn.2024-01.io.sluice:a")
	nvme.PutASCII(es[0].TRADDR[:], "127.0.0.1")
	nvme.PutASCII(es[0].TRSVCID[:], "4420")
	b := make([]byte, nvme.DiscoveryLogLen(len(es)))
	if err := nvme.MarshalDiscoveryLog(b, 42, es); err != nil {
		t.Fatal(err)
	}
	f := newFakeTarget(t, fakeCfg{subnqn: nvme.DiscoveryNQN, disc: true, discLog: b})
	got, gen, err := Discover(ctxT(t), f.addr(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if gen != 42 || len(got) != 2 || got[0].PORTID != 1 || nvme.NQNString(got[0].SUBNQN[:]) != "nqn.2024-01.io.sluice:a" ||
		nvme.ASCIIString(got[0].TRSVCID[:]) != "4420" || got[1].SUBTYPE != nvme.SubTypeCurrentDiscovery {
		t.Errorf("Discover: gen %d %+v", gen, got)
	}
	f.mu.Lock()
	shn := f.cc.SHN
	f.mu.Unlock()
	if shn != nvme.SHNNormal {
		t.Errorf("discovery controller not shut down")
	}
	if f.sawEvent("setfeat:7") {
		t.Errorf("Set Features Number of Queues sent to a discovery controller")
	}
}

func TestDiscoverGenctrMoves(t *testing.T) {
	var reads int
	logAt := func(gen uint64, n int) []byte {
		es := make([]nvme.DiscoveryLogEntry, n)
		b := make([]byte, nvme.DiscoveryLogLen(n))
		nvme.MarshalDiscoveryLog(b, gen, es)
		return b
	}
	f := newFakeTarget(t, fakeCfg{subnqn: nvme.DiscoveryNQN, disc: true})
	f.cfg.hook = func(fc *fakeConn, sqe *nvme.SQE, data []byte) bool {
		if sqe.Opcode() != uint8(nvme.AdminGetLogPage) || fc.qid != 0 {
			return false
		}
		g := nvme.DecodeGetLogPage(sqe)
		reads++
		// Header reads 1 and 2 see generation 1 with 1 record; from the third read
		// on, generation 2 with 2 records.
		page := logAt(1, 1)
		if reads >= 3 {
			page = logAt(2, 2)
		}
		out := make([]byte, g.Len())
		copy(out, page[min(int(g.LPO), len(page)):])
		fc.sendData(sqe.CID(), out)
		return true
	}
	got, gen, err := Discover(ctxT(t), f.addr(), Options{})
	if err != nil || gen != 2 || len(got) != 2 {
		t.Errorf("Discover %d entries gen %d: %v (reads %d)", len(got), gen, err, reads)
	}
}

func TestRawConn(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{tolerant: true})
	r, err := DialRaw(ctxT(t), f.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	resp, err := r.Handshake(true, false, 5*time.Second)
	if err != nil || !r.HDGST || r.DDGST || resp.MAXH2CDATA != 8192 {
		t.Fatalf("handshake %+v %v", resp, err)
	}
	var sqe nvme.SQE
	sqe.SetOpcode(nvme.OpcodeFabrics)
	sqe.SetFCTYPE(nvme.FCTPropertyGet)
	sqe.SetCID(9)
	sqe.SetPSDT(nvme.PSDTSGLMPTR)
	sqe.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport})
	sqe.SetPropAttrib(nvme.PropSize8)
	if err := r.Send(r.CapsulePDU(&sqe, nil)); err != nil {
		t.Fatal(err)
	}
	ch, hdr, data, err := r.ReadPDU(5 * time.Second)
	if err != nil || ch.Type != nvme.PDUTypeCapsuleResp || len(data) != 0 {
		t.Fatalf("ReadPDU %+v %v", ch, err)
	}
	if cqe := nvme.CapsuleCQE(hdr); cqe.CID() != 9 || nvme.DecodeCAP(uint64(cqe.DW0())|uint64(cqe.DW1())<<32).MQES != 127 {
		t.Errorf("CQE % x", hdr)
	}
	// A malformed PDU (hlen 71) makes the fake report it and close.
	bad := r.CapsulePDU(&sqe, nil)
	bad[2] = 71
	nvme.SetHeaderDigest(bad, 72)
	r.Send(bad)
	if err := r.WaitClosed(5 * time.Second); err != nil {
		t.Errorf("WaitClosed: %v", err)
	}
	waitEvent(t, f, "malformed")
}

func TestRawTermReq(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	f.cfg.hook = func(fc *fakeConn, sqe *nvme.SQE, data []byte) bool {
		tr := nvme.NewTermReq(nvme.PDUTypeC2HTermReq, nvme.FESInvalidHeaderField, 4, make([]byte, 72))
		b := make([]byte, tr.PLen())
		tr.Put(b)
		fc.write(b)
		fc.nc.Close()
		return true
	}
	r, err := DialRaw(ctxT(t), f.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Handshake(false, false, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var sqe nvme.SQE
	sqe.SetPSDT(nvme.PSDTSGLMPTR)
	sqe.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport})
	r.Send(r.CapsulePDU(&sqe, nil))
	tr, err := r.ReadTermReq(5 * time.Second)
	if err != nil || tr.FES != nvme.FESInvalidHeaderField || tr.FEI != 4 || tr.DataLen != 72 {
		t.Errorf("ReadTermReq %+v %v", tr, err)
	}
	if err := r.WaitClosed(5 * time.Second); err != nil {
		t.Errorf("WaitClosed %v", err)
	}
}

func TestDefaultHostNQN(t *testing.T) {
	a, b := DefaultHostNQN(), DefaultHostNQN()
	if a != b {
		t.Errorf("not stable: %s %s", a, b)
	}
	if err := nvme.ValidateNQN(a); err != nil {
		t.Errorf("%s: %v", a, err)
	}
	id := hostIDFor(a)
	if formatUUID(id) != a[len(nvme.UUIDNQNPrefix):] {
		t.Errorf("host ID %x does not match %s", id, a)
	}
	o, err := Options{}.withDefaults()
	if err != nil || o.HostNQN != a || o.HostID != id {
		t.Errorf("defaults %+v %v", o, err)
	}
	if _, err := (Options{QueueSize: 1}).withDefaults(); err == nil {
		t.Error("queue size 1 accepted")
	}
}
