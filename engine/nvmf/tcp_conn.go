package nvmf

import (
	"fmt"
	"sync/atomic"

	"sluice/engine/internal/invariants"
	"sluice/engine/tcpconn"

	"golang.org/x/sys/unix"

	"sluice/engine/proto/nvme"
	"sluice/engine/reactor"
)

// connState is a connection's lifecycle state.
type connState uint8

const (
	connStateAwaitICReq connState = iota // nothing but ICReq is valid yet
	connStateRunning                     // ICResp sent; capsules flow
	connStateDraining                    // no new commands; close once idle and flushed
	connStateClosed                      // fd closed, resources freed
)

func (s connState) String() string {
	switch s {
	case connStateAwaitICReq:
		return "await_icreq"
	case connStateRunning:
		return "running"
	case connStateDraining:
		return "draining"
	case connStateClosed:
		return "closed"
	}
	return "unknown"
}

// recvState is where the receive state machine is inside the current PDU.
type recvState uint8

const (
	recvStateHeader  recvState = iota // collecting CH, PSH and HDGST into hdr
	recvStatePayload                  // streaming pad, data and DDGST
	recvStateIgnore                   // a fatal error was reported; input is dropped
)

// tcpConn is one NVMe/TCP connection and the queue pair it carries. It is owned by
// its poll group's reactor: every method runs there.
type tcpConn struct {
	pg     *pollGroup
	sock   tcpconn.Socket
	slot   *tcpconn.Slot // the connection's place in its listener's limits; nil in tests
	listen ListenAddress
	peer   string
	state  connState

	createdNs int64
	reason    string // why the connection is closing, for the log

	// Negotiated at ICReq.
	recvLayout nvme.LayoutParams // PDUs we receive (CPDA applies)
	sendLayout nvme.LayoutParams // PDUs we send (HPDA applies)
	maxH2C     uint32

	// Receive side.
	rb        tcpconn.RecvBuffer
	rstate    recvState
	hdr       [nvme.CHLen + 128 + nvme.DigestLen]byte
	hdrHave   int
	hdrNeed   int
	lay       nvme.Layout
	padLeft   uint32
	dst       []byte // where the current PDU's data goes; nil discards
	dstOff    int
	ddgst     [nvme.DigestLen]byte
	ddgstHave int
	crc       uint32
	curReq    *request
	termData  [nvme.MaxTermReqDataLen]byte
	stalled   bool

	// The queue pair. Request slots, the CID bitmap and the full-size receive buffer
	// are allocated at ICReq, so that a socket that never sends one costs little.
	qp       qpair
	reqs     []request
	free     []uint16
	cidBusy  *[1024]uint64
	inflight int // requests between capsule arrival and release

	// The quota of buffers held for data the host was asked for (R2T) and has not
	// sent yet, and the writes waiting for room in it, oldest first.
	awaited   uint32
	quotaWait []*request

	// Send side.
	sq       tcpconn.SendQueue
	dirty    bool
	icresp   [nvme.ICReqLen]byte
	termOut  [nvme.MaxTermReqPLen]byte
	closeOut bool // close once the send queue is empty (after a TermReq)
	zeroPad  [128]byte

	// Failed commands of an I/O queue whose controller lives on another reactor reach
	// the controller's error log through this ring, with at most one message queued.
	errq       *reactor.SPSC[nvme.ErrorLogEntry]
	errPending atomic.Bool
	errLost    uint64
	forwardFn  func(any)
}

// preICReqRecvBuf is the receive buffer of a connection that has not sent ICReq: the
// only PDUs valid then are ICReq (128 bytes) and H2CTermReq.
const preICReqRecvBuf = 2 * nvme.ICReqLen

func newTCPConn(pg *pollGroup, addr ListenAddress, peer string) *tcpConn {
	c := &tcpConn{
		pg: pg, listen: addr, peer: peer,
		createdNs: pg.r.Now(),
		rb:        tcpconn.NewRecvBuffer(preICReqRecvBuf),
		// Before ICReq the only output is a TermReq.
		sq: tcpconn.NewSendQueue(2),
	}
	c.recvLayout.Receiver = nvme.RoleController
	c.sendLayout.Receiver = nvme.RoleHost
	c.hdrNeed = nvme.CHLen
	return c
}

// establish allocates what a connection needs once its host has sent a valid ICReq.
func (c *tcpConn) establish() {
	depth := int(c.pg.t.opts.MaxQueueDepth)
	c.rb.Grow(recvBufSize)
	c.reqs = make([]request, depth)
	c.free = make([]uint16, 0, depth)
	c.quotaWait = make([]*request, 0, depth)
	c.cidBusy = new([1024]uint64)
	c.sq = tcpconn.NewSendQueue(depth*sendEntriesPerRequest + 8)
	for i := depth - 1; i >= 0; i-- {
		r := &c.reqs[i]
		r.init(c, uint16(i))
		c.free = append(c.free, uint16(i))
	}
}

// OnEvents handles readiness from the reactor's epoll.
func (c *tcpConn) OnEvents(ev uint32) {
	if c.state == connStateClosed {
		return
	}
	if ev&unix.EPOLLOUT != 0 {
		c.flush()
	}
	if c.stalled && ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		// A stalled connection does not read, but must still notice its host going
		// away, or its requests and buffers would never be released.
		c.beginClose("peer closed the connection while stalled")
	} else if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !c.stalled {
		c.readSocket()
	}
	if c.sq.Len() > 0 && c.state != connStateClosed {
		c.flush()
	}
	c.maybeFinishClose()
}

// readSocket reads what has arrived and processes it. When the current PDU still
// needs a large piece of data and nothing is buffered, the socket is read straight
// into the I/O buffer, with the receive buffer behind it for the next PDU's header.
func (c *tcpConn) readSocket() {
	if !c.rb.Empty() {
		return // unprocessed bytes remain: we are stalled on resources
	}
	var direct []byte
	if c.rstate == recvStatePayload && c.padLeft == 0 {
		direct = c.dst[c.dstOff:]
	}
	n, got, errno := c.rb.Fill(c.sock.FD, direct)
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		return
	case errno != 0:
		c.beginClose("read: " + errno.Error())
		return
	case got == 0:
		c.beginClose("peer closed the connection")
		return
	}
	if n > 0 {
		if c.lay.DDGST {
			c.crc = nvme.CRC32CUpdate(c.crc, c.dst[c.dstOff:c.dstOff+n])
		}
		c.dstOff += n
		if c.dstOff == len(c.dst) && c.rb.Empty() {
			c.payloadDataDone()
		}
	}
	c.consume()
}

// consume runs the receive state machine over the buffered bytes.
func (c *tcpConn) consume() {
	for !c.rb.Empty() && !c.stalled && c.state != connStateClosed {
		switch c.rstate {
		case recvStateIgnore:
			c.rb.Discard()
		case recvStateHeader:
			c.consumeHeader()
		case recvStatePayload:
			c.consumePayload()
		}
	}
}

func (c *tcpConn) consumeHeader() {
	n := copy(c.hdr[c.hdrHave:c.hdrNeed], c.rb.Pending())
	c.hdrHave += n
	c.rb.Advance(n)
	if c.hdrHave < c.hdrNeed {
		return
	}
	if c.hdrNeed == nvme.CHLen {
		ch, err := nvme.DecodeCommonHeader(c.hdr[:nvme.CHLen])
		if err != nil {
			c.fatal(nvme.FESInvalidHeaderField, 0)
			return
		}
		lay, err := ch.Layout(c.recvLayout)
		if err != nil {
			c.fatalErr(err)
			return
		}
		if !c.sequenceOK(ch.Type) {
			c.fatal(nvme.FESPDUSequenceError, 0)
			return
		}
		c.lay = lay
		c.hdrNeed = int(lay.HeaderEnd())
		if c.hdrHave < c.hdrNeed {
			return
		}
	}
	c.onHeader()
}

// sequenceOK applies the connection-state rules: ICReq first and only once.
func (c *tcpConn) sequenceOK(t nvme.PDUType) bool {
	if c.state == connStateAwaitICReq {
		return t == nvme.PDUTypeICReq || t == nvme.PDUTypeH2CTermReq
	}
	return t != nvme.PDUTypeICReq
}

// onHeader runs once a whole PDU header (and its digest) has arrived.
func (c *tcpConn) onHeader() {
	if c.lay.HDGST {
		if err := nvme.CheckHeaderDigest(c.hdr[:c.hdrNeed], int(c.lay.HLen)); err != nil {
			c.fatal(nvme.FESHeaderDigestError, 0)
			return
		}
	}
	c.dst, c.dstOff, c.curReq = nil, 0, nil
	c.padLeft = c.lay.Pad
	c.ddgstHave, c.crc = 0, 0
	switch c.lay.Type {
	case nvme.PDUTypeICReq:
		c.handleICReq()
		c.resetRecv()
		return
	case nvme.PDUTypeH2CTermReq:
		c.dst = c.termData[:c.lay.DataLen]
	case nvme.PDUTypeCapsuleCmd:
		if !c.startCapsule() {
			return
		}
	case nvme.PDUTypeH2CData:
		if !c.startH2CData() {
			return
		}
	default:
		c.fatal(nvme.FESInvalidHeaderField, 0)
		return
	}
	if c.lay.DataLen == 0 {
		c.pduDone()
		return
	}
	c.rstate = recvStatePayload
}

func (c *tcpConn) consumePayload() {
	if c.padLeft > 0 {
		n := min(int(c.padLeft), len(c.rb.Pending()))
		c.padLeft -= uint32(n)
		c.rb.Advance(n)
		if c.padLeft > 0 {
			return
		}
	}
	if c.dstOff < len(c.dst) {
		n := copy(c.dst[c.dstOff:], c.rb.Pending())
		if c.lay.DDGST {
			c.crc = nvme.CRC32CUpdate(c.crc, c.dst[c.dstOff:c.dstOff+n])
		}
		c.dstOff += n
		c.rb.Advance(n)
		if c.dstOff < len(c.dst) {
			return
		}
	}
	c.payloadDataDone()
	if c.rstate != recvStatePayload {
		return
	}
	if c.lay.DDGST {
		n := copy(c.ddgst[c.ddgstHave:], c.rb.Pending())
		c.ddgstHave += n
		c.rb.Advance(n)
		if c.ddgstHave < nvme.DigestLen {
			return
		}
		if nvme.Digest(c.ddgst[:]) != c.crc {
			c.dataDigestError()
			return
		}
	}
	c.pduDone()
}

// payloadDataDone is called when all data bytes are in; a PDU without a data digest
// is complete at that point.
func (c *tcpConn) payloadDataDone() {
	if !c.lay.DDGST {
		c.pduDone()
	}
}

// pduDone dispatches a fully received PDU and resets for the next header.
func (c *tcpConn) pduDone() {
	if c.rstate == recvStateIgnore {
		return
	}
	t, r := c.lay.Type, c.curReq
	c.resetRecv()
	switch t {
	case nvme.PDUTypeH2CTermReq:
		c.onTermReq()
	case nvme.PDUTypeCapsuleCmd:
		r.capsuleReceived()
	case nvme.PDUTypeH2CData:
		r.h2cReceived(c.lay.DataLen)
	}
}

func (c *tcpConn) resetRecv() {
	if c.rstate != recvStateIgnore {
		c.rstate = recvStateHeader
	}
	c.hdrHave, c.hdrNeed = 0, nvme.CHLen
	c.dst, c.dstOff, c.curReq = nil, 0, nil
}

// dataDigestError fails the command whose data was corrupted with a retryable
// Transient Transport Error, as SPDK does; the connection stays up.
func (c *tcpConn) dataDigestError() {
	r := c.curReq
	t := c.lay.Type
	c.resetRecv()
	if t == nvme.PDUTypeH2CTermReq || r == nil {
		return
	}
	c.pg.t.counters.dataDigestErrors.Add(1)
	if t == nvme.PDUTypeCapsuleCmd {
		r.capsuleDigestError()
		return
	}
	r.h2cDigestError()
}

// handleICReq negotiates the connection (TCP §3.6.2.2) and sends ICResp.
func (c *tcpConn) handleICReq() {
	req, err := nvme.DecodeICReq(c.hdr[:nvme.ICReqLen])
	if err == nil {
		err = req.Validate()
	}
	if err != nil {
		c.fatalErr(err)
		return
	}
	c.recvLayout.HDGST = req.DGST.HDGST()
	c.recvLayout.DDGST = req.DGST.DDGST()
	c.recvLayout.PDA = 0 // CPDA 0: the Linux host refuses anything else
	c.sendLayout.HDGST, c.sendLayout.DDGST = c.recvLayout.HDGST, c.recvLayout.DDGST
	c.sendLayout.PDA = req.HPDA
	c.maxH2C = c.pg.t.opts.MaxH2CData
	// Echo only the two digest bits: the rest of the byte is reserved.
	resp := nvme.ICResp{PFV: 0, CPDA: 0, DGST: req.DGST & (nvme.DigestHeader | nvme.DigestData), MAXH2CDATA: c.maxH2C}
	nvme.FrameHeader(nvme.PDUTypeICResp, 0, 0, c.sendLayout).Put(c.icresp[:])
	resp.Put(c.icresp[:])
	c.state = connStateRunning
	c.establish()
	c.enqueue(c.icresp[:], nil)
}

// onTermReq: the host gave up on the connection. Never answer a TermReq.
func (c *tcpConn) onTermReq() {
	tr, err := nvme.DecodeTermReq(c.hdr[:nvme.TermReqHLen])
	fes := nvme.FES(0)
	if err == nil {
		fes = tr.FES
	}
	c.pg.t.log.Info("nvmf: host terminated connection", "peer", c.peer, "fes", fes.String())
	c.rstate = recvStateIgnore
	c.beginClose("host sent H2CTermReq")
}

// fatalErr reports a layout or decode error as a TermReq.
func (c *tcpConn) fatalErr(err error) {
	if pe, ok := err.(*nvme.PDUError); ok {
		c.fatal(pe.FES, pe.FEI)
		return
	}
	c.fatal(nvme.FESInvalidHeaderField, 0)
}

// fatal sends a C2HTermReq carrying a copy of the offending header, stops reading,
// and closes the connection once it is sent (TCP §3.6.2.4). Other connections are
// untouched.
func (c *tcpConn) fatal(fes nvme.FES, fei uint32) {
	if c.rstate == recvStateIgnore {
		return
	}
	c.pg.t.counters.termReqsSent.Add(1)
	c.rstate = recvStateIgnore
	c.rb.Discard()
	hlen := min(c.hdrHave, nvme.MaxTermReqDataLen)
	tr := nvme.NewTermReq(nvme.PDUTypeC2HTermReq, fes, fei, c.hdr[:hlen])
	n := tr.Put(c.termOut[:])
	c.reason = "protocol error: " + fes.String()
	c.pg.t.log.Warn("nvmf: terminating connection", "peer", c.peer, "fes", fes.String(), "fei", fei)
	c.enqueue(c.termOut[:n], nil)
	c.closeOut = true
	c.stopReading()
	c.state = connStateDraining
}

// enqueue appends a buffer to the send queue and schedules a flush. When release is
// set, the request is released once this buffer, its last, has been written.
func (c *tcpConn) enqueue(b []byte, release *request) {
	if release != nil {
		c.sq.Push(b, release)
	} else {
		c.sq.Push(b, nil) // an untyped nil: a nil *request would be a non-nil Releaser
	}
	c.pg.markDirty(c)
}

// flush writes as much of the send queue as the socket takes.
func (c *tcpConn) flush() {
	if c.state == connStateClosed {
		return
	}
	empty, errno := c.sq.Flush(c.sock.FD)
	if errno != 0 {
		c.sq.Drop()
		c.beginClose("write: " + errno.Error())
		return
	}
	c.sock.WantWritable(!empty)
	if empty && c.closeOut {
		c.beginClose(c.reason)
	}
}

func (c *tcpConn) stopReading() { c.sock.StopReading() }

// stall parks the receive state machine until a request slot or buffer frees up.
// Reading stops so that TCP pushes back on the host.
func (c *tcpConn) stall() {
	if c.stalled {
		return
	}
	c.stalled = true
	c.sock.PauseInput()
	c.pg.stalled = append(c.pg.stalled, c)
}

// resume retries the stalled step, then goes on with buffered input.
func (c *tcpConn) resume() {
	if !c.stalled || c.state == connStateClosed {
		return
	}
	c.stalled = false
	if c.rstate == recvStateHeader && c.hdrHave == c.hdrNeed && c.hdrHave > nvme.CHLen {
		c.onHeader()
		if c.stalled {
			return
		}
	}
	for i := range c.reqs {
		if r := &c.reqs[i]; r.state == reqStateNeedBuffer {
			r.needBufferRetry()
			if c.stalled {
				return
			}
		}
	}
	if c.state == connStateRunning || c.state == connStateAwaitICReq {
		c.sock.StartReading()
	}
	c.consume()
	if c.rb.Empty() && !c.stalled && c.state != connStateClosed {
		c.readSocket()
	}
	c.maybeFinishClose()
}

// allocReq takes a free request slot for a capsule with command ID cid.
func (c *tcpConn) allocReq() *request {
	n := len(c.free)
	if n == 0 {
		return nil
	}
	r := &c.reqs[c.free[n-1]]
	c.free = c.free[:n-1]
	c.inflight++
	return r
}

func (c *tcpConn) cidInUse(cid uint16) bool { return c.cidBusy[cid>>6]&(1<<(cid&63)) != 0 }

// closeAfterSend closes the connection once what is queued has gone out: a host the
// target refuses is answered, then let go at once, freeing its slot.
func (c *tcpConn) closeAfterSend(reason string) {
	c.closeOut = true
	c.reason = reason
	c.state = connStateDraining
	c.rstate = recvStateIgnore
	c.stopReading()
}
func (c *tcpConn) setCID(cid uint16)   { c.cidBusy[cid>>6] |= 1 << (cid & 63) }
func (c *tcpConn) clearCID(cid uint16) { c.cidBusy[cid>>6] &^= 1 << (cid & 63) }

// beginClose stops the connection taking new work. Requests already executing in a
// bdev finish first (their buffers are in the backend's hands); then the socket is
// closed and the queue pair leaves its controller.
func (c *tcpConn) beginClose(reason string) {
	if c.state == connStateClosed {
		return
	}
	if c.reason == "" {
		c.reason = reason
	}
	if c.state != connStateDraining {
		c.state = connStateDraining
	}
	c.rstate = recvStateIgnore
	c.rb.Discard()
	c.stopReading()
	// Nothing more will reach the host once the socket is shut (a TermReq or a
	// graceful drain calls this only after its output went out): drop queued output so
	// that requests, and the buffers the queue points at, can be released.
	c.sq.Drop()
	c.releaseIdleRequests()
	c.maybeFinishClose()
}

// releaseIdleRequests frees requests that are not inside a bdev or another reactor:
// waiting for data, for a buffer, or queued for sending.
func (c *tcpConn) releaseIdleRequests() {
	for i := range c.reqs {
		r := &c.reqs[i]
		switch r.state {
		case reqStateReceiving, reqStateNeedBuffer, reqStateQuotaWait, reqStateTransferringH2C,
			reqStateCompleting, reqStateAwaitEvent:
			r.release()
		}
	}
}

// maybeFinishClose closes the socket once a draining connection has nothing in
// flight.
func (c *tcpConn) maybeFinishClose() {
	if c.state != connStateDraining || c.inflight > 0 || (c.closeOut && c.sq.Len() > 0) {
		return
	}
	c.state = connStateClosed
	c.sq.Drop()
	if invariants.Enabled {
		c.checkAllFree()
	}
	c.sock.Close()
	if c.slot != nil {
		c.slot.Release()
	}
	delete(c.pg.conns, c)
	c.pg.connCount.Add(-1)
	c.qp.detach(c)
	for i := range c.reqs {
		c.reqs[i].io.Done = nil
	}
	c.rb.Release()
	c.pg.t.log.Debug("nvmf: connection closed", "peer", c.peer, "reason", c.reason)
}

// checkAllFree asserts that a closed connection holds no request, buffer or CID.
func (c *tcpConn) checkAllFree() {
	if len(c.free) != len(c.reqs) {
		panic(fmt.Sprintf("nvmf: connection %s closed with %d of %d requests not free",
			c.peer, len(c.reqs)-len(c.free), len(c.reqs)))
	}
	for i := range c.reqs {
		r := &c.reqs[i]
		if r.state != reqStateFree || !r.buf.IsZero() || r.cidSet {
			panic(fmt.Sprintf("nvmf: closed connection's request %d: state %v buffer %v cid %v",
				i, r.state, !r.buf.IsZero(), r.cidSet))
		}
	}
	if c.cidBusy != nil {
		for _, w := range c.cidBusy {
			if w != 0 {
				panic("nvmf: closed connection still marks CIDs busy")
			}
		}
	}
	if c.awaited != 0 || len(c.quotaWait) != 0 {
		panic(fmt.Sprintf("nvmf: closed connection still counts %d awaited bytes, %d writes waiting",
			c.awaited, len(c.quotaWait)))
	}
}

// checkTimeouts closes connections that never finished setting up, and those whose
// host was asked for data and has not sent it in time: the buffers it pins go back.
func (c *tcpConn) checkTimeouts(now int64) {
	lim := c.pg.t.limits
	switch {
	case c.state == connStateAwaitICReq && now-c.createdNs > lim.SetupTimeoutNs():
		lim.CountSetupTimeout()
		c.beginClose("no ICReq in time")
	case c.state == connStateRunning && c.qp.ctrlr == nil && c.qp.subsys == nil &&
		now-c.createdNs > lim.SetupTimeoutNs() && c.inflight == 0:
		lim.CountSetupTimeout()
		c.beginClose("no Connect in time")
	case c.state == connStateRunning && c.awaited > 0:
		c.checkDataTimeout(now, lim.DataTimeoutNs())
	}
}

func (c *tcpConn) checkDataTimeout(now, limit int64) {
	for i := range c.reqs {
		r := &c.reqs[i]
		if r.state != reqStateTransferringH2C || now-r.r2tNs <= limit {
			continue
		}
		c.pg.t.limits.CountDataTimeout()
		if c.pg.t.limits.Warn() {
			c.pg.t.log.Warn("nvmf: host did not send the data it was asked for; closing its connection",
				"peer", c.peer, "cid", r.sqe.CID(), "bytes", r.xfer, "waited_ms", (now-r.r2tNs)/1e6)
		}
		c.beginClose("H2CData timeout")
		return
	}
}

// drain is the graceful-shutdown path: stop reading new commands, let in-flight ones
// complete and their responses go out, then close.
func (c *tcpConn) drain() {
	if c.state == connStateClosed || c.state == connStateDraining {
		return
	}
	c.state = connStateDraining
	c.rstate = recvStateIgnore
	c.stopReading()
	c.closeOut = true
	c.reason = "target shutting down"
	c.releaseWaitingForHost()
	c.maybeFinishClose()
	if c.sq.Len() == 0 && c.inflight == 0 {
		c.beginClose(c.reason)
	}
}

// releaseWaitingForHost frees requests that wait on the host (data it will not send
// now, AERs); they would never finish.
func (c *tcpConn) releaseWaitingForHost() {
	for i := range c.reqs {
		r := &c.reqs[i]
		switch r.state {
		case reqStateReceiving, reqStateTransferringH2C, reqStateAwaitEvent, reqStateNeedBuffer, reqStateQuotaWait:
			r.release()
		}
	}
}
