package iscsi

import (
	"crypto/rand"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/mem"
	"sluice/engine/reactor"
	"sluice/engine/tcpconn"
)

const housekeepingPeriod = 100 * time.Millisecond

// pollGroup is the target's state on one reactor: the connections it owns, those with
// output queued, the tasks waiting for buffer room, and the reactor's allocator.
type pollGroup struct {
	t   *Target
	r   *reactor.Reactor
	mem *mem.Core

	conns      map[*conn]struct{}
	flushq     []*conn
	flushqOld  []*conn
	stalled    []*task // writes waiting for room in the awaited-data budget
	stalledOld []*task
	connCount  atomic.Int64

	// awaited is the bytes this reactor's tasks hold for Data-Out they solicited;
	// awaitedCap bounds it at half the reactor's share of buffer memory, as the NVMe
	// target bounds H2C data.
	awaited    uint64
	awaitedCap uint64
}

func newPollGroup(t *Target, r *reactor.Reactor, mc *mem.Core) *pollGroup {
	pg := &pollGroup{t: t, r: r, mem: mc, conns: map[*conn]struct{}{}}
	pg.awaitedCap = uint64(mc.Domain().SizeBytes()) / 2 / uint64(max(1, t.cfg.Reactors.Len()))
	return pg
}

// start registers the group's pollers.
//
// Preconditions: on pg.r.
func (pg *pollGroup) start() {
	pg.r.AddPoller("iscsi_flush", pg.poll)
	pg.r.AddTimedPoller("iscsi_housekeeping", housekeepingPeriod, pg.housekeeping)
}

// poll resumes stalled writes and flushes queued output, once per reactor iteration,
// so that the PDUs of many completions leave in one writev.
func (pg *pollGroup) poll() bool {
	busy := false
	if len(pg.stalled) > 0 {
		busy = true
		st := pg.stalled
		pg.stalled, pg.stalledOld = pg.stalledOld[:0], st
		for i, tk := range st {
			st[i] = nil
			tk.resumeSolicit()
		}
	}
	// A flush can queue more (a written Data-In batch releases the next, a freed
	// control slot lets a held PDU through): swap the list so that connections marked
	// meanwhile land on the other one, and go round a few times.
	for round := 0; round < 4 && len(pg.flushq) > 0; round++ {
		busy = true
		q := pg.flushq
		pg.flushq, pg.flushqOld = pg.flushqOld[:0], q
		for i, c := range q {
			if c == nil {
				continue // moved to another reactor meanwhile
			}
			c.dirty = false
			q[i] = nil
			if !c.flush() {
				c.maybeFinishClose()
			}
		}
	}
	return busy
}

func (pg *pollGroup) housekeeping() bool {
	pg.mem.Reclaim()
	now := pg.r.Now()
	for c := range pg.conns {
		c.checkTimeouts(now)
	}
	return false
}

// forget drops a connection that moves to another reactor from the flush lists, so
// that this reactor's poller never touches it again.
//
// Preconditions: on pg.r.
func (pg *pollGroup) forget(c *conn) {
	for _, q := range [][]*conn{pg.flushq, pg.flushqOld} {
		for i, x := range q {
			if x == c {
				q[i] = nil
			}
		}
	}
	c.dirty = false
}

func (pg *pollGroup) markDirty(c *conn) {
	if !c.dirty {
		c.dirty = true
		pg.flushq = append(pg.flushq, c)
	}
}

// adopt takes a connection a portal accepted, on the reactor it was handed to.
func (t *Target) adopt(tpgt uint16) tcpconn.Adopt {
	return func(r *reactor.Reactor, fd int, peer netip.AddrPort, slot *tcpconn.Slot) {
		pg := t.pgs[r.ID()]
		if t.stopping.Load() {
			slot.Release()
			unix.Close(fd)
			return
		}
		local, err := tcpconn.LocalAddr(fd)
		if err != nil {
			local = peer
		}
		c := pg.newConn(tpgt, local, peer, slot)
		if err := c.sock.Register(r, fd, c); err != nil {
			t.log.Warn("iscsi: cannot watch connection", "peer", peer.String(), "err", err)
			slot.Release()
			unix.Close(fd)
			return
		}
		pg.conns[c] = struct{}{}
		pg.connCount.Add(1)
		evict := func() {
			// The connection may have moved to its session's reactor since.
			_ = c.reactor.Load().Post(func() { c.beginClose("evicted: connection limit reached") })
		}
		if !slot.Bind(evict) {
			c.beginClose("evicted: connection limit reached")
		}
	}
}

// cryptoRand feeds CHAP challenges from the operating system's generator.
type cryptoRand struct{}

func (cryptoRand) Read(p []byte) (int, error) { return rand.Read(p) }

// counters are target-wide event counts, for iscsi_get_stats.
type counters struct {
	dataDigestErrors   atomic.Uint64
	headerDigestErrors atomic.Uint64
	protocolErrors     atomic.Uint64
	rejects            atomic.Uint64
	loginFailures      atomic.Uint64
	sessions           atomic.Uint64
	nopTimeouts        atomic.Uint64
	cmdSNDropped       atomic.Uint64
}
