package nvmf

import (
	"errors"

	"sluice/engine/proto/nvme"
	"sluice/engine/reactor"
)

// execFabrics runs a Fabrics command (opcode 7Fh).
func (c *tcpConn) execFabrics(r *request) {
	switch r.sqe.FCTYPE() {
	case nvme.FCTConnect:
		c.execConnect(r)
	case nvme.FCTPropertyGet, nvme.FCTPropertySet:
		if c.qp.ctrlr == nil {
			r.complete(nvme.StatusCommandSequenceError.WithDNR())
			return
		}
		if c.qp.qid != 0 {
			r.complete(nvme.StatusInvalidField.WithDNR())
			return
		}
		c.qp.ctrlr.touchKeepAlive()
		if r.sqe.FCTYPE() == nvme.FCTPropertyGet {
			r.complete(c.qp.ctrlr.propertyGet(r))
		} else {
			r.complete(c.qp.ctrlr.propertySet(r))
		}
	case nvme.FCTDisconnect:
		if c.qp.ctrlr == nil {
			r.complete(nvme.StatusCommandSequenceError.WithDNR())
			return
		}
		// Close once the answer is out; the queue leaves its controller on close.
		c.closeOut = true
		c.reason = "host sent Disconnect"
		r.complete(nvme.StatusSuccess)
		c.state = connStateDraining
		c.stopReading()
	default:
		// Authentication (TP 8006) is not offered: Connect never sets AUTHREQ.
		r.complete(nvme.StatusInvalidOpcode.WithDNR())
	}
}

// connectFail answers a Connect with Invalid Parameters pointing at the bad field.
func connectFail(r *request, ipo uint16, iattr uint8) {
	r.cqe.SetDW0(nvme.ConnectInvalidParamDW0(ipo, iattr))
	r.complete(nvme.StatusConnectInvalidParameters.WithDNR())
}

// SQE offsets of Connect fields, for IPO.
const (
	ipoRECFMT = 40
	ipoQID    = 42
	ipoSQSIZE = 44
)

func (c *tcpConn) execConnect(r *request) {
	t := c.pg.t
	if c.qp.ctrlr != nil || c.qp.subsys != nil {
		r.complete(nvme.StatusCommandSequenceError.WithDNR())
		return
	}
	if r.sqe.RECFMT() != 0 {
		r.complete(nvme.StatusConnectIncompatibleFormat.WithDNR())
		return
	}
	if r.xfer != nvme.ConnectDataLen || len(r.data) != nvme.ConnectDataLen {
		r.complete(nvme.StatusDataSGLLengthInvalid.WithDNR())
		return
	}
	cd, err := nvme.DecodeConnectData(r.data)
	if err != nil {
		var ce *nvme.ConnectDataError
		if errors.As(err, &ce) {
			connectFail(r, ce.IPO, nvme.IATTRData)
			return
		}
		connectFail(r, 0, nvme.IATTRData)
		return
	}
	s := t.subsystem(cd.SubNQN)
	if s == nil || !s.listensOn(c.listen) {
		t.log.Info("nvmf: connect to unknown subsystem or listener", "subnqn", cd.SubNQN, "peer", c.peer)
		connectFail(r, nvme.ConnectDataSubNQNOffset, nvme.IATTRData)
		c.closeAfterSend("connect to an unknown subsystem")
		return
	}
	// An empty host NQN is an anonymous host (SPDK's initiator sends one unless told
	// a name): like SPDK and nvmet, only a subsystem that allows any host admits it.
	if !s.hostAllowed(cd.HostNQN) {
		t.log.Info("nvmf: host not allowed", "subnqn", cd.SubNQN, "hostnqn", hostLabel(cd.HostNQN),
			"anonymous", cd.HostNQN == "", "peer", c.peer)
		// nvmet points at the host NQN field; SPDK leaves DW0 zero. Pointing helps.
		r.cqe.SetDW0(nvme.ConnectInvalidParamDW0(nvme.ConnectDataHostNQNOffset, nvme.IATTRData))
		r.complete(nvme.StatusConnectInvalidHost.WithDNR())
		// Disconnected at once: a refused host must not keep its connection slot.
		c.closeAfterSend("host not allowed")
		return
	}
	qid, sqsize := r.sqe.QID(), uint32(r.sqe.SQSIZE())+1
	if sqsize < 2 || sqsize > uint32(t.opts.MaxQueueDepth) {
		connectFail(r, ipoSQSIZE, nvme.IATTRCommand)
		return
	}
	sqflowOff := r.sqe.CATTR()&nvme.CATTRDisableSQFlowCtrl != 0
	if qid == 0 {
		c.connectAdmin(r, s, cd, uint16(sqsize), sqflowOff)
		return
	}
	if s.discovery {
		connectFail(r, ipoQID, nvme.IATTRCommand)
		return
	}
	c.connectIO(r, s, cd, qid, uint16(sqsize), sqflowOff)
}

func (c *tcpConn) connectAdmin(r *request, s *Subsystem, cd nvme.ConnectData, sqsize uint16, sqflowOff bool) {
	if cd.CNTLID != nvme.CNTLIDDynamic {
		connectFail(r, nvme.ConnectDataCNTLIDOffset, nvme.IATTRData)
		return
	}
	kato := roundKATO(r.sqe.KATO())
	if kato == 0 && s.discovery {
		// A discovery controller that asks for none still gets one, as with SPDK and
		// nvmet: otherwise a vanished host's discovery session would never be reaped.
		kato = discoveryKATOMs
	}
	ctrlr := newCtrlr(c.pg.t, s, c, cd.HostNQN, cd.HostID, kato)
	if err := s.addCtrlr(ctrlr); err != nil {
		r.complete(nvme.StatusConnectControllerBusy)
		return
	}
	c.pg.ctrlrs[ctrlr] = struct{}{}
	c.qp = qpair{ctrlr: ctrlr, subsys: s, qid: 0, sqsize: sqsize, sqflowOff: sqflowOff,
		stats: &s.stats[c.pg.idx]}
	c.pg.t.log.Info("nvmf: controller created", "subnqn", s.nqn, "cntlid", ctrlr.cntlid,
		"hostnqn", hostLabel(cd.HostNQN), "anonymous", cd.HostNQN == "", "peer", c.peer, "kato_ms", ctrlr.katoMs)
	r.cqe.SetDW0(nvme.ConnectSuccessDW0(ctrlr.cntlid, 0))
	c.established()
	r.complete(nvme.StatusSuccess)
}

// established takes the connection out of the listener's eviction candidates: its
// host has shown it speaks NVMe/TCP and belongs to a controller.
func (c *tcpConn) established() {
	if c.slot != nil {
		c.slot.Established()
	}
}

// connectIO joins an I/O queue to its controller, which may live on another reactor:
// the controller decides on its reactor and the answer comes back here.
func (c *tcpConn) connectIO(r *request, s *Subsystem, cd nvme.ConnectData, qid, sqsize uint16, sqflowOff bool) {
	ctrlr := s.ctrlr(cd.CNTLID)
	if ctrlr == nil {
		connectFail(r, nvme.ConnectDataCNTLIDOffset, nvme.IATTRData)
		return
	}
	if ctrlr.hostNQN != cd.HostNQN {
		connectFail(r, nvme.ConnectDataHostNQNOffset, nvme.IATTRData)
		return
	}
	// Stricter than SPDK and nvmet, on purpose: neither compares the host ID of an I/O
	// queue with its admin queue's. Every initiator known sends one host ID per
	// controller, so no host is refused; but the host ID is the reservation identity,
	// and for anonymous hosts (empty NQN) it is the only thing that keeps one host
	// from adding queues to another's controller by guessing its CNTLID.
	if ctrlr.hostID != cd.HostID {
		connectFail(r, nvme.ConnectDataHostIDOffset, nvme.IATTRData)
		return
	}
	// Claim the subsystem now so that a second Connect on this connection is refused.
	c.qp.subsys = s
	home := c.pg.r
	_ = ctrlr.pg.r.Post(func() {
		st := ctrlr.addIOQueue(qid, c)
		_ = home.Post(func() { c.connectIODone(r, ctrlr, s, qid, sqsize, sqflowOff, st) })
	})
}

func (c *tcpConn) connectIODone(r *request, ctrlr *Ctrlr, s *Subsystem, qid, sqsize uint16, sqflowOff bool, st nvme.Status) {
	if !st.Success() {
		c.qp.subsys = nil
		if st.Code() == nvme.StatusConnectInvalidParameters.Code() {
			connectFail(r, ipoQID, nvme.IATTRCommand)
			return
		}
		r.complete(st)
		return
	}
	if c.state == connStateClosed || c.state == connStateDraining {
		// The queue went away while its controller was saying yes.
		_ = ctrlr.pg.r.Post(func() { ctrlr.ioQueueGone(qid, c) })
		r.complete(nvme.StatusCommandSequenceError)
		return
	}
	c.qp = qpair{ctrlr: ctrlr, subsys: s, qid: qid, sqsize: sqsize, sqflowOff: sqflowOff,
		stats: &s.stats[c.pg.idx]}
	if ctrlr.pg != c.pg && c.errq == nil {
		c.errq = reactor.NewSPSC[nvme.ErrorLogEntry](errForwardRing)
		c.forwardFn = c.forwardErrors
	}
	r.cqe.SetDW0(nvme.ConnectSuccessDW0(ctrlr.cntlid, 0))
	c.established()
	r.complete(nvme.StatusSuccess)
}

// errForwardRing bounds the failed-command entries in transit to a controller on
// another reactor.
const errForwardRing = 64

// capValue is the CAP property (Base §3.1.1): queue size, contiguous queues required,
// a ready timeout, the NVM command set, and 4 KiB pages only.
func (ctrlr *Ctrlr) capValue() uint64 {
	return nvme.CAP{
		MQES: ctrlr.t.opts.MaxQueueDepth - 1,
		CQR:  true,
		TO:   30, // 15 s in 500 ms units: a reset may wait for in-flight I/O
		CSS:  nvme.CSSNVM,
	}.Value()
}

func (ctrlr *Ctrlr) propertyGet(r *request) nvme.Status {
	ofst := r.sqe.PropOffset()
	size, ok := nvme.PropertySize(ofst)
	wide := r.sqe.PropAttrib()&1 != 0
	if !ok || (size == 8) != wide {
		return nvme.StatusInvalidField.WithDNR()
	}
	var v uint64
	switch ofst {
	case nvme.PropCAP:
		v = ctrlr.capValue()
	case nvme.PropVS:
		v = nvmeVersion
	case nvme.PropCC:
		v = uint64(ctrlr.cc.Value())
	case nvme.PropCSTS:
		v = uint64(ctrlr.csts.Value())
	default:
		return nvme.StatusInvalidField.WithDNR()
	}
	r.cqe.SetDW0(uint32(v))
	r.cqe.SetDW1(uint32(v >> 32))
	return nvme.StatusSuccess
}

func (ctrlr *Ctrlr) propertySet(r *request) nvme.Status {
	ofst := r.sqe.PropOffset()
	if ofst != nvme.PropCC || r.sqe.PropAttrib()&1 != 0 {
		// CC is the only writable property a fabrics controller has (NSSR is not
		// supported: CAP.NSSRS is 0).
		return nvme.StatusInvalidField.WithDNR()
	}
	return ctrlr.setCC(nvme.DecodeCC(uint32(r.sqe.PropValue())))
}

// setCC applies a CC write: enable, reset (EN 1→0) and shutdown notifications.
func (ctrlr *Ctrlr) setCC(n nvme.CC) nvme.Status {
	old := ctrlr.cc
	if n.EN && !old.EN {
		// 4 KiB pages, round robin; the NVM set (0), all supported I/O sets (6: NVM is
		// the only one) or admin only (7). Entry sizes, 64/16 bytes, are checked at I/O
		// queue Connect as SPDK does, and not at all on a discovery controller (nvmet
		// skips them there for older hosts).
		if n.MPS != 0 || n.AMS != 0 || (n.CSS != 0 && n.CSS != 6 && n.CSS != 7) {
			return nvme.StatusInvalidField.WithDNR()
		}
		if !ctrlr.subsys.discovery && ((n.IOSQES != 0 && n.IOSQES != 6) || (n.IOCQES != 0 && n.IOCQES != 4)) {
			return nvme.StatusInvalidField.WithDNR()
		}
	} else if old.EN && (n.MPS != old.MPS || n.AMS != old.AMS || n.CSS != old.CSS) {
		// These fields may change only while the controller is disabled.
		return nvme.StatusInvalidField.WithDNR()
	}
	ctrlr.cc = n
	switch {
	case n.EN && !old.EN:
		ctrlr.csts = nvme.CSTS{RDY: true}
	case !n.EN && old.EN:
		ctrlr.reset()
	}
	if n.SHN != 0 && old.SHN == 0 {
		ctrlr.csts.SHST = nvme.SHSTOccurring
		ctrlr.katoMs = 0 // a controller being shut down is not timed out
		ctrlr.startClosingQueues("shutdown notification")
	}
	return nvme.StatusSuccess
}

// reset is CC.EN 1→0: I/O queues are torn down, parked AERs end, and CSTS.RDY
// clears once the queues are gone.
func (ctrlr *Ctrlr) reset() {
	for _, r := range ctrlr.aers {
		if r.state == reqStateAwaitEvent {
			r.state = reqStateExecuting
			r.complete(nvme.StatusAbortedSQDeletion)
		}
	}
	ctrlr.aers = nil
	ctrlr.events = nil
	ctrlr.feat = features{}
	ctrlr.ioqSet = false
	ctrlr.numIOQ = ctrlr.t.opts.MaxIOQPairsPerCtrlr
	ctrlr.startClosingQueues("controller reset")
}

func (ctrlr *Ctrlr) startClosingQueues(reason string) {
	if ctrlr.closing > 0 {
		return
	}
	ctrlr.closeIOQueues(reason)
	if ctrlr.closing == 0 {
		ctrlr.queuesClosed()
	}
}

func (ctrlr *Ctrlr) touchKeepAlive() { ctrlr.lastKA = ctrlr.pg.r.Now() }
