package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/reactor"
)

// failingBackend is a bdev whose close (the final flush) fails, as an fdatasync on a
// dying disk does.
type failingBackend struct{}

func (failingBackend) NewChannel(*reactor.Reactor) (bdev.BackendChannel, error) {
	return nil, errors.New("not used")
}
func (failingBackend) Close() error { return errors.New("fdatasync: input/output error") }

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func testOptions(t *testing.T) options {
	dir, err := os.MkdirTemp("/var/tmp", "sluiced-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return options{dataDir: dir, rpcSocket: filepath.Join(dir, "rpc.sock"), cores: "0", pollMode: "interrupt",
		memSize: "16M", hugepages: "off", listenAddr: "127.0.0.1", nvmfPort: freePort(t), discoveryPort: freePort(t),
		iscsiPort: freePort(t), groupAddr: "127.0.0.1:" + freePort(t)}
}

// TestFailedFinalFlushIsAnUnsafeShutdown: a stop whose final flush fails must not mark
// the daemon clean, so the next start counts an unsafe shutdown.
func TestFailedFinalFlushIsAnUnsafeShutdown(t *testing.T) {
	o := testOptions(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for round, fail := range []bool{false, true} {
		d, err := start(o, log)
		if err != nil {
			t.Fatal(err)
		}
		if round == 1 && d.target.PowerOnSeconds() < 1 {
			t.Fatalf("power-on seconds %d after a run of more than a second: not carried over", d.target.PowerOnSeconds())
		}
		if !fail {
			time.Sleep(1100 * time.Millisecond)
		}
		if fail {
			if _, err := d.bdevs.Register(bdev.Config{Name: "dying", Module: "test", BlockSize: 512, NumBlocks: 8},
				failingBackend{}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = d.stop(ctx)
		cancel()
		if fail != (err != nil) {
			t.Fatalf("round %d: stop returned %v", round, err)
		}
	}
	st, err := openState(filepath.Join(o.dataDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.PowerOnSeconds < 1 {
		t.Fatalf("power-on seconds %d not kept across restarts", st.PowerOnSeconds)
	}
	if st.PowerCycles != 3 || st.UnsafeShutdowns != 1 {
		t.Fatalf("power cycles %d unsafe shutdowns %d, want 3 and 1 (the stop whose flush failed)",
			st.PowerCycles, st.UnsafeShutdowns)
	}
}
