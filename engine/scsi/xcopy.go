package scsi

import (
	"bytes"
	"slices"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/proto/scsi"
	"sluice/engine/reservation"
)

// EXTENDED COPY(LID1) and RECEIVE COPY RESULTS (SPC-4 §6.4, §6.18): the LU's copy
// manager copies blocks from one logical unit of the target to another (or within
// one) without the data crossing the network, as VMware's VAAI XCOPY asks it to.
//
//   - What it copies: block device to block device segments (02h) between the LUs of the
//     command's LUNMap that identification target descriptors (E4h) name by a VPD 83h
//     LU designator (the NAA or the EUI-64). Block lengths must be the LUs'.
//   - How: segment by segment, each under the range lock of its destination blocks (so
//     no COMPARE AND WRITE, ORWRITE or WRITE ATOMIC interleaves with it, and writes in
//     flight there finish first), chunk by chunk through a buffer of the channel's
//     reactor: a read of the source, a write of the destination, FUA when the
//     destination's write cache is off. Overlapping ranges of one LU copy from the end
//     when the destination is above the source, as memmove does.
//   - Checks before any block moves: the descriptors, every segment's target indexes
//     and ranges (COPY ABORTED, UNREACHABLE COPY TARGET or NO ADDITIONAL SENSE
//     INFORMATION), write protection of each destination, and the reservations of the
//     other LUs involved for this I_T nexus (the command's own LU was checked as for
//     any write).
//   - Results: a copy whose LIST ID USAGE is 00b keeps its COPY STATUS for RECEIVE COPY
//     RESULTS on that I_T nexus (the last copyHeld of them); RECEIVE DATA and FAILED
//     SEGMENT DETAILS are not offered, as no data is ever held.

// copyHeld bounds the copy statuses an LU keeps for RECEIVE COPY RESULTS.
const copyHeld = 64

// copyChunkBytes is the buffer one read and one write of a copy move.
const copyChunkBytes = 1 << 20

// copyLimits are the LU's copy manager's operating parameters: a source and a
// destination, a few segments, as many blocks per segment as NUMBER OF BLOCKS can say.
func copyLimits(blockSize uint32) scsi.CopyLimits {
	return scsi.CopyLimits{MaxTargetDescriptors: 2, MaxSegmentDescriptors: 8,
		MaxDescriptorListLength: 1024,
		MaxSegmentLength:        uint32(min(uint64(0xFFFF)*uint64(blockSize), 0xFFFFFFFF)),
		TotalConcurrentCopies:   16}
}

// Preallocated sense of the copy manager.
var (
	errCopyAborted = scsi.NewSenseError(scsi.SenseKeyCopyAborted, scsi.ASCNoAdditionalSense,
		scsi.SenseSpecific{})
	errCopyUnreachable = scsi.NewSenseError(scsi.SenseKeyCopyAborted,
		scsi.ASCUnreachableCopyTarget, scsi.SenseSpecific{})
	errCopyInProgress = scsi.NewSenseError(scsi.SenseKeyIllegalRequest,
		scsi.ASCOperationInProgress, scsi.SenseSpecific{})
)

// copyKey names a copy by its I_T nexus and LIST IDENTIFIER.
type copyKey struct {
	id   reservation.Identity
	list uint8
}

// copyRecord is what RECEIVE COPY RESULTS COPY STATUS reports of a copy.
type copyRecord struct {
	status scsi.CopyStatus
	hold   bool // LIST ID USAGE 00b: kept once done
}

// copySeg is a segment resolved to its logical units.
type copySeg struct {
	src, dst       *LU
	srcLBA, dstLBA uint64
	blocks         uint64
	backward       bool // copy from the end: the ranges overlap, the destination above
}

// copyOp is one EXTENDED COPY in progress on its task's channel's reactor.
type copyOp struct {
	ch     *Channel
	t      *Task
	segs   []copySeg
	lus    []*LU           // the LUs involved, each once
	bchs   []*bdev.Channel // their bdev channels on the reactor, by lus index
	epochs []uint64        // their sanitize epochs when the copy was accepted
	buf    mem.Buf
	io     bdev.IO
	lk     *rangeLock
	rec    *copyRecord // nil for LIST ID USAGE 11b
	key    copyKey
	i      int    // current segment
	done   uint64 // blocks of the current segment copied
	n      uint64 // blocks of the chunk in flight
	write  bool   // the chunk's write is in flight (else its read)
}

// findTarget returns the LU a target descriptor names: one of the LUNMap's (or lu
// itself) whose NAA or EUI-64 designator, associated with the LU, is the descriptor's.
func (lu *LU) findTarget(d *scsi.XCopyTarget) *LU {
	match := func(o *LU) bool {
		if d.Association != 0 || d.PeripheralType != byte(scsi.PeripheralDisk) || o.closed.Load() {
			return false
		}
		switch d.DesignatorType {
		case 3:
			return bytes.Equal(d.Designator, o.naa[:])
		case 2:
			return bytes.Equal(d.Designator, o.eui[:])
		}
		return false
	}
	if m := lu.lunMap.Load(); m != nil {
		for _, lun := range m.table().luns {
			if o := m.table().lus[lun]; o != nil && match(o) {
				return o
			}
		}
		return nil
	}
	if match(lu) {
		return lu
	}
	return nil
}

// extendedCopy is EXTENDED COPY(LID1).
func (ch *Channel) extendedCopy(t *Task) {
	c, lu := &t.x.cdb, ch.lu
	pll := uint64(c.ParameterListLength)
	if pll == 0 {
		ch.good(t) // SPC-4 §6.4.1: no parameter data, no copy
		return
	}
	if uint64(len(t.Data)) < pll {
		ch.fail(t, errInvalidIU)
		return
	}
	l, err := scsi.DecodeExtendedCopy(t.Data[:pll], &lu.copyLimits)
	if err != nil {
		ch.fail(t, err)
		return
	}
	op := &copyOp{ch: ch, t: t}
	err = op.resolve(&l)
	if err == nil {
		err = op.admitted(t.Nexus.id)
	}
	if err == nil {
		err = lu.beginCopy(op, t.Nexus.id, &l)
	}
	switch err {
	case nil:
		op.start()
	case errReservationConflict:
		ch.finishStatus(t, scsi.StatusReservationConflict)
	case errCopyBusy:
		ch.finishStatus(t, scsi.StatusBusy)
	default:
		ch.fail(t, err)
	}
}

// resolve turns the list into segments of LUs and checks each against them, before any
// block moves.
func (op *copyOp) resolve(l *scsi.XCopyList) error {
	lu := op.ch.lu
	targets := make([]*LU, len(l.Targets))
	for i := range l.Targets {
		d := &l.Targets[i]
		targets[i] = lu.findTarget(d)
		if o := targets[i]; o != nil && d.BlockLength != 0 && d.BlockLength != o.blockSize {
			return scsi.InvalidFieldInParameterList(16+32*i+29, -1)
		}
	}
	for _, s := range l.Segments {
		if int(s.Src) >= len(targets) || int(s.Dst) >= len(targets) ||
			targets[s.Src] == nil || targets[s.Dst] == nil {
			return errCopyUnreachable
		}
		src, dst := targets[s.Src], targets[s.Dst]
		n := uint64(s.Blocks)
		if src.blockSize != dst.blockSize || scsi.CheckLBARange(s.SrcLBA, n, src.blocks) != nil ||
			scsi.CheckLBARange(s.DstLBA, n, dst.blocks) != nil {
			return errCopyAborted
		}
		if n == 0 {
			continue // NUMBER OF BLOCKS 0 copies nothing
		}
		op.segs = append(op.segs, copySeg{src: src, dst: dst, srcLBA: s.SrcLBA,
			dstLBA: s.DstLBA, blocks: n,
			backward: src == dst && s.DstLBA > s.SrcLBA && s.DstLBA < s.SrcLBA+n})
		for _, o := range []*LU{src, dst} {
			if !slices.Contains(op.lus, o) {
				op.lus = append(op.lus, o)
			}
		}
	}
	return nil
}

// admitted checks the LUs the copy touches besides its own (whose reservation and
// sanitize state Execute checked): write protection of destinations, the sanitize state
// of the others and their reservations for this I_T nexus.
func (op *copyOp) admitted(id reservation.Identity) error {
	for _, s := range op.segs {
		if s.dst.writeProtected() {
			return scsi.ErrWriteProtected
		}
	}
	for _, o := range op.lus {
		if o == op.ch.lu {
			continue
		}
		if st := o.sanState.Load(); st != sanIdle {
			return &scsi.SenseError{Sense: o.sanitizeSense(st)}
		}
		if o.vol == nil {
			continue
		}
		a := reservation.AccessRead
		for _, s := range op.segs {
			if s.dst == o {
				a = reservation.AccessWrite
			}
		}
		if !o.vol.View().Allows(id, a) {
			return errReservationConflict
		}
	}
	return nil
}

// errReservationConflict and errCopyBusy are refusals answered with a status rather
// than sense: another LU's reservation, and a copy beyond TOTAL CONCURRENT COPIES
// (BUSY: retry later).
var (
	errReservationConflict = scsi.NewSenseError(0, 0, scsi.SenseSpecific{})
	errCopyBusy            = scsi.NewSenseError(0, 0, scsi.SenseSpecific{})
)

// beginCopy registers the copy under its list identifier (unless LIST ID USAGE 11b) and
// counts it against TOTAL CONCURRENT COPIES; a copy of the same list identifier still
// running on the nexus is OPERATION IN PROGRESS (SPC-4 §6.4.3.2).
func (lu *LU) beginCopy(op *copyOp, id reservation.Identity, l *scsi.XCopyList) error {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	if lu.activeCopies >= int(lu.copyLimits.TotalConcurrentCopies) {
		return errCopyBusy
	}
	if l.ListIDUsage != scsi.XCopyListIDNoIdent {
		op.key = copyKey{id: id, list: l.ListID}
		if r := lu.copies[op.key]; r != nil && r.status.Status == scsi.CopyInProgress {
			return errCopyInProgress
		}
		op.rec = &copyRecord{hold: l.ListIDUsage == scsi.XCopyListIDHold}
		if lu.copies == nil {
			lu.copies = map[copyKey]*copyRecord{}
		}
		if _, ok := lu.copies[op.key]; !ok {
			lu.copyOrder = append(lu.copyOrder, op.key)
		}
		lu.copies[op.key] = op.rec
	}
	lu.activeCopies++
	return nil
}

// start takes the buffer and the bdev channels and copies the first segment.
func (op *copyOp) start() {
	ch := op.ch
	var size uint64
	for _, s := range op.segs {
		size = max(size, min(s.blocks<<s.dst.shift, copyChunkBytes))
	}
	if size > 0 {
		buf, err := ch.core.Alloc(int(size))
		if err != nil {
			op.end(nil, scsi.StatusBusy)
			return
		}
		op.buf = buf
	}
	for _, o := range op.lus {
		bch, err := o.bdev.GetChannel(ch.r)
		if err != nil {
			op.end(errCopyUnreachable, 0)
			return
		}
		op.bchs = append(op.bchs, bch)
		op.epochs = append(op.epochs, o.sanEpoch.Load())
	}
	op.io.Done = op.ioDone
	op.t.x.state = taskStateCopy
	op.segment()
}

// segment locks the current segment's destination range, or ends the copy after the
// last segment.
func (op *copyOp) segment() {
	if op.i == len(op.segs) {
		op.end(nil, scsi.StatusGood)
		return
	}
	s := &op.segs[op.i]
	op.done = 0
	op.lk = s.dst.lockRange(s.dstLBA, s.blocks, op.ch.r, nil, nil, op.locked)
}

// locked copies the segment's first chunk once no other write overlaps its destination.
func (op *copyOp) locked() {
	for i, o := range op.lus {
		// A SANITIZE accepted since the copy was: the copy must not write after it.
		if o.sanEpoch.Load() != op.epochs[i] || o.closed.Load() {
			op.end(errCopyAborted, 0)
			return
		}
	}
	op.segs[op.i].dst.noteWrite()
	op.chunk()
}

// chunk reads the next chunk of the segment.
func (op *copyOp) chunk() {
	if op.t.x.abort != NotAborted {
		op.end(nil, 0)
		return
	}
	s := &op.segs[op.i]
	op.n = min(s.blocks-op.done, uint64(op.buf.Len())>>s.src.shift)
	op.write = false
	op.submit(s.src, bdev.IORead, op.srcOffset(s), false)
}

// srcOffset is the first block of the chunk in the source (and, shifted by dstLBA -
// srcLBA, in the destination).
func (op *copyOp) srcOffset(s *copySeg) uint64 {
	if s.backward {
		return s.srcLBA + s.blocks - op.done - op.n
	}
	return s.srcLBA + op.done
}

func (op *copyOp) submit(o *LU, typ bdev.IOType, lba uint64, fua bool) {
	io := &op.io
	io.Type, io.FUA = typ, fua
	io.Offset, io.Length = lba<<o.shift, op.n<<o.shift
	io.Buf, io.FixedBuf = op.buf.Bytes()[:io.Length], uint32(op.buf.FixedBuffer())+1
	op.bchs[slices.Index(op.lus, o)].Submit(io)
}

// ioDone moves the copy on after a read (write it) or a write (next chunk or segment).
func (op *copyOp) ioDone(io *bdev.IO) {
	if io.Status != bdev.StatusSuccess {
		op.end(errCopyAborted, 0)
		return
	}
	s := &op.segs[op.i]
	if !op.write {
		op.write = true
		dstLBA := op.srcOffset(s) - s.srcLBA + s.dstLBA
		op.submit(s.dst, bdev.IOWrite, dstLBA, !s.dst.wce.Load())
		return
	}
	op.done += op.n
	op.progress(op.n<<s.dst.shift, 0)
	if op.done < s.blocks {
		op.chunk()
		return
	}
	op.release()
	op.i++
	op.progress(0, 1)
	if op.t.x.abort != NotAborted {
		op.end(nil, 0)
		return
	}
	op.segment()
}

// progress counts bytes moved and segments processed in the copy's record, which
// RECEIVE COPY RESULTS reads under the LU's mu.
func (op *copyOp) progress(bytes uint64, segments uint16) {
	if op.rec == nil {
		return
	}
	lu := op.ch.lu
	lu.mu.Lock()
	op.rec.status.Bytes += bytes
	op.rec.status.SegmentsProcessed += segments
	lu.mu.Unlock()
}

// release releases the destination range lock, if held.
func (op *copyOp) release() {
	if lk := op.lk; lk != nil {
		op.lk = nil
		lk.lu.releaseLock(lk)
	}
}

// end finishes the copy: err for CHECK CONDITION, else status (0 with the task aborted).
func (op *copyOp) end(err error, status scsi.Status) {
	op.release()
	ch, t, lu := op.ch, op.t, op.ch.lu
	if !op.buf.IsZero() {
		ch.core.Free(op.buf)
		op.buf = mem.Buf{}
	}
	for _, bch := range op.bchs {
		if ch.r.Post(bch.Put) != nil {
			bch.Put()
		}
	}
	lu.mu.Lock()
	lu.activeCopies--
	if op.rec != nil {
		op.rec.status.Status = scsi.CopyCompleted
		if err != nil || status != scsi.StatusGood {
			op.rec.status.Status = scsi.CopyCompletedError
		}
		if !op.rec.hold && lu.copies[op.key] == op.rec {
			delete(lu.copies, op.key)
			lu.copyOrder = slices.DeleteFunc(lu.copyOrder, func(k copyKey) bool { return k == op.key })
		}
		for len(lu.copyOrder) > copyHeld {
			delete(lu.copies, lu.copyOrder[0])
			lu.copyOrder = lu.copyOrder[1:]
		}
	}
	lu.mu.Unlock()
	switch {
	case t.x.abort != NotAborted:
		ch.finish(t)
	case err != nil:
		ch.fail(t, err)
	default:
		ch.finishStatus(t, status)
	}
}

// receiveCopyResults is RECEIVE COPY RESULTS: OPERATING PARAMETERS, and COPY STATUS of
// a copy of this I_T nexus with LIST ID USAGE 00b or still running (none: INVALID FIELD
// IN CDB @2, libiscsi ReceiveCopyResults.CopyStatus).
func (ch *Channel) receiveCopyResults(t *Task) {
	c, lu := &t.x.cdb, ch.lu
	switch c.ServiceAction {
	case scsi.SACopyOperatingParams:
		ch.dataIn(t, scsi.AppendCopyOperatingParameters(ch.resp[:0], &lu.copyLimits),
			c.AllocationLength)
	case scsi.SACopyStatus:
		lu.mu.Lock()
		r := lu.copies[copyKey{id: t.Nexus.id, list: c.ListIdentifier}]
		var st scsi.CopyStatus
		if r != nil {
			st = r.status
		}
		lu.mu.Unlock()
		if r == nil {
			ch.fail(t, scsi.InvalidFieldInCDB(2, -1))
			return
		}
		ch.dataIn(t, scsi.AppendCopyStatus(ch.resp[:0], &st), c.AllocationLength)
	default:
		ch.fail(t, scsi.InvalidFieldInCDB(1, 4)) // no data is ever held
	}
}
