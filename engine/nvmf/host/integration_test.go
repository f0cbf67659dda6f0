package host_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/nvmf"
	"sluice/engine/nvmf/host"
	"sluice/engine/proto/nvme"
	"sluice/engine/reactor"
)

const (
	itNQN    = "nqn.2024-01.io.sluice:host-it"
	itBlocks = 2048
	itBlock  = 512
)

// startTarget runs the real sluice target (one reactor, a malloc namespace) on a
// loopback port and returns the address.
func startTarget(t *testing.T, opts nvmf.TransportOpts) (string, *nvmf.Target) {
	return startTargetOn(t, opts, 1)
}

// startTargetOn runs the target on n reactors, each with its own allocator core.
// Connections are spread over reactors round robin, so with two reactors a
// controller's admin queue and its first I/O queue live on different ones.
func startTargetOn(t *testing.T, opts nvmf.TransportOpts, n int) (string, *nvmf.Target) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dom, err := mem.NewDomain(mem.DomainConfig{SizeBytes: 32 << 20, Hugepages: mem.HugepagesNever, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dom.Close() })
	cores := make([]*mem.Core, n)
	cpus := make([]int, n)
	for i := range cores {
		if cores[i], err = dom.NewCore(i); err != nil {
			t.Fatal(err)
		}
		cpus[i] = i
	}
	g, err := reactor.StartGroup(reactor.GroupConfig{Cores: cpus, Mode: reactor.ModeInterrupt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	bm := bdev.NewManager()
	t.Cleanup(func() { bm.CloseAll() })
	for _, name := range []string{"m0", "m1"} {
		if _, err := bdev.CreateMalloc(bm, bdev.MallocParams{Name: name, NumBlocks: itBlocks, BlockSize: itBlock}, nil); err != nil {
			t.Fatal(err)
		}
	}
	tgt, err := nvmf.NewTarget(nvmf.Config{
		Reactors: g, Bdevs: bm, Mem: func(i int) *mem.Core { return cores[i] }, Transport: opts, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tgt.Shutdown(ctx)
	})
	if err := tgt.CreateSubsystem(nvmf.SubsystemParams{NQN: itNQN, AllowAnyHost: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.AddNamespace(itNQN, nvmf.NamespaceParams{BdevName: "m0"}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	la := nvmf.ListenAddress{TrAddr: "127.0.0.1", TrSvcID: strconv.Itoa(port)}
	if err := tgt.AddListener(itNQN, la); err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), tgt
}

func itCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i) ^ byte(i>>8)
	}
	return b
}

// TestTargetIntegration drives the real target through the strict host: bring-up,
// admin commands, discovery, and I/O in-capsule, through R2T with several H2CData
// PDUs per R2T, with digests and with C2H SUCCESS.
func TestTargetIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a reactor")
	}
	addr, _ := startTarget(t, nvmf.TransportOpts{InCapsuleDataSize: 4096, MaxH2CData: 8192, MaxIOSize: 131072})
	ctx := itCtx(t)

	es, gen, err := host.Discover(ctx, addr, host.Options{})
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	found := false
	for _, e := range es {
		found = found || nvme.NQNString(e.SUBNQN[:]) == itNQN
	}
	if !found {
		t.Errorf("discovery log (genctr %d) lacks %s: %d entries", gen, itNQN, len(es))
	}

	for _, tc := range []struct {
		name string
		opts host.Options
	}{
		{"default", host.Options{}},
		{"digests", host.Options{HeaderDigest: true, DataDigest: true}},
		{"sqflow off", host.Options{DisableSQFlow: true, DataDigest: true}},
		{"no icd", host.Options{MaxICD: -1, HeaderDigest: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := host.Connect(ctx, addr, itNQN, tc.opts)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer c.Close()
			ns, err := c.ActiveNamespaces(ctx)
			if err != nil || len(ns) != 1 {
				t.Fatalf("ActiveNamespaces %v %v", ns, err)
			}
			idns, err := c.IdentifyNamespace(ctx, ns[0])
			if err != nil || idns.NSZE != itBlocks || idns.BlockSize() != itBlock {
				t.Fatalf("IdentifyNamespace %+v %v", idns, err)
			}
			if _, err := c.NamespaceDescriptors(ctx, ns[0]); err != nil {
				t.Errorf("NamespaceDescriptors: %v", err)
			}
			if _, err := c.SMARTLog(ctx); err != nil {
				t.Errorf("SMARTLog: %v", err)
			}
			if _, err := c.ErrorLog(ctx); err != nil {
				t.Errorf("ErrorLog: %v", err)
			}
			if err := c.EnableAsyncEvents(ctx, nvme.AECNSAttribute); err != nil {
				t.Errorf("EnableAsyncEvents: %v", err)
			}
			q, err := c.NewIOQueue(ctx)
			if err != nil {
				t.Fatalf("NewIOQueue: %v", err)
			}
			nsid := ns[0]
			for _, nlb := range []uint32{1, 8, 64} {
				w := fill(int(nlb)*itBlock, byte(nlb))
				if err := q.Write(ctx, nsid, 16, nlb, w, false); err != nil {
					t.Fatalf("write %d: %v", nlb, err)
				}
				r := make([]byte, len(w))
				if err := q.Read(ctx, nsid, 16, nlb, r); err != nil {
					t.Fatalf("read %d: %v", nlb, err)
				}
				if !bytes.Equal(r, w) {
					t.Fatalf("read back of %d blocks differs", nlb)
				}
			}
			if err := q.FlushCache(ctx, nsid); err != nil {
				t.Errorf("flush: %v", err)
			}
			if err := q.WriteZeroes(ctx, nsid, 16, 8, false); err != nil {
				t.Errorf("write zeroes: %v", err)
			}
			if err := q.Deallocate(ctx, nsid, []nvme.DSMRange{{SLBA: 100, NLB: 8}}); err != nil {
				t.Errorf("deallocate: %v", err)
			}
			err = q.Read(ctx, nsid, itBlocks-1, 2, make([]byte, 2*itBlock))
			if !host.IsStatus(err, nvme.StatusLBAOutOfRange) {
				t.Errorf("read past the end: %v", err)
			}

			// Pipelined.
			const depth = 16
			bufs := make([][]byte, depth)
			for i := range bufs {
				bufs[i] = fill(8*itBlock, byte(i))
				if err := q.SubmitWrite(nsid, uint64(8*i), 8, bufs[i], false, uint16(i)); err != nil {
					t.Fatal(err)
				}
			}
			reapAll(t, q)
			for i := range bufs {
				bufs[i] = make([]byte, 8*itBlock)
				if err := q.SubmitRead(nsid, uint64(8*i), 8, bufs[i], uint16(i)); err != nil {
					t.Fatal(err)
				}
			}
			reapAll(t, q)
			for i := range bufs {
				if !bytes.Equal(bufs[i], fill(8*itBlock, byte(i))) {
					t.Fatalf("pipelined read %d differs", i)
				}
			}
			if err := c.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
}

func reapAll(t *testing.T, q *host.IOQueue) {
	t.Helper()
	dst := make([]host.Completion, 8)
	for q.Outstanding() > 0 {
		n, err := q.Reap(dst)
		if err != nil {
			t.Fatalf("Reap: %v", err)
		}
		for _, c := range dst[:n] {
			if !c.Status.Success() {
				t.Fatalf("tag %d: %v", c.Tag, c.Status)
			}
		}
	}
}

// TestTargetTermReq: a malformed PDU sent through RawConn gets a C2HTermReq naming the
// field, then the target closes.
func TestTargetTermReq(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a reactor")
	}
	addr, _ := startTarget(t, nvmf.TransportOpts{})
	r, err := host.DialRaw(itCtx(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Handshake(false, false, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var sqe nvme.SQE
	b := r.CapsulePDU(&sqe, nil)
	b[2] = 71 // hlen
	if err := r.Send(b); err != nil {
		t.Fatal(err)
	}
	tr, err := r.ReadTermReq(5 * time.Second)
	if err != nil {
		t.Fatalf("ReadTermReq: %v", err)
	}
	if tr.FES != nvme.FESInvalidHeaderField || tr.FEI != 2 {
		t.Errorf("TermReq fes %v fei %d", tr.FES, tr.FEI)
	}
	if err := r.WaitClosed(5 * time.Second); err != nil {
		t.Errorf("target did not close after its TermReq: %v", err)
	}
}

// TestTargetAsyncEvent: adding a namespace raises a Namespace Attribute Changed event
// on the AER this host keeps outstanding, and the Changed Namespace List names it.
func TestTargetAsyncEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a reactor")
	}
	addr, tgt := startTarget(t, nvmf.TransportOpts{})
	ctx := itCtx(t)
	c, err := host.Connect(ctx, addr, itNQN, host.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.EnableAsyncEvents(ctx, nvme.AECNSAttribute); err != nil {
		t.Fatal(err)
	}
	nsid, err := tgt.AddNamespace(itNQN, nvmf.NamespaceParams{BdevName: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-c.AsyncEvents():
		if ev != nvme.AENNSAttributeChanged {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no asynchronous event")
	}
	b, err := c.GetLogPage(ctx, nvme.LogChangedNSList, 0xFFFFFFFF, 0, nvme.IdentifyLen, false)
	if err != nil {
		t.Fatal(err)
	}
	var l nvme.NSList
	l.Unmarshal((*[nvme.IdentifyLen]byte)(b))
	if l.N != 1 || l.IDs[0] != nsid {
		t.Errorf("changed namespace list %v, want [%d]", l.List(), nsid)
	}
	ns, err := c.ActiveNamespaces(ctx)
	if err != nil || len(ns) != 2 {
		t.Errorf("active namespaces %v %v", ns, err)
	}
}

// TestTargetKeepAlive: the keep-alive goroutine holds a short KATO; without it the
// controller ends the association.
func TestTargetKeepAlive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a reactor")
	}
	addr, _ := startTarget(t, nvmf.TransportOpts{})
	ctx := itCtx(t)
	c, err := host.Connect(ctx, addr, itNQN, host.Options{KATO: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := host.Connect(ctx, addr, itNQN, host.Options{KATO: 500 * time.Millisecond, ManualKeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	deadline := time.Now().Add(10 * time.Second)
	for m.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m.Err() == nil {
		t.Fatal("controller without keep-alive still alive after 10 s (KATO 500 ms)")
	}
	t.Logf("after KATO: %v", m.Err())
	if err := c.KeepAlive(ctx); err != nil || c.Err() != nil {
		t.Errorf("controller with keep-alive: %v %v", err, c.Err())
	}
}
