package scsi

import (
	"bytes"
	"slices"

	"sluice/engine/bdev"
	"sluice/engine/proto/scsi"
)

// The block commands of SBC-3: READ, WRITE, WRITE AND VERIFY, VERIFY, PRE-FETCH,
// SYNCHRONIZE CACHE, WRITE SAME, UNMAP, COMPARE AND WRITE and ORWRITE. Each checks its
// CDB against the LU (protection, DPO/FUA, limits, range, write protection, the data
// the transport delivered), then runs as a chain of bdev I/Os on the channel's
// reactor: stepDone moves a task from one state to the next.

// wsChunkBytes bounds the buffer WRITE SAME expands its block into: large enough that
// a long WRITE SAME is a few large writes, small enough to come from a reactor's
// slices.
const wsChunkBytes = 256 << 10

// checkBlock runs the checks every READ, WRITE, VERIFY and ORWRITE makes, in the order
// libiscsi's tests expect: CDB fields, then the transfer length limit, then the range.
func (ch *Channel) checkBlock(c *scsi.CDB) error {
	if err := c.CheckProtect(false); err != nil {
		return err
	}
	if err := c.CheckDPOFUA(true); err != nil {
		return err
	}
	if err := ch.lu.limits.CheckTransferLength(c); err != nil {
		return err
	}
	return c.CheckRange(ch.lu.blocks)
}

// read is READ(6/10/12/16). The blocks are read straight into Data when it holds
// them. When EDTL is shorter than the transfer (libiscsi Read*Residuals), only what
// Data holds is sent and Produced reports the whole length, so the transport sets the
// overflow residual.
func (ch *Channel) read(t *Task) {
	c := &t.x.cdb
	if err := ch.checkBlock(c); err != nil {
		ch.fail(t, err)
		return
	}
	n := uint64(c.TransferLength)
	size := n << ch.lu.shift
	t.x.lba, t.x.blocks = c.LBA, n
	switch {
	case n == 0:
		ch.good(t)
	case uint64(len(t.Data)) >= size:
		ch.submit(t, taskStateRead, bdev.IORead, c.LBA, n, t.Data[:size], t.FixedBuf, false)
	case len(t.Data) == 0:
		t.Produced = size
		ch.good(t)
	default:
		// Whole blocks into scratch memory, then the prefix Data has room for.
		nb := (uint64(len(t.Data)) + uint64(ch.lu.blockSize) - 1) >> ch.lu.shift
		buf, ok := ch.allocScratch(t, nb<<ch.lu.shift)
		if ok {
			ch.submit(t, taskStateShortRead, bdev.IORead, c.LBA, nb, buf, scratchFixed(t), false)
		}
	}
}

// write is WRITE(6/10/12/16) and WRITE AND VERIFY(10/12/16). WRITE AND VERIFY writes
// with FUA and does not read back: the comparison BYTCHK=1 asks for would compare the
// data with itself, and FUA is what makes "verify on the medium" true of a bdev.
//
// An EDTL below the transfer length (an iSCSI overflow; Produced keeps the transfer
// length, so the transport reports the residual) writes the whole blocks the EDTL
// holds and nothing past them, GOOD (libiscsi 1.19 Write*Residuals and
// WriteVerify*Residuals: EDTL 0 or 1 of 2 blocks). An EDTL that ends inside a block
// writes nothing and answers INVALID FIELD IN COMMAND INFORMATION UNIT rather than
// write part of a block (FCP-4; libiscsi accepts either answer for EDTL 200 of 512).
func (ch *Channel) write(t *Task) {
	c := &t.x.cdb
	if err := ch.checkBlock(c); err != nil {
		ch.fail(t, err)
		return
	}
	if ch.lu.writeProtected() {
		ch.fail(t, scsi.ErrWriteProtected)
		return
	}
	n, ok := ch.deliveredBlocks(t, uint64(c.TransferLength))
	if !ok {
		ch.fail(t, errInvalidIU)
		return
	}
	if n == 0 {
		ch.good(t)
		return
	}
	t.x.lba, t.x.blocks = c.LBA, n
	ch.startWrite(t, c.LBA, c.LBA+n)
}

// deliveredBlocks returns how many of a write's n blocks the data-out holds: all of them
// when the EDTL covers the transfer, else the whole blocks of the EDTL. ok is false
// when the EDTL ends inside a block, or the transport delivered less than it announced.
func (ch *Channel) deliveredBlocks(t *Task, n uint64) (uint64, bool) {
	size, have := n<<ch.lu.shift, uint64(len(t.Data))
	if have >= size {
		return n, true
	}
	edtl := uint64(t.ExpectedLen)
	if edtl >= size || edtl&(uint64(ch.lu.blockSize)-1) != 0 || have < edtl {
		return 0, false
	}
	return edtl >> ch.lu.shift, true
}

// writeFUA reports whether a write must be durable at completion: FUA asked, WRITE
// AND VERIFY, or the write cache disabled (WCE=0 makes every write FUA, as NVMe's
// volatile write cache off does).
func (ch *Channel) writeFUA(c *scsi.CDB) bool {
	switch c.Opcode {
	case scsi.OpWriteAndVerify10, scsi.OpWriteAndVerify12, scsi.OpWriteAndVerify16:
		return true
	}
	return c.FUA || !ch.lu.wce.Load()
}

// startWrite starts the data phase of a write-class command over blocks [lba, end),
// unless an overlapping range lock (another task's COMPARE AND WRITE or ORWRITE)
// holds it back: then the task waits on the channel's blocked list until the lock is
// released. With no lock on the LU the check is one length test.
func (ch *Channel) startWrite(t *Task, lba, end uint64) {
	x := &t.x
	x.wlba, x.wend = lba, end
	if len(ch.locks) > 0 && ch.lockedOut(t) {
		x.state = taskStateBlocked
		ch.blocked = append(ch.blocked, t)
		return
	}
	ch.startData(t)
}

// startData runs the data phase of a write-class command whose range is free.
func (ch *Channel) startData(t *Task) {
	x := &t.x
	x.writing = true
	switch x.cdb.Opcode {
	case scsi.OpWriteSame10, scsi.OpWriteSame16:
		ch.lu.noteWrite()
		ch.writeSameStart(t)
	case scsi.OpUnmap:
		ch.unmapNext(t)
	default:
		ch.lu.noteWrite()
		size := x.blocks << ch.lu.shift
		ch.submit(t, taskStateWrite, bdev.IOWrite, x.lba, x.blocks, t.Data[:size], t.FixedBuf,
			ch.writeFUA(&x.cdb))
	}
}

// unblock removes a task from the blocked list.
func (ch *Channel) unblock(t *Task) {
	if i := slices.Index(ch.blocked, t); i >= 0 {
		ch.blocked = slices.Delete(ch.blocked, i, i+1)
	}
}

// resumeBlocked starts the blocked writes no lock holds back any more, oldest first.
// It rescans after each start: a start may complete at once, and the completion may
// execute, block or abort other tasks.
func (ch *Channel) resumeBlocked() {
	for {
		i := slices.IndexFunc(ch.blocked, func(t *Task) bool { return !ch.lockedOut(t) })
		if i < 0 {
			return
		}
		t := ch.blocked[i]
		ch.blocked = slices.Delete(ch.blocked, i, i+1)
		ch.startData(t)
	}
}

// verify is VERIFY(10/12/16). BYTCHK=0 checks the range only (a bdev has no medium
// verification to run); BYTCHK=01b compares the data-out with the blocks, 11b compares
// every block with the one block sent. A difference is MISCOMPARE with the offset of
// the first differing byte in INFORMATION (SBC-3 §5.33).
func (ch *Channel) verify(t *Task) {
	c := &t.x.cdb
	if err := ch.checkBlock(c); err != nil {
		ch.fail(t, err)
		return
	}
	n := uint64(c.TransferLength)
	if n == 0 || c.ByteCheck == 0 {
		ch.good(t)
		return
	}
	size := n << ch.lu.shift
	need := size
	if c.ByteCheck == 3 {
		need = uint64(ch.lu.blockSize)
	}
	if uint64(len(t.Data)) < need {
		ch.fail(t, errInvalidIU)
		return
	}
	t.x.lba, t.x.blocks = c.LBA, n
	if buf, ok := ch.allocScratch(t, size); ok {
		ch.submit(t, taskStateVerifyRead, bdev.IORead, c.LBA, n, buf, scratchFixed(t), false)
	}
}

func (ch *Channel) verifyCompare(t *Task) {
	x := &t.x
	got := x.scratch.Bytes()
	off := -1
	if x.cdb.ByteCheck == 3 {
		bs := int(ch.lu.blockSize)
		for b := 0; b < len(got) && off < 0; b += bs {
			if d := firstDiff(got[b:b+bs], t.Data[:bs]); d >= 0 {
				off = b + d
			}
		}
	} else {
		off = firstDiff(got, t.Data[:len(got)])
	}
	if off >= 0 {
		ch.miscompare(t, uint64(off))
		return
	}
	ch.good(t)
}

// firstDiff returns the offset of the first byte where a and b (of equal length)
// differ, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// miscompare completes the task with MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION and
// the byte offset of the first difference in INFORMATION.
func (ch *Channel) miscompare(t *Task, off uint64) {
	s := scsi.Sense{Key: scsi.SenseKeyMiscompare, Code: scsi.ASCMiscompareDuringVerify,
		InfoValid: true, Info: off}
	ch.checkCondition(t, &s)
}

// prefetch is PRE-FETCH(10/16): the bdev keeps no cache to warm, so after the checks it
// is GOOD (SBC-3 §5.9: CONDITION MET only promises the blocks fit a cache).
func (ch *Channel) prefetch(t *Task) {
	c := &t.x.cdb
	if err := ch.lu.limits.CheckTransferLength(c); err != nil {
		ch.fail(t, err)
		return
	}
	if err := c.CheckRange(ch.lu.blocks); err != nil {
		ch.fail(t, err)
		return
	}
	ch.good(t)
}

// synchronizeCache is SYNCHRONIZE CACHE(10/16): a bdev flush, whatever the range (the
// bdev flushes whole), after the range check. 0 blocks means "to the end".
func (ch *Channel) synchronizeCache(t *Task) {
	c := &t.x.cdb
	var err error
	if c.TransferLength == 0 {
		err = scsi.CheckLBARange(c.LBA, 0, ch.lu.blocks)
	} else {
		err = c.CheckRange(ch.lu.blocks)
	}
	if err != nil {
		ch.fail(t, err)
		return
	}
	ch.submit(t, taskStateFlush, bdev.IOFlush, 0, 0, nil, 0, false)
}

// submit sends one bdev I/O for the task and moves it to state st; stepDone takes the
// completion. A channel released meanwhile (a multi-step task outliving Put) answers
// ABORTED COMMAND instead.
func (ch *Channel) submit(t *Task, st taskState, typ bdev.IOType, lba, blocks uint64,
	buf []byte, fixed uint32, fua bool) {
	if ch.closed {
		ch.releaseRange(t)
		ch.fail(t, errAbortedCommand)
		return
	}
	t.x.state = st
	c := ch.ioCtx()
	c.t = t
	io := &c.io
	io.Type, io.FUA, io.Buf, io.FixedBuf = typ, fua, buf, fixed
	io.Offset, io.Length = lba<<ch.lu.shift, blocks<<ch.lu.shift
	ch.bch.Submit(io)
}

// ioCtx is a bdev I/O and the task it serves. The channel keeps them on a free list,
// each with its Done bound once when made, so that submitting allocates nothing once
// the channel has as many as it ever has in flight.
type ioCtx struct {
	io bdev.IO
	t  *Task
	ch *Channel
}

// ioCtx takes a free context, making one the first times.
func (ch *Channel) ioCtx() *ioCtx {
	if n := len(ch.ios); n > 0 {
		c := ch.ios[n-1]
		ch.ios = ch.ios[:n-1]
		return c
	}
	c := &ioCtx{ch: ch}
	c.io.Done = c.done
	return c
}

// done returns the context to the free list before the task moves on, so that the
// task's next I/O reuses it.
func (c *ioCtx) done(io *bdev.IO) {
	t, st, typ := c.t, io.Status, io.Type
	c.t, io.Buf = nil, nil
	c.ch.ios = append(c.ch.ios, c)
	c.ch.stepDone(t, st, typ)
}

// scratchFixed is the io_uring fixed buffer of the task's scratch memory.
func scratchFixed(t *Task) uint32 { return uint32(t.x.scratch.FixedBuffer()) + 1 }

// stepDone moves a task on after a bdev completion of an I/O of type typ.
func (ch *Channel) stepDone(t *Task, s bdev.Status, typ bdev.IOType) {
	x := &t.x
	if s != bdev.StatusSuccess {
		ch.ioFailed(t, s, typ)
		return
	}
	if x.abort != NotAborted {
		ch.releaseRange(t)
		ch.finish(t)
		return
	}
	switch x.state {
	case taskStateRead:
		t.Produced = x.blocks << ch.lu.shift
		ch.good(t)
	case taskStateShortRead:
		copy(t.Data, x.scratch.Bytes())
		t.Produced = uint64(x.cdb.TransferLength) << ch.lu.shift
		ch.good(t)
	case taskStateWrite, taskStateFlush:
		ch.good(t)
	case taskStateVerifyRead:
		ch.verifyCompare(t)
	case taskStateCAWRead:
		ch.compareThenWrite(t)
	case taskStateORRead:
		ch.orThenWrite(t)
	case taskStateCAWWrite, taskStateORWrite, taskStateAtomicWrite:
		ch.releaseRange(t)
		ch.good(t)
	case taskStateWriteSame:
		ch.writeSameNext(t)
	case taskStateUnmap:
		ch.unmapNext(t)
	default:
		panic("scsi: bdev completion for a task in state " + x.state.String())
	}
}

// ioFailed maps a failed bdev I/O to SCSI status and sense.
func (ch *Channel) ioFailed(t *Task, s bdev.Status, typ bdev.IOType) {
	ch.releaseRange(t)
	if t.x.abort != NotAborted {
		ch.finish(t)
		return
	}
	switch s {
	case bdev.StatusNoMemory:
		ch.finishStatus(t, scsi.StatusBusy)
	case bdev.StatusNoSpace:
		ch.fail(t, errSpaceAllocation)
	case bdev.StatusOutOfRange:
		ch.fail(t, scsi.ErrLBAOutOfRange)
	case bdev.StatusAborted:
		ch.fail(t, errAbortedCommand)
	case bdev.StatusUnsupported:
		ch.fail(t, scsi.ErrInternalTargetFailure)
	default:
		if typ == bdev.IORead {
			ch.fail(t, scsi.ErrUnrecoveredReadError)
		} else {
			ch.fail(t, scsi.ErrWriteError)
		}
	}
}
