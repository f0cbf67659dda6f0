package scsi

import (
	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/proto/scsi"
	"sluice/engine/reactor"
)

// SANITIZE (SBC-3 §4.11, §5.30): the whole LU overwritten with a pattern (OVERWRITE) or
// deallocated (BLOCK ERASE, when the bdev unmaps with zeros read back), as a
// long-running operation of the LU rather than of the command that started it.
//
//   - Exclusion: the operation holds the LU range lock over every block, so the writes
//     in flight on every reactor finish before it writes and none starts while it
//     runs; from the moment the command is accepted every other command is answered
//     NOT READY, LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS with the progress
//     indication, except INQUIRY, REPORT LUNS and REQUEST SENSE (which reports the same
//     sense as its data), so a host polls it as SBC-3 describes.
//   - Lifetime: the operation runs on the reactor the command arrived on, with its own
//     reference to the bdev channel and its own buffer, so it continues when the task
//     is aborted, the LU is reset, or the connection and its channel go away (libiscsi
//     Sanitize.Reset). IMMED=1 answers GOOD once the CDB and parameter list are valid;
//     IMMED=0 answers when the operation ends. It does not survive a restart of the
//     process: a sanitize interrupted that way must be started again.
//   - Durability: OVERWRITE writes every block OVERWRITE COUNT times, the pattern
//     repeated from each block's first byte and inverted between passes as INVERT
//     asks, one chunk at a time, then flushes the bdev; BLOCK ERASE deallocates every
//     block, then flushes. The command completes only after the flush.
//   - Failure: a failed bdev I/O leaves the LU in the sanitize failure mode: every
//     command but INQUIRY, REPORT LUNS, REQUEST SENSE and SANITIZE is answered MEDIUM
//     ERROR, SANITIZE COMMAND FAILED until a sanitize completes, or, when the failed one
//     had AUSE=1, until SANITIZE EXIT FAILURE MODE.
//   - CRYPTOGRAPHIC ERASE is not offered: the LU cannot change the key of an encrypted
//     volume, and a volume that is not encrypted has none to change.

// Sanitize states of an LU (LU.sanState).
const (
	sanIdle       uint32 = iota
	sanRunning           // an operation is in progress
	sanFailed            // the last operation failed, AUSE=0: only a new sanitize exits
	sanFailedAUSE        // the last operation failed, AUSE=1: EXIT FAILURE MODE exits too
)

// sanChunkBytes is the size of one OVERWRITE write: the transfer length limit, so that
// one sanitize I/O costs the bdev what one large WRITE does. BLOCK ERASE deallocates
// sanUnmapBytes at a time.
const (
	sanChunkBytes = 1 << 20
	sanUnmapBytes = 1 << 30
)

// Preallocated sense of the sanitize states.
var (
	errSanitizeFailed = scsi.NewSenseError(scsi.SenseKeyMediumError,
		scsi.ASCSanitizeCommandFailed, scsi.SenseSpecific{})
	errSanitizeAUSE = scsi.InvalidFieldInCDB(1, 5)
)

// sanitizeOp is the LU's sanitize operation. Its fields belong to reactor r.
type sanitizeOp struct {
	lu   *LU
	r    *reactor.Reactor
	core *mem.Core
	bch  *bdev.Channel
	sa   uint16
	ause bool
	ow   scsi.SanitizeOverwrite // OVERWRITE: the pattern, copied
	buf  mem.Buf                // OVERWRITE: one chunk of the current pass's pattern
	io   bdev.IO
	lk   *rangeLock
	pass int    // current overwrite pass
	pos  uint64 // blocks of the current pass submitted
	step uint64 // blocks per I/O
	// flushing is set once the passes are written and the bdev flush is in flight.
	flushing bool
	// waiter is the SANITIZE with IMMED=0 on waiterCh that waits for the end; nil when
	// IMMED=1 or once it was aborted.
	waiter   *Task
	waiterCh *Channel
}

// sanitizeSense is what a command other than INQUIRY, REPORT LUNS and REQUEST SENSE is
// answered while the LU is in sanitize state st (not idle): NOT READY with the progress
// indication while the operation runs, the failure afterwards.
func (lu *LU) sanitizeSense(st uint32) scsi.Sense {
	if st == sanRunning {
		return scsi.Sense{Key: scsi.SenseKeyNotReady, Code: scsi.ASCLUNotReadySanitizeInProgress,
			Specific: scsi.ProgressIndication(uint16(lu.sanProgress.Load()))}
	}
	return errSanitizeFailed.Sense
}

// sanitizeGate answers a command the sanitize state st (not idle) refuses and reports
// whether it did. SBC-3 §4.11 lets INQUIRY, REPORT LUNS and REQUEST SENSE through; after
// a failure SANITIZE goes through too, to start a new operation or exit failure mode.
func (ch *Channel) sanitizeGate(t *Task, st uint32) bool {
	switch t.x.cdb.Opcode {
	case scsi.OpInquiry, scsi.OpReportLUNs, scsi.OpRequestSense:
		return false
	case scsi.OpSanitize:
		if st != sanRunning {
			return false
		}
	}
	s := ch.lu.sanitizeSense(st)
	ch.checkCondition(t, &s)
	return true
}

// sanitize is SANITIZE: the checks, then the operation (see the comment above).
func (ch *Channel) sanitize(t *Task) {
	c, lu := &t.x.cdb, ch.lu
	if err := scsi.CheckSanitizeLength(c, lu.blockSize); err != nil {
		ch.fail(t, err)
		return
	}
	switch c.ServiceAction {
	case scsi.SASanitizeExitFailureMode:
		ch.exitSanitizeFailure(t)
		return
	case scsi.SASanitizeBlockErase:
		if !lu.blockErase() {
			ch.fail(t, scsi.InvalidFieldInCDB(1, 4))
			return
		}
	case scsi.SASanitizeCryptoErase:
		ch.fail(t, scsi.InvalidFieldInCDB(1, 4))
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
	var ow scsi.SanitizeOverwrite
	if c.ServiceAction == scsi.SASanitizeOverwrite {
		var err error
		if ow, err = scsi.DecodeSanitizeOverwrite(t.Data[:pll], lu.blockSize); err != nil {
			ch.fail(t, err)
			return
		}
	}
	op, err := ch.newSanitize(c, ow)
	if err != nil {
		ch.fail(t, err)
		return
	}
	if op == nil {
		ch.finishStatus(t, scsi.StatusBusy) // no memory for the pattern now
		return
	}
	if c.Immed {
		ch.good(t)
	} else {
		t.x.state, t.x.san = taskStateSanitize, op
		op.waiter, op.waiterCh = t, ch
	}
	op.lk = lu.lockRange(0, lu.blocks, op.r, nil, nil, op.locked)
}

// blockErase reports whether BLOCK ERASE is offered: the bdev deallocates, and
// deallocated blocks read as zeros, so that an erased block reads back without error
// (WABEREQ 01b).
func (lu *LU) blockErase() bool { return lu.unmap && lu.caps.UnmapReadsZero }

// exitSanitizeFailure is SANITIZE EXIT FAILURE MODE: it leaves the failure mode of an
// operation that failed with AUSE=1; after one that failed with AUSE=0 it is INVALID
// FIELD IN CDB (SBC-4 §5.24.1), and with no failure there is nothing to leave.
func (ch *Channel) exitSanitizeFailure(t *Task) {
	lu := ch.lu
	lu.mu.Lock()
	st := lu.sanState.Load()
	if st == sanFailedAUSE {
		lu.sanState.Store(sanIdle)
	}
	lu.mu.Unlock()
	if st == sanFailed {
		ch.fail(t, errSanitizeAUSE)
		return
	}
	ch.good(t)
}

// newSanitize makes the LU's operation for command c and marks the LU sanitizing: from
// here on every other command is refused. It returns nil, nil when the pattern buffer
// cannot be had now (the command is answered BUSY), and an error when the LU refuses:
// a sanitize already running, or AUSE=1 after a failure with AUSE=0 (SBC-4 §4.11.1).
//
// Preconditions: on ch's reactor.
func (ch *Channel) newSanitize(c *scsi.CDB, ow scsi.SanitizeOverwrite) (*sanitizeOp, error) {
	lu := ch.lu
	op := &sanitizeOp{lu: lu, r: ch.r, core: ch.core, sa: c.ServiceAction, ause: c.AUSE}
	if op.sa == scsi.SASanitizeOverwrite {
		op.ow = scsi.SanitizeOverwrite{Invert: ow.Invert, Count: ow.Count,
			Pattern: append([]byte(nil), ow.Pattern...)}
		op.step = min(uint64(sanChunkBytes)>>lu.shift, lu.blocks)
	} else {
		op.step = min(uint64(sanUnmapBytes)>>lu.shift, lu.blocks)
	}
	// The resources first, outside lu.mu (range locks take it on every reactor).
	bch, err := lu.bdev.GetChannel(ch.r)
	if err != nil {
		return nil, errAbortedCommand
	}
	op.bch = bch
	if op.sa == scsi.SASanitizeOverwrite {
		if op.buf, err = ch.core.Alloc(int(op.step << lu.shift)); err != nil {
			bch.Put()
			return nil, nil
		}
	}
	lu.mu.Lock()
	st := lu.sanState.Load()
	refused := st == sanRunning || st == sanFailed && c.AUSE
	if !refused {
		lu.sanProgress.Store(0)
		lu.sanEpoch.Add(1)
		lu.sanState.Store(sanRunning)
		lu.erased.Store(false)
	}
	lu.mu.Unlock()
	if refused {
		if !op.buf.IsZero() {
			ch.core.Free(op.buf)
		}
		bch.Put()
		if st == sanRunning {
			return nil, &scsi.SenseError{Sense: lu.sanitizeSense(st)}
		}
		return nil, errSanitizeAUSE
	}
	op.io.Done = op.done
	return op, nil
}

// locked starts the operation once it holds the whole LU: no write is in flight on any
// reactor, and none will start.
func (op *sanitizeOp) locked() {
	if op.sa == scsi.SASanitizeOverwrite {
		op.fillPass()
	}
	op.next()
}

// fillPass writes the current pass's pattern into the chunk buffer.
func (op *sanitizeOp) fillPass() {
	op.ow.FillPattern(op.buf.Bytes(), op.lu.blockSize, op.ow.PassInverted(op.pass))
}

// next submits the operation's next I/O: the next chunk of the pass, the first chunk of
// the next pass, the flush, or ends the operation after it.
func (op *sanitizeOp) next() {
	lu := op.lu
	if lu.closed.Load() {
		op.end(false) // the export is going away; the sanitize did not complete
		return
	}
	passes := 1
	if op.sa == scsi.SASanitizeOverwrite {
		passes = int(op.ow.Count)
	}
	if op.pos >= lu.blocks && op.pass+1 < passes {
		op.pass, op.pos = op.pass+1, 0
		op.fillPass()
	}
	io := &op.io
	io.FUA = false
	if op.pos >= lu.blocks {
		if op.flushing {
			op.end(true)
			return
		}
		op.flushing = true
		io.Type, io.Offset, io.Length, io.Buf, io.FixedBuf = bdev.IOFlush, 0, 0, nil, 0
		op.bch.Submit(io)
		return
	}
	n := min(op.step, lu.blocks-op.pos)
	io.Offset, io.Length = op.pos<<lu.shift, n<<lu.shift
	if op.sa == scsi.SASanitizeOverwrite {
		io.Type = bdev.IOWrite
		io.Buf, io.FixedBuf = op.buf.Bytes()[:io.Length], uint32(op.buf.FixedBuffer())+1
	} else {
		io.Type, io.Buf, io.FixedBuf = bdev.IOUnmap, nil, 0
	}
	op.pos += n
	done := uint64(op.pass)*lu.blocks + op.pos
	lu.sanProgress.Store(uint32(done * 0xFFFF / (uint64(passes) * lu.blocks)))
	op.bch.Submit(io)
}

// done is the bdev completion of the operation's I/O.
func (op *sanitizeOp) done(io *bdev.IO) {
	if io.Status != bdev.StatusSuccess {
		op.end(false)
		return
	}
	op.next()
}

// end finishes the operation: the LU leaves the sanitize state (for the failure mode
// when it failed), the range lock and the resources go, and a waiting SANITIZE is
// answered.
func (op *sanitizeOp) end(ok bool) {
	lu := op.lu
	lu.mu.Lock()
	switch {
	case ok:
		lu.sanState.Store(sanIdle)
		// Every block was deallocated and no write has run since: GET LBA STATUS can
		// say so until the next write.
		lu.erased.Store(op.sa == scsi.SASanitizeBlockErase)
	case op.ause:
		lu.sanState.Store(sanFailedAUSE)
	default:
		lu.sanState.Store(sanFailed)
	}
	lu.sanProgress.Store(0)
	lu.mu.Unlock()
	lu.releaseLock(op.lk)
	op.lk = nil
	if !op.buf.IsZero() {
		op.core.Free(op.buf)
		op.buf = mem.Buf{}
	}
	// The bdev channel reference goes on the next reactor turn, not inside the
	// completion of one of its own I/Os.
	if bch := op.bch; op.r.Post(bch.Put) != nil {
		bch.Put()
	}
	if t := op.waiter; t != nil {
		op.waiter = nil
		t.x.san = nil
		ch := op.waiterCh
		if ok {
			ch.good(t)
		} else {
			ch.fail(t, errSanitizeFailed)
		}
	}
}

// detachSanitize lets a SANITIZE that waits for its operation end now (ABORT TASK, a
// reset, its channel released): the operation continues without it.
//
// Preconditions: on t's channel's reactor, which is the operation's.
func detachSanitize(t *Task) {
	if op := t.x.san; op != nil && op.waiter == t {
		op.waiter = nil
	}
	t.x.san = nil
}
