package bdev

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"sluice/cgo/uring"
	"sluice/engine/internal/sys"
	"sluice/engine/reactor"
)

const (
	// fileRingEntries is the SQEs one channel keeps in flight: enough for several
	// NVMe queues at depth 32 on one reactor; deeper bursts wait in the pending FIFO.
	fileRingEntries = 256
	// fileReapBatch is how many completions one cgo call copies out.
	fileReapBatch = 64
	// filePendingInit is the pending FIFO's preallocated depth: more than the protocol
	// targets keep in flight per reactor today. Beyond it the FIFO grows (an
	// allocation, never a dropped or blocked I/O).
	filePendingInit = 4096
	// fileBounceBytes is the per-channel aligned buffer for O_DIRECT I/Os whose memory
	// is misaligned; larger ones go through it in pieces.
	fileBounceBytes = 1 << 20
	// fileZeroBytes is the zero buffer for WriteZeroes and Unmap where the file system
	// cannot fallocate; larger ranges are written in pieces.
	fileZeroBytes = 1 << 20
	// fileMaxChunk bounds one read or write SQE: the kernel caps a transfer just under
	// 2 GiB, and a power of two keeps the pieces block aligned.
	fileMaxChunk = 1 << 30
	// fileTagSync marks the user_data of an fdatasync SQE; the other bits are the slot.
	fileTagSync = 1
)

// slotKind says how a slot serves its I/O.
type slotKind uint8

const (
	kindDirect    slotKind = iota // read/write straight from/into the I/O's buffer
	kindBounce                    // O_DIRECT, misaligned buffer: through the bounce buffer
	kindZeroFill                  // WriteZeroes/Unmap as writes from the zero buffer
	kindFallocate                 // WriteZeroes/Unmap as one fallocate
	kindSync                      // FLUSH: one fdatasync
)

// fileSlot is one I/O in flight. An I/O proceeds in rounds: each round is one data SQE
// (or one fallocate, or one fdatasync), plus a linked fdatasync on the last round of a
// FUA write. A round that moves fewer bytes than asked (a short read or write, or a
// piece of a bounced or zero-filled I/O) is followed by another for the rest.
type fileSlot struct {
	io      *IO
	pin     runtime.Pinner
	pinned  bool
	kind    slotKind
	fixed   bool   // kindDirect rounds name io.FixedBuf: IORING_OP_{READ,WRITE}_FIXED
	linked  bool   // this round carries a linked fdatasync
	want    uint8  // CQEs still due for this round
	done    uint64 // bytes of the I/O finished
	chunk   uint64 // bytes this round's data SQE asked for
	dataRes int32
	syncRes int32
}

// fileChannel serves one file bdev on one reactor through its own io_uring.
// Everything in it is owned by that reactor, except syncs, read by IOStat.
type fileChannel struct {
	be     *fileBackend
	r      *reactor.Reactor
	ring   *uring.Ring
	poller *reactor.Poller
	evfd   int // -1 in busy mode: a reactor that never sleeps needs no wakeup
	evTok  int32

	slots      []fileSlot
	free       []int32          // stack of free slot indexes
	resume     fileQueue[int32] // slots whose next round found no room in the ring
	pending    fileQueue[*IO]   // I/Os not started: no free slot or no room
	bounceWait fileQueue[*IO]   // I/Os waiting for the bounce buffer
	cqes       []uring.Completion

	bounce      []byte // O_DIRECT only: page aligned, off heap
	bounceBusy  bool
	noZeroRange bool // the file system refused FALLOC_FL_ZERO_RANGE: zero-fill
	noPunch     bool // the file system refused FALLOC_FL_PUNCH_HOLE: zero-fill
	fixed       bool // the ring has the registrar's fixed buffers

	syncs       atomic.Uint64 // fdatasync calls that reached the file system
	fixedOps    atomic.Uint64 // I/Os served with fixed buffers
	fixedFaults atomic.Uint64 // I/Os whose fixed buffer the kernel refused
}

// pinWarm is a static object: pinning it pins nothing, but makes a Pinner set up its
// state, so that no slot allocates on its first I/O.
var pinWarm byte

// newFileChannel builds the channel's ring, slots and queues, and hooks it into r.
//
// Preconditions: called on r.
func newFileChannel(be *fileBackend, r *reactor.Reactor) (_ *fileChannel, err error) {
	ring, err := uring.New(be.ringEntries)
	if err != nil {
		return nil, err
	}
	n := ring.Entries()
	c := &fileChannel{
		be: be, r: r, ring: ring, evfd: -1, evTok: -1,
		slots:      make([]fileSlot, n),
		free:       make([]int32, n),
		resume:     newFileQueue[int32](n),
		pending:    newFileQueue[*IO](filePendingInit),
		bounceWait: newFileQueue[*IO](64),
		cqes:       make([]uring.Completion, fileReapBatch),
	}
	defer func() {
		if err != nil {
			c.release()
		}
	}()
	for i := range c.free {
		c.free[i] = int32(n - 1 - i)
	}
	for i := range c.slots {
		c.slots[i].pin.Pin(&pinWarm)
	}
	for i := range c.slots {
		c.slots[i].pin.Unpin()
	}
	if be.direct {
		c.bounce, err = unix.Mmap(-1, 0, fileBounceBytes, unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return nil, fmt.Errorf("map bounce buffer: %w", err)
		}
	}
	// io_uring also interrupts the submitting thread with the completion's task
	// work, but only that thread and only for completions delivered that way; the
	// eventfd reaches the reactor's epoll whoever posts the CQE.
	if r.Mode() != reactor.ModeBusy {
		if c.evfd, err = sys.NewEventfd(); err != nil {
			return nil, err
		}
		if err = ring.RegisterEventfd(c.evfd); err != nil {
			return nil, err
		}
		// Edge-triggered: every CQE bumps the counter and so queues one event, and
		// the counter is never read back, which saves a read(2) per wakeup.
		if c.evTok, err = r.AddFD(c.evfd, unix.EPOLLIN|unix.EPOLLET, c); err != nil {
			c.evTok = -1
			return nil, err
		}
	}
	c.registerBuffers()
	c.poller = r.AddPoller("bdev_file "+be.name, c.poll)
	return c, nil
}

// registerBuffers registers the I/O memory with the new ring, once, at setup: a ring
// has one set of fixed buffers for life. Fixed buffers only save the kernel pinning
// and unpinning each I/O's pages, so a failure (RLIMIT_MEMLOCK for a daemon without
// CAP_IPC_LOCK, a kernel without them) leaves the channel on plain reads and writes,
// with one warning per bdev however many reactors open it.
//
// Preconditions: called on c.r, before any I/O.
func (c *fileChannel) registerBuffers() {
	reg := c.be.registrar
	if reg == nil {
		return
	}
	err := reg(c.ring.FD())
	if err == nil {
		c.fixed = true
		return
	}
	if !c.be.registerWarned.CompareAndSwap(false, true) {
		return
	}
	hint := "I/O continues without fixed buffers"
	if errors.Is(err, unix.ENOMEM) {
		// Every ring pins and charges the whole domain again.
		hint += "; raise RLIMIT_MEMLOCK (LimitMEMLOCK=infinity) or grant CAP_IPC_LOCK to use them"
	}
	slog.Warn("bdev file: cannot register I/O memory as io_uring fixed buffers",
		"bdev", c.be.name, "reactor", c.r.ID(), "err", err.Error(), "hint", hint)
}

// release frees what newFileChannel built; Close runs it once the channel is idle.
func (c *fileChannel) release() {
	if c.poller != nil {
		c.r.RemovePoller(c.poller)
		c.poller = nil
	}
	if c.evfd >= 0 {
		if c.evTok >= 0 {
			c.r.RemoveFD(c.evfd, c.evTok)
		}
		unix.Close(c.evfd)
		c.evfd = -1
	}
	if err := c.ring.Close(); err != nil {
		panic(fmt.Sprintf("bdev %q: file channel: %v", c.be.name, err))
	}
	if c.bounce != nil {
		_ = unix.Munmap(c.bounce)
		c.bounce = nil
	}
}

// Close releases the channel. The generic layer closes only idle channels; an I/O
// still here would have the kernel write into memory its owner is about to reuse.
//
// Preconditions: called on the channel's reactor; nothing in flight.
func (c *fileChannel) Close() {
	if len(c.free) != len(c.slots) || c.pending.len() > 0 || c.bounceWait.len() > 0 {
		panic(fmt.Sprintf("bdev %q: file channel closed with %d I/Os in flight and %d waiting",
			c.be.name, len(c.slots)-len(c.free), c.pending.len()+c.bounceWait.len()))
	}
	c.release()
}

// SyncOps counts the fdatasync calls this channel made (FLUSH and FUA). Safe from any
// goroutine.
func (c *fileChannel) SyncOps() uint64 { return c.syncs.Load() }

// FixedBufferOps counts the I/Os this channel served with fixed buffers and those whose
// fixed buffer the kernel refused. Safe from any goroutine.
func (c *fileChannel) FixedBufferOps() (ops, faults uint64) {
	return c.fixedOps.Load(), c.fixedFaults.Load()
}

// OnEvents runs when the ring's eventfd fires, which wakes a sleeping reactor.
//
// Preconditions: called on the channel's reactor.
func (c *fileChannel) OnEvents(uint32) { c.poll() }

// Submit starts io now if it can, otherwise queues it. The SQEs go to the kernel when
// the poller next runs, batched with every other I/O of this reactor iteration.
//
// Preconditions: called on the channel's reactor; io is valid (checked by Channel).
func (c *fileChannel) Submit(io *IO) {
	if c.pending.len() == 0 && c.resume.len() == 0 && c.start(io) {
		return
	}
	c.pending.push(io)
}

// poll is the channel's poller: reap, start what waited for room, submit once, and
// reap again for completions the submit itself produced (page-cache hits).
func (c *fileChannel) poll() bool {
	busy := c.reap()
	c.drain()
	n, err := c.ring.Submit()
	if err != nil {
		// Not a lack of resources: the ring fd or its memory is gone. The SQEs
		// stay in the kernel's hands and cannot be failed or retried.
		panic(fmt.Sprintf("bdev %q: io_uring submit: %v", c.be.name, err))
	}
	if n > 0 {
		busy = true
		c.reap()
	}
	return busy
}

// reap handles the completions waiting in the ring. It stops after a ring's worth of
// batches, so that completions posted while it runs cannot keep the reactor here.
func (c *fileChannel) reap() bool {
	got := false
	for range c.ring.Entries()/len(c.cqes) + 1 {
		n := c.ring.Reap(c.cqes)
		if n == 0 {
			break
		}
		got = true
		for i := range n {
			c.onCQE(c.cqes[i])
		}
	}
	return got
}

// drain starts what waits, oldest first: rounds of I/Os already started, then the
// bounce buffer's next user, then new I/Os.
func (c *fileChannel) drain() {
	for c.resume.len() > 0 {
		if !c.issue(c.resume.peek()) {
			return
		}
		c.resume.pop()
	}
	if !c.bounceBusy && c.bounceWait.len() > 0 && c.startAs(c.bounceWait.peek(), kindBounce) {
		c.bounceWait.pop()
	}
	for c.pending.len() > 0 {
		if !c.start(c.pending.peek()) {
			return
		}
		c.pending.pop()
	}
}

func (c *fileChannel) kindOf(io *IO) slotKind {
	switch io.Type {
	case IORead, IOWrite:
		if c.be.direct && !uring.Aligned(io.Buf, c.be.memAlign) {
			return kindBounce
		}
		return kindDirect
	case IOFlush:
		return kindSync
	case IOWriteZeroes:
		if c.noZeroRange {
			return kindZeroFill
		}
		return kindFallocate
	case IOUnmap:
		if c.noPunch {
			return kindZeroFill
		}
		return kindFallocate
	}
	panic(fmt.Sprintf("bdev %q: file channel got %v, which Channel filters", c.be.name, io.Type))
}

// start takes io into a slot, or parks it for the bounce buffer. It returns false when
// io must wait in the pending FIFO.
func (c *fileChannel) start(io *IO) bool {
	kind := c.kindOf(io)
	if kind == kindBounce && (c.bounceBusy || c.bounceWait.len() > 0) {
		c.bounceWait.push(io)
		return true
	}
	return c.startAs(io, kind)
}

func (c *fileChannel) startAs(io *IO, kind slotKind) bool {
	need := 1
	if io.durable() {
		need = 2
	}
	if len(c.free) == 0 || c.ring.Space() < need {
		return false
	}
	id := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	s := &c.slots[id]
	s.io, s.kind, s.done = io, kind, 0
	// Only I/Os moving data straight between the file and their own buffer can name a
	// registered buffer: the bounce and zero buffers are not registered. The SQE's
	// buf_index is 16 bits.
	s.fixed = kind == kindDirect && c.fixed && io.FixedBuf != 0 && io.FixedBuf <= 1<<16
	switch kind {
	case kindDirect:
		// The kernel reads or writes this memory after Submit returns. Production
		// buffers are off heap, where Pin costs a lookup and pins nothing; a Go
		// heap buffer (tests, tools) must not be freed or moved meanwhile.
		s.pin.Pin(&io.Buf[0])
		s.pinned = true
	case kindBounce:
		c.bounceBusy = true
	}
	if !c.issue(id) {
		panic("bdev file: first round refused after its room was checked")
	}
	return true
}

// issue prepares the slot's next round. It returns false, preparing nothing, when the
// ring has no room for the whole round.
func (c *fileChannel) issue(id int32) bool {
	s := &c.slots[id]
	io := s.io
	ud := uint64(id) << 1
	fd := c.be.fd
	durable := io.durable()
	switch s.kind {
	case kindSync:
		if !c.ring.PrepFsync(fd, uring.FsyncDatasync, 0, ud|fileTagSync) {
			return false
		}
		s.want, s.linked, s.syncRes = 1, false, 0
		return true
	case kindFallocate:
		if c.ring.Space() < 1+b2i(durable) {
			return false
		}
		mode := uint32(unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE)
		if io.Type == IOUnmap {
			mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
		}
		c.ring.PrepFallocate(fd, mode, io.Offset, io.Length, linkIf(durable), ud)
		c.prepLinkedSync(durable, ud)
		s.chunk, s.linked, s.want = io.Length, durable, uint8(1+b2i(durable))
		s.dataRes, s.syncRes = 0, 0
		return true
	}
	rest := io.Length - s.done
	chunk := min(rest, c.chunkLimit(s.kind))
	link := durable && chunk == rest
	if c.ring.Space() < 1+b2i(link) {
		return false
	}
	off := io.Offset + s.done
	var buf []byte
	switch s.kind {
	case kindDirect:
		buf = io.Buf[s.done : s.done+chunk]
	case kindBounce:
		buf = c.bounce[:chunk]
		if io.Type == IOWrite {
			copy(buf, io.Buf[s.done:s.done+chunk])
		}
	case kindZeroFill:
		buf = c.be.zeroes[:chunk]
	}
	// A round after a short transfer moves the rest of the same Buf, which lies in the
	// same registered buffer as its start, so it stays fixed; the kernel checks the
	// range anyway, and onCQE falls back if it disagrees.
	switch {
	case s.fixed && io.Type == IORead:
		c.ring.PrepReadFixed(fd, buf, off, uint16(io.FixedBuf-1), 0, 0, ud)
	case s.fixed:
		c.ring.PrepWriteFixed(fd, buf, off, uint16(io.FixedBuf-1), 0, linkIf(link), ud)
	case io.Type == IORead:
		c.ring.PrepRead(fd, buf, off, 0, 0, ud)
	default:
		c.ring.PrepWrite(fd, buf, off, 0, linkIf(link), ud)
	}
	c.prepLinkedSync(link, ud)
	s.chunk, s.linked, s.want = chunk, link, uint8(1+b2i(link))
	s.dataRes, s.syncRes = 0, 0
	return true
}

func (c *fileChannel) prepLinkedSync(link bool, ud uint64) {
	if link {
		c.ring.PrepFsync(c.be.fd, uring.FsyncDatasync, 0, ud|fileTagSync)
	}
}

func (c *fileChannel) chunkLimit(k slotKind) uint64 {
	switch k {
	case kindBounce:
		return uint64(len(c.bounce))
	case kindZeroFill:
		return uint64(len(c.be.zeroes))
	}
	return fileMaxChunk
}

func (c *fileChannel) onCQE(cqe uring.Completion) {
	id := int32(cqe.UserData >> 1)
	if id < 0 || int(id) >= len(c.slots) || c.slots[id].io == nil || c.slots[id].want == 0 {
		panic(fmt.Sprintf("bdev %q: completion %#x for no I/O in flight", c.be.name, cqe.UserData))
	}
	s := &c.slots[id]
	if cqe.UserData&fileTagSync != 0 {
		s.syncRes = cqe.Res
		if cqe.Res != -int32(unix.ECANCELED) {
			c.syncs.Add(1)
		}
	} else {
		s.dataRes = cqe.Res
	}
	s.want--
	if s.want == 0 {
		c.roundDone(id)
	}
}

// roundDone decides what follows a round once all its CQEs are in: the next round, a
// fallback, or the I/O's completion.
func (c *fileChannel) roundDone(id int32) {
	s := &c.slots[id]
	io := s.io
	switch s.kind {
	case kindSync:
		c.finish(id, s.syncRes)
		return
	case kindFallocate:
		if s.dataRes == -int32(unix.EOPNOTSUPP) {
			// The file system cannot zero or punch in place (tmpfs has no
			// ZERO_RANGE, ramfs neither): write zeros, now and from now on.
			if io.Type == IOUnmap {
				c.noPunch = true
			} else {
				c.noZeroRange = true
			}
			s.kind, s.done = kindZeroFill, 0
			c.next(id)
			return
		}
		if s.dataRes < 0 {
			c.finish(id, s.dataRes)
			return
		}
		c.finish(id, s.syncRes)
		return
	}
	res := s.dataRes
	if res == -int32(unix.EFAULT) && s.fixed {
		// The kernel refused the registered buffer the I/O named before moving a
		// byte: Buf is not inside it (memory of another domain, a wrong index). The
		// buffer is a hint, so redo the round as the plain read or write it stands
		// for, which fails on its own if Buf itself is bad. A linked fdatasync was
		// cancelled with it and is linked again.
		s.fixed = false
		c.fixedFaults.Add(1)
		c.next(id)
		return
	}
	if res < 0 {
		c.finish(id, res)
		return
	}
	if res == 0 || uint64(res) > s.chunk {
		// No progress: the file ended (someone truncated it) or the device takes
		// nothing. Retrying would spin.
		c.finish(id, -int32(unix.EIO))
		return
	}
	n := uint64(res)
	if s.kind == kindBounce && io.Type == IORead {
		copy(io.Buf[s.done:s.done+n], c.bounce[:n])
	}
	s.done += n
	if s.done < io.Length {
		// A short transfer cancelled the linked fdatasync, if any: the next
		// round links it again to the rest.
		c.next(id)
		return
	}
	c.finish(id, s.syncRes)
}

func (c *fileChannel) next(id int32) {
	if !c.issue(id) {
		c.resume.push(id)
	}
}

// finish frees the slot and completes its I/O with res (0 or -errno). The slot is free
// before Done runs, so that Done may submit again at once.
func (c *fileChannel) finish(id int32, res int32) {
	s := &c.slots[id]
	io := s.io
	if s.pinned {
		s.pin.Unpin()
		s.pinned = false
	}
	if s.kind == kindBounce {
		c.bounceBusy = false
	}
	if s.fixed {
		c.fixedOps.Add(1)
		s.fixed = false
	}
	s.io = nil
	c.free = append(c.free, id)
	if res >= 0 {
		io.Complete(StatusSuccess)
		return
	}
	errno := unix.Errno(-res)
	io.Errno = int32(errno)
	io.Complete(fileStatus(errno))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func linkIf(b bool) uring.SQEFlags {
	if b {
		return uring.Link
	}
	return 0
}

// fileQueue is a FIFO on a preallocated ring. It doubles when full rather than drop or
// block: the protocol layer bounds what it has in flight, and the initial depth is
// sized above that bound, so growing means the bound moved, not that I/O is lost.
type fileQueue[T any] struct {
	buf  []T
	head int
	n    int
}

func newFileQueue[T any](capacity int) fileQueue[T] {
	size := 1
	for size < capacity {
		size <<= 1
	}
	return fileQueue[T]{buf: make([]T, size)}
}

func (q *fileQueue[T]) len() int { return q.n }

func (q *fileQueue[T]) push(v T) {
	if q.n == len(q.buf) {
		nb := make([]T, 2*len(q.buf))
		for i := range q.n {
			nb[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = v
	q.n++
}

// peek returns the oldest element. Preconditions: len() > 0.
func (q *fileQueue[T]) peek() T { return q.buf[q.head] }

// pop removes the oldest element. Preconditions: len() > 0.
func (q *fileQueue[T]) pop() {
	var zero T
	q.buf[q.head] = zero
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
}
