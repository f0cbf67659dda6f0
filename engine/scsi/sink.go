package scsi

import (
	"sync"
	"sync/atomic"

	"sluice/engine/proto/scsi"
	"sluice/engine/reactor"
	"sluice/engine/reservation"
	"sluice/engine/reservation/manager"
)

// Reservation notices, preempt-and-abort drains and logical unit resets: the control
// path that reaches across an LU's channels on every reactor.

// sinkHub is the manager.Sink of the SCSI LUs of one reservation manager. The manager
// has no way to remove a sink, so the LUs do not register themselves one by one: one
// hub per manager registers once, and LUs join and leave it as they open and close.
type sinkHub struct {
	mu  sync.Mutex
	lus map[[16]byte][]*LU // +checklocks:mu; by volume NGUID
}

var hubs struct {
	mu sync.Mutex
	m  map[*manager.Manager]*sinkHub // +checklocks:mu
}

// hubFor returns the hub of m, registering it with m the first time.
func hubFor(m *manager.Manager) *sinkHub {
	hubs.mu.Lock()
	defer hubs.mu.Unlock()
	if h := hubs.m[m]; h != nil {
		return h
	}
	if hubs.m == nil {
		hubs.m = map[*manager.Manager]*sinkHub{}
	}
	h := &sinkHub{lus: map[[16]byte][]*LU{}}
	hubs.m[m] = h
	m.AddSink(h)
	return h
}

func (h *sinkHub) add(lu *LU) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := lu.vol.NGUID
	h.lus[v] = append(h.lus[v], lu)
}

func (h *sinkHub) remove(lu *LU) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := lu.vol.NGUID
	l := h.lus[v]
	for i, x := range l {
		if x == lu {
			l = append(l[:i:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(h.lus, v)
		return
	}
	h.lus[v] = l
}

func (h *sinkHub) volumeLUs(vol [16]byte) []*LU {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*LU(nil), h.lus[vol]...)
}

// Notify turns reservation notices into unit attentions on the nexuses each notice's
// subject covers (manager.Sink). It runs on the manager's goroutine and only queues:
// the nexus queues are safe from any goroutine.
func (h *sinkHub) Notify(vol [16]byte, notices []reservation.Notice) {
	for _, lu := range h.volumeLUs(vol) {
		ignoreISID := lu.vol.State().IgnoreISID
		for _, nx := range lu.nexusList() {
			for _, n := range notices {
				if n.To.Covers(nx.id, ignoreISID) {
					asc, ascq := n.Kind.SCSIUnitAttention()
					nx.raise(scsi.SenseCode(asc)<<8 | scsi.SenseCode(ascq))
				}
			}
		}
	}
}

// Drain aborts the tasks of the preempted subjects on vol (PREEMPT AND ABORT,
// manager.Sink) and calls done once none is left in flight: tasks that have not reached
// the bdev or wait for the manager end at once with TASK ABORTED; those inside the bdev
// are waited out (they cannot be recalled) and then end the same way. The PREEMPT AND
// ABORT being decided is not aborted (SPC-4 §5.13.11.2.4).
func (h *sinkHub) Drain(vol [16]byte, subjects []reservation.Subject, done func()) {
	lus := h.volumeLUs(vol)
	var left atomic.Int32
	left.Store(int32(len(lus)) + 1)
	ack := func() {
		if left.Add(-1) == 0 {
			done()
		}
	}
	for _, lu := range lus {
		ignoreISID := lu.vol.State().IgnoreISID
		match := func(t *Task) AbortReason {
			x := &t.x
			if x.state == taskStateManager && x.cdb.Opcode == scsi.OpPersistentReserveOut &&
				scsi.PROutAction(x.cdb.ServiceAction) == scsi.PROutPreemptAndAbort {
				return NotAborted
			}
			for _, s := range subjects {
				if s.Covers(t.Nexus.id, ignoreISID) {
					return AbortedByOther
				}
			}
			return NotAborted
		}
		lu.abortEverywhere(match, ack)
	}
	ack()
}

// abortEverywhere runs abortTasks(match) on every channel of the LU, each on its
// reactor, and calls done (on whichever goroutine finishes last) once every channel
// has no aborted task left.
func (lu *LU) abortEverywhere(match func(*Task) AbortReason, done func()) {
	chans := lu.channels()
	var left atomic.Int32
	left.Store(int32(len(chans)) + 1)
	ack := func() {
		if left.Add(-1) == 0 {
			done()
		}
	}
	for _, ch := range chans {
		if ch.r.Post(func() { ch.abortTasks(match, ack) }) != nil {
			ack() // a stopped reactor has no task to wait for
		}
	}
	ack()
}

// abortTasks marks the tasks match selects, ends those that can end now, and calls done
// once no aborted task is left on the channel.
//
// Preconditions: on the channel's reactor.
func (ch *Channel) abortTasks(match func(*Task) AbortReason, done func()) {
	for t := ch.head; t != nil; t = t.x.next {
		if why := match(t); why != NotAborted && t.x.abort == NotAborted {
			t.x.abort = why
		}
	}
	// Ending a task runs its Done, which may execute or end others: rescan each time.
	for {
		var victim *Task
		for t := ch.head; t != nil; t = t.x.next {
			if t.x.abort != NotAborted && (t.x.state == taskStateBlocked ||
				t.x.state == taskStateManager || t.x.state == taskStateSanitize ||
				t.x.state == taskStateLossWait) {
				victim = t
				break
			}
		}
		if victim == nil {
			break
		}
		ch.abortTask(victim, victim.x.abort)
	}
	if !ch.anyAborting() {
		done()
		return
	}
	ch.waiters = append(ch.waiters, done)
}

// Reset is LOGICAL UNIT RESET (SAM-5 §7.7), forwarded by the transport from nexus
// from (nil for a target reset). It aborts every task of the LU on every reactor (the
// requester's silently, the others' with TASK ABORTED, TAS=1), waits for those inside
// the bdev, ends SCSI-2 reservations through the manager (reservation.ClearSCSI2;
// persistent reservations stay, SPC-4 §5.13.1), and establishes POWER ON, RESET, OR BUS
// DEVICE RESET OCCURRED on every nexus of the LU, the requester's included (libiscsi
// MultipathIO.Reset expects it on every path; 29h/00h rather than 29h/03h because its
// RESERVE(6) helpers accept only that one). done runs on r once all of it is done.
//
// Preconditions: on r (the manager answers there). Control path: it allocates.
func (lu *LU) Reset(r *reactor.Reactor, from *Nexus, done func()) {
	for _, nx := range lu.nexusList() {
		nx.raiseReset()
	}
	var left atomic.Int32
	left.Store(2)
	ack := func() {
		if left.Add(-1) == 0 {
			if r.Post(done) != nil {
				done()
			}
		}
	}
	lu.abortEverywhere(func(t *Task) AbortReason {
		if from != nil && t.Nexus == from {
			return AbortedByNexus
		}
		return AbortedByOther
	}, ack)
	if lu.mgr == nil {
		ack()
		return
	}
	cmd := reservation.Command{Action: reservation.ClearSCSI2}
	if from != nil {
		cmd.From = from.id
	}
	lu.mgr.Submit(r, lu.vol, cmd, func(reservation.Result, error) { ack() })
}
