package initiator

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// readBufSize is the receive buffer: many responses per read syscall, while a large
// Data-In segment bypasses it and lands in the caller's buffer (bufio reads straight
// into a destination at least this big when it is empty).
const readBufSize = 256 << 10

// hdrMax is a BHS and its header digest: what the initiator sends before any data.
const hdrMax = proto.BHSLen + proto.DigestLen

// txMax bounds the PDUs one writev carries when the initiator answers an R2T.
const txMax = 64

// maxUnsolPDUs bounds the unsolicited Data-Out PDUs of one command (InitialR2T=No): a
// command sends at most this many segments unsolicited, ending the sequence early (F)
// when FirstBurstLength would allow more, and the target solicits the rest.
const maxUnsolPDUs = 16

// Params are what the login negotiated (RFC 7143 §13), as this initiator runs with
// them.
type Params struct {
	ISID proto.ISID
	TSIH uint16
	CID  uint16
	// TargetName is the node logged in to (empty for discovery).
	TargetName           string
	TargetAlias          string
	TargetPortalGroupTag uint16
	HeaderDigest         bool
	DataDigest           bool
	// MaxRecvDataSegmentLength is what this initiator declared: the largest segment the
	// target may send. MaxXmitDataSegmentLength is what the target declared: the
	// largest segment this initiator sends.
	MaxRecvDataSegmentLength uint32
	MaxXmitDataSegmentLength uint32
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	ImmediateData            bool
	InitialR2T               bool
	MaxOutstandingR2T        uint32
	MaxConnections           uint32
	DefaultTime2Wait         uint32
	DefaultTime2Retain       uint32
	ErrorRecoveryLevel       uint32
	DataPDUInOrder           bool
	DataSequenceInOrder      bool
	// AuthMethod is "CHAP" or "None"; CHAPAlgorithm the digest CHAP used.
	AuthMethod    string
	CHAPAlgorithm proto.CHAPAlgorithm
	// Keys holds every key=value the target sent during login, the last value of each.
	Keys map[string]string
}

// rfcParams returns the RFC 7143 §13 defaults: what holds for a key nobody negotiated.
func rfcParams() Params {
	return Params{MaxRecvDataSegmentLength: proto.DefaultMaxRecvDataSegmentLength,
		MaxXmitDataSegmentLength: proto.DefaultMaxRecvDataSegmentLength,
		MaxBurstLength:           rfcMaxBurstLength, FirstBurstLength: rfcFirstBurstLength,
		ImmediateData: true, InitialR2T: true, MaxOutstandingR2T: 1, MaxConnections: 1,
		DefaultTime2Wait: 2, DefaultTime2Retain: 20, DataPDUInOrder: true,
		DataSequenceInOrder: true, AuthMethod: proto.ValueNone, Keys: map[string]string{}}
}

// Stats count what the session received; they serve tests.
type Stats struct {
	PDUs         uint64 // PDUs received in full feature phase
	DataIn       uint64 // Data-In PDUs
	R2Ts         uint64 // R2Ts answered
	TargetPings  uint64 // NOP-In pings answered
	Rejects      uint64 // Reject PDUs received
	AsyncEvents  uint64 // Asynchronous Messages received
	AbortedTasks uint64 // commands ended by task management without status
}

// Session is one iSCSI session of a single connection (MaxConnections=1,
// ErrorRecoveryLevel=0), normal or discovery.
//
// A Session belongs to one goroutine at a time: every method except Close, Reset and
// LocalAddr must be called from the goroutine that drives it. The synchronous helpers
// (Exec, Read16, Write16, Ping, AbortTask, Logout, ...) and the asynchronous API
// (Submit*, Flush, Reap, Poll) may be mixed: while a synchronous helper waits, the
// asynchronous commands that complete are kept for the next Reap.
//
// Any transport error, protocol violation or timeout is fatal: the connection is
// closed and every later call returns the same error (Err).
type Session struct {
	nc        net.Conn
	br        *bufio.Reader
	closed    atomic.Bool
	opts      Options
	discovery bool
	params    Params
	timeout   time.Duration
	armed     time.Time // deadline currently set on the connection, zero if none

	// Framing of received PDUs.
	hd, dd  bool   // digests in force (full feature phase)
	maxRecv uint32 // the largest data segment accepted
	maxXmit uint32 // the largest data segment sent
	rhdr    proto.BHS
	rdg     [proto.DigestLen]byte
	rpad    [4]byte
	lay     proto.Layout
	ctlBuf  []byte // data of PDUs other than Data-In

	// Sequence numbers (RFC 7143 §4.2.2).
	cmdSN     uint32 // the next non-immediate command's CmdSN
	expCmdSN  uint32
	maxCmdSN  uint32
	expStatSN uint32

	slots   []slot // QueueDepth asynchronous tags, then the synchronous helpers' slot
	nOut    int    // asynchronous commands submitted and not reaped
	nWire   int    // commands sent and not completed
	queue   ring   // slots waiting for Flush and the command window
	done    ring   // asynchronous slots completed and not reaped
	iov     [][]byte
	iovBack [][]byte
	wv      net.Buffers // what writev consumes (a field, so that &wv does not escape)
	txHdrs  [txMax][hdrMax]byte
	txDg    [txMax][proto.DigestLen]byte
	txBack  [][]byte

	ctl    ctlReq
	ctlSeq uint32

	stats     Stats
	lastAsync proto.AsyncMessage
	err       error // the first fatal error; the session is dead once set
}

// ring is a bounded FIFO of slot indices.
type ring struct {
	buf        []uint16
	head, size int
}

func newRing(n int) ring { return ring{buf: make([]uint16, n)} }

func (r *ring) push(v uint16) {
	if r.size == len(r.buf) {
		panic("iscsi initiator: ring overrun")
	}
	r.buf[(r.head+r.size)%len(r.buf)] = v
	r.size++
}

func (r *ring) peek() uint16 { return r.buf[r.head] }

func (r *ring) pop() uint16 {
	v := r.buf[r.head]
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return v
}

// remove drops v from the ring, keeping the order of the rest.
func (r *ring) remove(v uint16) bool {
	for i := 0; i < r.size; i++ {
		if r.buf[(r.head+i)%len(r.buf)] != v {
			continue
		}
		for j := i; j < r.size-1; j++ {
			r.buf[(r.head+j)%len(r.buf)] = r.buf[(r.head+j+1)%len(r.buf)]
		}
		r.size--
		return true
	}
	return false
}

// Dial connects to addr (host:port) and logs in to Options.TargetName with a normal
// session. A refused login is a *LoginError.
func Dial(ctx context.Context, addr string, o Options) (*Session, error) {
	return dial(ctx, addr, o, false)
}

// DialDiscovery connects to addr and logs in with a discovery session
// (SessionType=Discovery), which carries SendTargets and Logout only.
func DialDiscovery(ctx context.Context, addr string, o Options) (*Session, error) {
	return dial(ctx, addr, o, true)
}

// Discover runs a whole discovery: a discovery session, SendTargets=All, logout.
func Discover(ctx context.Context, addr string, o Options) ([]TargetInfo, error) {
	s, err := DialDiscovery(ctx, addr, o)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	ts, err := s.SendTargets(ctx, "All")
	if err != nil {
		return nil, err
	}
	if err := s.Logout(ctx); err != nil {
		return nil, err
	}
	return ts, nil
}

func dial(ctx context.Context, addr string, o Options, discovery bool) (*Session, error) {
	o, err := o.withDefaults(discovery)
	if err != nil {
		return nil, err
	}
	nc, err := o.Dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("iscsi initiator: dial %s: %w", addr, err)
	}
	s := newSession(nc, o, discovery)
	undo := bound(ctx, o.Timeout, nc.SetDeadline)
	err = s.login()
	undo()
	if err != nil {
		s.closed.Store(true)
		nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	s.enterFullFeature()
	return s, nil
}

// newSession prepares a connection for login.
func newSession(nc net.Conn, o Options, discovery bool) *Session {
	s := &Session{nc: nc, br: bufio.NewReaderSize(nc, readBufSize), opts: o, discovery: discovery,
		timeout: o.Timeout, maxRecv: proto.DefaultMaxRecvDataSegmentLength,
		maxXmit: proto.DefaultMaxRecvDataSegmentLength, cmdSN: 1}
	s.ctlBuf = make([]byte, max(o.MaxRecvDataSegmentLength, proto.DefaultMaxRecvDataSegmentLength))
	s.txBack = make([][]byte, 0, 4*txMax)
	return s
}

// enterFullFeature sizes the session for the negotiated parameters.
func (s *Session) enterFullFeature() {
	p := &s.params
	s.hd, s.dd = p.HeaderDigest, p.DataDigest
	s.maxRecv, s.maxXmit = p.MaxRecvDataSegmentLength, p.MaxXmitDataSegmentLength
	n := s.opts.QueueDepth + 1
	s.slots = make([]slot, n)
	nUnsol := 0
	if !p.InitialR2T {
		nUnsol = int(min((p.FirstBurstLength+s.maxXmit-1)/s.maxXmit, maxUnsolPDUs))
	}
	for i := range s.slots {
		if nUnsol > 0 {
			s.slots[i].uhdr = make([][hdrMax]byte, nUnsol)
			s.slots[i].udg = make([][proto.DigestLen]byte, nUnsol)
		}
	}
	s.queue, s.done = newRing(n), newRing(n)
	s.iovBack = make([][]byte, 0, n*4*(1+nUnsol))
	s.iov = s.iovBack[:0]
}

// Params returns the negotiated parameters.
func (s *Session) Params() Params { return s.params }

// Stats returns the session's counters.
//
// Preconditions: called from the goroutine that drives the session.
func (s *Session) Stats() Stats { return s.stats }

// LastAsyncMessage returns the last Asynchronous Message the target sent, if any.
func (s *Session) LastAsyncMessage() (proto.AsyncMessage, bool) {
	return s.lastAsync, s.stats.AsyncEvents > 0
}

// Err returns the error that killed the session, or nil.
func (s *Session) Err() error { return s.err }

// QueueDepth returns the number of asynchronous tags (0..QueueDepth()-1).
func (s *Session) QueueDepth() int { return s.opts.QueueDepth }

// Outstanding returns the asynchronous commands submitted and not reaped.
func (s *Session) Outstanding() int { return s.nOut }

// Window returns the command window as the target last reported it: ExpCmdSN,
// MaxCmdSN, and the CmdSN the next command gets.
func (s *Session) Window() (expCmdSN, maxCmdSN, next uint32) {
	return s.expCmdSN, s.maxCmdSN, s.cmdSN
}

// LocalAddr returns the connection's local address (the initiator_addr the target
// lists). Safe from any goroutine.
func (s *Session) LocalAddr() net.Addr { return s.nc.LocalAddr() }

// Close closes the connection without logging out; commands in flight are lost. It
// may be called from any goroutine, and more than once.
func (s *Session) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		return s.nc.Close()
	}
	return nil
}

// Reset aborts the connection with a TCP RST (SO_LINGER 0), as a host whose network
// fails does. It may be called from any goroutine.
func (s *Session) Reset() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if tc, ok := s.nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return s.nc.Close()
}

// ITT returns the Initiator Task Tag the command under tag was last sent with.
func (s *Session) ITT(tag uint16) uint32 {
	if int(tag) >= len(s.slots) {
		return proto.ReservedTag
	}
	return s.slots[tag].itt
}

// nextCtlITT returns a tag for a control request: bit 31 set, so that it never
// collides with a command's ITT, and never the reserved value.
func (s *Session) nextCtlITT() uint32 {
	s.ctlSeq = (s.ctlSeq + 1) % 0x7fffffff
	return 0x80000000 | s.ctlSeq
}

// bound makes I/O through set (a connection's SetDeadline) fail once timeout passes or
// ctx ends, whichever is first. The returned function lifts the bound; it waits for a
// cancellation already under way, so that no stale deadline is left behind.
func bound(ctx context.Context, timeout time.Duration, set func(time.Time) error) (undo func()) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	set(deadline)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
		}
		set(time.Time{})
	}
}

// arm keeps a deadline of about the timeout ahead for the asynchronous path.
// Re-arming costs a timer update, so it is done only once a quarter of the timeout has
// been used: a stall is reported after between 3/4 and all of the timeout.
func (s *Session) arm() {
	now := time.Now()
	if s.armed.Sub(now) > s.timeout*3/4 {
		return
	}
	s.armed = now.Add(s.timeout)
	s.nc.SetDeadline(s.armed)
}

// lunField encodes a LUN number for the LUN field of a PDU (SAM-5 peripheral or flat
// addressing).
func lunField(lun uint16) proto.LUN { return proto.LUN(pscsi.EncodeLUN(lun)) }
