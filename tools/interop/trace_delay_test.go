package interop

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"sluice/bpf"
)

// delayForwarder relays TCP connections from its listener to dst, holding every chunk
// going toward dst for the current delay before writing it: a partner link with a
// latency knob, for kernels without netem. Chunks keep their order.
type delayForwarder struct {
	ln    net.Listener
	dst   string
	delay atomic.Int64 // nanoseconds
}

func (f *delayForwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		d, err := net.Dial("tcp", f.dst)
		if err != nil {
			c.Close()
			continue
		}
		go f.relayDelayed(c, d)
		go func() { _, _ = io.Copy(c, d); c.Close() }()
	}
}

type chunk struct {
	due time.Time
	b   []byte
}

func (f *delayForwarder) relayDelayed(src, dst net.Conn) {
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{time.Now().Add(time.Duration(f.delay.Load())), b[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			// Ending src ends the reader; draining q keeps it from blocking first.
			src.Close()
		}
	}
	dst.Close()
	src.Close()
}

// TestTraceReplicationDelay: a delay injected on the partner link, in the direction of
// the frames, moves the tracer's send→ack histogram by that much, and the tracer still
// agrees with the engine. A dials the forwarder, whose port sits below B's base; A's
// offsets are chosen so that its derived ports are B's (the tunnel checks them), which
// is what an operator does behind a port-translating hop.
func TestTraceReplicationDelay(t *testing.T) {
	needTraceRoot(t)
	a, b := newDaemonIn(t, "", ""), newDaemonIn(t, "", "")
	base := freeBaseHost(t)
	var ln net.Listener
	for p := int(base) - 10; p > int(base)-200 && ln == nil; p-- {
		ln, _ = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	}
	if ln == nil {
		t.Fatal("no free port below the base")
	}
	fwd := &delayForwarder{ln: ln, dst: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(base)))}
	go fwd.serve()
	t.Cleanup(func() { ln.Close() })
	fport := uint16(ln.Addr().(*net.TCPAddr).Port)
	shift := base - fport
	b.call("replication_partnership_create", map[string]any{"name": "pab", "role": "listen",
		"address": "127.0.0.1", "base_port": base, "peer_key": a.identity()}, nil)
	a.call("replication_partnership_create", map[string]any{"name": "pab", "role": "dial",
		"address": "127.0.0.1", "base_port": fport, "offsets": []uint16{shift + 1, shift + 2, shift + 3},
		"peer_key": b.identity()}, nil)
	nvmfPort := freePort(t)
	const vol, nqn = "vol0", "nqn.2026-11.dev.sluice:trace-delay"
	a.call("bdev_file_create", map[string]any{"name": "basevol0",
		"filename": filepath.Join(a.dataDir, "vol0.img"), "size_bytes": 32 << 20, "block_size": 4096}, nil)
	a.call("bdev_replica_create", map[string]any{"name": vol, "base_bdev_name": "basevol0"}, nil)
	a.call("replication_volume_start", map[string]any{"volume": vol, "partnership": "pab", "mode": "sync"}, nil)
	a.call("nvmf_create_subsystem", map[string]any{"nqn": nqn, "allow_any_host": true}, nil)
	a.call("nvmf_subsystem_add_ns", map[string]any{"nqn": nqn,
		"namespace": map[string]any{"nsid": 1, "bdev_name": vol}}, nil)
	a.call("nvmf_subsystem_add_listener", map[string]any{"nqn": nqn, "listen_address": map[string]any{
		"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": strconv.Itoa(nvmfPort)}}, nil)
	a.waitInSync(vol, time.Minute)
	_, q := connectNVMe(t, "", fmt.Sprintf("127.0.0.1:%d", nvmfPort), nqn)
	write4K(t, q, 50, 0)
	a.waitInSync(vol, time.Minute)

	const n = 300
	measure := func(delay time.Duration) (mean float64) {
		t.Helper()
		fwd.delay.Store(int64(delay))
		a.call("replication_get_volumes", map[string]any{"name": vol, "reset_latency": true}, nil)
		tr, err := bpf.Attach(a.cmd.Process.Pid, bpf.Options{Repl: true, SampleRepl: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		write4K(t, q, n, 1024)
		st := a.waitInSync(vol, time.Minute)
		snap, err := tr.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		s := replSeries(t, snap, bpf.KindRepl, vol, "pab")
		if s.Count != n || s.Unmatched != 0 {
			t.Fatalf("delay %v: traced %d sends→acks (unmatched %d), %d writes", delay, s.Count, s.Unmatched, n)
		}
		agreeLatency(t, vol, s, st.Latency)
		return float64(s.SumNs) / float64(s.Count)
	}
	const delay = 3 * time.Millisecond
	before := measure(0)
	after := measure(delay)
	moved := time.Duration(after - before)
	t.Logf("send→ack mean %.0f µs without delay, %.0f µs with %v on the link: moved %v",
		before/1e3, after/1e3, delay, moved)
	// Each write's frame waits the delay once on its way to B (acks come back
	// undelayed); timer slack and the forwarder's own hop add to it. The bounds leave
	// room for the undelayed run's own tail on this shared machine (p99 ~10 ms), which
	// the difference of two means carries.
	if moved < delay*6/10 || moved > delay*2 {
		t.Fatalf("histogram moved by %v for an injected %v", moved, delay)
	}
}
