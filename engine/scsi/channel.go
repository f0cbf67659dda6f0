package scsi

import (
	"slices"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/proto/scsi"
	"sluice/engine/reactor"
)

// Channel is an LU's I/O state on one reactor: the bdev channel, the tasks in flight
// (for aborts, resets, drains and range locks), the range locks that bind this
// reactor's writes, and a response buffer for control-path data. Everything in it is
// owned by its reactor.
type Channel struct {
	lu   *LU
	r    *reactor.Reactor
	core *mem.Core
	bch  *bdev.Channel

	head, tail *Task // tasks between Execute and Done, oldest first
	inflight   int
	closed     bool
	gen        uint64   // the last execution's generation (taskExec.gen)
	ios        []*ioCtx // free bdev I/O contexts

	// locks are the LU range locks this channel knows of; blocked are the writes
	// waiting behind one of them; draining are locks waiting for this channel's
	// overlapping writes to finish before they count as held here.
	locks    []*rangeLock
	blocked  []*Task
	draining []*rangeLock
	// waiters run once no aborted task is left in flight (resets, preempt drains).
	waiters []func()
	// lossWaiters are commands waiting for the manager to decide a nexus loss.
	lossWaiters []*Task

	// resp holds control-path parameter data while it is built (INQUIRY, MODE SENSE,
	// PERSISTENT RESERVE IN...); it grows to the largest answer and is reused.
	resp  []byte
	sense [scsi.SenseMaxLen]byte
}

// LU is the channel's logical unit.
func (ch *Channel) LU() *LU { return ch.lu }

// Inflight is the number of tasks between Execute and Done.
//
// Preconditions: on the channel's reactor.
func (ch *Channel) Inflight() int { return ch.inflight }

// Execute runs one SCSI command. t.Done is called exactly once, on this reactor,
// possibly before Execute returns; every outcome, including malformed CDBs, is a SCSI
// status (with sense) in t, never a Go error (it panics only on broken preconditions).
// A 4 KiB READ or WRITE allocates nothing.
//
// Preconditions: on the channel's reactor; t.Nexus is a nexus of this channel's LU;
// t.Done is set; t is not executing.
func (ch *Channel) Execute(t *Task) {
	if t.Nexus == nil || t.Nexus.lu != ch.lu {
		panic("scsi: task executed without a nexus of the channel's LU")
	}
	ch.begin(t)
	if ch.closed {
		ch.fail(t, errAbortedCommand)
		return
	}
	cdb := t.cdbBytes()
	if len(cdb) > 0 && t.Nexus.hasUA.Load() && ch.reportUA(t, scsi.Opcode(cdb[0])) {
		return
	}
	c, err := scsi.DecodeCDB(cdb)
	if err != nil {
		ch.fail(t, err)
		return
	}
	t.x.cdb = c
	if dir, n := c.DataLength(ch.lu.blockSize); dir == scsi.DirOut {
		t.Produced = n
	}
	if st := ch.lu.sanState.Load(); st != sanIdle && ch.sanitizeGate(t, st) {
		return
	}
	ch.admit(t)
}

// admit runs a decoded command past the reservation check: it waits while a nexus loss
// that may end the reservation is undecided (Nexus.Lost), is refused RESERVATION
// CONFLICT, or is dispatched.
func (ch *Channel) admit(t *Task) {
	if ch.lu.lossPending.Load() > 0 && ch.reservationApplies(t) {
		t.x.state = taskStateLossWait
		ch.lossWaiters = append(ch.lossWaiters, t)
		return
	}
	if !ch.allowed(t) {
		ch.finishStatus(t, scsi.StatusReservationConflict)
		return
	}
	ch.dispatch(t)
}

// resumeLossWaitersMsg admits the commands that waited for nexus losses to be decided.
// Runs on the channel's reactor.
func resumeLossWaitersMsg(arg any) {
	ch := arg.(*Channel)
	ws := ch.lossWaiters
	ch.lossWaiters = nil
	for _, t := range ws {
		if t.x.state == taskStateLossWait {
			t.x.state = taskStateIdle
			ch.admit(t)
		}
	}
}

// begin resets the task's results and links it into the in-flight list.
func (ch *Channel) begin(t *Task) {
	x := &t.x
	if x.inflight {
		panic("scsi: task executed while still executing")
	}
	t.Status, t.SenseLen, t.Produced, t.Aborted = scsi.StatusGood, 0, 0, NotAborted
	x.ch, x.state, x.abort, x.writing, x.lock = ch, taskStateIdle, NotAborted, false, nil
	x.san = nil
	x.cdb = scsi.CDB{}
	ch.gen++
	x.gen = ch.gen
	x.inflight = true
	x.prev, x.next = ch.tail, nil
	if ch.tail != nil {
		ch.tail.x.next = t
	} else {
		ch.head = t
	}
	ch.tail = t
	ch.inflight++
}

// reportUA answers the command with the nexus's oldest unit attention, unless the
// command is one SAM-5 §5.14 lets through: INQUIRY and REPORT LUNS run without
// touching it, REQUEST SENSE reports it as its data. It reports whether it answered.
func (ch *Channel) reportUA(t *Task, op scsi.Opcode) bool {
	switch op {
	case scsi.OpInquiry, scsi.OpReportLUNs, scsi.OpRequestSense:
		return false
	}
	code, ok := t.Nexus.take()
	if !ok {
		return false
	}
	s := scsi.Sense{Key: scsi.SenseKeyUnitAttention, Code: code}
	ch.checkCondition(t, &s)
	return true
}

// dispatch executes a decoded command.
func (ch *Channel) dispatch(t *Task) {
	switch op := t.x.cdb.Opcode; op {
	case scsi.OpTestUnitReady, scsi.OpStartStopUnit, scsi.OpPreventAllowRemoval:
		// A block LU that never stops: START STOP UNIT and PREVENT ALLOW MEDIUM
		// REMOVAL change nothing and succeed (RMB=0).
		ch.good(t)
	case scsi.OpRead6, scsi.OpRead10, scsi.OpRead12, scsi.OpRead16:
		ch.read(t)
	case scsi.OpWrite6, scsi.OpWrite10, scsi.OpWrite12, scsi.OpWrite16,
		scsi.OpWriteAndVerify10, scsi.OpWriteAndVerify12, scsi.OpWriteAndVerify16:
		ch.write(t)
	case scsi.OpVerify10, scsi.OpVerify12, scsi.OpVerify16:
		ch.verify(t)
	case scsi.OpPreFetch10, scsi.OpPreFetch16:
		ch.prefetch(t)
	case scsi.OpSynchronizeCache10, scsi.OpSynchronizeCache16:
		ch.synchronizeCache(t)
	case scsi.OpWriteSame10, scsi.OpWriteSame16:
		ch.writeSame(t)
	case scsi.OpUnmap:
		ch.unmapCmd(t)
	case scsi.OpCompareAndWrite, scsi.OpOrWrite16:
		ch.atomicWrite(t)
	case scsi.OpWriteAtomic16:
		ch.writeAtomic(t)
	case scsi.OpSanitize:
		ch.sanitize(t)
	case scsi.OpExtendedCopy:
		ch.extendedCopy(t)
	case scsi.OpPersistentReserveIn:
		ch.persistentReserveIn(t)
	case scsi.OpPersistentReserveOut:
		ch.persistentReserveOut(t)
	case scsi.OpReserve6, scsi.OpReserve10, scsi.OpRelease6, scsi.OpRelease10:
		ch.scsi2Reservation(t)
	default:
		ch.dispatchAdmin(t)
	}
}

// dispatchAdmin executes the control-path commands.
func (ch *Channel) dispatchAdmin(t *Task) {
	switch t.x.cdb.Opcode {
	case scsi.OpRequestSense:
		ch.requestSense(t)
	case scsi.OpInquiry:
		ch.inquiry(t)
	case scsi.OpModeSense6, scsi.OpModeSense10:
		ch.modeSense(t)
	case scsi.OpModeSelect6, scsi.OpModeSelect10:
		ch.modeSelect(t)
	case scsi.OpReadCapacity10:
		ch.dataIn(t, ch.lu.capacity.Append10(ch.resp[:0]), t.x.cdb.AllocationLength)
	case scsi.OpServiceActionIn16:
		ch.serviceActionIn(t)
	case scsi.OpReportLUNs:
		ch.reportLUNs(t)
	case scsi.OpMaintenanceIn:
		ch.maintenanceIn(t)
	case scsi.OpReceiveCopyResults:
		ch.receiveCopyResults(t)
	case scsi.OpReadDefectData10, scsi.OpReadDefectData12:
		// A bdev has no defect lists: both are empty, in the format asked for.
		ch.dataIn(t, scsi.AppendReadDefectData(ch.resp[:0], &t.x.cdb), t.x.cdb.AllocationLength)
	default:
		// Decoded but not served: the variable-length opcode 7Fh.
		ch.fail(t, scsi.ErrInvalidOpcode)
	}
}

// good completes the task with GOOD status.
func (ch *Channel) good(t *Task) {
	t.Status = scsi.StatusGood
	ch.finish(t)
}

// finishStatus completes the task with a status that carries no sense data.
func (ch *Channel) finishStatus(t *Task, s scsi.Status) {
	t.Status = s
	ch.finish(t)
}

// fail completes the task with CHECK CONDITION and the sense of err, a
// *scsi.SenseError (anything else is a programming error inside the LU, reported as
// INTERNAL TARGET FAILURE rather than a crash of the reactor).
func (ch *Channel) fail(t *Task, err error) {
	se, ok := err.(*scsi.SenseError)
	if !ok {
		se = scsi.ErrInternalTargetFailure
	}
	ch.checkCondition(t, &se.Sense)
}

// checkCondition completes the task with CHECK CONDITION and sense s, in the format the
// Control mode page's D_SENSE selects. A failed data-in command transfers no data.
func (ch *Channel) checkCondition(t *Task, s *scsi.Sense) {
	t.Status = scsi.StatusCheckCondition
	t.SenseLen = uint8(s.Put(t.Sense[:], ch.lu.dsense.Load()))
	if dir, _ := t.x.cdb.DataLength(ch.lu.blockSize); dir != scsi.DirOut {
		t.Produced = 0
	}
	ch.finish(t)
}

// dataIn completes a control-path data-in command with data b, cut to the allocation
// length (SPC-4 §4.2.5.6) and copied into the task's buffer as far as it reaches.
func (ch *Channel) dataIn(t *Task, b []byte, alloc uint32) {
	ch.resp = b[:0] // keep the grown buffer for the next answer
	b = scsi.Truncate(b, alloc)
	copy(t.Data, b)
	t.Produced = uint64(len(b))
	ch.good(t)
}

// finish ends a task: frees its scratch memory, applies a pending abort, unlinks it
// and calls Done. Done may reuse t at once, so nothing touches t after it; what the
// completion may have unblocked (aborts waited for, range locks draining) is checked
// on the channel's own lists afterwards.
func (ch *Channel) finish(t *Task) {
	x := &t.x
	if !x.inflight || x.ch != ch {
		panic("scsi: task finished twice or on another channel")
	}
	if !x.scratch.IsZero() {
		ch.core.Free(x.scratch)
		x.scratch = mem.Buf{}
	}
	if x.abort != NotAborted {
		t.Status, t.SenseLen, t.Aborted = scsi.StatusTaskAborted, 0, x.abort
	}
	ch.unlink(t)
	x.state = taskStateIdle
	t.Done(t)
	if len(ch.draining) > 0 {
		ch.checkDraining()
	}
	if len(ch.waiters) > 0 && !ch.anyAborting() {
		ch.runWaiters()
	}
}

func (ch *Channel) unlink(t *Task) {
	x := &t.x
	if x.prev != nil {
		x.prev.x.next = x.next
	} else {
		ch.head = x.next
	}
	if x.next != nil {
		x.next.x.prev = x.prev
	} else {
		ch.tail = x.prev
	}
	x.prev, x.next, x.inflight = nil, nil, false
	ch.inflight--
}

// allocScratch gives the task n bytes of this reactor's memory, freed when it
// finishes. On failure the task is answered BUSY (the initiator retries) and false
// returned.
func (ch *Channel) allocScratch(t *Task, n uint64) ([]byte, bool) {
	b, err := ch.core.Alloc(int(n))
	if err != nil {
		ch.releaseRange(t)
		ch.finishStatus(t, scsi.StatusBusy)
		return nil, false
	}
	t.x.scratch = b
	return b.Bytes(), true
}

// Abort is ABORT TASK for t, a task executing on this channel. A task that has not
// reached the bdev (a write waiting behind a range lock or for a nexus loss to be
// decided), that waits for the reservation manager, or a SANITIZE waiting for its
// operation (which continues) is ended at once: Done runs before Abort returns, with
// Aborted = AbortedByNexus, and Abort reports true. (A reservation command the manager
// is deciding may still take effect; its answer is dropped.) A task inside the bdev
// cannot be recalled: it is marked, its remaining steps are skipped, and it completes
// as aborted when the bdev gives it back; Abort reports false and the transport
// answers the task management function once Done has run.
//
// Preconditions: on the channel's reactor; t was executed on this channel and its
// Done has not run.
func (ch *Channel) Abort(t *Task) bool {
	return ch.abortTask(t, AbortedByNexus)
}

// abortTask ends t now when it can be ended, else marks it; see Abort.
func (ch *Channel) abortTask(t *Task, why AbortReason) bool {
	x := &t.x
	if !x.inflight || x.ch != ch {
		return false
	}
	if x.abort == NotAborted {
		x.abort = why
	}
	switch x.state {
	case taskStateBlocked:
		ch.unblock(t)
	case taskStateManager:
		// The manager's answer carries the generation it was asked in: with none
		// left here, it is dropped, also if the transport reuses t meanwhile.
		x.gen = 0
	case taskStateSanitize:
		detachSanitize(t) // the sanitize operation continues (SBC-3 §4.11)
	case taskStateLossWait:
		ch.lossWaiters = slices.DeleteFunc(ch.lossWaiters, func(w *Task) bool { return w == t })
	default:
		return false
	}
	ch.finish(t)
	return true
}

// anyAborting reports whether an aborted task is still in flight.
func (ch *Channel) anyAborting() bool {
	for t := ch.head; t != nil; t = t.x.next {
		if t.x.abort != NotAborted {
			return true
		}
	}
	return false
}

func (ch *Channel) runWaiters() {
	ws := ch.waiters
	ch.waiters = nil
	for _, w := range ws {
		w()
	}
}

// Put releases the channel. Tasks still inside the bdev complete as usual (the bdev
// layer allows releasing with I/O in flight); writes still blocked behind a range lock
// are answered ABORTED COMMAND, since the channel will not see the lock's release, and
// so is a SANITIZE waiting for its operation (which continues without it). Tasks must
// not be executed on it afterwards.
//
// Preconditions: on the channel's reactor.
func (ch *Channel) Put() {
	if ch.closed {
		return
	}
	ch.closed = true
	ch.lu.dropChannel(ch)
	for len(ch.blocked) > 0 {
		t := ch.blocked[0]
		ch.unblock(t)
		ch.fail(t, errAbortedCommand)
	}
	for t := ch.sanitizeWaiter(); t != nil; t = ch.sanitizeWaiter() {
		detachSanitize(t)
		ch.fail(t, errAbortedCommand)
	}
	for len(ch.lossWaiters) > 0 {
		t := ch.lossWaiters[0]
		ch.lossWaiters = ch.lossWaiters[1:]
		ch.fail(t, errAbortedCommand)
	}
	ch.bch.Put()
}

// sanitizeWaiter returns a task waiting for a sanitize operation, or nil.
func (ch *Channel) sanitizeWaiter() *Task {
	for t := ch.head; t != nil; t = t.x.next {
		if t.x.state == taskStateSanitize {
			return t
		}
	}
	return nil
}
