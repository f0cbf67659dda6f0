package iscsi

import (
	"errors"
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"sluice/engine/mem"
	proto "sluice/engine/proto/iscsi"
	"sluice/engine/reactor"
	"sluice/engine/tcpconn"
)

// connState is a connection's phase.
type connState uint8

const (
	connLogin      connState = iota // login phase: only Login Requests
	connMigrating                   // logged in; moving to its session's reactor
	connFull                        // full feature phase
	connLoggingOut                  // a logout waits for the tasks to finish
	connDraining                    // no new commands; close once idle and flushed
	connClosed
)

// serving reports whether responses still go out.
func (c *conn) serving() bool { return c.state == connFull || c.state == connLoggingOut }

// recvState is where the receive machine is inside the current PDU.
type recvState uint8

const (
	recvHeader recvState = iota // BHS, AHS and header digest into hdr
	recvData                    // data into dst, then padding, then data digest
	recvIgnore                  // a fatal error was seen; input is dropped
)

// maxHeader is the BHS, the largest AHS the field allows, and the header digest.
const maxHeader = proto.BHSLen + 255*4 + proto.DigestLen

// conn is one iSCSI connection. It is owned by its poll group's reactor.
type conn struct {
	pg     *pollGroup
	sock   tcpconn.Socket
	slot   *tcpconn.Slot
	tpgt   uint16
	local  netip.AddrPort
	peer   netip.AddrPort
	state  connState
	reason string

	createdNs int64
	lastRecv  int64  // for target-initiated NOP-In pings
	pingTTT   uint32 // outstanding ping's tag, 0 when none
	pingNs    int64
	nextTTT   uint32

	rb         tcpconn.RecvBuffer
	rstate     recvState
	hdr        [maxHeader]byte
	hdrHave    int
	hdrNeed    int
	lay        proto.Layout
	dst        []byte // where the current PDU's data goes; nil discards
	dstOff     int
	padLeft    int
	ddgst      [proto.DigestLen]byte
	ddgstHave  int
	crc        uint32
	digestBad  bool
	curTask    *task // the task the current PDU's data belongs to
	ctl        []byte
	closeAfter bool // close once the send queue is empty

	sq    tcpconn.SendQueue
	dirty bool
	// awaited is the bytes of Data-Out this connection's R2Ts asked for and that have
	// not arrived yet.
	awaited uint64

	// Login and full feature phase.
	login      *proto.Login
	cfg        proto.Config // what negotiation started from, for text negotiation
	node       *TargetNode  // found at login; nil for discovery
	loginDepth uint32
	loginExp   uint32
	joining    *session // the session the login established or joined
	// moved: handed to the session's reactor; the old one must not touch it.
	moved  bool
	params proto.Params
	lp     proto.LayoutParams
	sess   *session
	cid    uint16
	statSN uint32
	// reactor is where the connection lives, for the listener's eviction, which runs
	// elsewhere; it changes when the connection moves to its session's reactor.
	reactor atomic.Pointer[reactor.Reactor]

	// held: a control PDU waits for a free control slot; input is paused meanwhile.
	held     bool
	heldData []byte
	ctlBig   mem.Buf // data of a control PDU larger than ctl

	textAsm     *proto.Assembler
	textPending []byte
	textTTT     uint32
	logout      *logoutWait
	loggedOut   bool

	tasks []task
	free  []uint16
	// ctlPDUs are preallocated headers for control responses (NOP-In, Text, Logout,
	// TMF, Reject, Async), each with its own data and the connection as Releaser.
	ctlq ctlQueue
}

func (pg *pollGroup) newConn(tpgt uint16, local, peer netip.AddrPort, slot *tcpconn.Slot) *conn {
	c := &conn{pg: pg, slot: slot, tpgt: tpgt, local: local, peer: peer,
		createdNs: pg.r.Now(), lastRecv: pg.r.Now(), hdrNeed: proto.BHSLen,
		rb: tcpconn.NewRecvBuffer(loginRecvBuf), sq: tcpconn.NewSendQueue(loginSendEntries),
		ctl: make([]byte, proto.DefaultMaxRecvDataSegmentLength)}
	c.reactor.Store(pg.r)
	c.lp = proto.LayoutParams{Receiver: proto.RoleTarget}
	c.login = proto.NewLogin(loginHooks{c}, cryptoRand{})
	c.ctlq.init(c)
	return c
}

const (
	// loginRecvBuf and loginSendEntries size a connection until its login succeeds:
	// login PDUs carry at most 8 KiB, one at a time.
	loginRecvBuf     = 16 << 10
	loginSendEntries = 2 * ctlEntries
	recvBufSize      = 64 << 10
)

// OnEvents handles readiness from the reactor's epoll.
func (c *conn) OnEvents(ev uint32) {
	// Each step may close the connection or hand it to another reactor (a joining
	// connection whose Login Response has gone): after that it is not ours to touch.
	if c.gone() {
		return
	}
	if ev&unix.EPOLLOUT != 0 && c.flush() {
		return
	}
	if c.gone() {
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.readSocket()
	}
	if c.gone() {
		return
	}
	if c.sq.Len() > 0 && c.flush() {
		return
	}
	if !c.gone() {
		c.maybeFinishClose()
	}
}

// gone reports whether the connection is closed or has moved to another reactor.
func (c *conn) gone() bool { return c.state == connClosed || c.moved }

func (c *conn) readSocket() {
	if !c.rb.Empty() || c.held || c.state == connMigrating || c.gone() {
		return
	}
	var direct []byte
	if c.rstate == recvData && c.dst != nil && c.dstOff < len(c.dst) {
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
	c.lastRecv = c.pg.r.Now()
	if n > 0 {
		if c.lay.DataDigest {
			c.crc = proto.CRC32CUpdate(c.crc, c.dst[c.dstOff:c.dstOff+n])
		}
		c.dstOff += n
	}
	c.consume()
}

func (c *conn) consume() {
	for c.state != connClosed && !c.held && c.state != connMigrating {
		if c.rstate == recvData && c.dataComplete() {
			c.pduDone()
			continue
		}
		if c.rb.Empty() {
			return
		}
		switch c.rstate {
		case recvIgnore:
			c.rb.Discard()
		case recvHeader:
			c.consumeHeader()
		case recvData:
			c.consumeData()
		}
	}
}

func (c *conn) consumeHeader() {
	n := copy(c.hdr[c.hdrHave:c.hdrNeed], c.rb.Pending())
	c.hdrHave += n
	c.rb.Advance(n)
	if c.hdrHave < c.hdrNeed {
		return
	}
	if c.hdrNeed == proto.BHSLen {
		lay, err := c.bhs().Layout(c.lp)
		if err != nil {
			c.pduError(err)
			return
		}
		c.lay = lay
		c.hdrNeed = int(lay.HeaderEnd())
		if c.hdrHave < c.hdrNeed {
			return
		}
	}
	if c.lay.HeaderDigest {
		hl := int(c.lay.HeaderLen())
		if err := proto.CheckHeaderDigest(c.bhs(), c.hdr[proto.BHSLen:hl], proto.Digest(c.hdr[hl:])); err != nil {
			c.pduError(err)
			return
		}
	}
	c.startData()
}

func (c *conn) bhs() *proto.BHS { return (*proto.BHS)(c.hdr[:proto.BHSLen]) }

// startData aims the receive machine at the PDU's data, where its handler wants it.
func (c *conn) startData() {
	c.dst, c.dstOff, c.curTask = nil, 0, nil
	c.padLeft = int(c.lay.PadLen)
	c.ddgstHave, c.crc, c.digestBad = 0, 0, false
	c.rstate = recvData
	if c.state == connFull || c.state == connLoggingOut {
		switch c.bhs().Opcode() {
		case proto.OpSCSICommand:
			if !c.beginCommand() {
				return
			}
		case proto.OpDataOut:
			if !c.beginDataOut() {
				return
			}
		}
	}
	if c.dst == nil && c.curTask == nil && c.lay.DataLen > 0 && c.rstate == recvData {
		// Control PDUs' data (ping data, text, login keys) lands in ctl, or in a slab
		// buffer when it is larger; a task's data nobody wants is dropped as it comes.
		n := int(c.lay.DataLen)
		if n <= len(c.ctl) {
			c.dst = c.ctl[:n]
		} else if b, err := c.pg.mem.Alloc(n); err == nil {
			c.ctlBig = b
			c.dst = b.Bytes()[:n]
		}
	}
}

// dataComplete reports whether the current PDU's data, padding and digest are in.
func (c *conn) dataComplete() bool {
	return c.dstOff >= int(c.lay.DataLen) && c.padLeft == 0 &&
		(!c.lay.DataDigest || c.ddgstHave == proto.DigestLen)
}

func (c *conn) consumeData() {
	p := c.rb.Pending()
	if need := int(c.lay.DataLen) - c.dstOff; need > 0 {
		k := min(need, len(p))
		if c.dstOff < len(c.dst) {
			w := copy(c.dst[c.dstOff:], p[:k])
			if c.lay.DataDigest {
				c.crc = proto.CRC32CUpdate(c.crc, c.dst[c.dstOff:c.dstOff+w])
			}
		} else if c.lay.DataDigest {
			c.crc = proto.CRC32CUpdate(c.crc, p[:k])
		}
		c.dstOff += k
		c.rb.Advance(k)
		return
	}
	if c.padLeft > 0 {
		k := min(c.padLeft, len(p))
		if c.lay.DataDigest {
			c.crc = proto.CRC32CUpdate(c.crc, p[:k])
		}
		c.padLeft -= k
		c.rb.Advance(k)
		return
	}
	k := copy(c.ddgst[c.ddgstHave:], p)
	c.ddgstHave += k
	c.rb.Advance(k)
}

// pduDone dispatches a fully received PDU and resets for the next header.
func (c *conn) pduDone() {
	if c.lay.DataDigest && proto.CheckDataDigest(c.crc, proto.Digest(c.ddgst[:])) != nil {
		c.digestBad = true
	}
	data := []byte(nil)
	if c.dst != nil {
		data = c.dst[:min(len(c.dst), int(c.lay.DataLen))]
	}
	t := c.curTask
	c.rstate = recvHeader
	c.hdrHave, c.hdrNeed = 0, proto.BHSLen
	c.dst, c.dstOff = nil, 0
	if c.digestBad {
		c.freeCtlBig()
		c.dataDigestError(t)
		return
	}
	if t == nil && needsCtl(c.bhs().Opcode()) && c.ctlq.free == 0 {
		// Every control slot is in flight: wait for one, reading nothing meanwhile.
		c.held, c.heldData = true, data
		c.sock.PauseInput()
		return
	}
	c.handlePDU(data, t)
	c.freeCtlBig()
}

func (c *conn) freeCtlBig() {
	if !c.ctlBig.IsZero() {
		c.pg.mem.Free(c.ctlBig)
		c.ctlBig = mem.Buf{}
	}
}

// unhold handles the held PDU once a control slot is free, and reads on.
func (c *conn) unhold() {
	if !c.held || c.ctlq.free == 0 || c.state == connClosed {
		return
	}
	c.held = false
	data := c.heldData
	c.heldData = nil
	c.handlePDU(data, nil)
	c.freeCtlBig()
	if c.state == connFull || c.state == connLoggingOut {
		c.sock.StartReading()
	}
	c.consume()
}

// handlePDU acts on a PDU whose data has arrived.
func (c *conn) handlePDU(data []byte, t *task) {
	if c.state == connLogin {
		c.handleLogin(data)
		return
	}
	if c.state != connFull && c.state != connLoggingOut {
		return
	}
	switch op := c.bhs().Opcode(); op {
	case proto.OpSCSICommand:
		if t != nil {
			t.commandArrived()
		}
	case proto.OpDataOut:
		if t != nil {
			t.dataOutArrived()
		}
	case proto.OpNOPOut:
		c.handleNOPOut(data)
	case proto.OpTextRequest:
		c.handleText(data)
	case proto.OpLogoutRequest:
		c.handleLogout()
	case proto.OpTMFRequest:
		c.handleTMF()
	case proto.OpSNACKRequest:
		// ErrorRecoveryLevel 0 has no SNACK (RFC 7143 §11.16).
		c.reject(proto.RejectProtocolError)
	case proto.OpLoginRequest:
		c.reject(proto.RejectProtocolError)
	default:
		c.reject(proto.RejectCommandNotSupported)
	}
}

// dataDigestError: with ErrorRecoveryLevel 0 the target cannot ask for the data again;
// it rejects the PDU (RFC 7143 §7.8) and ends the connection, which the initiator
// recovers from by restarting the session.
func (c *conn) dataDigestError(t *task) {
	c.pg.t.counters.dataDigestErrors.Add(1)
	if t != nil {
		t.finishAbandoned()
	}
	c.reject(proto.RejectDataDigest)
	c.closeAfterSend("data digest error")
}

// pduError answers a malformed PDU: a Reject and the connection goes on, or, when the
// stream cannot be trusted any more, the connection ends.
func (c *conn) pduError(err error) {
	var pe *proto.PDUError
	if errors.As(err, &pe) && pe.Fatal() {
		c.pg.t.counters.headerDigestErrors.Add(1)
	}
	if errors.As(err, &pe) && !pe.Fatal() && c.state != connLogin {
		c.reject(pe.Reason)
		c.closeAfterSend("protocol error: " + pe.Msg)
		return
	}
	c.pg.t.counters.protocolErrors.Add(1)
	c.rstate = recvIgnore
	c.rb.Discard()
	c.beginClose("protocol error")
}

// flush writes what is queued. It reports true when the connection was handed to its
// session's reactor: from then on the caller must not touch it.
func (c *conn) flush() (handedOff bool) {
	if c.gone() {
		return false
	}
	empty, errno := c.sq.Flush(c.sock.FD)
	if errno != 0 {
		c.sq.Drop()
		c.beginClose("write: " + errno.Error())
		return false
	}
	c.sock.WantWritable(!empty)
	switch {
	case empty && c.closeAfter:
		c.beginClose(c.reason)
	case empty && c.state == connMigrating:
		c.migrate()
		return true
	case c.held:
		c.unhold()
	}
	return false
}

// closeAfterSend stops reading and closes once what is queued went out.
func (c *conn) closeAfterSend(reason string) {
	if c.reason == "" {
		c.reason = reason
	}
	c.closeAfter = true
	c.rstate = recvIgnore
	c.rb.Discard()
	c.sock.StopReading()
	if c.state != connClosed {
		c.state = connDraining
	}
	c.pg.markDirty(c)
}

// beginClose stops the connection taking work; tasks inside the SCSI layer finish
// first, then the socket closes and the connection leaves its session.
func (c *conn) beginClose(reason string) {
	if c.state == connClosed {
		return
	}
	if c.reason == "" {
		c.reason = reason
	}
	if c.state == connMigrating {
		c.sess = nil
		if s := c.joining; s != nil {
			// The login joined a session it will never reach.
			s.pendingJoins.Add(-1)
			c.joining = nil
		}
	}
	c.state = connDraining
	c.rstate = recvIgnore
	c.held, c.heldData = false, nil
	c.rb.Discard()
	c.sock.StopReading()
	c.sq.Drop()
	c.freeCtlBig()
	c.releaseIdleTasks()
	c.maybeFinishClose()
}

func (c *conn) maybeFinishClose() {
	if c.moved || c.state != connDraining || c.busyTasks() > 0 || (c.closeAfter && c.sq.Len() > 0) {
		return
	}
	c.state = connClosed
	c.sq.Drop()
	c.sock.Close()
	if c.slot != nil {
		c.slot.Release()
	}
	delete(c.pg.conns, c)
	c.pg.connCount.Add(-1)
	if c.sess != nil {
		c.sess.connGone(c)
	} else if s := c.joining; s != nil && s.home == c.pg && len(s.conns) == 0 {
		// A leading login that established its session and closed before entering
		// full feature phase: the session has nobody.
		c.joining = nil
		s.end()
	}
	c.releaseTaskBuffers()
	c.rb.Release()
	c.pg.t.log.Debug("iscsi: connection closed", "peer", c.peer.String(), "reason", c.reason)
}

// checkTimeouts ends a login that takes too long, pings an initiator gone quiet, and
// drops one that answers no ping.
func (c *conn) checkTimeouts(now int64) {
	t := c.pg.t
	switch c.state {
	case connLogin:
		if now-c.createdNs > t.limits.SetupTimeoutNs() {
			t.limits.CountSetupTimeout()
			c.beginClose("login not finished in time")
		}
	case connFull, connLoggingOut:
		c.checkDataTimeout(now)
		c.checkPing(now)
	}
}
