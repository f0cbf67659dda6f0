package interop

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"sluice/bpf"
	"sluice/engine/nvmf/host"
	"sluice/engine/replication"
)

// The replication half of the tracer against real daemons: A replicates two volumes
// (one sync, one async) to B over loopback, the tracer (sluice/bpf) attached to A counts
// and times every frame at the repl_send/repl_ack sites and every journal entry at
// journal_enqueue/journal_dequeue, and its histograms are checked against the count of
// writes and against the latencies the engine measures itself (replication_get_volumes'
// latency, taken at the same two points).

// freeBaseHost finds a base port whose derived ports are free on 127.0.0.1.
func freeBaseHost(t testing.TB) uint16 {
	t.Helper()
	for p := 30000 + os.Getpid()%20000; p < 65000; p += 7 {
		ok := true
		for o := 0; o < 4 && ok; o++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+o))
			if err != nil {
				ok = false
				continue
			}
			ln.Close()
		}
		if ok {
			return uint16(p)
		}
	}
	t.Fatal("no free port range")
	return 0
}

// localPair starts A and B on the host's loopback, B listening for A, and on A one
// replica volume per mode, each exported over NVMe/TCP.
func localPair(t testing.TB, modes ...string) (a, b *daemon, nvmfPort int) {
	t.Helper()
	needTraceRoot(t)
	a, b = newDaemonIn(t, "", ""), newDaemonIn(t, "", "")
	base := freeBaseHost(t)
	b.call("replication_partnership_create", map[string]any{"name": "pab", "role": "listen",
		"address": "127.0.0.1", "base_port": base, "peer_key": a.identity()}, nil)
	a.call("replication_partnership_create", map[string]any{"name": "pab", "role": "dial",
		"address": "127.0.0.1", "base_port": base, "peer_key": b.identity()}, nil)
	nvmfPort = freePort(t)
	for i, mode := range modes {
		vol := fmt.Sprintf("vol%d", i)
		a.call("bdev_file_create", map[string]any{"name": "base" + vol,
			"filename": filepath.Join(a.dataDir, vol+".img"), "size_bytes": 32 << 20, "block_size": 4096}, nil)
		a.call("bdev_replica_create", map[string]any{"name": vol, "base_bdev_name": "base" + vol}, nil)
		a.call("replication_volume_start", map[string]any{"volume": vol, "partnership": "pab", "mode": mode}, nil)
		nqn := "nqn.2026-11.dev.sluice:trace-" + vol
		a.call("nvmf_create_subsystem", map[string]any{"nqn": nqn, "allow_any_host": true}, nil)
		a.call("nvmf_subsystem_add_ns", map[string]any{"nqn": nqn,
			"namespace": map[string]any{"nsid": 1, "bdev_name": vol}}, nil)
		a.call("nvmf_subsystem_add_listener", map[string]any{"nqn": nqn, "listen_address": map[string]any{
			"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": strconv.Itoa(nvmfPort)}}, nil)
		a.waitInSync(vol, time.Minute)
	}
	return a, b, nvmfPort
}

func replSeries(t testing.TB, snap bpf.Snapshot, kind bpf.Kind, vol, peer string) bpf.Series {
	t.Helper()
	for _, s := range snap.Series {
		if s.Kind == kind && s.Volume == vol && s.Peer == peer {
			return s
		}
	}
	t.Fatalf("no %v series for %s/%s in %+v", kind, vol, peer, snap.Series)
	return bpf.Series{}
}

// TestTraceReplication: N host writes on each volume make exactly N send→ack entries in
// the volume's replication histogram (and, for the async volume, N in its journal
// histogram), with nothing unmatched or left in flight; and the tracer's latencies agree
// with the engine's own.
//
// Tolerance: both sides time the same interval: the engine reads its clock just before
// each site, the BPF program reads the kernel's inside the uprobe a microsecond or two
// later at both ends, so the two latencies of one frame differ by the difference of two
// uprobe entry costs (a few µs). The tracer's histogram has buckets of 12.5% and a
// quantile is a bucket's middle, the engine's HDR histogram is exact to 0.1%. So each of
// p50, p90 and p99 must agree within 12.5% + 20 µs, the means (both exact sums) within
// 5% + 10 µs, and the counts exactly.
func TestTraceReplication(t *testing.T) {
	a, _, port := localPair(t, "sync", "async")
	pid := a.cmd.Process.Pid
	for _, vol := range []string{"vol0", "vol1"} {
		_, q := connectNVMe(t, "", "127.0.0.1:"+strconv.Itoa(port), "nqn.2026-11.dev.sluice:trace-"+vol)
		write4K(t, q, 50, 0) // warm the path before measuring
		a.waitInSync(vol, time.Minute)
		a.call("replication_get_volumes", map[string]any{"name": vol, "reset_latency": true}, nil)
		tr, err := bpf.Attach(pid, bpf.Options{Repl: true, SampleRepl: 1})
		if err != nil {
			t.Fatal(err)
		}
		const n = 1000
		write4K(t, q, n, 1024)
		st := a.waitInSync(vol, time.Minute)
		snap, err := tr.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		s := replSeries(t, snap, bpf.KindRepl, vol, "pab")
		if s.Count != n || s.Unmatched != 0 || s.Depth != 0 {
			t.Fatalf("%s: traced %d sends→acks (unmatched %d, in flight %d), %d writes replicated",
				vol, s.Count, s.Unmatched, s.Depth, n)
		}
		if st.Latency.Count != n {
			t.Fatalf("%s: the engine measured %d frames, want %d", vol, st.Latency.Count, n)
		}
		if vol == "vol1" {
			j := replSeries(t, snap, bpf.KindJournal, vol, "")
			if j.Count != n || j.Unmatched != 0 || j.Depth != 0 {
				t.Fatalf("%s: journal series %+v, want %d entries", vol, j, n)
			}
		}
		agreeLatency(t, vol, s, st.Latency)
	}
	if io, repl, err := bpf.Semaphores(pid); err != nil || io != 0 || repl != 0 {
		t.Fatalf("semaphores after detach: io=%d repl=%d %v", io, repl, err)
	}
}

func agreeLatency(t *testing.T, vol string, s bpf.Series, e replication.LatencyStats) {
	t.Helper()
	tmean := float64(s.SumNs) / float64(s.Count)
	t.Logf("%s mean: tracer %.1f µs, engine %.1f µs", vol, tmean/1e3, e.MeanNs/1e3)
	if math.Abs(tmean-e.MeanNs) > 10e3+0.05*e.MeanNs {
		t.Errorf("%s mean: tracer %.1f µs, engine %.1f µs: outside 5%% + 10 µs", vol, tmean/1e3, e.MeanNs/1e3)
	}
	for _, q := range []struct {
		q float64
		e int64
	}{{0.5, e.P50Ns}, {0.9, e.P90Ns}, {0.99, e.P99Ns}} {
		tq := float64(s.Hist.Quantile(q.q))
		t.Logf("%s p%v: tracer %.1f µs, engine %.1f µs", vol, q.q*100, tq/1e3, float64(q.e)/1e3)
		if math.Abs(tq-float64(q.e)) > 20e3+0.125*float64(q.e) {
			t.Errorf("%s p%v: tracer %.1f µs, engine %.1f µs: outside 12.5%% + 20 µs",
				vol, q.q*100, tq/1e3, float64(q.e)/1e3)
		}
	}
}

// write4K writes n 4 KiB blocks (one LBA of these volumes) one at a time from lba on.
func write4K(t *testing.T, q *host.IOQueue, n int, lba uint64) {
	t.Helper()
	buf := make([]byte, 4096)
	for i := range n {
		buf[0], buf[1] = byte(i), byte(i>>8)
		if err := q.Write(context.Background(), 1, lba+uint64(i%4096), 1, buf, false); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

// BenchmarkTraceReplicationOverhead measures, in one pair of daemons and one run, what
// attaching the tracer costs replicated writes: 4 KiB writes at queue depth 32 to a
// synchronously replicated file volume on A (each write acknowledged once B has it),
// the initiator busy-polling on cpu 1. Rounds cycle detached → replication sites only
// (every frame, unsampled, as sluicetrace -repl attaches them) → replication and I/O
// sites (I/O sampled 1 in 64, sluicetrace's default), so that drift on this shared
// machine spreads over all three, and the medians are reported: IOPS, and daemon A's
// CPU time per write. Run it with
//
//	go test -run NONE -bench TraceReplicationOverhead -benchtime 1x ./tools/interop
func BenchmarkTraceReplicationOverhead(b *testing.B) {
	a, _, port := localPair(b, "sync")
	pid := a.cmd.Process.Pid
	const nqn = "nqn.2026-11.dev.sluice:trace-vol0"
	_, q := connectNVMe(b, "", "127.0.0.1:"+strconv.Itoa(port), nqn)
	if err := q.BusyPoll(); err != nil {
		b.Fatal(err)
	}
	pinTo(b, 1)
	defer runtime.UnlockOSThread()
	const rounds, qd, span = 7, 32, 2 * time.Second
	type mode struct {
		name string
		opts *bpf.Options
	}
	modes := []mode{{"detached", nil},
		{"repl", &bpf.Options{Repl: true, SampleRepl: 1}},
		{"repl+io64", &bpf.Options{Repl: true, IO: true, SampleRepl: 1, SampleIO: 64}}}
	iops, cpu := map[string][]float64{}, map[string][]float64{}
	loadIOPSBlocks(b, q, 1, qd, span/2, 1) // warm up (4 KiB blocks)
	a.waitInSync("vol0", time.Minute)
	for range rounds {
		for _, m := range modes {
			var tr *bpf.Tracer
			var err error
			if m.opts != nil {
				if tr, err = bpf.Attach(pid, *m.opts); err != nil {
					b.Fatal(err)
				}
			}
			c0 := daemonCPUNs(b, pid)
			v := loadIOPSBlocks(b, q, 1, qd, span, 1)
			iops[m.name] = append(iops[m.name], v)
			cpu[m.name] = append(cpu[m.name], float64(daemonCPUNs(b, pid)-c0)/(v*span.Seconds()))
			if tr != nil {
				snap, err := tr.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				if s := replSeries(b, snap, bpf.KindRepl, "vol0", "pab"); s.Count == 0 {
					b.Fatalf("tracer (%s) saw no replicated frame", m.name)
				}
				tr.Close()
			}
		}
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	for _, m := range modes {
		b.Logf("%-9s IOPS per round %.0f; daemon A CPU ns per write %.0f", m.name, iops[m.name], cpu[m.name])
		b.ReportMetric(med(iops[m.name]), "iops-"+m.name)
		b.ReportMetric(med(cpu[m.name]), "cpu-ns/io-"+m.name)
	}
	b.ReportMetric(med(iops["repl"])/med(iops["detached"]), "ratio-repl")
	b.ReportMetric(med(iops["repl+io64"])/med(iops["detached"]), "ratio-repl+io64")
	b.ReportMetric(0, "ns/op")
}
