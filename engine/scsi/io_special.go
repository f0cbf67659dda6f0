package scsi

import (
	"sluice/engine/bdev"
	"sluice/engine/proto/scsi"
)

// WRITE SAME, UNMAP, COMPARE AND WRITE and ORWRITE: the block commands that are more
// than one bdev I/O.

// writeSame is WRITE SAME(10/16): one block (zeros with NDOB) repeated over the range.
// The data-out must be exactly one block (libiscsi WriteSame*.InvalidDataOutSize).
func (ch *Channel) writeSame(t *Task) {
	c, lu := &t.x.cdb, ch.lu
	if err := c.CheckProtect(false); err != nil {
		ch.fail(t, err)
		return
	}
	if err := c.CheckAnchor(false); err != nil {
		ch.fail(t, err)
		return
	}
	n, err := lu.limits.CheckWriteSame(c, lu.blocks)
	if err != nil {
		ch.fail(t, err)
		return
	}
	if lu.writeProtected() {
		ch.fail(t, scsi.ErrWriteProtected)
		return
	}
	if !c.NDOB && (t.ExpectedLen != lu.blockSize || uint64(len(t.Data)) < uint64(lu.blockSize)) {
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

// writeSameStart picks how to write the range: deallocate it (UNMAP=1 with a zero
// block on a bdev whose deallocated blocks read as zeros: LBPRZ makes that the same
// contents), zero it (a zero block on a bdev with write zeroes), or expand the block
// into a chunk buffer and write the range chunk by chunk. A non-zero block is always
// written, UNMAP or not: deallocating would lose it.
func (ch *Channel) writeSameStart(t *Task) {
	x, lu := &t.x, ch.lu
	zero := x.cdb.NDOB || allZero(t.Data[:lu.blockSize])
	fua := !lu.wce.Load()
	switch {
	case zero && x.cdb.Unmap && lu.unmap && lu.caps.UnmapReadsZero:
		x.pos = x.blocks
		ch.submit(t, taskStateWriteSame, bdev.IOUnmap, x.lba, x.blocks, nil, 0, fua)
	case zero && lu.caps.WriteZeroes:
		x.pos = x.blocks
		ch.submit(t, taskStateWriteSame, bdev.IOWriteZeroes, x.lba, x.blocks, nil, 0, fua)
	default:
		chunk := min(x.blocks, wsChunkBytes>>lu.shift)
		buf, ok := ch.allocScratch(t, chunk<<lu.shift)
		if !ok {
			return
		}
		if zero {
			clear(buf)
		} else {
			fillPattern(buf, t.Data[:lu.blockSize])
		}
		x.pos = 0
		ch.writeSameNext(t)
	}
}

// writeSameNext writes the next chunk, or completes the task after the last.
func (ch *Channel) writeSameNext(t *Task) {
	x, lu := &t.x, ch.lu
	if x.pos >= x.blocks {
		ch.good(t)
		return
	}
	buf := x.scratch.Bytes()
	chunk := min(uint64(len(buf))>>lu.shift, x.blocks-x.pos)
	lba := x.lba + x.pos
	x.pos += chunk
	ch.submit(t, taskStateWriteSame, bdev.IOWrite, lba, chunk, buf[:chunk<<lu.shift],
		scratchFixed(t), !lu.wce.Load())
}

// fillPattern repeats block over buf (a multiple of its length), doubling the copied
// span each time.
func fillPattern(buf, block []byte) {
	n := copy(buf, block)
	for n < len(buf) {
		n += copy(buf[n:], buf[:n])
	}
}

func allZero(b []byte) bool {
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// unmapCmd is UNMAP: one bdev deallocate per descriptor, in order. The LU serves it
// only when the bdev deallocates (LBPME=1, LBPU=1); otherwise it is an unknown opcode,
// as REPORT SUPPORTED OPERATION CODES and VPD B2h say.
func (ch *Channel) unmapCmd(t *Task) {
	c, lu := &t.x.cdb, ch.lu
	if !lu.unmap {
		ch.fail(t, scsi.ErrInvalidOpcode)
		return
	}
	if err := c.CheckAnchor(false); err != nil {
		ch.fail(t, err)
		return
	}
	if lu.writeProtected() {
		ch.fail(t, scsi.ErrWriteProtected)
		return
	}
	pll := uint64(c.ParameterListLength)
	if uint64(len(t.Data)) < pll {
		ch.fail(t, errInvalidIU)
		return
	}
	l, err := scsi.DecodeUnmap(t.Data[:pll])
	if err == nil {
		err = l.Check(lu.blocks, &lu.limits)
	}
	if err != nil {
		ch.fail(t, err)
		return
	}
	lo, hi := lu.blocks, uint64(0)
	for i := 0; i < l.Len(); i++ {
		if d := l.At(i); d.Blocks > 0 {
			lo, hi = min(lo, d.LBA), max(hi, d.LBA+uint64(d.Blocks))
		}
	}
	if lo >= hi {
		ch.good(t) // no descriptor, or only empty ones
		return
	}
	t.x.unmap, t.x.pos = l, 0
	ch.startWrite(t, lo, hi)
}

// unmapNext deallocates the next non-empty descriptor, or completes the task.
func (ch *Channel) unmapNext(t *Task) {
	x := &t.x
	for x.pos < uint64(x.unmap.Len()) {
		d := x.unmap.At(int(x.pos))
		x.pos++
		if d.Blocks == 0 {
			continue
		}
		ch.submit(t, taskStateUnmap, bdev.IOUnmap, d.LBA, uint64(d.Blocks), nil, 0,
			!ch.lu.wce.Load())
		return
	}
	ch.good(t)
}

// atomicWrite is COMPARE AND WRITE and ORWRITE(16): a read and a write that no other
// write to the range may come between. The range lock (rangelock.go) makes them
// atomic with respect to every write of the LU, from any reactor.
func (ch *Channel) atomicWrite(t *Task) {
	c, lu := &t.x.cdb, ch.lu
	caw := c.Opcode == scsi.OpCompareAndWrite
	var err error
	if caw {
		err = ch.checkCompareAndWrite(c)
	} else {
		err = ch.checkBlock(c)
	}
	if err == nil && lu.writeProtected() {
		err = scsi.ErrWriteProtected
	}
	if err != nil {
		ch.fail(t, err)
		return
	}
	n := uint64(c.TransferLength)
	if n == 0 {
		if caw && t.ExpectedLen != 0 {
			// NUMBER OF LOGICAL BLOCKS 0 transfers nothing (SBC-3 §5.2), yet data-out
			// came: the byte cannot say what the application client meant (libiscsi
			// CompareAndWrite.Simple sends 256 blocks, beyond the 255 of MAXIMUM
			// COMPARE AND WRITE LENGTH, as 256 mod 256 = 0). Refuse the field.
			ch.fail(t, scsi.InvalidFieldInCDB(13, 7))
			return
		}
		ch.good(t)
		return
	}
	need := n << lu.shift
	if caw {
		// The data-out is the verify data, then the write data, and nothing else
		// (libiscsi CompareAndWrite.InvalidDataOutSize).
		need *= 2
		if uint64(t.ExpectedLen) != need {
			ch.fail(t, errInvalidIU)
			return
		}
	}
	if uint64(len(t.Data)) < need {
		ch.fail(t, errInvalidIU)
		return
	}
	t.x.lba, t.x.blocks = c.LBA, n
	ch.lockRange(t, c.LBA, n)
}

func (ch *Channel) checkCompareAndWrite(c *scsi.CDB) error {
	if err := c.CheckProtect(false); err != nil {
		return err
	}
	if err := c.CheckDPOFUA(true); err != nil {
		return err
	}
	if err := ch.lu.limits.CheckCompareAndWrite(c); err != nil {
		return err
	}
	return c.CheckRange(ch.lu.blocks)
}

// writeAtomic is WRITE ATOMIC(16) (SBC-4 §4.29, §5.48): a write that no other write of
// the LU interleaves with and that is written whole or not at all. The LU holds the
// range lock of its blocks while it runs, as for COMPARE AND WRITE, so no overlapping
// write from any reactor is in flight or starts meanwhile, and a read sees the blocks
// before or after it, never a mix of it and another write. Against power loss the LU
// can promise only what one bdev I/O gives: it submits the write as one I/O and never
// splits it, so it is as atomic as the bdev makes a single write (an NVMe namespace
// within its AWUPF; a file through its filesystem), no more. An EDTL short of the
// transfer writes nothing: an atomic write is never done in part.
func (ch *Channel) writeAtomic(t *Task) {
	c, lu := &t.x.cdb, ch.lu
	if lu.limits.MaxAtomicTransferLength == 0 {
		ch.fail(t, scsi.ErrInvalidOpcode)
		return
	}
	err := ch.checkBlock(c)
	if err == nil {
		err = lu.limits.CheckWriteAtomic(c)
	}
	if err == nil && lu.writeProtected() {
		err = scsi.ErrWriteProtected
	}
	if err != nil {
		ch.fail(t, err)
		return
	}
	n := uint64(c.TransferLength)
	if n == 0 {
		ch.good(t)
		return
	}
	if uint64(len(t.Data)) < n<<lu.shift {
		ch.fail(t, errInvalidIU)
		return
	}
	t.x.lba, t.x.blocks = c.LBA, n
	ch.lockRange(t, c.LBA, n)
}

// rangeLocked continues a COMPARE AND WRITE, ORWRITE or WRITE ATOMIC once its range
// lock is held: no write overlaps it in any channel, and none will start until it is
// released.
func (ch *Channel) rangeLocked(t *Task) {
	x := &t.x
	x.writing, x.wlba, x.wend = true, x.lba, x.lba+x.blocks
	if x.abort != NotAborted {
		ch.releaseRange(t)
		ch.finish(t)
		return
	}
	ch.lu.noteWrite()
	if x.cdb.Opcode == scsi.OpWriteAtomic16 {
		ch.submit(t, taskStateAtomicWrite, bdev.IOWrite, x.lba, x.blocks,
			t.Data[:x.blocks<<ch.lu.shift], t.FixedBuf, ch.writeFUA(&x.cdb))
		return
	}
	buf, ok := ch.allocScratch(t, x.blocks<<ch.lu.shift)
	if !ok {
		return
	}
	st := taskStateCAWRead
	if x.cdb.Opcode == scsi.OpOrWrite16 {
		st = taskStateORRead
	}
	ch.submit(t, st, bdev.IORead, x.lba, x.blocks, buf, scratchFixed(t), false)
}

// compareThenWrite compares the blocks read with the verify data; on a match it writes
// the write data, on a difference it writes nothing and answers MISCOMPARE with the
// offset of the first differing byte (SBC-3 §5.2).
func (ch *Channel) compareThenWrite(t *Task) {
	x := &t.x
	size := x.blocks << ch.lu.shift
	if off := firstDiff(x.scratch.Bytes(), t.Data[:size]); off >= 0 {
		ch.releaseRange(t)
		ch.miscompare(t, uint64(off))
		return
	}
	ch.submit(t, taskStateCAWWrite, bdev.IOWrite, x.lba, x.blocks, t.Data[size:2*size],
		t.FixedBuf, ch.writeFUA(&x.cdb))
}

// orThenWrite ORs the data-out into the blocks read and writes the result (SBC-3
// §5.11, BMOP 000b: the only operation ORWRITE(16) defines).
func (ch *Channel) orThenWrite(t *Task) {
	x := &t.x
	buf := x.scratch.Bytes()
	data := t.Data[:len(buf)]
	for i := range buf {
		buf[i] |= data[i]
	}
	ch.submit(t, taskStateORWrite, bdev.IOWrite, x.lba, x.blocks, buf, scratchFixed(t),
		ch.writeFUA(&x.cdb))
}
