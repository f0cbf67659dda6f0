package replication

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// TestSyncModeLocalPair: data written before the replication starts arrives by the
// full sync; afterwards every acknowledged write is on B when the host hears of it.
func TestSyncModeLocalPair(t *testing.T) {
	p := newPair(t, 16<<20, 1<<20, false)
	o := p.a.open(t, "vol0")
	rng := rand.New(rand.NewPCG(1, 2))
	randomWrites(t, o, rng, 200, 16<<20, 1)
	p.start(t, "sync", 0)
	p.waitInSync(t)
	p.assertSame(t)
	v := p.vol(t)
	if st := v.status(false); st.FullSyncs != 1 {
		t.Fatalf("full syncs %d, want 1", st.FullSyncs)
	}
	bo := p.b.open(t, p.copyName())
	buf, got := make([]byte, 4096), make([]byte, 4096)
	for i := range 300 {
		off := rng.Uint64N(4096) * 4096
		stamp(buf, off/512, uint32(1000+i))
		o.write(t, off, buf)
		if s := bo.do(t, 0, off, got); s != 0 || !bytes.Equal(got, buf) {
			t.Fatalf("write %d at %d acknowledged but not on B", i, off)
		}
	}
	p.waitInSync(t)
	p.assertSame(t)
	st := v.status(false)
	if st.Latency.Count < 300 || st.FramesFailed != 0 {
		t.Fatalf("status after 300 sync writes: %+v", st)
	}
	t.Logf("status: %+v", st)
}

// TestPartitionResync: writes during a partition are tracked as regions and copied
// when the link heals; no full sync, and B converges.
func TestPartitionResync(t *testing.T) {
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			p := newPair(t, 32<<20, 256<<10, false)
			p.start(t, mode, 0)
			p.waitInSync(t)
			o := p.a.open(t, "vol0")
			rng := rand.New(rand.NewPCG(3, 4))
			randomWrites(t, o, rng, 100, 32<<20, 1)
			p.fwd.partition(true)
			randomWrites(t, o, rng, 200, 8<<20, 1000) // acknowledged locally: degraded
			v := p.vol(t)
			st := v.status(false)
			if st.State == "replicating" || st.ResyncRegions == 0 {
				t.Fatalf("during the partition: %+v", st)
			}
			p.fwd.partition(false)
			p.waitInSync(t)
			p.assertSame(t)
			if st := v.status(false); st.FullSyncs != 1 || st.ResyncBytes > 16<<20 {
				t.Fatalf("after the partition: %+v", st)
			}
		})
	}
}

// TestAsyncJournalFull: with the partner not acknowledging (its reactor held), writes
// still complete at local speed; the journal fills to its cap and no further, the rest
// falls back to dirty regions, the lag is reported, and B converges once it answers.
func TestAsyncJournalFull(t *testing.T) {
	p := newPair(t, 32<<20, 64<<10, false)
	p.start(t, "async", 64<<10)
	p.waitInSync(t)
	o := p.a.open(t, "vol0")
	rng := rand.New(rand.NewPCG(5, 6))
	stall := make(chan struct{})
	if err := p.b.r.Post(func() { <-stall }); err != nil {
		t.Fatal(err)
	}
	maxLag := int64(0)
	v := p.vol(t)
	buf := make([]byte, 4096)
	for i := range 200 {
		off := rng.Uint64N(8192) * 4096
		stamp(buf, off/512, uint32(i))
		o.write(t, off, buf)
		maxLag = max(maxLag, v.journalBytes.Load())
	}
	st := v.status(false)
	close(stall)
	t.Logf("with B held: journal max %d, %+v", maxLag, st)
	if maxLag > 64<<10 || st.JournalFull == 0 || st.LagBytes < 64<<10 || st.ResyncRegions == 0 {
		t.Fatalf("journal max %d (cap 64 KiB), status %+v", maxLag, st)
	}
	p.waitInSync(t)
	p.assertSame(t)
}

// TestRestartResumesFromBitmap: A stops abruptly (its bdevs closed with the tunnel
// cut) and comes back over the same base; only the regions its bitmap marks are
// copied, not the whole volume.
func TestRestartResumesFromBitmap(t *testing.T) {
	p := newPair(t, 64<<20, 1<<20, true)
	p.start(t, "async", 0)
	p.waitInSync(t)
	waitFor(t, func() bool { return p.vol(t).status(false).IntentRegions == 0 })
	o := p.a.open(t, "vol0")
	rng := rand.New(rand.NewPCG(7, 8))
	p.fwd.partition(true)
	randomWrites(t, o, rng, 50, 4<<20, 1) // four regions at most
	v := p.vol(t)
	epoch, synced := v.epoch()
	// A "crash": the replica layer goes away with its state on disk only.
	o.close()
	o2 := restartA(t, p)
	p.fwd.partition(false)
	p.waitInSync(t)
	p.assertSame(t)
	v2 := p.vol(t)
	st := v2.status(false)
	e2, s2 := v2.epoch()
	if st.FullSyncs != 0 || e2 != epoch || !s2 || !synced || st.ResyncBytes > 4<<20 {
		t.Fatalf("after the restart: epoch %x→%x synced %v %v, %+v", epoch, e2, synced, s2, st)
	}
	randomWrites(t, o2, rng, 50, 64<<20, 100)
	p.waitInSync(t)
	p.assertSame(t)
}

// restartA closes vol0 and its partnership on A and makes them again from the same
// base and data directory.
func restartA(t *testing.T, p *pair) *ioer {
	t.Helper()
	n := p.a
	p.vol(t).detach() // the bitmap stays, as after a crash
	if err := n.svc.DeletePartnership("p1"); err != nil {
		t.Fatal(err)
	}
	deleteBdev(t, n, "vol0")
	if _, err := n.svc.CreateReplica(ReplicaParams{Name: "vol0", BaseBdevName: "baseA",
		RegionBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if st := p.vol(t).status(false); st.State != "disconnected" || st.ResyncRegions == 0 || st.ResyncRegions > 4 {
		t.Fatalf("reloaded bitmap: %+v", st)
	}
	p.dial(t, true)
	if err := n.svc.StartVolume(VolumeParams{Volume: "vol0", Partnership: "p1", Mode: "async"}); err != nil {
		t.Fatal(err)
	}
	return n.open(t, "vol0")
}

func deleteBdev(t *testing.T, n *node, name string) {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for {
		err := n.m.Delete(t.Context(), name, "")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
