package nvmf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/bdev"
	"sluice/engine/proto/nvme"
)

// The hardening issue's lifecycle events, each with writes in flight on a delay bdev
// whose completions are held for several poller runs and come back out of order: null
// and malloc complete inline and never exercise teardown. After every event the target
// must not have panicked, every buffer and bdev channel must be back, and a fresh host
// must connect and do byte-exact I/O.

// inflightWrites sends n writes without waiting: 4 KiB in-capsule writes (every fourth
// FUA) and, every third, an 8 KiB write whose R2T the host never answers.
func (h *stepHost) inflightWrites(n int) {
	data := bytes.Repeat([]byte{0x5A}, 4096)
	for i := 0; i < n; i++ {
		var sqe *nvme.SQE
		if i%3 == 2 {
			sqe = rwSQE(nvme.NVMWrite, h.nextCID(), uint64(i)*16, 16, nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 8192})
			h.send(h.capsule(sqe, nil))
			continue
		}
		sqe = rwSQE(nvme.NVMWrite, h.nextCID(), uint64(i)*8, 8, nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: 4096})
		sqe.SetFUA(i%4 == 0)
		h.send(h.capsule(sqe, data))
	}
	// Let the target take the capsules in and submit them; the delay bdev holds them.
	h.st.poll(3)
}

// settle steps the target until no connection is left besides keep, and checks that
// every buffer and bdev channel came back.
func (st *stepTarget) settle(keep int) {
	st.t.Helper()
	// Bounded by time, not by steps: a FUA write's fdatasync on a busy disk takes
	// tens of milliseconds, thousands of steps.
	deadline := time.Now().Add(teardownDeadline)
	for len(st.pg.conns) > keep {
		if time.Now().After(deadline) {
			st.t.Fatalf("%d connections still open, want %d:%s", len(st.pg.conns), keep, st.describeConns())
		}
		st.poll(1)
	}
	st.poll(20)
	if keep > 0 {
		return
	}
	st.checkNoLeaks()
}

func (st *stepTarget) describeConns() string {
	var b strings.Builder
	for _, bd := range st.bdevs.List() {
		fmt.Fprintf(&b, "\n  bdev %s: open channels %d, iostat %+v", bd.Name(), bd.OpenChannels(), bd.IOStat())
	}
	for c := range st.pg.conns {
		fmt.Fprintf(&b, "\n  conn qid %d state %v inflight %d closeOut %v sq %d stalled %v:", c.qp.qid, c.state,
			c.inflight, c.closeOut, c.sq.Len(), c.stalled)
		for i := range c.reqs {
			if r := &c.reqs[i]; r.state != reqStateFree {
				fmt.Fprintf(&b, " [%d %v io %v]", i, r.state, r.io.InFlight())
			}
		}
	}
	return b.String()
}

// checkNoLeaks: with no connection left, no data buffer is in use and no bdev channel
// is open.
func (st *stepTarget) checkNoLeaks() {
	st.t.Helper()
	st.pg.mem.Reclaim()
	st.pg.mem.PublishStats()
	if used := st.dom.Stats().Cores[0].BytesInUse; used != 0 {
		st.t.Fatalf("%d bytes of data buffers still in use with no connection open", used)
	}
	for _, b := range st.bdevs.List() {
		if n := b.OpenChannels(); n != 0 {
			st.t.Fatalf("bdev %s: %d channels open with no connection", b.Name(), n)
		}
	}
}

// rpc runs a control-plane call on another goroutine while stepping the reactor, as
// the daemon's RPC goroutines do against running reactors.
func (st *stepTarget) rpc(fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- fn() }()
	for deadline := time.Now().Add(2 * teardownDeadline); ; {
		select {
		case err := <-errc:
			return err
		default:
		}
		if time.Now().After(deadline) {
			st.t.Fatal("control-plane call never returned")
		}
		st.poll(1)
	}
}

// freshIO proves that a new host connects and does byte-exact I/O.
func (st *stepTarget) freshIO() {
	st.t.Helper()
	_, io := st.ioPair(false, false, 0)
	checkAlive(st.t.(*testing.T), io, 0x33)
}

func propSetCC(h *stepHost, cc nvme.CC) nvme.Status {
	var s nvme.SQE
	s.SetOpcode(nvme.OpcodeFabrics)
	s.SetFCTYPE(nvme.FCTPropertySet)
	s.SetCID(h.nextCID())
	s.SetPropOffset(nvme.PropCC)
	s.SetPropValue(uint64(cc.Value()))
	c := h.call(&s, nil, nil)
	return c.Status()
}

func propGetCSTS(h *stepHost) nvme.CSTS {
	var s nvme.SQE
	s.SetOpcode(nvme.OpcodeFabrics)
	s.SetFCTYPE(nvme.FCTPropertyGet)
	s.SetCID(h.nextCID())
	s.SetPropOffset(nvme.PropCSTS)
	c := h.call(&s, nil, nil)
	return nvme.DecodeCSTS(c.DW0())
}

// teardownDeadline bounds each wait for a teardown to finish.
const teardownDeadline = 30 * time.Second

// drainUntilEOF reads and discards what the target still sends, then expects the close.
func (h *stepHost) drainUntilEOF() {
	h.st.t.Helper()
	buf := make([]byte, 1<<16)
	for deadline := time.Now().Add(teardownDeadline); time.Now().Before(deadline); {
		h.st.poll(1)
		n, err := unix.Read(h.fd, buf)
		if err == unix.EAGAIN {
			continue
		}
		if n == 0 || err != nil {
			return
		}
	}
	h.st.t.Fatal("target never closed the connection")
}

func TestTeardownConnectionResetWithWritesInFlight(t *testing.T) {
	eachBackend(t, teardownConnectionResetWithWritesInFlight)
}

func teardownConnectionResetWithWritesInFlight(t *testing.T, module string) {
	st := newStepTargetOpts(t, stepOpts{module: module, delayPolls: 4})
	for round := 0; round < 5; round++ {
		admin, io := st.ioPair(false, false, 0)
		io.inflightWrites(127)
		unix.Close(io.fd)
		unix.Close(admin.fd)
		st.settle(0)
	}
	st.freshIO()
}

// TestTeardownControllerResetWithWritesInFlight: the Linux host's error recovery:
// CC.EN=0, wait for CSTS.RDY=0, CC.EN=1, reconnect the I/O queue.
func TestTeardownControllerResetWithWritesInFlight(t *testing.T) {
	eachBackend(t, teardownControllerResetWithWritesInFlight)
}

func teardownControllerResetWithWritesInFlight(t *testing.T, module string) {
	st := newStepTargetOpts(t, stepOpts{module: module, delayPolls: 6})
	admin, io := st.ioPair(false, false, 0)
	for round := 0; round < 5; round++ {
		io.inflightWrites(100)
		if s := propSetCC(admin, nvme.CC{EN: false, IOSQES: 6, IOCQES: 4}); !s.Success() {
			t.Fatalf("CC.EN=0: %v", s)
		}
		for i := 0; propGetCSTS(admin).RDY; i++ {
			if i > 10000 {
				t.Fatal("CSTS.RDY never cleared after CC.EN=0")
			}
		}
		io.drainUntilEOF()
		if s := propSetCC(admin, nvme.CC{EN: true, IOSQES: 6, IOCQES: 4}); !s.Success() {
			t.Fatalf("CC.EN=1: %v", s)
		}
		io = st.connect()
		io.icreq(false, false)
		if c := io.connectQueue(1, admin.cntlid, 0); !c.Status().Success() {
			t.Fatalf("round %d: I/O queue reconnect after reset: %v", round, c.Status())
		}
		checkAlive(t, io, byte(round))
	}
	unix.Close(io.fd)
	unix.Close(admin.fd)
	st.settle(0)
}

func TestTeardownShutdownNotificationWithWritesInFlight(t *testing.T) {
	eachBackend(t, teardownShutdownNotificationWithWritesInFlight)
}

func teardownShutdownNotificationWithWritesInFlight(t *testing.T, module string) {
	st := newStepTargetOpts(t, stepOpts{module: module, delayPolls: 6})
	admin, io := st.ioPair(false, false, 0)
	io.inflightWrites(100)
	if s := propSetCC(admin, nvme.CC{EN: true, SHN: 1, IOSQES: 6, IOCQES: 4}); !s.Success() {
		t.Fatalf("CC.SHN: %v", s)
	}
	for i := 0; propGetCSTS(admin).SHST != nvme.SHSTComplete; i++ {
		if i > 10000 {
			t.Fatal("CSTS.SHST never reached complete")
		}
	}
	io.drainUntilEOF()
	unix.Close(admin.fd)
	st.settle(0)
	st.freshIO()
}

// TestTeardownDisconnectOnBusyQueue: Fabrics Disconnect behind writes in flight: every
// write is answered, then the Disconnect, then the close.
func TestTeardownDisconnectOnBusyQueue(t *testing.T) { eachBackend(t, teardownDisconnectOnBusyQueue) }

func teardownDisconnectOnBusyQueue(t *testing.T, module string) {
	st := newStepTargetOpts(t, stepOpts{module: module, delayPolls: 6})
	admin, io := st.ioPair(false, false, 0)
	io.inflightWrites(90)
	var s nvme.SQE
	s.SetOpcode(nvme.OpcodeFabrics)
	s.SetFCTYPE(nvme.FCTDisconnect)
	s.SetCID(io.nextCID())
	io.send(io.capsule(&s, nil))
	io.drainUntilEOF()
	st.settle(1)
	checkAlive(t, mustIOQueue(st, admin), 9)
	unix.Close(admin.fd)
	st.settle(0)
}

func mustIOQueue(st *stepTarget, admin *stepHost) *stepHost {
	io := st.connect()
	io.icreq(false, false)
	if c := io.connectQueue(1, admin.cntlid, 0); !c.Status().Success() {
		st.t.Fatalf("I/O queue connect: %v", c.Status())
	}
	return io
}

func TestTeardownKeepAliveExpiryWithWritesInFlight(t *testing.T) {
	eachBackend(t, teardownKeepAliveExpiryWithWritesInFlight)
}

func teardownKeepAliveExpiryWithWritesInFlight(t *testing.T, module string) {
	st := newStepTargetOpts(t, stepOpts{module: module, delayPolls: 6, fakeClock: true})
	admin := st.connect()
	admin.kato = 1000
	admin.icreq(false, false)
	if c := admin.connectQueue(0, nvme.CNTLIDDynamic, 0); !c.Status().Success() {
		t.Fatal(c.Status())
	}
	io := mustIOQueue(st, admin)
	io.inflightWrites(100)
	st.advance(3 * time.Second)
	io.drainUntilEOF()
	admin.drainUntilEOF()
	st.settle(0)
	if n := st.tgt.counters.keepAliveTimeouts.Load(); n != 1 {
		t.Fatalf("keep-alive timeouts %d, want 1", n)
	}
	st.freshIO()
}

func TestTeardownRemoveNamespaceWithWritesInFlight(t *testing.T) {
	st := newStepTargetOpts(t, stepOpts{module: "delay", delayPolls: 8})
	admin, io := st.ioPair(false, false, 0)
	for round := 0; round < 3; round++ {
		io.inflightWrites(100)
		if err := st.rpc(func() error { return st.tgt.RemoveNamespace(testNQN, 1) }); err != nil {
			t.Fatal(err)
		}
		// The writes already in the bdev complete; the bdev can be deleted and made again.
		if err := st.rpc(func() error { return st.bdevs.Delete(context.Background(), "b0", "delay") }); err != nil {
			t.Fatalf("delete after remove_ns: %v", err)
		}
		if _, err := bdev.CreateDelay(st.bdevs, bdev.DelayParams{Name: "b0", BaseBdevName: "base", DelayPolls: 8, Reorder: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.tgt.AddNamespace(testNQN, NamespaceParams{NSID: 1, BdevName: "b0"}); err != nil {
			t.Fatal(err)
		}
		io.drainPending()
		checkAlive(t, io, byte(round))
	}
	unix.Close(io.fd)
	unix.Close(admin.fd)
	st.settle(0)
}

// drainPending reads whatever responses (and R2Ts) are queued for the host and drops
// them, answering nothing: what was in flight before an event has been dealt with.
func (h *stepHost) drainPending() {
	buf := make([]byte, 1<<16)
	for i := 0; i < 200; i++ {
		h.st.poll(1)
		for {
			n, err := unix.Read(h.fd, buf)
			if n <= 0 || err != nil {
				break
			}
		}
	}
	// Outstanding R2T writes whose data never came would stall the next commands'
	// CIDs and buffers: a real host would abort them by a reset; the test reconnects
	// the queue instead when it needs a clean one.
}

func TestTeardownDeleteSubsystemWithWritesInFlight(t *testing.T) {
	eachBackend(t, teardownDeleteSubsystemWithWritesInFlight)
}

func teardownDeleteSubsystemWithWritesInFlight(t *testing.T, module string) {
	st := newStepTargetOpts(t, stepOpts{module: module, delayPolls: 8})
	_, io := st.ioPair(false, false, 0)
	io.inflightWrites(120)
	if err := st.rpc(func() error { return st.tgt.DeleteSubsystem(testNQN) }); err != nil {
		t.Fatal(err)
	}
	st.settle(0)
	if err := st.rpc(func() error { return st.bdevs.Delete(context.Background(), "b0", "") }); err != nil {
		t.Fatalf("bdev delete after delete_subsystem: %v", err)
	}
}

func TestTeardownShutdownWithWritesInFlight(t *testing.T) {
	eachBackend(t, teardownShutdownWithWritesInFlight)
}

func teardownShutdownWithWritesInFlight(t *testing.T, module string) {
	st := newStepTargetOpts(t, stepOpts{module: module, delayPolls: 8})
	_, io := st.ioPair(false, false, 0)
	io.inflightWrites(120)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.rpc(func() error { return st.tgt.Shutdown(ctx) }); err != nil {
		t.Fatal(err)
	}
	st.settle(0)
	if err := st.bdevs.CloseAll(); err != nil {
		t.Fatalf("closing bdevs after shutdown: %v", err)
	}
}

// TestRPCRaceRemoveNamespaceAndDeleteBdev: two clients remove a namespace and delete
// its bdev at the same time, with writes in flight. Whatever the order, the bdev is
// either deleted or still listed and usable, never gone from the list while open.
func TestRPCRaceRemoveNamespaceAndDeleteBdev(t *testing.T) {
	for round := 0; round < 20; round++ {
		st := newStepTargetOpts(t, stepOpts{module: "delay", delayPolls: uint32(round%5 + 1)})
		_, io := st.ioPair(false, false, 0)
		io.inflightWrites(60)
		var wg sync.WaitGroup
		var errRm, errDel error
		wg.Add(2)
		go func() { defer wg.Done(); errRm = st.tgt.RemoveNamespace(testNQN, 1) }()
		go func() { defer wg.Done(); errDel = st.bdevs.Delete(context.Background(), "b0", "delay") }()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		stepUntil(st, done)
		if errRm != nil {
			t.Fatalf("round %d: remove_ns: %v", round, errRm)
		}
		_, getErr := st.bdevs.Get("b0")
		switch {
		case errDel == nil && getErr == nil:
			t.Fatalf("round %d: delete succeeded but the bdev is still listed", round)
		case errDel != nil && !errors.Is(errDel, bdev.ErrClaimed):
			t.Fatalf("round %d: delete failed with %v", round, errDel)
		case errDel != nil && getErr != nil:
			t.Fatalf("round %d: delete failed (%v) and the bdev vanished", round, errDel)
		case errDel != nil:
			// Lost the race to the claim: a retry now succeeds.
			if err := st.rpc(func() error { return st.bdevs.Delete(context.Background(), "b0", "delay") }); err != nil {
				t.Fatalf("round %d: retried delete: %v", round, err)
			}
		}
		unix.Close(io.fd)
		st.settle(1) // the admin queue stays
	}
}

// TestRPCRaceAddNamespaceAndDeleteSubsystem: an add_ns racing delete_subsystem either
// lands before (and is removed with the subsystem) or fails; the bdev never stays
// claimed by a deleted subsystem.
func TestRPCRaceAddNamespaceAndDeleteSubsystem(t *testing.T) {
	for round := 0; round < 50; round++ {
		st := newStepTargetOpts(t, stepOpts{module: "malloc"})
		if _, err := bdev.CreateNull(st.bdevs, bdev.NullParams{Name: "extra", NumBlocks: 64, BlockSize: 512}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = st.tgt.AddNamespace(testNQN, NamespaceParams{BdevName: "extra"}) }()
		go func() { defer wg.Done(); _ = st.tgt.DeleteSubsystem(testNQN) }()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		stepUntil(st, done)
		b, _ := st.bdevs.Get("extra")
		if owner := b.ClaimedBy(); owner != "" {
			t.Fatalf("round %d: bdev still claimed by %q after its subsystem was deleted", round, owner)
		}
		if err := st.bdevs.Delete(context.Background(), "extra", ""); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// eachBackend runs a teardown test over the delay bdev (completions held and
// reordered) and over the real file bdev (io_uring).
func eachBackend(t *testing.T, fn func(t *testing.T, module string)) {
	for _, m := range []string{"delay", "file"} {
		t.Run(m, func(t *testing.T) { fn(t, m) })
	}
}

func stepUntil(st *stepTarget, done <-chan struct{}) {
	for deadline := time.Now().Add(2 * teardownDeadline); ; {
		select {
		case <-done:
			return
		default:
		}
		if time.Now().After(deadline) {
			st.t.Fatal("calls never returned")
		}
		st.poll(1)
	}
}
