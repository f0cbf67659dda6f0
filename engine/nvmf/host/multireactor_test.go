package host_test

import (
	"context"
	"testing"
	"time"

	"sluice/engine/nvmf"
	"sluice/engine/nvmf/host"
	"sluice/engine/proto/nvme"
)

// TestErrorLogAcrossReactors: a command that fails on an I/O queue living on another
// reactor than its controller still reaches the controller's error log, with its
// queue, command ID, status and LBA.
func TestErrorLogAcrossReactors(t *testing.T) {
	addr, tgt := startTargetOn(t, nvmf.TransportOpts{}, 2)
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
