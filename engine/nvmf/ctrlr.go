package nvmf

import (
	"sync/atomic"

	"sluice/engine/bdev"
	"sluice/engine/proto/nvme"
	"sluice/engine/reservation"
)

// qpair is the queue-pair half of a connection: which controller and queue it is,
// its submission-queue head, and its bdev channels.
type qpair struct {
	ctrlr     *Ctrlr
	subsys    *Subsystem
	qid       uint16
	sqsize    uint16 // entries
	sqhd      uint16
	sqflowOff bool
	stats     *subsysStats
	chans     []nsChan // index NSID-1
}

type nsChan struct {
	ns *Namespace
	ch *bdev.Channel
}

// channel returns the bdev channel for nsid on this queue's reactor, opening it on
// first use and reopening it when the namespace behind the NSID changed.
//
// Preconditions: on the connection's reactor.
func (c *tcpConn) channel(nsid uint32) (*Namespace, *bdev.Channel) {
	qp := &c.qp
	ns := qp.subsys.namespaces().get(nsid)
	if ns == nil {
		return nil, nil
	}
	i := nsid - 1
	if int(i) >= len(qp.chans) {
		n := make([]nsChan, qp.subsys.maxNS)
		copy(n, qp.chans)
		qp.chans = n
	}
	e := &qp.chans[i]
	if e.ns == ns {
		return ns, e.ch
	}
	if e.ch != nil {
		e.ch.Put()
		*e = nsChan{}
	}
	ch, err := ns.Bdev.GetChannel(c.pg.r)
	if err != nil {
		c.pg.t.log.Warn("nvmf: cannot open bdev channel", "bdev", ns.Bdev.Name(), "err", err)
		return nil, nil
	}
	*e = nsChan{ns: ns, ch: ch}
	return ns, ch
}

// dropNamespace releases the queue's channel for a removed namespace.
func (c *tcpConn) dropNamespace(ns *Namespace) {
	i := int(ns.ID) - 1
	if i < len(c.qp.chans) && c.qp.chans[i].ns == ns {
		c.qp.chans[i].ch.Put()
		c.qp.chans[i] = nsChan{}
	}
}

// detach releases the queue's channels and tells its controller that the queue is
// gone. The admin queue's loss destroys the controller.
func (qp *qpair) detach(c *tcpConn) {
	for i := range qp.chans {
		if qp.chans[i].ch != nil {
			qp.chans[i].ch.Put()
		}
	}
	qp.chans = nil
	ctrlr := qp.ctrlr
	if ctrlr == nil {
		return
	}
	qp.ctrlr = nil
	if qp.qid == 0 {
		ctrlr.destroy("admin queue closed")
		return
	}
	qid := qp.qid
	_ = ctrlr.pg.r.Post(func() { ctrlr.ioQueueGone(qid, c) })
}

// features holds the controller's Set Features state.
type features struct {
	arbitration   uint32
	powerMgmt     uint32
	tempThreshold uint32
	errRecovery   uint32
	irqCoalescing uint32
	writeAtomic   uint32
	asyncEvents   uint32
}

const (
	aerLimit     = 4  // outstanding AERs (AERL+1)
	errLogLen    = 64 // error log entries kept (ELPE+1)
	maxChangedNS = 1024
	kasUnitMs    = 100 // Identify KAS granularity
	// discoveryKATOMs is the keep-alive a discovery controller gets when its host asks
	// for none (SPDK's and nvmet's default).
	discoveryKATOMs = 120_000
	nvmeVersion     = 0x00010300
)

// Ctrlr is one NVMe controller: created by an admin-queue Connect, owned by that
// queue's reactor, destroyed when the admin queue goes away or keep-alive expires.
type Ctrlr struct {
	t       *Target
	subsys  *Subsystem
	pg      *pollGroup
	cntlid  uint16
	hostNQN string
	hostID  [16]byte
	resvID  reservation.Identity // the host identifier as reservations know it
	admin   *tcpConn
	ioqs    []*tcpConn // index qid

	numIOQ  uint16 // granted by Set Features 07h
	ioqSet  bool
	cc      nvme.CC
	csts    nvme.CSTS
	katoMs  uint32
	lastKA  int64
	feat    features
	wceOff  atomic.Bool // host disabled the volatile write cache: writes become FUA
	dead    bool
	closing int // I/O queues being torn down by a reset or shutdown

	aers      []*request
	events    []uint32 // pending async event completions (CQE DW0)
	changedNS []uint32
	nsOver    bool // more than maxChangedNS changed
	nsMasked  bool // a namespace notice was sent and the log not yet read

	errLog   [errLogLen]nvme.ErrorLogEntry
	errCount uint64
	errNext  int

	resvLog resvNotices
}

func newCtrlr(t *Target, s *Subsystem, c *tcpConn, hostNQN string, hostID [16]byte, katoMs uint32) *Ctrlr {
	ctrlr := &Ctrlr{t: t, subsys: s, pg: c.pg, hostNQN: hostNQN, hostID: hostID, admin: c,
		resvID: reservation.NVMeHost(hostID), resvLog: resvNotices{masks: map[uint32]uint32{}},
		ioqs: make([]*tcpConn, t.opts.MaxIOQPairsPerCtrlr+1), katoMs: katoMs, lastKA: c.pg.r.Now()}
	ctrlr.numIOQ = t.opts.MaxIOQPairsPerCtrlr
	ctrlr.feat.asyncEvents = 0
	return ctrlr
}

// hostLabel names a host for logs: an empty host NQN is an anonymous host.
func hostLabel(nqn string) string {
	if nqn == "" {
		return "(anonymous)"
	}
	return nqn
}

// checkKeepAlive destroys the controller when the host missed its keep-alive.
func (ctrlr *Ctrlr) checkKeepAlive(now int64) {
	if ctrlr.dead || ctrlr.katoMs == 0 {
		return
	}
	if now-ctrlr.lastKA > int64(ctrlr.katoMs)*1e6 {
		ctrlr.t.counters.keepAliveTimeouts.Add(1)
		ctrlr.t.log.Warn("nvmf: keep-alive timeout, destroying controller",
			"subnqn", ctrlr.subsys.nqn, "cntlid", ctrlr.cntlid, "hostnqn", hostLabel(ctrlr.hostNQN), "kato_ms", ctrlr.katoMs)
		ctrlr.destroy("keep-alive timeout")
	}
}

// destroy tears the controller down: it leaves the subsystem at once (so a host can
// reconnect), and every queue is closed.
//
// Preconditions: on ctrlr.pg.r.
func (ctrlr *Ctrlr) destroy(reason string) {
	if ctrlr.dead {
		return
	}
	ctrlr.dead = true
	ctrlr.subsys.removeCtrlr(ctrlr)
	delete(ctrlr.pg.ctrlrs, ctrlr)
	ctrlr.closeIOQueues(reason)
	ctrlr.aers = nil
	if a := ctrlr.admin; a != nil && a.state != connStateClosed {
		a.beginClose(reason)
	}
}

// closeIOQueues asks each I/O queue's reactor to close it. Each reports back with
// ioQueueGone.
func (ctrlr *Ctrlr) closeIOQueues(reason string) {
	for _, q := range ctrlr.ioqs {
		if q == nil {
			continue
		}
		q := q
		ctrlr.closing++
		_ = q.pg.r.Post(func() { q.beginClose(reason) })
	}
}

// ioQueueGone runs on the controller's reactor when an I/O queue has closed.
func (ctrlr *Ctrlr) ioQueueGone(qid uint16, c *tcpConn) {
	if int(qid) < len(ctrlr.ioqs) && ctrlr.ioqs[qid] == c {
		ctrlr.ioqs[qid] = nil
		if ctrlr.closing > 0 {
			ctrlr.closing--
			if ctrlr.closing == 0 {
				ctrlr.queuesClosed()
			}
		}
	}
}

// queuesClosed finishes a reset (CC.EN 1→0) or a shutdown notification once every I/O
// queue is gone: the host polls CSTS for it.
func (ctrlr *Ctrlr) queuesClosed() {
	if ctrlr.dead {
		return
	}
	if ctrlr.cc.SHN != 0 {
		ctrlr.csts.SHST = nvme.SHSTComplete
	}
	if !ctrlr.cc.EN {
		ctrlr.csts.RDY = false
	}
}

// addIOQueue runs on the controller's reactor for an I/O-queue Connect.
func (ctrlr *Ctrlr) addIOQueue(qid uint16, c *tcpConn) nvme.Status {
	switch {
	case ctrlr.dead:
		return nvme.StatusConnectInvalidParameters.WithDNR()
	case !ctrlr.csts.RDY || ctrlr.cc.SHN != 0 || ctrlr.closing > 0:
		return nvme.StatusCommandSequenceError
	case ctrlr.cc.IOSQES != 6 || ctrlr.cc.IOCQES != 4:
		// The host never set the entry sizes (SPDK refuses the same).
		return nvme.StatusConnectInvalidParameters.WithDNR()
	case int(qid) >= len(ctrlr.ioqs):
		// Bounded by the transport's queue limit, not by the Set Features grant:
		// SPDK and nvmet do the same, and a host that asked for fewer may still add.
		return nvme.StatusConnectInvalidParameters.WithDNR()
	case ctrlr.ioqs[qid] != nil:
		return nvme.StatusConnectInvalidParameters.WithDNR()
	}
	ctrlr.ioqs[qid] = c
	return nvme.StatusSuccess
}

// commandFailed records a failed command in the error log and the health counters.
// It allocates nothing: an I/O queue on another reactor than its controller hands the
// entry over through its SPSC ring and one preallocated message.
func (c *tcpConn) commandFailed(r *request, st nvme.Status) {
	if st.SCT() == nvme.SCTMediaError && c.qp.stats != nil {
		c.qp.stats.mediaErrors.Add(1)
	}
	ctrlr := c.qp.ctrlr
	if ctrlr == nil {
		return
	}
	e := errEntry(r, st, c.qp.qid)
	if ctrlr.pg == c.pg {
		ctrlr.logError(e)
		return
	}
	if !c.errq.Push(e) {
		c.errLost++ // the controller's reactor is behind; the log is best effort
		return
	}
	if !c.errPending.Swap(true) {
		if ctrlr.pg.r.Send(c.forwardFn, ctrlr) != nil {
			c.errPending.Store(false)
		}
	}
}

// forwardErrors drains the connection's error ring into its controller's log, on the
// controller's reactor.
func (c *tcpConn) forwardErrors(arg any) {
	ctrlr := arg.(*Ctrlr)
	c.errPending.Store(false)
	for {
		e, ok := c.errq.Pop()
		if !ok {
			return
		}
		if !ctrlr.dead {
			ctrlr.logError(e)
		}
	}
}

func errEntry(r *request, st nvme.Status, qid uint16) nvme.ErrorLogEntry {
	e := nvme.ErrorLogEntry{SQID: qid, CID: r.sqe.CID(), Status: st, PEL: 0xFFFF, NSID: r.sqe.NSID()}
	if op := r.sqe.Opcode(); qid != 0 && (op == uint8(nvme.NVMRead) || op == uint8(nvme.NVMWrite)) {
		e.LBA = r.sqe.SLBA()
	}
	return e
}

func (ctrlr *Ctrlr) logError(e nvme.ErrorLogEntry) {
	ctrlr.errCount++
	e.ErrorCount = ctrlr.errCount
	ctrlr.errLog[ctrlr.errNext] = e
	ctrlr.errNext = (ctrlr.errNext + 1) % errLogLen
}

// notifyNSChanged records a namespace change and raises the Namespace Attribute
// Changed notice if the host enabled it and is not yet told.
//
// Preconditions: on ctrlr.pg.r.
func (ctrlr *Ctrlr) notifyNSChanged(nsid uint32) {
	if ctrlr.dead {
		return
	}
	if !ctrlr.nsOver {
		found := false
		for _, id := range ctrlr.changedNS {
			if id == nsid {
				found = true
				break
			}
		}
		if !found {
			if len(ctrlr.changedNS) == maxChangedNS {
				ctrlr.nsOver = true
			} else {
				ctrlr.changedNS = append(ctrlr.changedNS, nsid)
			}
		}
	}
	if ctrlr.feat.asyncEvents&nvme.AECNSAttribute == 0 || ctrlr.nsMasked {
		return
	}
	ctrlr.nsMasked = true
	ctrlr.raiseEvent(nvme.AENNSAttributeChanged.DW0())
}

func (ctrlr *Ctrlr) raiseEvent(dw0 uint32) {
	ctrlr.events = append(ctrlr.events, dw0)
	ctrlr.deliverEvents()
}

// deliverEvents completes parked AERs with pending events.
func (ctrlr *Ctrlr) deliverEvents() {
	for len(ctrlr.events) > 0 && len(ctrlr.aers) > 0 {
		r := ctrlr.aers[0]
		ctrlr.aers = ctrlr.aers[1:]
		dw0 := ctrlr.events[0]
		ctrlr.events = ctrlr.events[1:]
		if r.state != reqStateAwaitEvent {
			continue
		}
		r.state = reqStateExecuting
		r.cqe.SetDW0(dw0)
		r.complete(nvme.StatusSuccess)
	}
}
