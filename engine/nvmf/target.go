package nvmf

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/proto/nvme"
	"sluice/engine/reactor"
	"sluice/engine/reservation/manager"
	"sluice/engine/tcpconn"
)

// Config wires a Target to the daemon.
type Config struct {
	Reactors *reactor.Group
	Bdevs    *bdev.Manager
	// Mem returns reactor i's allocator core; data buffers come from it.
	Mem       func(i int) *mem.Core
	Transport TransportOpts
	// Firmware is the revision reported in Identify (8 ASCII characters at most).
	Firmware string
	Logger   *slog.Logger
	// PowerCycles and UnsafeShutdowns feed the health log; the daemon keeps them
	// across restarts.
	PowerCycles     uint64
	UnsafeShutdowns uint64
	// PowerOnSeconds is the power-on time of earlier runs, which the health log's
	// Power On Hours continues.
	PowerOnSeconds uint64
	// Reservations is the node's reservation manager; nil serves no reservations
	// (Identify ONCS bit 5 clear).
	Reservations *manager.Manager
}

// counters are target-wide error counters, for nvmf_get_stats.
type counters struct {
	termReqsSent      atomic.Uint64
	dataDigestErrors  atomic.Uint64
	keepAliveTimeouts atomic.Uint64
}

// Target is the NVMe-oF target: subsystems, listeners and one poll group per reactor.
// Its methods are the control plane, safe from any goroutine.
type Target struct {
	opts     TransportOpts
	bdevs    *bdev.Manager
	group    *reactor.Group
	pgs      []*pollGroup
	log      *slog.Logger
	firmware string
	started  time.Time
	counters counters
	stopping atomic.Bool
	limits   *tcpconn.LimitSet
	resv     *manager.Manager

	powerCycles     uint64
	unsafeShutdowns uint64
	powerOnBase     uint64    // seconds of earlier runs
	busyEpoch       time.Time // the timebase of Controller Busy Time seconds

	// Lock discipline: reactors take mu (briefly, at Connect) and never listenMu;
	// nothing waits on a reactor (Do) while holding mu. listenMu serialises listener
	// changes, which open sockets and register them on reactor 0 with Do.
	listenMu   sync.Mutex
	mu         sync.Mutex
	subsystems map[string]*Subsystem // +checklocks:mu
	listeners  map[string]*listener  // +checklocks:mu; by endpoint
	genctr     uint64                // +checklocks:mu; discovery log generation

	// disc is what discovery controllers read on their reactors, without a lock:
	// republished under mu on every change that the discovery log shows.
	disc atomic.Pointer[discoverySnap]
}

// NewTarget starts the transport's poll groups on every reactor and creates the
// discovery subsystem.
func NewTarget(cfg Config) (*Target, error) {
	opts, err := cfg.Transport.normalize()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	fw := cfg.Firmware
	if fw == "" {
		fw = "0.1"
	}
	if len(fw) > 8 {
		return nil, fmt.Errorf("firmware revision %q longer than 8 bytes: %w", fw, ErrInvalid)
	}
	t := &Target{opts: opts, bdevs: cfg.Bdevs, group: cfg.Reactors, log: log, firmware: fw,
		started: time.Now(), powerCycles: cfg.PowerCycles, unsafeShutdowns: cfg.UnsafeShutdowns,
		powerOnBase: cfg.PowerOnSeconds, resv: cfg.Reservations,
		subsystems: map[string]*Subsystem{}, listeners: map[string]*listener{}}
	if t.limits, err = tcpconn.NewLimitSet(opts.Limits); err != nil {
		return nil, err
	}
	for i, r := range cfg.Reactors.Reactors() {
		pg := newPollGroup(t, r, cfg.Mem(i))
		if err := r.Do(pg.start); err != nil {
			return nil, err
		}
		t.pgs = append(t.pgs, pg)
	}
	disc, err := newSubsystem(SubsystemParams{NQN: DiscoveryNQN})
	if err != nil {
		return nil, err
	}
	t.subsystems[DiscoveryNQN] = disc
	t.publishDiscovery()
	if t.resv != nil {
		t.resv.AddSink(t)
	}
	return t, nil
}

// Opts are the transport options in effect, with the limits as they are now.
func (t *Target) Opts() TransportOpts {
	o := t.opts
	o.Limits = t.limits.Get()
	return o
}

func (t *Target) subsystem(nqn string) *Subsystem {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.subsystems[nqn]
}

func (t *Target) mustSubsystem(nqn string) (*Subsystem, error) {
	s := t.subsystem(nqn)
	if s == nil {
		return nil, fmt.Errorf("subsystem %q: %w", nqn, ErrNotFound)
	}
	return s, nil
}

// CreateSubsystem adds an NVM subsystem with no namespaces, hosts or listeners.
func (t *Target) CreateSubsystem(p SubsystemParams) error {
	if p.NQN == DiscoveryNQN {
		return fmt.Errorf("subsystem %q: %w", p.NQN, ErrExists)
	}
	s, err := newSubsystem(p)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subsystems[p.NQN] != nil {
		return fmt.Errorf("subsystem %q: %w", p.NQN, ErrExists)
	}
	t.subsystems[p.NQN] = s
	t.discoveryChangedLocked()
	return nil
}

// DeleteSubsystem disconnects its controllers, removes its namespaces (releasing
// their bdevs) and its listeners. The subsystem is marked deleted first, under its
// lock, so that a namespace, host or listener added concurrently either lands before
// (and is removed here) or is refused: nothing is left claimed by a deleted subsystem.
func (t *Target) DeleteSubsystem(nqn string) error {
	if nqn == DiscoveryNQN {
		return fmt.Errorf("the discovery subsystem cannot be deleted: %w", ErrInvalid)
	}
	t.mu.Lock()
	s := t.subsystems[nqn]
	if s == nil {
		t.mu.Unlock()
		return fmt.Errorf("subsystem %q: %w", nqn, ErrNotFound)
	}
	delete(t.subsystems, nqn)
	s.mu.Lock()
	s.deleted = true
	ls := append([]ListenAddress{}, s.listeners...)
	s.listeners = nil
	ids := make([]uint32, 0, len(s.nsList))
	for id := range s.nsList {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	t.discoveryChangedLocked()
	t.mu.Unlock()
	t.disconnectAll(s, "subsystem deleted")
	for _, id := range ids {
		if err := t.removeNamespace(s, id); err != nil {
			t.log.Warn("nvmf: removing namespace of deleted subsystem", "nqn", nqn, "nsid", id, "err", err)
		}
	}
	for _, l := range ls {
		t.releaseListener(l)
	}
	return nil
}

// disconnectAll destroys every controller of s and waits until their queues closed.
func (t *Target) disconnectAll(s *Subsystem, reason string) {
	for _, c := range s.controllers() {
		c := c
		_ = c.pg.r.Do(func() { c.destroy(reason) })
	}
}

// AddNamespace exports a bdev and returns its NSID. Controllers of the subsystem
// get a Namespace Attribute Changed notice.
func (t *Target) AddNamespace(nqn string, p NamespaceParams) (uint32, error) {
	s, err := t.mustSubsystem(nqn)
	if err != nil {
		return 0, err
	}
	b, err := t.bdevs.Get(p.BdevName)
	if err != nil {
		return 0, err
	}
	var vol *manager.Volume
	if t.resv != nil {
		vol = t.resv.Volume(b.NGUID())
	}
	ns, err := s.addNamespace(p, b, vol)
	if err != nil {
		return 0, err
	}
	t.notifyNSChanged(s, ns.ID)
	return ns.ID, nil
}

// RemoveNamespace unexports a namespace. Every I/O queue lets go of its bdev channel
// before this returns; commands already in the bdev complete as usual (the channels
// close once they drained), so the bdev can be deleted next: its delete waits for them.
func (t *Target) RemoveNamespace(nqn string, nsid uint32) error {
	s, err := t.mustSubsystem(nqn)
	if err != nil {
		return err
	}
	return t.removeNamespace(s, nsid)
}

func (t *Target) removeNamespace(s *Subsystem, nsid uint32) error {
	ns, err := s.removeNamespace(nsid)
	if err != nil {
		return err
	}
	for _, pg := range t.pgs {
		pg := pg
		_ = pg.r.Do(func() {
			for c := range pg.conns {
				if c.qp.subsys == s {
					c.dropNamespace(ns)
				}
			}
		})
	}
	t.notifyNSChanged(s, nsid)
	return nil
}

func (t *Target) notifyNSChanged(s *Subsystem, nsid uint32) {
	for _, c := range s.controllers() {
		c := c
		_ = c.pg.r.Post(func() { c.notifyNSChanged(nsid) })
	}
}

// AddListener makes the subsystem reachable on an address, opening the socket if no
// other subsystem listens there yet.
func (t *Target) AddListener(nqn string, a ListenAddress) error {
	a, err := a.normalize()
	if err != nil {
		return err
	}
	s, err := t.mustSubsystem(nqn)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, l := range s.listeners {
		if l.sameEndpoint(a) {
			s.mu.Unlock()
			return fmt.Errorf("subsystem %s already listens on %s: %w", nqn, a.endpoint(), ErrExists)
		}
	}
	s.mu.Unlock()
	if err := t.acquireListener(a); err != nil {
		return err
	}
	t.mu.Lock()
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		t.mu.Unlock()
		t.releaseListener(a)
		return fmt.Errorf("subsystem %q: %w", nqn, ErrNotFound)
	}
	s.listeners = append(s.listeners, a)
	s.mu.Unlock()
	t.discoveryChangedLocked()
	t.mu.Unlock()
	return nil
}

// RemoveListener stops the subsystem listening on an address. Connections already
// made stay.
func (t *Target) RemoveListener(nqn string, a ListenAddress) error {
	a, err := a.normalize()
	if err != nil {
		return err
	}
	s, err := t.mustSubsystem(nqn)
	if err != nil {
		return err
	}
	s.mu.Lock()
	idx := -1
	for i, l := range s.listeners {
		if l.sameEndpoint(a) {
			idx = i
		}
	}
	if idx < 0 {
		s.mu.Unlock()
		return fmt.Errorf("subsystem %s does not listen on %s: %w", nqn, a.endpoint(), ErrNotFound)
	}
	s.listeners = append(s.listeners[:idx], s.listeners[idx+1:]...)
	s.mu.Unlock()
	t.mu.Lock()
	t.discoveryChangedLocked()
	t.mu.Unlock()
	t.releaseListener(a)
	return nil
}

// acquireListener takes a reference on the listener of a's endpoint, opening the
// socket and registering it on reactor 0 when it is the first. It waits on reactor 0
// holding listenMu only, which no reactor takes.
func (t *Target) acquireListener(a ListenAddress) error {
	t.listenMu.Lock()
	defer t.listenMu.Unlock()
	t.mu.Lock()
	if l := t.listeners[a.endpoint()]; l != nil {
		l.refs++
		t.mu.Unlock()
		return nil
	}
	stopping := t.stopping.Load()
	t.mu.Unlock()
	if stopping {
		return fmt.Errorf("listen on %s: target shutting down: %w", a.endpoint(), ErrBusy)
	}
	ap, err := tcpconn.ParseAddrPort(a.TrAddr, a.TrSvcID)
	if err != nil {
		return fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	rs := make([]*reactor.Reactor, len(t.pgs))
	for i, pg := range t.pgs {
		rs[i] = pg.r
	}
	tl, err := tcpconn.Listen(tcpconn.ListenerConfig{Addr: ap, Reactors: rs, Adopt: t.adopt(a),
		Limits: t.limits, Logger: t.log, Stopping: t.stopping.Load})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.listeners[a.endpoint()] = &listener{addr: a, l: tl, refs: 1}
	t.mu.Unlock()
	t.log.Info("nvmf: listening", "address", a.endpoint())
	return nil
}

// releaseListener drops a reference and closes the socket with the last one.
func (t *Target) releaseListener(a ListenAddress) {
	t.listenMu.Lock()
	defer t.listenMu.Unlock()
	t.mu.Lock()
	l := t.listeners[a.endpoint()]
	if l == nil {
		t.mu.Unlock()
		return
	}
	l.refs--
	if l.refs > 0 {
		t.mu.Unlock()
		return
	}
	delete(t.listeners, a.endpoint())
	t.discoveryChangedLocked()
	t.mu.Unlock()
	t.closeListener(l)
}

// closeListener unregisters and closes a listener's socket.
//
// Preconditions: listenMu held, mu not held.
func (t *Target) closeListener(l *listener) {
	l.l.Close()
	t.log.Info("nvmf: stopped listening", "address", l.addr.endpoint())
}

// AddHost allows a host NQN to connect to the subsystem.
func (t *Target) AddHost(nqn, host string) error {
	if err := nvme.ValidateNQN(host); err != nil {
		return fmt.Errorf("host nqn %q: %v: %w", host, err, ErrInvalid)
	}
	s, err := t.mustSubsystem(nqn)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s.mu.Lock()
	_, dup := s.hosts[host]
	if !dup && !s.deleted {
		s.hosts[host] = struct{}{}
	}
	deleted := s.deleted
	s.mu.Unlock()
	switch {
	case deleted:
		return fmt.Errorf("subsystem %q: %w", nqn, ErrNotFound)
	case dup:
		return fmt.Errorf("host %s on %s: %w", host, nqn, ErrExists)
	}
	t.discoveryChangedLocked()
	return nil
}

// RemoveHost revokes a host and disconnects its controllers.
func (t *Target) RemoveHost(nqn, host string) error {
	s, err := t.mustSubsystem(nqn)
	if err != nil {
		return err
	}
	t.mu.Lock()
	s.mu.Lock()
	_, ok := s.hosts[host]
	delete(s.hosts, host)
	anyHost := s.allowAnyHost
	s.mu.Unlock()
	if ok {
		t.discoveryChangedLocked()
	}
	t.mu.Unlock()
	if !ok {
		return fmt.Errorf("host %s on %s: %w", host, nqn, ErrNotFound)
	}
	if !anyHost {
		for _, c := range s.controllers() {
			if c.hostNQN == host {
				c := c
				_ = c.pg.r.Do(func() { c.destroy("host removed from subsystem") })
			}
		}
	}
	return nil
}

// SetAllowAnyHost switches the host allow-list off (true) or on (false).
func (t *Target) SetAllowAnyHost(nqn string, allow bool) error {
	s, err := t.mustSubsystem(nqn)
	if err != nil {
		return err
	}
	if s.discovery {
		return fmt.Errorf("the discovery subsystem always allows any host: %w", ErrInvalid)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s.mu.Lock()
	s.allowAnyHost = allow
	s.mu.Unlock()
	t.discoveryChangedLocked()
	return nil
}

// Subsystems describes every subsystem, discovery first.
func (t *Target) Subsystems() []SubsystemInfo {
	t.mu.Lock()
	ss := make([]*Subsystem, 0, len(t.subsystems))
	for _, s := range t.subsystems {
		ss = append(ss, s)
	}
	t.mu.Unlock()
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].discovery != ss[j].discovery {
			return ss[i].discovery
		}
		return ss[i].nqn < ss[j].nqn
	})
	out := make([]SubsystemInfo, len(ss))
	for i, s := range ss {
		out[i] = s.info()
	}
	return out
}

// discoverySnap is the discovery log's source: immutable once published, so that a
// discovery controller builds its log page on its reactor without taking a lock that
// the control plane may hold.
type discoverySnap struct {
	genctr    uint64
	endpoints []ListenAddress // sorted; an endpoint's port ID is its index + 1
	subs      []discoverySub  // sorted by NQN; the discovery subsystem excluded
}

type discoverySub struct {
	nqn       string
	allowAny  bool
	hosts     map[string]struct{}
	listeners []ListenAddress
}

func (d *discoverySnap) portID(a ListenAddress) uint16 {
	for i, e := range d.endpoints {
		if e.sameEndpoint(a) {
			return uint16(i + 1)
		}
	}
	return 0
}

func (d *discoverySub) allows(hostNQN string) bool {
	if d.allowAny {
		return true
	}
	_, ok := d.hosts[hostNQN]
	return ok
}

// discoveryChangedLocked changes the discovery log generation, publishes the new
// snapshot, and tells discovery controllers that asked for it.
//
// Preconditions: t.mu held (it takes each subsystem's mu after it).
func (t *Target) discoveryChangedLocked() {
	t.genctr++
	t.publishDiscoveryLocked()
	disc := t.subsystems[DiscoveryNQN]
	if disc == nil {
		return
	}
	for _, c := range disc.controllers() {
		c := c
		_ = c.pg.r.Post(func() {
			if c.feat.asyncEvents&nvme.AECDiscoveryLogChange != 0 {
				c.raiseEvent(nvme.AENDiscoveryLogChange.DW0())
			}
		})
	}
}

// publishDiscovery republishes the snapshot without a generation change (setup).
func (t *Target) publishDiscovery() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.publishDiscoveryLocked()
}

// +checklocks:t.mu
func (t *Target) publishDiscoveryLocked() {
	d := &discoverySnap{genctr: t.genctr}
	for _, l := range t.listeners {
		d.endpoints = append(d.endpoints, l.addr)
	}
	sort.Slice(d.endpoints, func(i, j int) bool { return d.endpoints[i].endpoint() < d.endpoints[j].endpoint() })
	for _, s := range t.subsystems {
		if s.discovery {
			continue
		}
		s.mu.Lock()
		ds := discoverySub{nqn: s.nqn, allowAny: s.allowAnyHost, hosts: make(map[string]struct{}, len(s.hosts)),
			listeners: append([]ListenAddress{}, s.listeners...)}
		for h := range s.hosts {
			ds.hosts[h] = struct{}{}
		}
		s.mu.Unlock()
		d.subs = append(d.subs, ds)
	}
	sort.Slice(d.subs, func(i, j int) bool { return d.subs[i].nqn < d.subs[j].nqn })
	t.disc.Store(d)
}

// discoveryLog builds the discovery log page for a host from the published snapshot:
// every subsystem it may connect to, on every listener, plus the discovery
// subsystem's own entries. It takes no lock.
//
// Preconditions: on a reactor (it allocates: the discovery log is the control path).
func (t *Target) discoveryLog(hostNQN string) []byte {
	d := t.disc.Load()
	var es []nvme.DiscoveryLogEntry
	for _, a := range d.endpoints {
		es = append(es, discoveryEntry(a, DiscoveryNQN, nvme.SubTypeCurrentDiscovery, d.portID(a)))
	}
	for i := range d.subs {
		ds := &d.subs[i]
		if !ds.allows(hostNQN) {
			continue
		}
		for _, a := range ds.listeners {
			es = append(es, discoveryEntry(a, ds.nqn, nvme.SubTypeNVMe, d.portID(a)))
		}
	}
	b := make([]byte, nvme.DiscoveryLogLen(len(es)))
	_ = nvme.MarshalDiscoveryLog(b, d.genctr, es)
	return b
}

func discoveryEntry(a ListenAddress, nqn string, subtype uint8, portID uint16) nvme.DiscoveryLogEntry {
	traddr, trsvcid := a.advertised()
	e := nvme.DiscoveryLogEntry{
		TRTYPE:  nvme.TRTypeTCP,
		ADRFAM:  a.adrfamCode(),
		SUBTYPE: subtype,
		// No secure channel required; SQ flow control may be disabled, so the Linux
		// host's connect-all turns it off and reads complete with C2H SUCCESS.
		TREQ:   nvme.TREQSecureNotRequired | nvme.TREQDisableSQFlow,
		PORTID: portID,
		CNTLID: nvme.CNTLIDDynamic,
		ASQSZ:  32,
	}
	nvme.PutASCII(e.TRSVCID[:], trsvcid)
	nvme.PutNQN(e.SUBNQN[:], nqn)
	nvme.PutASCII(e.TRADDR[:], traddr)
	return e
}

func (t *Target) powerOnHours() uint64 { return t.PowerOnSeconds() / 3600 }

// PowerOnSeconds is the power-on time of this run and the earlier ones, for the health
// log and for the daemon to keep across restarts.
func (t *Target) PowerOnSeconds() uint64 {
	return t.powerOnBase + uint64(time.Since(t.started)/time.Second)
}

// Stats are transport-wide counters (nvmf_get_stats).
type Stats struct {
	Connections       int64  `json:"connections"`
	TermReqsSent      uint64 `json:"term_reqs_sent"`
	DataDigestErrors  uint64 `json:"data_digest_errors"`
	KeepAliveTimeouts uint64 `json:"keep_alive_timeouts"`
	// C2HSuccess counts reads answered with C2HData SUCCESS and no CapsuleResp.
	C2HSuccess uint64 `json:"c2h_success_reads"`
	// The times a connection limit bit.
	tcpconn.LimitStats
}

// Stats reads the counters.
func (t *Target) Stats() Stats {
	s := Stats{TermReqsSent: t.counters.termReqsSent.Load(),
		DataDigestErrors:  t.counters.dataDigestErrors.Load(),
		KeepAliveTimeouts: t.counters.keepAliveTimeouts.Load(),
		LimitStats:        t.limits.Stats()}
	for _, pg := range t.pgs {
		s.Connections += pg.connCount.Load()
		s.C2HSuccess += pg.c2hSuccess.Load()
	}
	return s
}

// Shutdown stops accepting connections, lets in-flight commands finish and their
// answers go out, then closes every connection (SIGTERM). It returns when all are
// closed or ctx ends.
func (t *Target) Shutdown(ctx context.Context) error {
	t.stopping.Store(true)
	t.listenMu.Lock()
	t.mu.Lock()
	ls := make([]*listener, 0, len(t.listeners))
	for k, l := range t.listeners {
		delete(t.listeners, k)
		ls = append(ls, l)
	}
	t.mu.Unlock()
	for _, l := range ls {
		t.closeListener(l)
	}
	t.listenMu.Unlock()
	for _, pg := range t.pgs {
		pg := pg
		_ = pg.r.Do(func() {
			for c := range pg.conns {
				c.drain()
			}
		})
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		open := int64(0)
		for _, pg := range t.pgs {
			open += pg.connCount.Load()
		}
		if open == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			// Out of patience: close what is left without waiting for the host.
			// Commands still inside a bdev keep their connections until they
			// complete; the bdev layer releases the channels after them.
			for _, pg := range t.pgs {
				pg := pg
				_ = pg.r.Do(func() {
					for c := range pg.conns {
						c.closeOut = false
						c.beginClose("shutdown timeout")
					}
				})
			}
			return fmt.Errorf("nvmf shutdown: %d connections still open: %w", open, ctx.Err())
		case <-tick.C:
		}
	}
}
