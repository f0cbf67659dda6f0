package crypt

import (
	"fmt"
	"math/bits"

	"sluice/cgo/xts"
	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/reactor"
)

const (
	// poolInit is the contexts a channel makes up front: more than the queue depth
	// one reactor's hosts keep in flight on one volume today; beyond it the pool grows.
	poolInit = 64
	// zeroChunkBytes bounds one child write of a Write Zeroes: the largest size class
	// (one allocator slice), so that zeroing 256 MiB costs one 256 KiB buffer.
	zeroChunkBytes = mem.MaxClassSize
	// minCipherBufBytes: smaller ciphertext buffers are taken at this size, where the
	// allocator's classes are 4 KiB aligned, so that an O_DIRECT file under the layer
	// never has to bounce them.
	minCipherBufBytes = 4096
)

// channel is a crypt bdev's I/O state on one reactor. Everything in it is that reactor's.
type channel struct {
	be      *backend
	r       *reactor.Reactor
	base    *bdev.Channel
	core    *mem.Core
	xts     *xts.Cipher
	pool    *bdev.Pool[cryptIO]
	bs      int
	shift   uint8  // log2 of the block size: LBA = offset >> shift
	dataOff uint64 // added to every offset on the way to the base
}

// cryptIO is the layer's context for one parent I/O.
type cryptIO struct {
	bdev.ChildIO
	c  *channel
	ct mem.Buf // ciphertext of a write or a Write Zeroes chunk; zero otherwise
	// Write Zeroes: bytes of the parent written so far. inSubmit and inline let a chunk
	// that completes inside Submit (null, malloc) continue in the submitting loop
	// rather than recurse once per chunk.
	done     uint64
	inSubmit bool
	inline   bool
}

func newChannel(be *backend, r *reactor.Reactor, core *mem.Core, x *xts.Cipher,
	base *bdev.Channel) *channel {
	c := &channel{be: be, r: r, base: base, core: core, xts: x, bs: int(be.bs),
		shift: uint8(bits.TrailingZeros32(be.bs)), dataOff: be.dataOff}
	c.pool = bdev.NewPool(poolInit, c.newIO)
	return c
}

func (c *channel) newIO() *cryptIO {
	x := &cryptIO{c: c}
	x.Child.Done = x.baseDone
	return x
}

// Submit serves a parent I/O: reads go to the base into the caller's buffer, writes go
// as ciphertext in a buffer of the layer's own, Write Zeroes as encrypted zeros, the rest
// through unchanged past the header.
//
// Preconditions: on c.r; io is valid for the crypt bdev (checked by bdev.Channel).
func (c *channel) Submit(io *bdev.IO) {
	x := c.pool.Get()
	switch io.Type {
	case bdev.IOWrite:
		c.startWrite(x, io)
		return
	case bdev.IOWriteZeroes:
		c.startZeroes(x, io)
		return
	case bdev.IORead, bdev.IOUnmap:
		// A read lands in the caller's buffer and is decrypted there, so the
		// caller's fixed-buffer index is the right one to pass on.
		x.Prepare(io)
		x.Child.Offset += c.dataOff
	case bdev.IOFlush:
		x.Prepare(io)
	default:
		panic(fmt.Sprintf("crypt %q: %v got past bdev.Channel's checks", c.be.name, io.Type))
	}
	c.base.Submit(&x.Child)
}

func (c *channel) startWrite(x *cryptIO, io *bdev.IO) {
	ct, ok := c.alloc(x, io, int(io.Length))
	if !ok {
		return
	}
	buf := ct.Bytes()[:io.Length]
	if err := c.xts.EncryptSectors(buf, io.Buf, io.Offset>>c.shift, c.bs); err != nil {
		c.fail(x, io, bdev.StatusIOError)
		return
	}
	x.PrepareOwn(io, buf, ct)
	x.Child.Offset += c.dataOff
	c.base.Submit(&x.Child)
}

// alloc takes x's ciphertext buffer. Running out of memory is back-pressure: the parent
// fails with a status the host retries.
func (c *channel) alloc(x *cryptIO, io *bdev.IO, n int) (mem.Buf, bool) {
	ct, err := c.core.Alloc(max(n, minCipherBufBytes))
	if err != nil {
		c.pool.Put(x)
		io.Complete(bdev.StatusNoMemory)
		return mem.Buf{}, false
	}
	x.ct = ct
	return ct, true
}

// fail completes a parent the layer gave up on before its child was submitted.
func (c *channel) fail(x *cryptIO, io *bdev.IO, s bdev.Status) {
	c.freeCT(x)
	c.pool.Put(x)
	io.Complete(s)
}

func (c *channel) freeCT(x *cryptIO) {
	if !x.ct.IsZero() {
		c.core.Free(x.ct)
		x.ct = mem.Buf{}
	}
}

func (c *channel) startZeroes(x *cryptIO, io *bdev.IO) {
	ct, ok := c.alloc(x, io, int(min(io.Length, zeroChunkBytes)))
	if !ok {
		return
	}
	x.Prepare(io)
	x.Child.Type = bdev.IOWrite
	x.done = 0
	c.nextZeroes(x, ct)
}

// nextZeroes writes the parent's next chunk of encrypted zeros, and goes on with the next
// one for as long as the base completes them inside Submit: a loop, not a recursion,
// so the stack stays flat however many chunks a range takes.
func (c *channel) nextZeroes(x *cryptIO, ct mem.Buf) {
	for {
		p := x.Parent
		n := min(p.Length-x.done, uint64(ct.Len()))
		buf := ct.Bytes()[:n]
		clear(buf)
		if err := c.xts.EncryptSectors(buf, buf, (p.Offset+x.done)>>c.shift, c.bs); err != nil {
			x.Child.Status = bdev.StatusIOError
			c.finish(x)
			return
		}
		x.Child.Offset, x.Child.Length = c.dataOff+p.Offset+x.done, n
		x.Child.SetBuf(buf, ct)
		x.done += n
		x.inSubmit, x.inline = true, false
		c.base.Submit(&x.Child)
		x.inSubmit = false
		if !x.inline {
			return // baseDone goes on when the chunk completes
		}
		if x.Child.Status != bdev.StatusSuccess || x.done == p.Length {
			c.finish(x)
			return
		}
	}
}

// baseDone completes the parent once its child did: after decrypting a read in place, or
// after the last chunk of a Write Zeroes.
func (x *cryptIO) baseDone(*bdev.IO) {
	c := x.c
	switch x.Parent.Type {
	case bdev.IORead:
		if x.Child.Status == bdev.StatusSuccess {
			p := x.Parent
			if err := c.xts.DecryptSectors(p.Buf, p.Buf, p.Offset>>c.shift, c.bs); err != nil {
				x.Child.Status = bdev.StatusIOError
			}
		}
	case bdev.IOWriteZeroes:
		if x.inSubmit {
			x.inline = true
			return
		}
		if x.Child.Status == bdev.StatusSuccess && x.done < x.Parent.Length {
			c.nextZeroes(x, x.ct)
			return
		}
	}
	c.finish(x)
}

// finish frees the ciphertext and the context before completing the parent, so that a
// completion that submits again at once reuses both.
func (c *channel) finish(x *cryptIO) {
	c.freeCT(x)
	p := x.Detach()
	c.pool.Put(x)
	p.Complete(p.Status)
}

// Close runs once every parent completed, hence every child: no ciphertext buffer is
// held. The clone's key material is cleansed here, on its reactor.
func (c *channel) Close() {
	c.xts.Close()
	c.base.Put()
}
