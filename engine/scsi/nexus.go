package scsi

import (
	"sync"
	"sync/atomic"

	"sluice/engine/proto/scsi"
	"sluice/engine/reservation"
)

// uaDepth bounds a nexus's queued unit attentions. SAM-5 §5.14 lets a logical unit
// that cannot queue another report the one it has; the set a block LU raises (reset,
// mode, reservation, LUN inventory, capacity) fits with room to spare.
const uaDepth = 8

// Nexus is an I_T_L nexus: one I_T nexus (an iSCSI session on a target port) as seen
// by one LU. It holds what SAM-5 keeps per nexus: the unit attention queue. The
// per-command check is one atomic load; the queue behind it is touched only while a
// unit attention is pending, under mu, so a nexus is safe for every reactor one
// session's connections run on and for the reservation manager's notices.
type Nexus struct {
	lu    *LU
	id    reservation.Identity
	hasUA atomic.Bool

	mu    sync.Mutex
	queue [uaDepth]scsi.SenseCode // +checklocks:mu; oldest first
	n     int                     // +checklocks:mu
	lost  bool                    // +checklocks:mu
}

// Nexus returns the LU's state for the I_T nexus id, making it on first use with
// POWER ON, RESET, OR BUS DEVICE RESET OCCURRED pending (SAM-5 §5.14: the first command
// of a new nexus learns that the LU's state may have changed since it last looked).
// The same identity gets the same Nexus until it is Lost. Control path: it locks.
func (lu *LU) Nexus(id reservation.Identity) *Nexus {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	if nx := lu.nexuses[id]; nx != nil {
		return nx
	}
	nx := &Nexus{lu: lu, id: id}
	nx.queue[0], nx.n = scsi.ASCPowerOnResetOrBusDeviceReset, 1
	nx.hasUA.Store(true)
	lu.nexuses[id] = nx
	return nx
}

// Identity is the nexus's reservation identity.
func (nx *Nexus) Identity() reservation.Identity { return nx.id }

// LU is the logical unit of the nexus.
func (nx *Nexus) LU() *LU { return nx.lu }

// Lost ends the I_T nexus (logout, connection loss, session reinstatement): the LU
// forgets it, and the reservation manager hears reservation.NexusLost, which ends a
// SCSI-2 reservation the nexus held (SPC-2 §5.5.1; libiscsi Reserve6.Logout and
// .ITNexusLoss). Persistent reservations stay. Until the manager has answered, the
// LU's commands that a reservation could refuse wait for it (Channel.admit), so that no
// command after the loss is refused by the reservation the loss ended (libiscsi
// Sanitize.Reservations leaves a RESERVE(6) that its logout must end before the next
// suite's TEST UNIT READY). Safe from any goroutine; idempotent. The transport ends
// the nexus's tasks itself (they complete or it aborts them).
func (nx *Nexus) Lost() {
	nx.mu.Lock()
	was := nx.lost
	nx.lost = true
	nx.mu.Unlock()
	if was {
		return
	}
	lu := nx.lu
	lu.mu.Lock()
	if lu.nexuses[nx.id] == nx {
		delete(lu.nexuses, nx.id)
	}
	lu.mu.Unlock()
	if lu.mgr != nil {
		lu.lossPending.Add(1)
		cmd := reservation.Command{Action: reservation.NexusLost, From: nx.id}
		lu.mgr.Submit(lu.cfg.Home, lu.vol, cmd, func(reservation.Result, error) { lu.lossDecided() })
	}
}

// lossDecided counts a nexus loss the manager answered (it published the state first);
// after the last one pending, every channel resumes the commands that waited for it.
func (lu *LU) lossDecided() {
	if lu.lossPending.Add(-1) != 0 {
		return
	}
	for _, ch := range lu.channels() {
		_ = ch.r.Send(resumeLossWaitersMsg, ch) // a stopped reactor has no task left
	}
}

// raise queues a unit attention, once per kind: a second one of a kind already queued
// says nothing new.
func (nx *Nexus) raise(code scsi.SenseCode) {
	nx.mu.Lock()
	defer nx.mu.Unlock()
	for i := 0; i < nx.n; i++ {
		if nx.queue[i] == code {
			return
		}
	}
	if nx.n == uaDepth {
		return
	}
	nx.queue[nx.n] = code
	nx.n++
	nx.hasUA.Store(true)
}

// raiseReset queues a reset's unit attention in place of everything pending: SAM-5
// §5.14 gives a reset precedence, and what was pending is part of what it reset.
func (nx *Nexus) raiseReset() {
	nx.mu.Lock()
	defer nx.mu.Unlock()
	nx.queue[0], nx.n = scsi.ASCPowerOnResetOrBusDeviceReset, 1
	nx.hasUA.Store(true)
}

// clearCode drops a pending unit attention of kind code: the command that reports
// what it was about has answered it (REPORT LUNS and REPORTED LUNS DATA HAS CHANGED,
// SPC-4 §6.33).
func (nx *Nexus) clearCode(code scsi.SenseCode) {
	if !nx.hasUA.Load() {
		return
	}
	nx.mu.Lock()
	defer nx.mu.Unlock()
	for i := 0; i < nx.n; i++ {
		if nx.queue[i] == code {
			copy(nx.queue[i:], nx.queue[i+1:nx.n])
			nx.n--
			break
		}
	}
	nx.hasUA.Store(nx.n > 0)
}

// take removes and returns the oldest unit attention.
func (nx *Nexus) take() (scsi.SenseCode, bool) {
	if !nx.hasUA.Load() {
		return 0, false
	}
	nx.mu.Lock()
	defer nx.mu.Unlock()
	if nx.n == 0 {
		return 0, false
	}
	code := nx.queue[0]
	copy(nx.queue[:], nx.queue[1:nx.n])
	nx.n--
	nx.hasUA.Store(nx.n > 0)
	return code, true
}

// UnitAttentions returns the pending unit attentions, oldest first, for diagnostics
// and tests. It allocates.
func (nx *Nexus) UnitAttentions() []scsi.SenseCode {
	nx.mu.Lock()
	defer nx.mu.Unlock()
	return append([]scsi.SenseCode(nil), nx.queue[:nx.n]...)
}

// raiseAll queues a unit attention on every nexus of the LU but except (which may be
// nil).
func (lu *LU) raiseAll(code scsi.SenseCode, except *Nexus) {
	for _, nx := range lu.nexusList() {
		if nx != except {
			nx.raise(code)
		}
	}
}

// nexusList returns a snapshot of the LU's nexuses.
func (lu *LU) nexusList() []*Nexus {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	out := make([]*Nexus, 0, len(lu.nexuses))
	for _, nx := range lu.nexuses {
		out = append(out, nx)
	}
	return out
}
