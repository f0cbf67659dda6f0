package initiator_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/iscsi"
	"sluice/engine/iscsi/initiator"
	"sluice/engine/mem"
	"sluice/engine/reactor"
)

// The tests run the real target, as engine/iscsi's own tests set it up (its
// harness_test.go): NewTarget on a started reactor group, a portal group on a loopback
// port, a target node whose LUN 0 is a malloc bdev (or a delay bdev over one).

const (
	testBlock  = 512
	testBlocks = 16384 // 8 MiB
	testNode   = "disk0"
	testIQN    = iscsi.DefaultNodeBase + testNode
	testTPGT   = 1
	testIG     = 1
	testAuth   = 1
)

// envOpts vary the target a test runs against. Zero values take the defaults.
type envOpts struct {
	reactors int
	opts     iscsi.Options
	// module is "malloc" (default) or "delay": writes complete writeDelay after the
	// malloc bdev under them did.
	module     string
	writeDelay time.Duration
	queueDepth int
	// node switches.
	requireCHAP, mutualCHAP  bool
	secrets                  []iscsi.CHAPSecret
	headerDigest, dataDigest bool
}

// env is a running target.
type env struct {
	t    testing.TB
	tgt  *iscsi.Target
	bm   *bdev.Manager
	addr string
}

// newEnv starts a target; t.Cleanup tears everything down.
func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	if o.reactors == 0 {
		o.reactors = 2
	}
	quiet := testLogger()
	dom, err := mem.NewDomain(mem.DomainConfig{SizeBytes: 64 << 20, Hugepages: mem.HugepagesNever, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dom.Close() })
	cores := make([]*mem.Core, o.reactors)
	cpus := make([]int, o.reactors)
	for i := range cores {
		if cores[i], err = dom.NewCore(i); err != nil {
			t.Fatal(err)
		}
		cpus[i] = -1
	}
	g, err := reactor.StartGroup(reactor.GroupConfig{Cores: cpus, Mode: reactor.ModeInterrupt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	bm := bdev.NewManager()
	t.Cleanup(func() { bm.CloseAll() })
	e := &env{t: t, bm: bm}
	e.makeBdev(o)
	tgt, err := iscsi.NewTarget(iscsi.Config{Reactors: g, Bdevs: bm, Mem: func(i int) *mem.Core { return cores[i] },
		Options: o.opts, Logger: quiet, Revision: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e.tgt = tgt
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tgt.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	e.addr = e.listen(testTPGT)
	if err := tgt.CreateInitiatorGroup(testIG, []string{"ANY"}, nil); err != nil {
		t.Fatal(err)
	}
	p := iscsi.NodeParams{Name: testNode, LUNs: []iscsi.LUNInfo{{BdevName: "b0"}},
		PGIGMaps: []iscsi.PGIGMap{{PGTag: testTPGT, IGTag: testIG}}, QueueDepth: o.queueDepth,
		RequireCHAP: o.requireCHAP, MutualCHAP: o.mutualCHAP,
		HeaderDigest: o.headerDigest, DataDigest: o.dataDigest}
	if o.secrets != nil {
		if err := tgt.CreateAuthGroup(testAuth, o.secrets); err != nil {
			t.Fatal(err)
		}
		p.CHAPGroup = testAuth
	}
	if err := tgt.CreateTargetNode(p); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) makeBdev(o envOpts) {
	var err error
	switch o.module {
	case "", "malloc":
		_, err = bdev.CreateMalloc(e.bm, bdev.MallocParams{Name: "b0", NumBlocks: testBlocks, BlockSize: testBlock}, nil)
	case "delay":
		_, err = bdev.CreateMalloc(e.bm, bdev.MallocParams{Name: "base", NumBlocks: testBlocks, BlockSize: testBlock}, nil)
		if err == nil {
			us := uint64(o.writeDelay / time.Microsecond)
			_, err = bdev.CreateDelay(e.bm, bdev.DelayParams{Name: "b0", BaseBdevName: "base",
				AvgWriteLatency: us, P99WriteLatency: us})
		}
	default:
		err = errors.New("unknown bdev module " + o.module)
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// listen creates portal group tag on a free loopback port and returns host:port. The
// portal parser refuses port 0, so the port is found first, then bound; a port taken
// in between is retried.
func (e *env) listen(tag uint16) string {
	e.t.Helper()
	var err error
	for range 20 {
		var ln net.Listener
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.t.Fatal(err)
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		if err = e.tgt.CreatePortalGroup(tag, []iscsi.Portal{{Host: "127.0.0.1", Port: port}}); err == nil {
			return "127.0.0.1:" + port
		}
	}
	e.t.Fatalf("no portal: %v", err)
	return ""
}

// dial logs in to the test node with o (TargetName defaults to it); the session is
// closed by t.Cleanup.
func (e *env) dial(o initiator.Options) *initiator.Session {
	e.t.Helper()
	s, err := e.tryDial(o)
	if err != nil {
		e.t.Fatalf("login: %v", err)
	}
	return s
}

func (e *env) tryDial(o initiator.Options) (*initiator.Session, error) {
	if o.TargetName == "" {
		o.TargetName = testIQN
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	s, err := initiator.Dial(context.Background(), e.addr, o)
	if err == nil {
		e.t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// connect logs in and clears the POWER ON unit attention every new nexus starts with.
func (e *env) connect(o initiator.Options) *initiator.Session {
	e.t.Helper()
	s := e.dial(o)
	if err := s.ClearUnitAttention(ctx(e.t), 0); err != nil {
		e.t.Fatalf("clearing the unit attention: %v", err)
	}
	return s
}

// ctx is a context that ends with the test.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// testLogger discards the target's log unless SLUICE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// pattern fills n bytes that differ from block to block and from seed to seed.
func pattern(n int, seed uint32) []byte {
	b := make([]byte, n)
	x := seed*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func boolp(v bool) *bool { return &v }
