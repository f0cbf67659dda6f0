package iscsi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/reactor"
)

// The tests run the real target: NewTarget on a started reactor group, a portal group on
// a loopback port, a target node whose LUN 0 is a malloc (or delay over malloc) bdev,
// and a minimal initiator (initiator_test.go) built from engine/proto/iscsi's codecs
// that speaks to it over a real TCP socket.
//
// reactor.GroupConfig has no clock, and NewTarget takes a *reactor.Group, so timers
// (NOP-In pings, timeouts) run on the real clock: the tests that need them set the
// smallest intervals the options allow (one second).

const (
	testBlock  = 512
	testBlocks = 16384 // 8 MiB
	testNode   = "disk0"
	testIQN    = DefaultNodeBase + testNode
	testInit   = "iqn.2026-11.dev.sluice:initiator"
	testTPGT   = 1
	testIG     = 1
	testAuth   = 1
)

// envOpts vary the target a test runs against. Zero values take the defaults.
type envOpts struct {
	reactors int
	opts     Options
	// module is "malloc" (default) or "delay": a delay bdev whose writes complete
	// writeDelay after the malloc bdev under it did.
	module     string
	writeDelay time.Duration
	memBytes   int64
	queueDepth int
	// initiators is the initiator group's list (default ANY).
	initiators []string
	// node switches.
	requireCHAP, disableCHAP bool
	secrets                  []CHAPSecret
	headerDigest, dataDigest bool
}

// env is a running target.
type env struct {
	t    testing.TB
	tgt  *Target
	g    *reactor.Group
	bm   *bdev.Manager
	dom  *mem.Domain
	addr string
}

// newEnv starts a target; everything is torn down by t.Cleanup.
func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	if o.reactors == 0 {
		o.reactors = 2
	}
	if o.memBytes == 0 {
		o.memBytes = 64 << 20
	}
	quiet := testLogger()
	dom, err := mem.NewDomain(mem.DomainConfig{SizeBytes: o.memBytes, Hugepages: mem.HugepagesNever, Logger: quiet})
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
	e := &env{t: t, g: g, bm: bm, dom: dom}
	e.makeBdev(o)
	tgt, err := NewTarget(Config{Reactors: g, Bdevs: bm, Mem: func(i int) *mem.Core { return cores[i] },
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
	inits := o.initiators
	if inits == nil {
		inits = []string{"ANY"}
	}
	if err := tgt.CreateInitiatorGroup(testIG, inits, nil); err != nil {
		t.Fatal(err)
	}
	p := NodeParams{Name: testNode, LUNs: []LUNInfo{{BdevName: "b0"}},
		PGIGMaps: []PGIGMap{{PGTag: testTPGT, IGTag: testIG}}, QueueDepth: o.queueDepth,
		RequireCHAP: o.requireCHAP, DisableCHAP: o.disableCHAP,
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
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if err = e.tgt.CreatePortalGroup(tag, []Portal{{Host: "127.0.0.1", Port: strconv.Itoa(port)}}); err == nil {
			return e.tgt.portalAddr(tag)
		}
	}
	e.t.Fatalf("no portal: %v", err)
	return ""
}

// portalAddr is the address portal group tag's first listener is bound to.
func (t *Target) portalAddr(tag uint16) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	pg := t.portals[tag]
	if pg == nil || len(pg.ls) == 0 {
		return ""
	}
	return pg.ls[0].Addr().String()
}

// onConns runs fn on every live connection, each on its own reactor.
func (t *Target) onConns(fn func(c *conn)) {
	for _, pg := range t.pgs {
		_ = pg.r.Do(func() {
			for c := range pg.conns {
				fn(c)
			}
		})
	}
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

// waitConns waits until the target has n connections.
func (e *env) waitConns(n int64) {
	e.t.Helper()
	waitFor(e.t, 10*time.Second, "connection count "+strconv.FormatInt(n, 10), func() bool {
		return e.tgt.Stats().Connections == n
	})
}

// testLogger discards the target's log unless SLUICE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testRand is a generator seeded from SEED, or from the clock; the seed is logged so
// that a failure can be replayed.
func testRand(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed=%d (rerun with SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
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

func createMalloc(e *env, name string) (*bdev.Bdev, error) {
	return bdev.CreateMalloc(e.bm, bdev.MallocParams{Name: name, NumBlocks: testBlocks, BlockSize: testBlock}, nil)
}

func boolp(v bool) *bool { return &v }
