package replication

import (
	"fmt"
	"os"
	"path/filepath"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/probe"
	"sluice/engine/reactor"
)

// Module is the replica bdevs' module name.
const Module = "replica"

// ReplicaParams are bdev_replica_create's parameters: a replica bdev over
// BaseBdevName, which it claims. Stacked under crypt (host → crypt → replica → base), it
// sees and ships ciphertext only. RegionBytes is the resync granularity (default 1 MiB).
type ReplicaParams struct {
	Name         string `json:"name" rpc:"required"`
	BaseBdevName string `json:"base_bdev_name" rpc:"required"`
	RegionBytes  uint32 `json:"region_bytes,omitempty"`
}

// CreateReplica registers a replica bdev over p.BaseBdevName. Until a replication is
// started on it (StartVolume) it passes I/O through; once one was, its writes are
// tracked from the first, across restarts (the bitmap file in the data directory).
func (s *Service) CreateReplica(p ReplicaParams) (*bdev.Bdev, error) {
	b, err := s.createReplica(p)
	if err != nil {
		return nil, fmt.Errorf("bdev_replica_create %q: %w", p.Name, err)
	}
	return b, nil
}

func (s *Service) createReplica(p ReplicaParams) (*bdev.Bdev, error) {
	if s.env.Mem == nil {
		return nil, fmt.Errorf("replication module without memory cores: %w", ErrInvalid)
	}
	if _, err := s.bdevs.Get(p.Name); err == nil {
		return nil, bdev.ErrExists
	}
	lb, err := bdev.ClaimBase(s.bdevs, Module, p.Name, p.BaseBdevName)
	if err != nil {
		return nil, err
	}
	path := ""
	if s.env.DataDir != "" {
		path = filepath.Join(s.env.DataDir, "replication", "volumes", p.Name+".bitmap")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			lb.Release()
			return nil, err
		}
	}
	v, err := newVolume(s, p.Name, lb.Bdev, p.RegionBytes, path)
	if err != nil {
		lb.Release()
		return nil, err
	}
	be := &replicaBackend{svc: s, base: lb, vol: v, params: p}
	cfg := lb.LayerConfig(p.Name, Module, bdev.DeriveUUID(Module, p.Name), p)
	b, err := s.bdevs.Register(cfg, be) // closes be on error
	if err != nil {
		return nil, err
	}
	s.addVolume(v)
	return b, nil
}

type replicaBackend struct {
	svc    *Service
	base   bdev.LayerBase
	vol    *volume
	params ReplicaParams
}

func (be *replicaBackend) NewChannel(r *reactor.Reactor) (bdev.BackendChannel, error) {
	core := be.svc.env.Mem(r.ID())
	if core == nil {
		return nil, fmt.Errorf("replica %q: no memory core for reactor %d: %w",
			be.vol.name, r.ID(), bdev.ErrNoMemory)
	}
	base, err := be.base.Bdev.GetChannel(r)
	if err != nil {
		return nil, err
	}
	c := &channel{vol: be.vol, r: r, base: base, core: core, parked: make([]*replIO, 0, 64)}
	c.pool = bdev.NewPool(poolInit, c.newIO)
	c.recs = bdev.NewPool(poolInit, func() *record { return &record{} })
	return c, nil
}

// Close runs once no channel is open: the replication stops (frames in flight fail)
// and the base is given back. The bitmap file stays, so that a replica bdev created
// again over the same base resumes the replication where it was.
func (be *replicaBackend) Close() error {
	be.svc.removeVolume(be.vol)
	be.vol.detach()
	be.vol.close()
	be.base.Release()
	return nil
}

const poolInit = 64

// record is one frame handed to the tunnel: a host write's data copied into a buffer of
// the reactor's core, a flush, or a frame of the goroutines (resync data, markers).
type record struct {
	kind   FrameType
	seq    uint64
	off    uint64
	flags  uint32
	epoch  uint64
	buf    mem.Buf  // a host write's copy; owned by ch's reactor
	n      int      // bytes of buf
	heap   []byte   // a goroutine frame's data
	ch     *channel // the owning channel, nil for goroutine frames
	x      *replIO  // the parent waiting for the ack (sync mode)
	r0, r1 int32    // regions covered (r1 < r0: none)
	sentNs int64

	failed    bool
	journaled bool          // counted by the journal probe sites
	done      chan struct{} // closed at retirement (markers someone waits for)
}

func (rec *record) data() []byte {
	if rec.ch != nil {
		return rec.buf.Bytes()[:rec.n]
	}
	return rec.heap
}

// replIO is the layer's context for one parent I/O.
type replIO struct {
	bdev.ChildIO
	c        *channel
	r0, r1   int32
	tracked  bool // regions counted in local
	sent     bool // a frame carries it
	waitGen  uint64
	rec      *record // sync mode: the frame whose ack it waits for
	localEnd bool
	acked    bool
}

// channel is a replica bdev's I/O state on one reactor. Everything in it is that
// reactor's; what it shares with the goroutines is in vol (atomics and rings).
type channel struct {
	vol    *volume
	r      *reactor.Reactor
	base   *bdev.Channel
	core   *mem.Core
	pool   *bdev.Pool[replIO]
	recs   *bdev.Pool[record]
	parked []*replIO // writes waiting for their regions' intent bits to be durable
	queued bool      // in vol.waiters
	closed bool
}

func (c *channel) newIO() *replIO {
	x := &replIO{c: c}
	x.Child.Done = x.baseDone
	return x
}

// Submit serves a parent I/O. Reads pass through. Writes (and write zeroes, unmap) count
// themselves in their regions, wait for the regions' intent bits to be durable, then go
// to the base and, when the stream ships them, to the ring as a frame. Nothing here
// blocks or allocates on the Go heap: the frame's data comes from the reactor's core and
// the pump is woken by a non-blocking send.
//
// Preconditions: on c.r; io is valid for the bdev (checked by bdev.Channel).
func (c *channel) Submit(io *bdev.IO) {
	x := c.pool.Get()
	x.Prepare(io)
	x.tracked, x.sent, x.rec, x.localEnd, x.acked = false, false, nil, false, false
	v := c.vol
	if io.Type == bdev.IORead || !v.tracked.Load() {
		c.base.Submit(&x.Child)
		return
	}
	if io.Type == bdev.IOFlush {
		c.startFlush(x)
		return
	}
	x.tracked = true
	x.r0, x.r1 = v.regionsOf(io.Offset, io.Length)
	// Counted before the bits are read: the cleaner clears before it reads the count.
	for r := x.r0; r <= x.r1; r++ {
		v.rg.local[r].Add(1)
	}
	if gen := v.markIntent(x.r0, x.r1); gen != 0 {
		x.waitGen = gen
		c.park(x)
		return
	}
	c.dispatch(x)
}

// dispatch ships x when it can and submits it to the base.
func (c *channel) dispatch(x *replIO) {
	v := c.vol
	if x.Parent.Type == bdev.IOWrite && v.sending() && !v.blocked(x.r0, x.r1) {
		x.sent = c.ship(x)
	}
	if !x.sent {
		v.st.notShipped.Add(1)
	}
	c.base.Submit(&x.Child)
}

// ship copies x's data into a frame and hands it to the tunnel. It reports false (the
// write is then tracked as a dirty region) when the journal is full, memory is short or
// the ring is full.
func (c *channel) ship(x *replIO) bool {
	v := c.vol
	att := v.att.Load()
	if att == nil {
		return false
	}
	p := x.Parent
	n := int64(p.Length)
	if n > MaxFrameData {
		return false // larger than one frame: copied by the resync loop instead
	}
	if att.mode == ModeAsync && v.journalBytes.Load()+n > att.journalCap {
		v.st.journalFull.Add(1)
		return false
	}
	buf, err := c.core.Alloc(int(n))
	if err != nil {
		return false
	}
	copy(buf.Bytes()[:n], p.Buf)
	rec := c.recs.Get()
	*rec = record{kind: FrameWrite, seq: v.seq.Add(1), off: p.Offset, buf: buf, n: int(n),
		ch: c, r0: x.r0, r1: x.r1, journaled: att.mode == ModeAsync}
	if p.FUA {
		rec.flags = FlagFUA
	}
	if att.mode == ModeSync {
		rec.x, x.rec = x, rec
	}
	for r := x.r0; r <= x.r1; r++ {
		v.rg.pending[r].Add(1)
	}
	v.journalBytes.Add(n)
	// The send site fires before the push: once pushed, the ack may come at once.
	rec.sentNs = monoNs()
	probe.ReplSend(v.name, att.partner, rec.seq)
	if rec.journaled {
		probe.JournalEnqueue(v.name, rec.seq)
	}
	if !v.ring.Push(rec) {
		rec.failed = true
		x.rec = nil
		rec.x = nil
		c.retire(rec)
		return false
	}
	v.st.pushed.Add(1)
	kick(v.wake)
	return true
}

// startFlush sends a flush frame in sync mode, so that the parent completes once both
// copies are durable; otherwise the flush is local.
func (c *channel) startFlush(x *replIO) {
	v := c.vol
	att := v.att.Load()
	if att == nil || att.mode != ModeSync || !v.sending() {
		c.base.Submit(&x.Child)
		return
	}
	rec := c.recs.Get()
	*rec = record{kind: FrameFlush, seq: v.seq.Add(1), ch: c, r0: 0, r1: -1, x: x}
	x.tracked, x.sent, x.rec, x.r0, x.r1 = true, true, rec, 0, -1
	rec.sentNs = monoNs()
	probe.ReplSend(v.name, att.partner, rec.seq)
	if !v.ring.Push(rec) {
		x.sent, x.rec = false, nil
		rec.x = nil
		c.recs.Put(rec)
	} else {
		v.st.pushed.Add(1)
		kick(v.wake)
	}
	c.base.Submit(&x.Child)
}

// baseDone runs when the base completed x. A write not shipped, or that failed here,
// marks its regions for resync before it uncounts itself, so that the resync loop,
// which waits for the count to drop, always finds the mark.
func (x *replIO) baseDone(*bdev.IO) {
	c := x.c
	if !x.tracked {
		c.finish(x)
		return
	}
	v := c.vol
	if !x.sent || x.Child.Status != bdev.StatusSuccess {
		for r := x.r0; r <= x.r1; r++ {
			bitSet(v.rg.resync, int(r))
		}
		if x.r1 >= x.r0 {
			kick(v.resyncWake)
		}
	}
	for r := x.r0; r <= x.r1; r++ {
		v.rg.local[r].Add(-1)
	}
	if x.rec != nil {
		x.localEnd = true
		if !x.acked {
			return // the ack completes it
		}
	}
	c.finish(x)
}

func (c *channel) finish(x *replIO) {
	p := x.Detach()
	c.pool.Put(x)
	p.Complete(p.Status)
}

// retireMsg is bound once: retiring a frame allocates no closure.
func retireMsg(arg any) {
	rec := arg.(*record)
	rec.ch.retire(rec)
}

// retire ends a host write's frame on its reactor: the buffer goes back to the core,
// the regions are uncounted (marked for resync first when the frame failed), and a
// parent waiting in sync mode completes if its local write is done. A failed frame
// still completes the parent with its local status: the volume degrades rather than
// failing host writes while the partner is away.
func (c *channel) retire(rec *record) {
	v := c.vol
	for r := rec.r0; r <= rec.r1; r++ {
		if rec.failed {
			bitSet(v.rg.resync, int(r))
		}
		v.rg.pending[r].Add(-1)
	}
	if rec.failed && rec.r1 >= rec.r0 {
		kick(v.resyncWake)
	}
	v.journalBytes.Add(-int64(rec.n))
	if !rec.buf.IsZero() {
		c.core.Free(rec.buf)
	}
	x := rec.x
	*rec = record{}
	if !c.closed {
		c.recs.Put(rec)
	}
	if x != nil {
		x.rec, x.acked = nil, true
		if x.localEnd {
			c.finish(x)
		}
	}
}

// park holds x until the persister made its regions' intent bits durable.
func (c *channel) park(x *replIO) {
	v := c.vol
	c.parked = append(c.parked, x)
	if !c.queued {
		c.queued = true
		if !v.waiters.Push(c) {
			panic("replication: bitmap waiters ring full: more channels than reactors")
		}
	}
	// The persist may have finished between the request and the push above.
	if v.persistDone.Load() >= x.waitGen {
		c.resumeParked()
	}
}

// persistedMsg tells a channel that the bitmap was written.
func persistedMsg(arg any) {
	c := arg.(*channel)
	c.queued = false
	c.resumeParked()
	if len(c.parked) > 0 && !c.queued {
		c.queued = true
		c.vol.waiters.Push(c)
		kick(c.vol.persistWake)
	}
}

// resumeParked dispatches, in order, the parked writes whose bits are now durable.
func (c *channel) resumeParked() {
	done := c.vol.persistDone.Load()
	keep := c.parked[:0]
	var ready [16]*replIO
	n := 0
	for _, x := range c.parked {
		if x.waitGen <= done && n < len(ready) {
			ready[n] = x
			n++
		} else {
			keep = append(keep, x)
		}
	}
	clear(c.parked[len(keep):])
	c.parked = keep
	for _, x := range ready[:n] {
		c.dispatch(x)
	}
	if n == len(ready) && len(c.parked) > 0 {
		// More were ready than one batch: the rest go in a later step, so that one
		// persist never runs an unbounded loop on the reactor.
		_ = c.r.Send(persistedMsg, c)
		c.queued = true
	}
}

// Close runs once every parent completed. Frames of this channel may still be in the
// journal (async mode): they retire later through the reactor, freeing their buffers
// to the core, which outlives the channel.
func (c *channel) Close() {
	if len(c.parked) != 0 {
		panic(fmt.Sprintf("replica %q: channel closed with %d writes parked", c.vol.name, len(c.parked)))
	}
	c.closed = true
	c.base.Put()
}
