package nvmf

import (
	"fmt"

	"sluice/engine/bdev"
	"sluice/engine/internal/invariants"
	"sluice/engine/mem"
	"sluice/engine/probe"
	"sluice/engine/proto/nvme"
)

// reqState is where a request is in its life (SPDK's tcp request states, folded).
type reqState uint8

const (
	reqStateFree            reqState = iota // on the connection's free list
	reqStateReceiving                       // capsule header seen; in-capsule data arriving
	reqStateNeedBuffer                      // waiting for a data buffer
	reqStateQuotaWait                       // a write waiting for room in the awaited-data quota
	reqStateTransferringH2C                 // R2T sent; H2CData arriving
	reqStateExecuting                       // in a command executor, a bdev or another reactor
	reqStateAwaitEvent                      // an Asynchronous Event Request parked on its controller
	reqStateCompleting                      // response queued; released once sent
)

func (s reqState) String() string {
	switch s {
	case reqStateFree:
		return "free"
	case reqStateReceiving:
		return "receiving"
	case reqStateNeedBuffer:
		return "need_buffer"
	case reqStateQuotaWait:
		return "quota_wait"
	case reqStateTransferringH2C:
		return "transferring_h2c"
	case reqStateExecuting:
		return "executing"
	case reqStateAwaitEvent:
		return "await_event"
	case reqStateCompleting:
		return "completing"
	}
	return "unknown"
}

// request is one command slot of a connection, preallocated with everything the
// command needs so that a read or write allocates nothing: the SQE and CQE, the
// response PDU headers, and the bdev I/O with its callback bound once.
type request struct {
	c     *tcpConn
	idx   uint16 // slot index; also the R2T transfer tag
	state reqState

	sqe    nvme.SQE
	cqe    nvme.CQE
	cidSet bool

	dir      nvme.Direction
	xfer     uint32  // bytes to move (SGL length)
	buf      mem.Buf // data buffer, owned until release
	data     []byte  // buf's view, len == xfer
	icd      bool    // data arrived in the capsule
	h2cDone  uint32  // H2C bytes received
	failWith uint16  // nonzero: complete with this status instead of executing
	startNs  int64   // capsule arrival
	r2tNs    int64   // R2T sent, for the data timeout
	awaited  bool    // xfer counts in the connection's awaited-data quota
	ns       *Namespace
	io       bdev.IO
	dsmNext  int // next Dataset Management range to deallocate
	dsmCount int
	// busyCounted: the command counts as outstanding for Controller Busy Time.
	busyCounted bool

	pduHdr [nvme.TermReqHLen + nvme.DigestLen]byte     // C2HData or R2T header + HDGST
	rspHdr [nvme.CapsuleRespHLen + nvme.DigestLen]byte // CapsuleResp + HDGST
	ddgst  [nvme.DigestLen]byte
}

func (r *request) init(c *tcpConn, idx uint16) {
	r.c, r.idx = c, idx
	r.io.Done = r.ioDone
}

// startCapsule runs when a CapsuleCmd header has arrived: it takes a request slot,
// copies the SQE, and points the receive machine at the in-capsule data buffer.
// It returns false when the connection must stall or has failed.
func (c *tcpConn) startCapsule() bool {
	r := c.allocReq()
	if r == nil {
		c.stall()
		return false
	}
	r.sqe = *nvme.CapsuleSQE(c.hdr[:])
	r.state = reqStateReceiving
	r.startNs = c.pg.r.Now()
	if n := c.lay.DataLen; n > 0 {
		limit := c.pg.t.opts.InCapsuleDataSize
		if c.qp.qid == 0 || c.qp.ctrlr == nil {
			limit = adminICDSize
		}
		if n > limit {
			c.putReq(r)
			c.fatal(nvme.FESDataLimitExceeded, 0)
			return false
		}
		b, err := c.pg.mem.Alloc(int(n))
		if err != nil {
			c.putReq(r)
			c.stall()
			return false
		}
		r.buf, r.data, r.icd = b, b.Bytes(), true
		c.dst = r.data
	}
	c.curReq = r
	return true
}

// putReq returns a slot that never became a command (resource stall or fatal error).
func (c *tcpConn) putReq(r *request) {
	if !r.buf.IsZero() {
		c.pg.mem.Free(r.buf)
		r.buf, r.data = mem.Buf{}, nil
	}
	r.icd = false
	r.state = reqStateFree
	c.free = append(c.free, r.idx)
	c.inflight--
}

// capsuleDigestError: the in-capsule data failed its digest. The command is answered
// without running.
func (r *request) capsuleDigestError() {
	r.failWith = uint16(nvme.StatusTransientTransportError)
	r.capsuleReceived()
}

// capsuleReceived runs once the whole capsule (and its data) is in.
func (r *request) capsuleReceived() {
	c := r.c
	cid := r.sqe.CID()
	if c.qp.sqsize > 0 {
		c.qp.sqhd++
		if c.qp.sqhd == c.qp.sqsize {
			c.qp.sqhd = 0
		}
	}
	if c.cidInUse(cid) {
		r.dir = nvme.DirNone
		r.complete(nvme.StatusCIDConflict.WithDNR())
		return
	}
	c.setCID(cid)
	r.cidSet = true
	if r.failWith != 0 {
		r.dir = nvme.DirNone
		r.complete(nvme.Status(r.failWith))
		return
	}
	if st := r.parseSGL(); !st.Success() {
		r.dir = nvme.DirNone
		r.complete(st)
		return
	}
	r.getBuffer()
}

// parseSGL checks SGL1 against the in-capsule data and the transfer limits and sets
// dir and xfer (TCP §3.3: ICD uses a Data Block Offset descriptor with offset 0;
// other transfers use a Transport Data Block descriptor).
func (r *request) parseSGL() nvme.Status {
	op := r.sqe.Opcode()
	if op == nvme.OpcodeFabrics {
		r.dir = nvme.Direction(uint8(r.sqe.FCTYPE()) & 3)
	} else {
		r.dir = nvme.DataDirection(op)
	}
	sgl := r.sqe.SGL1()
	if r.dir == nvme.DirNone || sgl.Length == 0 {
		r.dir, r.xfer = nvme.DirNone, 0
		if r.icd {
			return nvme.StatusDataSGLLengthInvalid.WithDNR()
		}
		return nvme.StatusSuccess
	}
	if r.dir == nvme.DirBidirectional {
		return nvme.StatusInvalidField.WithDNR()
	}
	switch sgl.ID {
	case nvme.SGLIDInCapsule:
		if !r.icd || r.dir != nvme.DirHostToCtrl {
			return nvme.StatusSGLDescriptorTypeInvalid.WithDNR()
		}
		if sgl.Address != 0 {
			return nvme.StatusSGLOffsetInvalid.WithDNR()
		}
		if sgl.Length != uint32(len(r.data)) {
			return nvme.StatusDataSGLLengthInvalid.WithDNR()
		}
		r.xfer = sgl.Length
	case nvme.SGLIDTransport:
		if r.icd {
			return nvme.StatusSGLDescriptorTypeInvalid.WithDNR()
		}
		if sgl.Length > r.c.pg.t.opts.MaxIOSize {
			return nvme.StatusDataSGLLengthInvalid.WithDNR()
		}
		r.xfer = sgl.Length
	default:
		return nvme.StatusSGLDescriptorTypeInvalid.WithDNR()
	}
	return nvme.StatusSuccess
}

// getBuffer allocates the data buffer of a transport-SGL transfer, then moves on: an
// R2T for writes, execution otherwise. A write whose data would take the connection
// past its quota of buffers awaiting data waits for earlier writes' data first; the
// connection keeps reading meanwhile, so that data can come.
func (r *request) getBuffer() {
	c := r.c
	if r.dir == nvme.DirHostToCtrl && !r.icd && r.state != reqStateQuotaWait && !c.quotaAllows(r.xfer) {
		r.state = reqStateQuotaWait
		c.quotaWait = append(c.quotaWait, r)
		c.pg.t.limits.CountQuotaWait()
		return
	}
	if r.xfer > 0 && !r.icd {
		b, err := r.c.pg.mem.Alloc(int(r.xfer))
		if err != nil {
			r.state = reqStateNeedBuffer
			r.c.stall()
			return
		}
		r.buf, r.data = b, b.Bytes()
	}
	if r.dir == nvme.DirHostToCtrl && !r.icd {
		r.awaited = true
		c.awaited += r.xfer
		c.pg.awaited += uint64(r.xfer)
		r.sendR2T()
		return
	}
	r.execute()
}

// quotaAllows reports whether n more bytes may await data: within the connection's
// quota and the reactor's cap. A connection with nothing awaited always may, so that
// every connection makes progress; a write larger than the quota then runs alone.
func (c *tcpConn) quotaAllows(n uint32) bool {
	if c.awaited == 0 {
		return true
	}
	return c.awaited+n <= c.pg.t.limits.MaxAwaitedDataBytes() && c.pg.awaited+uint64(n) <= c.pg.awaitedCap
}

// dataArrived takes r's bytes out of the quota and lets waiting writes ask for theirs,
// oldest first.
func (r *request) dataArrived() {
	c := r.c
	r.awaited = false
	c.awaited -= r.xfer
	c.pg.awaited -= uint64(r.xfer)
	for len(c.quotaWait) > 0 && c.state == connStateRunning && c.quotaAllows(c.quotaWait[0].xfer) {
		w := c.quotaWait[0]
		copy(c.quotaWait, c.quotaWait[1:])
		c.quotaWait[len(c.quotaWait)-1] = nil
		c.quotaWait = c.quotaWait[:len(c.quotaWait)-1]
		w.getBuffer()
		if c.stalled {
			return
		}
	}
}

func (c *tcpConn) dropQuotaWait(r *request) {
	for i, w := range c.quotaWait {
		if w == r {
			copy(c.quotaWait[i:], c.quotaWait[i+1:])
			c.quotaWait[len(c.quotaWait)-1] = nil
			c.quotaWait = c.quotaWait[:len(c.quotaWait)-1]
			return
		}
	}
}

// needBufferRetry is the stalled connection's retry of getBuffer.
func (r *request) needBufferRetry() { r.getBuffer() }

// sendR2T asks the host for the whole transfer at once (SPDK does the same); the host
// splits it into H2CData PDUs of at most MAXH2CDATA.
func (r *request) sendR2T() {
	c := r.c
	r.state = reqStateTransferringH2C
	r.h2cDone = 0
	r.r2tNs = c.pg.r.Now()
	ch := nvme.FrameHeader(nvme.PDUTypeR2T, 0, 0, c.sendLayout)
	ch.Put(r.pduHdr[:])
	pdu := nvme.R2T{CCCID: r.sqe.CID(), TTAG: r.idx, R2TO: 0, R2TL: r.xfer}
	pdu.Put(r.pduHdr[:])
	n := int(ch.PLen)
	if ch.Flags&nvme.CHFlagHDGSTF != 0 {
		nvme.SetHeaderDigest(r.pduHdr[:n], int(ch.HLen))
	}
	c.enqueue(r.pduHdr[:n], nil)
}

// startH2CData checks an H2CData header against its R2T and aims the receive machine
// at the right window of the request's buffer.
func (c *tcpConn) startH2CData() bool {
	h, err := nvme.DecodeH2CData(c.hdr[:nvme.TermReqHLen])
	if err == nil {
		err = c.lay.CheckDATAL(h.DATAL)
	}
	if err != nil {
		c.fatalErr(err)
		return false
	}
	if int(h.TTAG) >= len(c.reqs) {
		c.fatal(nvme.FESInvalidHeaderField, 10)
		return false
	}
	r := &c.reqs[h.TTAG]
	if r.state != reqStateTransferringH2C || r.sqe.CID() != h.CCCID {
		c.fatal(nvme.FESPDUSequenceError, 0)
		return false
	}
	if h.DATAL > c.maxH2C {
		c.fatal(nvme.FESDataLimitExceeded, 0)
		return false
	}
	// Data must arrive in order and inside the R2T window.
	if h.DATAO != r.h2cDone || uint64(h.DATAO)+uint64(h.DATAL) > uint64(r.xfer) {
		c.fatal(nvme.FESDataOutOfRange, 0)
		return false
	}
	c.curReq = r
	c.dst = r.data[h.DATAO : h.DATAO+h.DATAL]
	return true
}

func (r *request) h2cReceived(n uint32) {
	r.h2cDone += n
	if r.h2cDone < r.xfer {
		return
	}
	r.dataArrived()
	if r.failWith != 0 {
		r.complete(nvme.Status(r.failWith))
		return
	}
	r.execute()
}

// h2cDigestError marks the command failed; the remaining data still arrives and is
// dropped, then the command is answered with a retryable status.
func (r *request) h2cDigestError() {
	r.failWith = uint16(nvme.StatusTransientTransportError)
	r.h2cReceived(r.c.lay.DataLen)
}

// execute routes a command to its executor.
func (r *request) execute() {
	r.state = reqStateExecuting
	c := r.c
	if r.sqe.Opcode() == nvme.OpcodeFabrics {
		c.execFabrics(r)
		return
	}
	ctrlr := c.qp.ctrlr
	if ctrlr == nil {
		r.complete(nvme.StatusCommandSequenceError.WithDNR())
		return
	}
	if c.qp.qid == 0 {
		ctrlr.execAdmin(r)
		return
	}
	c.execIO(r)
}

// complete answers the command: C2HData for successful reads (with SUCCESS and no
// CapsuleResp when the host disabled SQ flow control and there is no result to
// return), then a CapsuleResp. The request is released once its last byte is sent.
//
// Preconditions: on the connection's reactor; the request is not yet answered.
func (r *request) complete(st nvme.Status) {
	c := r.c
	if probe.IOEnabled() && r.ns != nil {
		key := uint64(c.sock.FD)<<16 | uint64(r.idx) // as in execIO
		probe.IODone(r.ns.Bdev.Name(), c.pg.r.ID(), key, r.startNs, int64(st))
	}
	r.state = reqStateCompleting
	if c.state == connStateClosed || (c.state == connStateDraining && !c.closeOut) {
		// Nobody to answer: the connection is going away.
		r.release()
		c.maybeFinishClose()
		return
	}
	qp := &c.qp
	cqe := &r.cqe
	cqe.SetCID(r.sqe.CID())
	cqe.SetSQID(qp.qid)
	cqe.SetSQHD(qp.sqhd)
	cqe.SetStatus(st)
	if !st.Success() {
		c.commandFailed(r, st)
	}
	if r.dir == nvme.DirCtrlToHost && st.Success() && r.xfer > 0 {
		success := qp.sqflowOff && !c.pg.t.opts.C2HSuccessOff && cqe.DW0() == 0 && cqe.DW1() == 0
		if r.queueC2H(success) {
			return
		}
	}
	ch := nvme.FrameHeader(nvme.PDUTypeCapsuleResp, 0, 0, c.sendLayout)
	ch.Put(r.rspHdr[:])
	copy(r.rspHdr[nvme.CHLen:], cqe[:])
	n := int(ch.PLen)
	if ch.Flags&nvme.CHFlagHDGSTF != 0 {
		nvme.SetHeaderDigest(r.rspHdr[:n], int(ch.HLen))
	}
	c.enqueue(r.rspHdr[:n], r)
}

// queueC2H queues the read data as one C2HData PDU. It reports whether the request
// is fully answered (SUCCESS set).
func (r *request) queueC2H(success bool) bool {
	c := r.c
	flags := nvme.CHFlagLastPDU
	if success {
		flags |= nvme.CHFlagSuccess
	}
	ch := nvme.FrameHeader(nvme.PDUTypeC2HData, flags, r.xfer, c.sendLayout)
	ch.Put(r.pduHdr[:])
	pdu := nvme.C2HData{CCCID: r.sqe.CID(), DATAO: 0, DATAL: r.xfer}
	pdu.Put(r.pduHdr[:])
	hlen := int(ch.HLen)
	if ch.Flags&nvme.CHFlagHDGSTF != 0 {
		nvme.SetHeaderDigest(r.pduHdr[:hlen+nvme.DigestLen], hlen)
		hlen += nvme.DigestLen
	}
	c.enqueue(r.pduHdr[:hlen], nil)
	if pad := int(ch.PDO) - hlen; pad > 0 {
		c.enqueue(c.zeroPad[:pad], nil)
	}
	var last *request
	if success {
		last = r
		c.pg.c2hSuccess.Add(1)
	}
	if ch.Flags&nvme.CHFlagDDGSTF != 0 {
		c.enqueue(r.data, nil)
		nvme.PutDigest(r.ddgst[:], nvme.CRC32C(r.data))
		c.enqueue(r.ddgst[:], last)
	} else {
		c.enqueue(r.data, last)
	}
	return success
}

// Sent is told by the send queue that the request's last buffer left: its answer is
// out (or the connection is going away).
func (r *request) Sent() { r.release() }

// release returns the slot and its buffer.
func (r *request) release() {
	if r.state == reqStateFree {
		return
	}
	if invariants.Enabled && r.state == reqStateExecuting && r.io.InFlight() {
		panic(fmt.Sprintf("nvmf: request %d released while its I/O is in the bdev", r.idx))
	}
	c := r.c
	if !r.buf.IsZero() {
		c.pg.mem.Free(r.buf)
		r.buf = mem.Buf{}
	}
	if r.cidSet {
		c.clearCID(r.sqe.CID())
		r.cidSet = false
	}
	if r.busyCounted {
		c.ioEnded(r)
	}
	if r.awaited {
		r.awaited = false
		c.awaited -= r.xfer
		c.pg.awaited -= uint64(r.xfer)
	}
	if r.state == reqStateQuotaWait {
		c.dropQuotaWait(r)
	}
	r.data, r.icd, r.ns = nil, false, nil
	r.failWith, r.xfer, r.h2cDone = 0, 0, 0
	r.cqe = nvme.CQE{}
	r.state = reqStateFree
	c.free = append(c.free, r.idx)
	c.inflight--
}
