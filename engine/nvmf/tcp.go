package nvmf

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/mem"
	"sluice/engine/proto/nvme"
	"sluice/engine/reactor"
	"sluice/engine/tcpconn"
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
	// Limits bound what one host can take (connections, setup and data timeouts, the
	// buffers awaiting a host's data); nvmf_set_transport_limits changes them live.
	tcpconn.Limits
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
	housekeepingPeriod    = 100 * time.Millisecond
	drainTimeout          = 10 * time.Second
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
	l, err := o.Limits.Normalize()
	if err != nil {
		return o, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	o.Limits = l
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

	// awaited is the bytes this reactor's connections hold for data their hosts were
	// asked for; awaitedCap bounds it at half the reactor's share of buffer memory.
	awaited    uint64
	awaitedCap uint64
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
	// The reactors share the domain; each may pin half its share awaiting data.
	reactors := 1
	if t.group != nil {
		reactors = t.group.Len()
	}
	pg.awaitedCap = uint64(mc.Domain().SizeBytes()) / 2 / uint64(reactors)
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

// listener is a listening address shared by the subsystems that listen on it.
type listener struct {
	addr ListenAddress
	l    *tcpconn.Listener
	refs int // subsystems listening here; guarded by Target.mu
}

// adopt takes a connection a listener accepted, on the reactor it was handed to.
func (t *Target) adopt(addr ListenAddress) tcpconn.Adopt {
	return func(r *reactor.Reactor, fd int, peer netip.AddrPort, slot *tcpconn.Slot) {
		pg := t.pgs[r.ID()]
		if t.stopping.Load() {
			slot.Release()
			unix.Close(fd)
			return
		}
		c := pg.adoptFD(fd, addr, tcpconn.HostPort(peer), slot)
		if c == nil {
			return
		}
		if !slot.Bind(func() { _ = r.Post(func() { c.beginClose("evicted: connection limit reached") }) }) {
			c.beginClose("evicted: connection limit reached")
		}
	}
}

// adoptFD makes a connection of fd on this reactor, or closes fd and returns nil.
//
// Preconditions: on pg.r.
func (pg *pollGroup) adoptFD(fd int, addr ListenAddress, peer string, slot *tcpconn.Slot) *tcpConn {
	c := newTCPConn(pg, addr, peer)
	c.slot = slot
	if err := c.sock.Register(pg.r, fd, c); err != nil {
		pg.t.log.Warn("nvmf: cannot watch connection", "peer", c.peer, "err", err)
		if slot != nil {
			slot.Release()
		}
		unix.Close(fd)
		return nil
	}
	pg.conns[c] = struct{}{}
	pg.connCount.Add(1)
	return c
}
