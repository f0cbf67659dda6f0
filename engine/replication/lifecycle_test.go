package replication

import (
	"testing"
	"time"
)

// TestDeleteWithFramesInFlight: a replica bdev deleted while its async journal holds
// frames (a partner that stopped answering) goes away cleanly: the frames fail back to
// their reactor, every journal buffer returns to the core, and the volume's goroutines
// end.
func TestDeleteWithFramesInFlight(t *testing.T) {
	p := newPair(t, 32<<20, 1<<20, false)
	p.start(t, "async", 16<<20)
	p.waitInSync(t)
	o := p.a.open(t, "vol0")
	// B's reactor stops taking frames: acks stop, the journal fills.
	stall := make(chan struct{})
	if err := p.b.r.Post(func() { <-stall }); err != nil {
		t.Fatal(err)
	}
	defer close(stall)
	var off uint64
	o.pipeline(t, 8, 64, 64<<10, &off, 16<<20)
	v := p.vol(t)
	if v.journalBytes.Load() == 0 {
		t.Fatal("nothing in flight: the test proves nothing")
	}
	o.close()
	deleteBdev(t, p.a, "vol0")
	deadline := time.Now().Add(testDeadline)
	for {
		inUse := int64(0)
		_ = p.a.r.Do(func() {
			core := p.a.svc.env.Mem(0)
			core.PublishStats()
		})
		for _, cs := range p.dom.Stats().Cores {
			if cs.Core == 0 {
				inUse = cs.BytesInUse
			}
		}
		if inUse == 0 && v.journalBytes.Load() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after delete: %d bytes in use on A's core, journal %d", inUse, v.journalBytes.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := p.a.svc.volume("vol0"); err == nil {
		t.Fatal("the volume outlived its bdev")
	}
}
