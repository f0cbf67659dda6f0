package bdev

import (
	"fmt"

	"sluice/engine/mem"
	"sluice/engine/reactor"
)

// A layer is a bdev module stacked on another bdev (SPDK's virtual bdevs): delay and
// error here, crypt and replica elsewhere. It claims its base exclusively, opens the
// base's channel on each reactor where its own channel opens, and serves each I/O it
// receives (the parent) with I/Os of its own on the base (children), whose contexts
// come from a per-channel pool so that a layer allocates nothing per I/O once warm. A
// layer that moves data of its own (crypt's ciphertext) takes it from the allocator core
// of the channel's reactor and names it with PrepareOwn, so that the child carries the
// hints of the layer's memory, never those of the parent's.
//
// Teardown needs nothing special from a layer: the generic layer counts the parent
// I/Os in flight on the layer's channel and closes that channel (and so the layer's
// reference on the base channel) only once every parent has completed, which a layer
// guarantees by completing a parent only after its children completed.

// LayerBase is what a layer backend keeps of its base: the bdev and its claim.
type LayerBase struct {
	Bdev  *Bdev
	owner string
}

// ClaimBase finds base and claims it exclusively for the layer called name.
func ClaimBase(m *Manager, module, name, base string) (LayerBase, error) {
	b, err := m.Get(base)
	if err != nil {
		return LayerBase{}, err
	}
	owner := fmt.Sprintf("bdev_%s %s", module, name)
	if err := b.Claim(ClaimExclusive, owner); err != nil {
		return LayerBase{}, err
	}
	return LayerBase{Bdev: b, owner: owner}, nil
}

// Release gives the base back; the layer's Backend.Close calls it.
func (lb LayerBase) Release() {
	if lb.Bdev != nil {
		lb.Bdev.Release(lb.owner)
	}
}

// LayerConfig is the Config of a layer over lb: the base's geometry and capabilities,
// with the layer's own name, module, identity and parameters.
func (lb LayerBase) LayerConfig(name, module string, uuid [16]byte, params any) Config {
	return Config{Name: name, Module: module, BlockSize: lb.Bdev.BlockSize(),
		NumBlocks: lb.Bdev.NumBlocks(), UUID: uuid, Caps: lb.Bdev.Caps(), Params: params, Base: lb.Bdev}
}

// ChildIO is a layer's context for one parent I/O: the child I/O it submits to the
// base, and the parent it serves. Layers embed it in their own context types; the
// child's Done is bound once, when the context is made.
type ChildIO struct {
	Child  IO
	Parent *IO
}

// Prepare copies what the parent asks into the child, for a layer that passes the
// I/O through unchanged (it may then alter Buf or Offset).
func (c *ChildIO) Prepare(parent *IO) {
	c.Parent = parent
	c.Child.Type, c.Child.FUA = parent.Type, parent.FUA
	c.Child.Offset, c.Child.Length = parent.Offset, parent.Length
	c.Child.Buf, c.Child.FixedBuf = parent.Buf, parent.FixedBuf
}

// PrepareOwn is Prepare for a layer whose child moves the layer's own data: buf, inside
// the allocator buffer m (or m zero), instead of the parent's buffer. The parent's
// FixedBuf names the parent's memory, so it must not follow the data to a buffer it does
// not hold; the child gets m's instead.
//
// Preconditions: len(buf) == parent.Length, unless the layer then sets Length itself.
func (c *ChildIO) PrepareOwn(parent *IO, buf []byte, m mem.Buf) {
	c.Prepare(parent)
	c.Child.SetBuf(buf, m)
}

// Detach moves the child's outcome into the parent and forgets the parent. The layer
// then returns its context to the pool before completing the parent (with
// p.Complete(p.Status)), so that a completion that submits again at once reuses it.
func (c *ChildIO) Detach() *IO {
	p := c.Parent
	c.Parent = nil
	c.Child.Buf, c.Child.FixedBuf = nil, 0
	p.Errno = c.Child.Errno
	p.Status = c.Child.Status
	return p
}

// Pool is a per-channel free list of layer contexts: it grows when a burst needs more
// than it holds (an allocation at warm-up), and never shrinks, so that steady traffic
// allocates nothing.
//
// Concurrency: owned by one channel, so by one reactor.
type Pool[T any] struct {
	free []*T
	make func() *T
}

// NewPool makes a pool holding n contexts made by mk.
func NewPool[T any](n int, mk func() *T) *Pool[T] {
	p := &Pool[T]{free: make([]*T, 0, n), make: mk}
	for range n {
		p.free = append(p.free, mk())
	}
	return p
}

// Get takes a context.
func (p *Pool[T]) Get() *T {
	if n := len(p.free); n > 0 {
		x := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return x
	}
	return p.make()
}

// Put returns a context.
func (p *Pool[T]) Put(x *T) { p.free = append(p.free, x) }

// layerChannel is the part of a layer's channel every layer needs: its reactor and its
// reference on the base channel.
type layerChannel struct {
	r    *reactor.Reactor
	base *Channel
}

func openLayerChannel(lb LayerBase, r *reactor.Reactor) (layerChannel, error) {
	ch, err := lb.Bdev.GetChannel(r)
	if err != nil {
		return layerChannel{}, err
	}
	return layerChannel{r: r, base: ch}, nil
}
