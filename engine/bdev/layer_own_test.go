package bdev

import (
	"bytes"
	"testing"

	"sluice/engine/mem"
)

// TestPrepareOwnNamesTheLayersBuffer: a child prepared with the layer's own buffer
// carries that buffer and its fixed-buffer index, never the parent's; Prepare (a layer
// that moves the parent's data) passes the parent's on; Detach forgets both, so that a
// pooled context cannot submit a stale index later.
func TestPrepareOwnNamesTheLayersBuffer(t *testing.T) {
	core := newMemDomain(t)
	plain, own := allocBuf(t, core, 4096), allocBuf(t, core, 4096)
	parent := &IO{Type: IOWrite, FUA: true, Offset: 8192, Length: 4096}
	parent.SetBuf(plain.Bytes(), plain)
	if parent.FixedBuf != fixedIndex(plain) {
		t.Fatalf("SetBuf: FixedBuf %d, want %d", parent.FixedBuf, fixedIndex(plain))
	}
	var c ChildIO
	c.PrepareOwn(parent, own.Bytes(), own)
	if &c.Child.Buf[0] != &own.Bytes()[0] || c.Child.FixedBuf != fixedIndex(own) {
		t.Fatal("PrepareOwn: the child does not carry the layer's buffer and its index")
	}
	if c.Child.Type != IOWrite || !c.Child.FUA || c.Child.Offset != 8192 || c.Child.Length != 4096 || c.Parent != parent {
		t.Fatalf("PrepareOwn: the child does not describe the parent's request: %+v", c.Child)
	}
	// An index that would name the plaintext's buffer must not survive on the child
	// even where the two happen to be equal by value: the child's comes from own.
	parent.FixedBuf = 1000
	c.PrepareOwn(parent, own.Bytes(), own)
	if c.Child.FixedBuf != fixedIndex(own) {
		t.Fatalf("PrepareOwn passed the parent's index %d through", c.Child.FixedBuf)
	}
	c.Detach()
	if c.Child.Buf != nil || c.Child.FixedBuf != 0 {
		t.Fatal("Detach kept the child's buffer or index")
	}
	c.Prepare(parent)
	if c.Child.FixedBuf != 1000 || !bytes.Equal(c.Child.Buf, plain.Bytes()) {
		t.Fatal("Prepare does not pass the parent's buffer and index on")
	}
	// Memory that is not the allocator's names no fixed buffer, whatever was there.
	heap := IO{FixedBuf: 7}
	heap.SetBuf(make([]byte, 512), mem.Buf{})
	if heap.FixedBuf != 0 || len(heap.Buf) != 512 {
		t.Fatalf("SetBuf of Go memory: FixedBuf %d", heap.FixedBuf)
	}
}
