package interop

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"sluice/engine/nvmf/host"
	"sluice/engine/replication"
)

// Faults during replication, on two namespaces joined by one veth (A 10.s.1.1, B
// 10.s.1.2): kill -9 of A, kill -9 of B, and the link going down, each while our
// NVMe/TCP host writes to A. After recovery the copy converges to A's base; in sync
// mode no acknowledged write is missing on B even while A is dead; in async mode the
// lag is reported and bounded by the journal.

const (
	faultVolBytes = 64 << 20
	faultBlocks   = faultVolBytes / 4096
	faultJournal  = 4 << 20
	faultNQN      = "nqn.2026-11.dev.sluice:repl-fault"
)

type faultRig struct {
	t        *testing.T
	tp       *topo
	nsA, nsB string
	ifA      string
	a, b     *daemon
	mode     string
	base     uint16
}

func newFaultRig(t *testing.T, mode string) *faultRig {
	tp := newTopo(t)
	r := &faultRig{t: t, tp: tp, mode: mode, base: 7200}
	r.nsA, r.nsB = tp.node("a"), tp.node("b")
	r.ifA, _ = tp.link("ab", "a", "b", 1)
	r.a = newDaemonIn(t, r.nsA, "")
	r.b = newDaemonIn(t, r.nsB, "")
	r.configureB()
	r.configureA(true)
	r.a.waitInSync("vol0", time.Minute)
	return r
}

func (r *faultRig) configureB() {
	r.b.call("replication_partnership_create", map[string]any{"name": "pab", "role": "listen",
		"address": r.tp.addr(1, 2), "base_port": r.base, "peer_key": r.a.identity()}, nil)
}

// configureA makes (or, after a restart, makes again over the same file) A's volume,
// partnership, replication and export, in the order a config replay would.
func (r *faultRig) configureA(first bool) {
	r.a.call("bdev_file_create", map[string]any{"name": "baseA", "filename": r.baseFile(),
		"size_bytes": faultVolBytes, "block_size": 4096}, nil)
	r.a.call("bdev_replica_create", map[string]any{"name": "vol0", "base_bdev_name": "baseA"}, nil)
	r.a.call("replication_partnership_create", map[string]any{"name": "pab", "role": "dial",
		"address": r.tp.addr(1, 2), "base_port": r.base, "peer_key": r.b.identity(), "no_wait": !first}, nil)
	r.a.call("replication_volume_start", map[string]any{"volume": "vol0", "partnership": "pab",
		"mode": r.mode, "journal_bytes": faultJournal}, nil)
	r.a.exportNVMe(faultNQN, "vol0", r.tp.addr(1, 1), 4420)
}

func (r *faultRig) baseFile() string { return filepath.Join(r.a.dataDir, "baseA.img") }

func (r *faultRig) copyFile() string {
	return filepath.Join(r.b.dataDir, "replicas", "pab", "vol0.img")
}

// writer writes stamped blocks (lba, generation) at random LBAs, one at a time, and
// records the generation of every acknowledged write.
type writer struct {
	mu       sync.Mutex
	acked    map[uint64]uint32
	n        int
	gen      uint32
	stop     chan struct{}
	done     chan struct{}
	maxLag   replication.VolumeStatus
	lagPolls int
}

func (r *faultRig) startWriter(q *host.IOQueue, seed uint64, span uint64, w *writer) {
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.done)
		rng := rand.New(rand.NewPCG(seed, seed))
		buf := make([]byte, 4096)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			lba := rng.Uint64N(span)
			w.mu.Lock()
			w.gen++
			g := w.gen
			w.mu.Unlock()
			binary.LittleEndian.PutUint64(buf, lba)
			binary.LittleEndian.PutUint32(buf[8:], g)
			for i := 16; i < len(buf); i++ {
				buf[i] = byte(lba) ^ byte(g) ^ byte(i)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := q.Write(ctx, 1, lba, 1, buf, false)
			cancel()
			if err != nil {
				return // A died under us: what was acknowledged is recorded
			}
			w.mu.Lock()
			w.acked[lba] = g
			w.n++
			w.mu.Unlock()
		}
	}()
}

func (w *writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// watchLag polls A's status while the writer runs: in async mode the journal never
// holds more than its cap, and the lag is what status reports.
func (r *faultRig) watchLag(w *writer) {
	go func() {
		for {
			select {
			case <-w.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var st []replication.VolumeStatus
			if r.a.tryCall("replication_get_volumes", map[string]any{"name": "vol0"}, &st) != nil {
				return
			}
			w.mu.Lock()
			w.lagPolls++
			if st[0].LagBytes > w.maxLag.LagBytes {
				w.maxLag = st[0]
			}
			if st[0].JournalBytes > st[0].JournalCap {
				r.t.Errorf("journal holds %d bytes, cap %d", st[0].JournalBytes, st[0].JournalCap)
			}
			w.mu.Unlock()
		}
	}()
}

// gens reads each block's generation stamp from a file (0: never written).
func gens(t *testing.T, path string) []uint32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint32, faultBlocks)
	for lba := range uint64(faultBlocks) {
		blk := b[lba*4096:]
		if binary.LittleEndian.Uint64(blk) == lba {
			out[lba] = binary.LittleEndian.Uint32(blk[8:])
		}
	}
	return out
}

// missing counts the acknowledged writes a file does not hold (an older generation).
func missing(t *testing.T, path string, w *writer) (int, int) {
	g := gens(t, path)
	w.mu.Lock()
	defer w.mu.Unlock()
	miss := 0
	for lba, want := range w.acked {
		if g[lba] < want {
			miss++
		}
	}
	return miss, len(w.acked)
}

// converge waits for A to be in sync and checks that the copy equals A's base and
// holds every acknowledged write.
func (r *faultRig) converge(w *writer, what string) replication.VolumeStatus {
	t := r.t
	t.Helper()
	st := r.a.waitInSync("vol0", time.Minute)
	a, err := os.ReadFile(r.baseFile())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(r.copyFile())
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%s: base %d bytes, copy %d", what, len(a), len(b))
	}
	for off := 0; off < len(a); off += 4096 {
		if string(a[off:off+4096]) != string(b[off:off+4096]) {
			t.Fatalf("%s: the copy differs from A's base at block %d", what, off/4096)
		}
	}
	if miss, n := missing(t, r.copyFile(), w); miss != 0 {
		t.Fatalf("%s: %d of %d acknowledged writes missing after convergence", what, miss, n)
	}
	return st
}

func (r *faultRig) connect() *host.IOQueue {
	_, q := connectNVMe(r.t, r.nsA, r.tp.addr(1, 1)+":4420", faultNQN)
	return q
}

// TestReplicationFaults runs kill -9 of A, kill -9 of B and a partition, in sync and
// in async mode.
func TestReplicationFaults(t *testing.T) {
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			r := newFaultRig(t, mode)
			w := &writer{acked: map[uint64]uint32{}}
			r.killA(w)
			r.killB(w)
			r.partition(w)
		})
	}
}

func (r *faultRig) killA(w *writer) {
	t := r.t
	// The writes stay in the first 8 regions, so that the bitmap, not a full sync,
	// decides what A's restart copies.
	r.startWriter(r.connect(), 1, 8<<20/4096, w)
	r.watchLag(w)
	time.Sleep(1500 * time.Millisecond)
	r.a.kill()
	w.halt()
	miss, n := missing(t, r.copyFile(), w)
	w.mu.Lock()
	lag := w.maxLag
	w.mu.Unlock()
	t.Logf("kill -9 A (%s): %d acknowledged writes, %d not on B at the kill; max reported lag %d writes, %d bytes (journal cap %d)",
		r.mode, n, miss, lag.LagWrites, lag.LagBytes, faultJournal)
	if r.mode == "sync" && miss != 0 {
		t.Fatalf("sync mode: %d acknowledged writes missing on B after kill -9 of A", miss)
	}
	if r.mode == "async" && uint64(miss)*4096 > uint64(faultJournal)+lag.LagBytes {
		t.Fatalf("async mode: %d writes behind, beyond the journal and the reported lag", miss)
	}
	startIn(r.a, r.nsA)
	r.configureA(false)
	st := r.converge(w, "after kill -9 of A")
	if st.FullSyncs != 0 || st.ResyncBytes > 9<<20 {
		t.Fatalf("A's restart copied more than the regions it wrote (8 MiB): %+v", st)
	}
	t.Logf("A restarted: resynchronized %d bytes from its bitmap (volume %d bytes)", st.ResyncBytes, faultVolBytes)
}

func (r *faultRig) killB(w *writer) {
	t := r.t
	r.startWriter(r.connect(), 2, faultBlocks, w)
	time.Sleep(500 * time.Millisecond)
	r.b.kill()
	time.Sleep(time.Second) // A goes on, tracking dirty regions
	w.halt()
	st := r.a.volumeStatus("vol0")
	if st.State == "replicating" {
		t.Fatalf("A replicating with B dead: %+v", st)
	}
	startIn(r.b, r.nsB)
	r.configureB()
	st = r.converge(w, "after kill -9 of B")
	t.Logf("B restarted: %d acknowledged writes in all, converged (resync passes %d)", w.n, st.ResyncPasses)
}

func (r *faultRig) partition(w *writer) {
	t := r.t
	r.startWriter(r.connect(), 3, faultBlocks, w)
	time.Sleep(300 * time.Millisecond)
	r.tp.setLink(r.nsA, r.ifA, false)
	time.Sleep(4 * time.Second) // beyond the 3 s keepalive: the tunnel is declared dead
	st := r.a.volumeStatus("vol0")
	r.tp.setLink(r.nsA, r.ifA, true)
	time.Sleep(300 * time.Millisecond)
	w.halt()
	if st.State == "replicating" || st.ResyncRegions == 0 || st.LagBytes == 0 {
		t.Fatalf("during the partition: %+v", st)
	}
	t.Logf("partition (%s): reported lag %d bytes (%d regions to copy, %d frames in flight, journal %d of %d)",
		r.mode, st.LagBytes, st.ResyncRegions, st.LagWrites, st.JournalBytes, st.JournalCap)
	st = r.converge(w, "after the partition")
	t.Logf("partition: %d acknowledged writes in all, converged (resync passes %d)", w.n, st.ResyncPasses)
}
