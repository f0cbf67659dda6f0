package nvmf

import (
	"errors"
	"sync"
	"time"

	"sluice/engine/proto/nvme"
	"sluice/engine/reactor"
	"sluice/engine/reservation"
	"sluice/engine/reservation/manager"
)

// NVMe reservations (Base "Reservations", NVM command set Reservation Register/Report/
// Acquire/Release), served through the node's reservation manager: commands go on its
// control ring and come back decided; I/O checks the volume's published snapshot.
// Registrations belong to the 128-bit host identifier from Connect, shared by all of a
// host's controllers and outliving them (nvmet's pr.c model).

// resvAccess classifies an I/O opcode for the conflict check (nvmet's and SPDK's
// groups: Flush, Write Zeroes and Dataset Management write).
func resvAccess(op nvme.NVMOpcode) reservation.Access {
	if op == nvme.NVMRead {
		return reservation.AccessRead
	}
	return reservation.AccessWrite
}

// resvAllows is the I/O path's conflict check: one nil test when the volume has no
// reservation, an allocation-free scan of the registrants otherwise.
//
// Preconditions: on the connection's reactor.
func (c *tcpConn) resvAllows(ns *Namespace, op nvme.NVMOpcode) bool {
	if ns.vol == nil {
		return true
	}
	v := ns.vol.View()
	return v == nil || v.Allows(c.qp.ctrlr.resvID, resvAccess(op))
}

// execResv runs a reservation command from an I/O queue.
func (c *tcpConn) execResv(r *request, ns *Namespace, op nvme.NVMOpcode) {
	if ns.vol == nil {
		r.complete(nvme.StatusInvalidOpcode.WithDNR())
		return
	}
	if op == nvme.NVMReservationReport {
		r.complete(c.resvReport(r, ns))
		return
	}
	cmd, st := c.resvCommand(r, op)
	if !st.Success() {
		r.complete(st)
		return
	}
	c.submitResv(r, ns.vol, cmd)
}

// resvCommand decodes Register, Acquire or Release (their data: 16, 16 and 8 bytes).
func (c *tcpConn) resvCommand(r *request, op nvme.NVMOpcode) (reservation.Command, nvme.Status) {
	id := c.qp.ctrlr.resvID
	bad := nvme.StatusDataSGLLengthInvalid.WithDNR()
	switch op {
	case nvme.NVMReservationRegister:
		d, err := nvme.DecodeResvRegisterData(r.data)
		if err != nil || r.dir != nvme.DirHostToCtrl {
			return reservation.Command{}, bad
		}
		return reservation.NVMeRegisterCommand(id, nvme.DecodeResvRegister(&r.sqe), d), nvme.StatusSuccess
	case nvme.NVMReservationAcquire:
		d, err := nvme.DecodeResvAcquireData(r.data)
		if err != nil || r.dir != nvme.DirHostToCtrl {
			return reservation.Command{}, bad
		}
		return reservation.NVMeAcquireCommand(id, nvme.DecodeResvAcquire(&r.sqe), d), nvme.StatusSuccess
	default:
		d, err := nvme.DecodeResvReleaseData(r.data)
		if err != nil || r.dir != nvme.DirHostToCtrl {
			return reservation.Command{}, bad
		}
		return reservation.NVMeReleaseCommand(id, nvme.DecodeResvRelease(&r.sqe), d), nvme.StatusSuccess
	}
}

// submitResv hands a decided-elsewhere command to the manager; the answer comes back
// to this reactor. The request stays executing meanwhile, so its connection waits for
// it before closing.
func (c *tcpConn) submitResv(r *request, vol *manager.Volume, cmd reservation.Command) {
	r.state = reqStateExecuting
	c.pg.t.resv.Submit(c.pg.r, vol, cmd, func(res reservation.Result, err error) {
		r.complete(resvStatus(res, err))
	})
}

// resvStatus maps a decision to NVMe. A refusal the host may retry (the backup group
// leader not synchronized, no group leader) is Command Interrupted with DNR clear: the
// Linux host does not read it as fencing, as it would Reservation Conflict.
func resvStatus(res reservation.Result, err error) nvme.Status {
	switch {
	case errors.Is(err, manager.ErrRetryable):
		return nvme.StatusCommandInterrupted
	case err != nil:
		return nvme.StatusInternalError
	}
	return res.Status.NVMe()
}

// resvReport answers Reservation Report from the volume's published state.
func (c *tcpConn) resvReport(r *request, ns *Namespace) nvme.Status {
	f := nvme.DecodeResvReport(&r.sqe)
	if r.dir != nvme.DirCtrlToHost || uint64(len(r.data)) < f.Len() {
		return nvme.StatusDataSGLLengthInvalid.WithDNR()
	}
	st := ns.vol.State()
	h, regs, s := st.NVMeReport(f.EDS)
	if !s.Success() {
		return s
	}
	full := make([]byte, nvme.ResvStatusDataLen(len(regs), true))
	if err := nvme.MarshalResvStatusExt(full, h, regs); err != nil {
		return nvme.StatusInternalError
	}
	clear(r.data)
	copy(r.data[:f.Len()], full)
	return nvme.StatusSuccess
}

// resvNotices is a controller's Reservation Notification log: a bounded FIFO of pages
// and the count of pages ever logged (Base: Log Page Count increments per page; pages
// the host did not read in time are lost, which the jump in the count shows).
type resvNotices struct {
	count   uint64
	pages   []nvme.ResvNotifLog
	masks   map[uint32]uint32 // feature 82h per NSID; 0xFFFFFFFF: the controller default
	aenSent bool              // a Reservation Log Page Available event awaits a read
}

// resvLogDepth bounds a controller's unread notification pages.
const resvLogDepth = 64

func (n *resvNotices) mask(nsid uint32) uint32 {
	if m, ok := n.masks[nsid]; ok {
		return m
	}
	return n.masks[0xFFFFFFFF]
}

// notifyResv logs a notice for nsid unless the host masked it, and raises the event.
//
// Preconditions: on ctrlr.pg.r.
func (ctrlr *Ctrlr) notifyResv(nsid uint32, logType uint8) {
	n := &ctrlr.resvLog
	if m, _ := nvme.DecodeResvNotifMask(n.mask(nsid)); m.Masks(logType) {
		return
	}
	n.count++
	if len(n.pages) == resvLogDepth {
		copy(n.pages, n.pages[1:])
		n.pages = n.pages[:resvLogDepth-1]
	}
	n.pages = append(n.pages, nvme.ResvNotifLog{Count: n.count, Type: logType, NSID: nsid})
	if !n.aenSent {
		n.aenSent = true
		ctrlr.raiseEvent(nvme.AENReservationLogAvailable.DW0())
	}
}

// resvLogPage returns the oldest unread page and consumes it (RAE keeps the event
// masked but the page is still consumed: each read returns the next one).
func (ctrlr *Ctrlr) resvLogPage(rae bool) [nvme.ResvNotifLogLen]byte {
	n := &ctrlr.resvLog
	var p nvme.ResvNotifLog
	if len(n.pages) > 0 {
		p = n.pages[0]
		n.pages = n.pages[1:]
		p.Available = uint8(min(len(n.pages), 255))
	}
	if len(n.pages) == 0 && !rae {
		n.aenSent = false
	}
	var b [nvme.ResvNotifLogLen]byte
	p.MarshalTo(&b)
	return b
}

// Notify delivers reservation notices to the NVMe hosts' controllers (manager.Sink).
func (t *Target) Notify(vol [16]byte, notices []reservation.Notice) {
	for _, pg := range t.pgs {
		pg := pg
		_ = pg.r.Post(func() {
			for ctrlr := range pg.ctrlrs {
				ctrlr.deliverResvNotices(vol, notices)
			}
		})
	}
}

func (ctrlr *Ctrlr) deliverResvNotices(vol [16]byte, notices []reservation.Notice) {
	if ctrlr.dead || ctrlr.subsys.discovery {
		return
	}
	for _, nsid := range ctrlr.subsys.namespaces().active {
		ns := ctrlr.subsys.namespaces().get(nsid)
		if ns.vol == nil || ns.vol.NGUID != vol {
			continue
		}
		for _, n := range notices {
			if n.To.Covers(ctrlr.resvID, false) {
				ctrlr.notifyResv(nsid, n.Kind.NVMeLogType())
			}
		}
	}
}

// Drain waits until the preempted hosts have no command in flight on the volume on any
// reactor (manager.Sink): their new commands are refused already (the snapshot is
// installed), and those inside a bdev cannot be recalled, so Preempt and Abort is
// answered once they are done, as nvmet does.
func (t *Target) Drain(vol [16]byte, subjects []reservation.Subject, done func()) {
	var wg sync.WaitGroup
	for _, pg := range t.pgs {
		pg := pg
		wg.Add(1)
		if pg.r.Post(func() { pg.drainResv(vol, subjects, wg.Done) }) != nil {
			wg.Done()
		}
	}
	go func() { wg.Wait(); done() }()
}

// drainResv calls done once no connection of the subjects' hosts on this reactor has a
// command executing on vol, checking each millisecond.
func (pg *pollGroup) drainResv(vol [16]byte, subjects []reservation.Subject, done func()) {
	if !pg.busyFor(vol, subjects) {
		done()
		return
	}
	var poller *reactor.Poller
	poller = pg.r.AddTimedPoller("nvmf_resv_drain", time.Millisecond, func() bool {
		if pg.busyFor(vol, subjects) {
			return false
		}
		pg.r.RemovePoller(poller)
		done()
		return true
	})
}

func (pg *pollGroup) busyFor(vol [16]byte, subjects []reservation.Subject) bool {
	for c := range pg.conns {
		ctrlr := c.qp.ctrlr
		if ctrlr == nil || c.qp.qid == 0 || !coveredBy(ctrlr.resvID, subjects) {
			continue
		}
		for i := range c.reqs {
			r := &c.reqs[i]
			if r.state == reqStateExecuting && r.ns != nil && r.ns.vol != nil && r.ns.vol.NGUID == vol {
				return true
			}
		}
	}
	return false
}

func coveredBy(id reservation.Identity, subjects []reservation.Subject) bool {
	for _, s := range subjects {
		if s.Covers(id, false) {
			return true
		}
	}
	return false
}

// statusPending is what an executor returns when it answered nothing yet: the command
// went to the reservation manager and completes when the decision comes back. It is
// not a status any command completes with (SCT 7, vendor specific, all ones).
const statusPending = nvme.Status(0x7FFF)
