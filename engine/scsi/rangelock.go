package scsi

import (
	"slices"
	"sync/atomic"

	"sluice/engine/reactor"
)

// LBA range locks make COMPARE AND WRITE, ORWRITE and WRITE ATOMIC atomic with respect
// to every other write of the LU, whichever reactor it runs on, without a lock on the
// I/O path; a sanitize operation holds one over the whole LU. The
// design is SPDK's bdev_lock_lba_range: the lock is replicated into every channel of
// the LU by reactor messages, so each channel checks its own list.
//
//   - Acquire (owner's reactor): under lu.mu the lock joins heldLocks, or waitLocks
//     (FIFO) if it overlaps a held or earlier waiting lock. A held lock visits every
//     channel: the visit adds it to the channel's locks and, once the channel has no
//     overlapping write in flight, acknowledges. The last acknowledgement tells the
//     owner, which then reads, compares or ORs, and writes.
//   - Meanwhile, every channel holds back new overlapping writes (startWrite puts them
//     on its blocked list); with no lock on the LU that check is one length test.
//   - Release (owner's reactor): the lock leaves heldLocks, waiting locks that no
//     longer overlap start, and a release visit to every channel drops the lock and
//     restarts the blocked writes it held back. The record returns to the LU's free
//     list after the last visit, so steady state allocates nothing.
//
// Reads are not held back: a read that overlaps a COMPARE AND WRITE sees the old or the
// new blocks, as it would had it run before or after. Channels opened while a lock is
// held copy it (lu.Channel) and are visited at its release.

// rangeLock is one LU range lock. lba, end, the owner and where it runs are written
// under lu.mu before the lock is published and are read-only until its record is
// reused, which happens only after every channel has dropped it.
type rangeLock struct {
	lba, end uint64 // blocks [lba, end)
	// owner is the task holding the lock (COMPARE AND WRITE, ORWRITE, WRITE ATOMIC) on
	// ownerCh, or nil for a sanitize operation, which outlives its task and continues
	// with held instead. r is the reactor told of the acquisition.
	owner     *Task
	ownerCh   *Channel
	held      func()
	r         *reactor.Reactor
	pending   atomic.Int32 // channels that have not acknowledged the acquisition
	releasing atomic.Int32 // channels that have not dropped the released lock
	visits    []lockVisit  // one per channel visited; reused for the release
	lu        *LU
}

// lockVisit is the argument of one lock message to one channel.
type lockVisit struct {
	lk *rangeLock
	ch *Channel
}

func (lk *rangeLock) overlaps(o *rangeLock) bool { return lk.lba < o.end && o.lba < lk.end }

// lockRange asks for the range lock of t's blocks [lba, lba+n); rangeLocked continues
// the task once it is held.
//
// Preconditions: on ch's reactor; t executes on ch.
func (ch *Channel) lockRange(t *Task, lba, n uint64) {
	t.x.state = taskStateLocking
	ch.lu.lockRange(lba, n, ch.r, t, ch, nil)
}

// lockRange asks for the range lock of blocks [lba, lba+n) for owner on ownerCh (whose
// x.lock it sets) or, with no owner, for the continuation held; either is told on r.
//
// Preconditions: on r.
func (lu *LU) lockRange(lba, n uint64, r *reactor.Reactor, owner *Task, ownerCh *Channel,
	held func()) *rangeLock {
	lu.mu.Lock()
	var lk *rangeLock
	if k := len(lu.freeLocks); k > 0 {
		lk = lu.freeLocks[k-1]
		lu.freeLocks = lu.freeLocks[:k-1]
	} else {
		lk = &rangeLock{lu: lu}
	}
	lk.lba, lk.end, lk.owner, lk.ownerCh, lk.held, lk.r = lba, lba+n, owner, ownerCh, held, r
	if owner != nil {
		owner.x.lock = lk
	}
	if lu.lockConflictLocked(lk, len(lu.waitLocks)) {
		lu.waitLocks = append(lu.waitLocks, lk)
		lu.mu.Unlock()
		return lk
	}
	lu.heldLocks = append(lu.heldLocks, lk)
	lu.prepareVisitsLocked(lk, &lk.pending)
	lu.mu.Unlock()
	lk.acquire()
	return lk
}

// lockConflictLocked reports whether lk overlaps a held lock or one of the first
// `waiting` waiting locks.
//
// Preconditions: lu.mu held.
func (lu *LU) lockConflictLocked(lk *rangeLock, waiting int) bool {
	for _, h := range lu.heldLocks {
		if h.overlaps(lk) {
			return true
		}
	}
	for _, w := range lu.waitLocks[:waiting] {
		if w.overlaps(lk) {
			return true
		}
	}
	return false
}

// prepareVisitsLocked fills lk.visits with the LU's channels and sets count to their
// number.
//
// Preconditions: lu.mu held.
func (lu *LU) prepareVisitsLocked(lk *rangeLock, count *atomic.Int32) {
	lk.visits = lk.visits[:0]
	for _, c := range lu.chans {
		lk.visits = append(lk.visits, lockVisit{lk: lk, ch: c})
	}
	count.Store(int32(len(lk.visits)))
}

// acquire sends the acquisition visits (or, with no channel to visit, tells the owner
// at once).
//
// The visits are read from a local copy of the slice: once the last one is sent, the
// lock may be acquired, released and its record reused on other reactors.
func (lk *rangeLock) acquire() {
	vs := lk.visits
	if len(vs) == 0 {
		lk.acquired()
		return
	}
	for i := range vs {
		if vs[i].ch.r.Send(lockVisitMsg, &vs[i]) != nil {
			lk.ack() // a stopped reactor runs no write
		}
	}
}

// lockVisitMsg adds a lock to one channel and acknowledges once no overlapping write of
// that channel is in flight. Runs on the channel's reactor.
func lockVisitMsg(arg any) {
	v := arg.(*lockVisit)
	ch, lk := v.ch, v.lk
	ch.locks = append(ch.locks, lk)
	if ch.writersOverlap(lk) {
		ch.draining = append(ch.draining, lk)
		return
	}
	lk.ack()
}

// ack counts one channel's acknowledgement; the last one tells the owner.
func (lk *rangeLock) ack() {
	if lk.pending.Add(-1) == 0 {
		lk.acquired()
	}
}

// acquired hands the held lock to its owner's reactor.
func (lk *rangeLock) acquired() {
	if lk.r.Send(lockAcquiredMsg, lk) != nil {
		return // the owner's reactor stopped: its tasks end with it
	}
}

func lockAcquiredMsg(arg any) {
	lk := arg.(*rangeLock)
	if lk.owner == nil {
		lk.held()
		return
	}
	t := lk.owner
	if t.x.lock != lk || t.x.state != taskStateLocking {
		panic("scsi: range lock acquired for a task that no longer waits for it")
	}
	lk.ownerCh.rangeLocked(t)
}

// writersOverlap reports whether a write of this channel that may be in the bdev
// overlaps lk.
func (ch *Channel) writersOverlap(lk *rangeLock) bool {
	for t := ch.head; t != nil; t = t.x.next {
		x := &t.x
		if x.writing && t != lk.owner && x.wlba < lk.end && lk.lba < x.wend {
			return true
		}
	}
	return false
}

// lockedOut reports whether a range lock of another task holds t's write range.
func (ch *Channel) lockedOut(t *Task) bool {
	x := &t.x
	for _, lk := range ch.locks {
		if lk.owner != t && x.wlba < lk.end && lk.lba < x.wend {
			return true
		}
	}
	return false
}

// checkDraining acknowledges the locks whose overlapping writes on this channel have
// all completed.
func (ch *Channel) checkDraining() {
	for i := 0; i < len(ch.draining); {
		lk := ch.draining[i]
		if ch.writersOverlap(lk) {
			i++
			continue
		}
		ch.draining = slices.Delete(ch.draining, i, i+1)
		lk.ack()
	}
}

// releaseRange releases t's range lock, if it holds one.
//
// Preconditions: on t's channel's reactor; the lock, if any, is held (acquired).
func (ch *Channel) releaseRange(t *Task) {
	lk := t.x.lock
	if lk == nil {
		return
	}
	t.x.lock = nil
	ch.lu.releaseLock(lk)
}

// releaseLock releases a held range lock: waiting locks it no longer holds back start,
// and every channel drops it and restarts the writes it held back.
//
// Preconditions: on lk.r; lk is held (acquired).
func (lu *LU) releaseLock(lk *rangeLock) {
	var start []*rangeLock
	lu.mu.Lock()
	if i := slices.Index(lu.heldLocks, lk); i >= 0 {
		lu.heldLocks = slices.Delete(lu.heldLocks, i, i+1)
	}
	lu.prepareVisitsLocked(lk, &lk.releasing)
	start = lu.startWaitingLocked(start)
	vs := lk.visits // see acquire: the record may be reused once the last visit ran
	lu.mu.Unlock()
	if len(vs) == 0 {
		lu.freeLock(lk)
	}
	for i := range vs {
		if vs[i].ch.r.Send(unlockVisitMsg, &vs[i]) != nil {
			lk.released()
		}
	}
	for _, w := range start {
		w.acquire()
	}
}

// startWaitingLocked moves the waiting locks that overlap neither a held lock nor an
// earlier waiting one to heldLocks, in order, and appends them to start.
//
// Preconditions: lu.mu held.
func (lu *LU) startWaitingLocked(start []*rangeLock) []*rangeLock {
	for i := 0; i < len(lu.waitLocks); {
		w := lu.waitLocks[i]
		if lu.lockConflictLocked(w, i) {
			i++
			continue
		}
		lu.waitLocks = slices.Delete(lu.waitLocks, i, i+1)
		lu.heldLocks = append(lu.heldLocks, w)
		lu.prepareVisitsLocked(w, &w.pending)
		start = append(start, w)
	}
	return start
}

// unlockVisitMsg drops a released lock from one channel and restarts the writes it held
// back. Runs on the channel's reactor.
func unlockVisitMsg(arg any) {
	v := arg.(*lockVisit)
	ch, lk := v.ch, v.lk
	if i := slices.Index(ch.locks, lk); i >= 0 {
		ch.locks = slices.Delete(ch.locks, i, i+1)
	}
	lk.released()
	ch.resumeBlocked()
}

// released counts one channel's release; after the last the record is reused.
func (lk *rangeLock) released() {
	if lk.releasing.Add(-1) == 0 {
		lk.lu.freeLock(lk)
	}
}

func (lu *LU) freeLock(lk *rangeLock) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	lk.owner, lk.ownerCh, lk.held, lk.r = nil, nil, nil, nil
	lu.freeLocks = append(lu.freeLocks, lk)
}
