package nvmf

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/mem"
	"sluice/engine/proto/nvme"
	"sluice/engine/reactor"
)

// TransportOpts are the NVMe/TCP transport's parameters (nvmf_create_transport).
type TransportOpts struct {
	// MaxQueueDepth bounds each queue's entries (CAP.MQES+1) and the request slots a
	// connection preallocates.
	MaxQueueDepth uint16 `json:"max_queue_depth,omitempty"`
	// MaxIOQPairsPerCtrlr bounds I/O queues per controller (Set Features 07h).
	MaxIOQPairsPerCtrlr uint16 `json:"max_io_qpairs_per_ctrlr,omitempty"`
	// InCapsuleDataSize is the in-capsule data an I/O queue accepts (IOCCSZ).
	InCapsuleDataSize uint32 `json:"in_capsule_data_size,omitempty"`
	// MaxIOSize is the largest transfer, advertised as MDTS; a power of two >= 4 KiB.
	MaxIOSize uint32 `json:"max_io_size,omitempty"`
	// MaxH2CData is the largest H2CData PDU the host may send (ICResp MAXH2CDATA).
	// Below MaxIOSize, writes arrive in several PDUs per R2T.
	MaxH2CData uint32 `json:"max_h2c_data,omitempty"`
	// C2HSuccessOff disables the C2HData SUCCESS optimisation (read completions
	// without a CapsuleResp when the host disabled SQ flow control).
	C2HSuccessOff bool `json:"c2h_success_off,omitempty"`
}

// Transport defaults, chosen to match what SPDK and Linux nvmet offer a Linux host.
const (
	defaultMaxQueueDepth  = 128
	defaultMaxIOQPairs    = 64
	defaultICDSize        = 4096
	defaultMaxIOSize      = 512 << 10
	defaultMaxH2CData     = 64 << 10
	adminICDSize          = 8192 // the Linux host sizes admin capsules for 8 KiB
	recvBufSize           = 64 << 10
	directReadMin         = 16 << 10 // payload left at which the socket is read straight into the I/O buffer
	icreqTimeout          = 30 * time.Second
	housekeepingPeriod    = 100 * time.Millisecond
	drainTimeout          = 10 * time.Second
	maxIOVPerWritev       = 64
	sendEntriesPerRequest = 5 // C2HData header, pad, data, data digest, CapsuleResp
)

func (o TransportOpts) normalize() (TransportOpts, error) {
	if o.MaxQueueDepth == 0 {
		o.MaxQueueDepth = defaultMaxQueueDepth
	}
	if o.MaxIOQPairsPerCtrlr == 0 {
		o.MaxIOQPairsPerCtrlr = defaultMaxIOQPairs
	}
	if o.InCapsuleDataSize == 0 {
		o.InCapsuleDataSize = defaultICDSize
	}
	if o.MaxIOSize == 0 {
		o.MaxIOSize = defaultMaxIOSize
	}
	if o.MaxH2CData == 0 {
		o.MaxH2CData = defaultMaxH2CData
	}
	switch {
	case o.MaxQueueDepth < 32 || o.MaxQueueDepth > 1024:
		return o, fmt.Errorf("max_queue_depth %d not in [32, 1024]: %w", o.MaxQueueDepth, ErrInvalid)
	case o.MaxIOQPairsPerCtrlr > 1024:
		return o, fmt.Errorf("max_io_qpairs_per_ctrlr %d above 1024: %w", o.MaxIOQPairsPerCtrlr, ErrInvalid)
	case o.MaxIOSize < 4096 || o.MaxIOSize > 4<<20 || o.MaxIOSize&(o.MaxIOSize-1) != 0:
		return o, fmt.Errorf("max_io_size %d: want a power of two in [4096, 4 MiB]: %w", o.MaxIOSize, ErrInvalid)
	case o.InCapsuleDataSize%16 != 0 || o.InCapsuleDataSize > 64<<10:
		return o, fmt.Errorf("in_capsule_data_size %d: want a multiple of 16 up to 64 KiB: %w", o.InCapsuleDataSize, ErrInvalid)
	case o.MaxH2CData < nvme.MinMaxH2CData || o.MaxH2CData%4 != 0 || o.MaxH2CData > o.MaxIOSize:
		return o, fmt.Errorf("max_h2c_data %d: want a multiple of 4 in [4096, max_io_size]: %w", o.MaxH2CData, ErrInvalid)
	}
	return o, nil
}

// mdts is MaxIOSize as the Identify MDTS exponent over the 4 KiB minimum page size.
func (o TransportOpts) mdts() uint8 {
	n := uint8(0)
	for s := uint32(4096); s < o.MaxIOSize; s <<= 1 {
		n++
	}
	return n
}

// pollGroup is the transport's state on one reactor (SPDK's poll group): the
// connections it owns, their pending flushes, the controllers whose admin queue it
// carries, and the reactor's buffer allocator.
type pollGroup struct {
	t   *Target
	r   *reactor.Reactor
	mem *mem.Core
	idx int // statistics slot

	conns      map[*tcpConn]struct{}
	flushq     []*tcpConn // connections with queued output; flushed once per iteration
	stalled    []*tcpConn // connections waiting for a request slot or a buffer
	stalledOld []*tcpConn // the list being retried, reused to allocate nothing
	ctrlrs     map[*Ctrlr]struct{}

	connCount  atomic.Int64
	c2hSuccess atomic.Uint64 // written by this reactor only: no shared cache line per read

	// epochOffNs turns the reactor's clock into the target's epoch, so that every
	// reactor numbers the seconds of Controller Busy Time alike.
	epochOffNs int64
}

// markBusy claims the current second busy for s once per second on this reactor.
//
// Preconditions: on pg.r.
func (pg *pollGroup) markBusy(s *Subsystem, st *subsysStats) {
	now := pg.r.Now() + pg.epochOffNs
	if now < st.nextSecNs {
		return
	}
	sec := now / 1e9
	st.nextSecNs = (sec + 1) * 1e9
	s.busy.mark(sec)
}

func newPollGroup(t *Target, r *reactor.Reactor, mc *mem.Core) *pollGroup {
	if t.busyEpoch.IsZero() || r.Epoch().Before(t.busyEpoch) {
		t.busyEpoch = r.Epoch()
	}
	pg := &pollGroup{t: t, r: r, mem: mc, idx: r.ID() % maxReactors,
		conns: map[*tcpConn]struct{}{}, ctrlrs: map[*Ctrlr]struct{}{},
		epochOffNs: int64(r.Epoch().Sub(t.busyEpoch))}
	return pg
}

// start registers the group's pollers.
//
// Preconditions: called on pg.r.
func (pg *pollGroup) start() {
	pg.r.AddPoller("nvmf_tcp_flush", pg.poll)
	pg.r.AddTimedPoller("nvmf_housekeeping", housekeepingPeriod, pg.housekeeping)
}

// poll flushes queued responses and retries stalled connections.
func (pg *pollGroup) poll() bool {
	busy := false
	if len(pg.stalled) > 0 {
		busy = true
		// Swap the two lists: resume may stall a connection again, onto the other.
		st := pg.stalled
		pg.stalled, pg.stalledOld = pg.stalledOld[:0], st
		for i, c := range st {
			st[i] = nil
			c.resume()
		}
	}
	if len(pg.flushq) > 0 {
		busy = true
		for i, c := range pg.flushq {
			c.dirty = false
			c.flush()
			c.maybeFinishClose()
			pg.flushq[i] = nil
		}
		pg.flushq = pg.flushq[:0]
	}
	return busy
}

// housekeeping runs keep-alive and connection-setup timeouts.
func (pg *pollGroup) housekeeping() bool {
	now := pg.r.Now()
	// Takes back buffers freed elsewhere, applies weights set by RPC and publishes
	// the allocator's statistics for mem_get_stats.
	pg.mem.Reclaim()
	for c := range pg.ctrlrs {
		c.checkKeepAlive(now)
	}
	for c := range pg.conns {
		c.checkTimeouts(now)
		// A command outstanding across a second boundary keeps the controller busy
		// in the new second even if no command arrives in it.
		if st := c.qp.stats; st != nil && st.outstanding > 0 {
			pg.markBusy(c.qp.subsys, st)
		}
	}
	return false
}

func (pg *pollGroup) markDirty(c *tcpConn) {
	if !c.dirty {
		c.dirty = true
		pg.flushq = append(pg.flushq, c)
	}
}

// tcpListener is a listening socket, owned by reactor 0. Accepted connections are
// handed to the reactors round robin.
type tcpListener struct {
	t    *Target
	addr ListenAddress
	fd   int
	tok  int32
	refs int // subsystems listening here; guarded by Target.mu
	next uint32
}

func listenTCP(a ListenAddress) (int, error) {
	ip := net.ParseIP(a.TrAddr)
	port, _ := strconv.Atoi(a.TrSvcID)
	var fd int
	var err error
	var sa unix.Sockaddr
	if ip4 := ip.To4(); ip4 != nil {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		s := &unix.SockaddrInet4{Port: port}
		copy(s.Addr[:], ip4)
		sa = s
	} else {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		s := &unix.SockaddrInet6{Port: port}
		copy(s.Addr[:], ip.To16())
		sa = s
		if err == nil {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		}
	}
	if err != nil {
		return -1, fmt.Errorf("socket for %s: %w", a.endpoint(), err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on %s: %w", a.endpoint(), err)
	}
	if err := unix.Listen(fd, 512); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on %s: %w", a.endpoint(), err)
	}
	return fd, nil
}

// OnEvents accepts every pending connection.
func (l *tcpListener) OnEvents(uint32) {
	for {
		nfd, sa, err := unix.Accept4(l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			if err != unix.EAGAIN && err != unix.EINTR && err != unix.ECONNABORTED {
				l.t.log.Warn("nvmf: accept failed", "listener", l.addr.endpoint(), "err", err)
			}
			return
		}
		_ = unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		pgs := l.t.pgs
		pg := pgs[int(l.next)%len(pgs)]
		l.next++
		a := &accepted{fd: nfd, addr: l.addr, peer: sockaddrString(sa), pg: pg}
		if err := pg.r.Send(adoptConn, a); err != nil {
			l.t.log.Warn("nvmf: dropping connection, reactor busy", "peer", a.peer, "err", err)
			unix.Close(nfd)
		}
	}
}

type accepted struct {
	fd   int
	addr ListenAddress
	peer string
	pg   *pollGroup
}

func adoptConn(arg any) {
	a := arg.(*accepted)
	if a.pg.t.stopping.Load() {
		unix.Close(a.fd)
		return
	}
	c := newTCPConn(a.pg, a.fd, a.addr, a.peer)
	tok, err := a.pg.r.AddFD(a.fd, unix.EPOLLIN|unix.EPOLLRDHUP, c)
	if err != nil {
		a.pg.t.log.Warn("nvmf: cannot watch connection", "peer", a.peer, "err", err)
		unix.Close(a.fd)
		return
	}
	c.tok = tok
	c.events = unix.EPOLLIN | unix.EPOLLRDHUP
	a.pg.conns[c] = struct{}{}
	a.pg.connCount.Add(1)
}

func sockaddrString(sa unix.Sockaddr) string {
	switch s := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(s.Addr[:]).String(), strconv.Itoa(s.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(s.Addr[:]).String(), strconv.Itoa(s.Port))
	}
	return "?"
}
