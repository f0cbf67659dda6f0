package host_test

import (
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

// startTwoReactorTarget is startTarget with two reactors, so that a controller's admin
// queue and its I/O queue land on different reactors (connections are spread round
// robin).
func startTwoReactorTarget(t *testing.T) (string, *nvmf.Target) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dom, err := mem.NewDomain(mem.DomainConfig{SizeBytes: 32 << 20, Hugepages: mem.HugepagesNever, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dom.Close() })
	cores := make([]*mem.Core, 2)
	for i := range cores {
		if cores[i], err = dom.NewCore(i); err != nil {
			t.Fatal(err)
		}
	}
	g, err := reactor.StartGroup(reactor.GroupConfig{Cores: []int{0, 1}, Mode: reactor.ModeInterrupt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	bm := bdev.NewManager()
	t.Cleanup(func() { bm.CloseAll() })
	if _, err := bdev.CreateMalloc(bm, bdev.MallocParams{Name: "m0", NumBlocks: itBlocks, BlockSize: itBlock}, nil); err != nil {
		t.Fatal(err)
	}
	tgt, err := nvmf.NewTarget(nvmf.Config{Reactors: g, Bdevs: bm, Mem: func(i int) *mem.Core { return cores[i] }, Logger: quiet})
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
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	if err := tgt.AddListener(itNQN, nvmf.ListenAddress{TrAddr: "127.0.0.1", TrSvcID: port}); err != nil {
		t.Fatal(err)
	}
	qs, err := tgt.QPairs(itNQN)
	if err != nil || len(qs) != 0 {
		t.Fatalf("fresh target has queue pairs: %v %v", qs, err)
	}
	return net.JoinHostPort("127.0.0.1", port), tgt
}

// TestErrorLogAcrossReactors: a command that fails on an I/O queue living on another
// reactor than its controller still reaches the controller's error log, with its
// queue, command ID, status and LBA.
func TestErrorLogAcrossReactors(t *testing.T) {
	addr, tgt := startTwoReactorTarget(t)
	ctx := itCtx(t)
	ctrl, err := host.Connect(ctx, addr, itNQN, host.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	q, err := ctrl.NewIOQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	qs, _ := tgt.QPairs(itNQN)
	if len(qs) != 2 || qs[0].Reactor == qs[1].Reactor {
		t.Fatalf("admin and I/O queue should be on different reactors: %+v", qs)
	}
	buf := make([]byte, itBlock)
	const badLBA = itBlocks + 7
	for i := 0; i < 3; i++ {
		if err := q.Read(ctx, 1, badLBA, 1, buf); !host.IsStatus(err, nvme.StatusLBAOutOfRange) {
			t.Fatalf("read past the end: %v, want LBA out of range", err)
		}
	}
	var es []nvme.ErrorLogEntry
	deadline := time.Now().Add(5 * time.Second)
	for {
		es, err = ctrl.ErrorLog(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if es[0].ErrorCount >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	e := es[0] // newest first
	if e.ErrorCount != 3 || e.SQID != q.QID() || e.Status.Code() != nvme.StatusLBAOutOfRange.Code() || e.LBA != badLBA || e.NSID != 1 {
		t.Fatalf("newest error log entry %+v, want count 3 on sqid %d, LBA out of range at %d", e, q.QID(), badLBA)
	}
	if es[2].ErrorCount != 1 || es[3].ErrorCount != 0 {
		t.Fatalf("error counts %d, %d, %d, %d; want 3, 2, 1, 0", es[0].ErrorCount, es[1].ErrorCount, es[2].ErrorCount, es[3].ErrorCount)
	}
}
