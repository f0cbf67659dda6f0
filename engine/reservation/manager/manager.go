package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"sluice/engine/reactor"
	"sluice/engine/reservation"
)

// Decider decides reservation commands and keeps the volumes' states: the group
// (engine/group: the group leader, with its backup's admission rule), or a standalone
// node's local store. Reserve blocks until the command is decided and applied to the
// local copy; a refusal that the host may retry (the backup group leader not
// synchronized, no leader) wraps ErrRetryable.
type Decider interface {
	Reserve(ctx context.Context, vol [16]byte, cmd reservation.Command) (reservation.Result, error)
	Volume(vol [16]byte) (reservation.State, bool)
}

// ErrRetryable marks a refusal that changed nothing and that the host may retry: NVMe
// answers Command Interrupted with DNR clear, SCSI answers BUSY; neither reads as
// fencing, as Reservation Conflict would.
var ErrRetryable = errors.New("reservation command refused for now; retry")

// Sink is what a protocol target gives the manager to act on its connections. Each
// method runs on the manager's goroutine and must not block: it posts to reactors.
type Sink interface {
	// Notify delivers notices (NVMe reservation log entries and their event, SCSI unit
	// attentions) to the local hosts they are addressed to.
	Notify(vol [16]byte, notices []reservation.Notice)
	// Drain aborts or waits out the in-flight commands of subjects on vol (preempt and
	// abort), calling done once none is left. It may call done before returning.
	Drain(vol [16]byte, subjects []reservation.Subject, done func())
}

// Config wires a Manager.
type Config struct {
	Decider  Decider
	Reactors []*reactor.Reactor
	Logger   *slog.Logger
	// Timeout bounds one command's decision (the group's round trips, a backup that
	// catches up): past it the host gets the retryable answer.
	Timeout time.Duration
	// Workers bounds the commands decided at once.
	Workers int
}

// Volume is one volume's reservation state as the I/O path sees it: the published
// snapshot every reactor checks without a lock, and the state reports are built from.
// The protocols of a volume's exports share the same *Volume.
type Volume struct {
	NGUID [16]byte
	view  atomic.Pointer[reservation.View]
	state atomic.Pointer[reservation.State]
	mgr   *Manager
	// order serialises this volume's decisions and publications.
	order sync.Mutex
	// queue holds this volume's commands in the order they reached the control ring;
	// one worker at a time drains it, so that a host's commands are decided in order.
	qmu     sync.Mutex
	queue   []*request
	running bool
}

// View is the snapshot for conflict checks: nil means no reservation. Allocation-free.
func (v *Volume) View() *reservation.View { return v.view.Load() }

// State is a copy-free read of the latest state, for reports (Reservation Report, PR
// IN). It must not be modified.
func (v *Volume) State() *reservation.State { return v.state.Load() }

// Manager is a node's reservation service: reactors hand it reservation commands on a
// control ring, it has the Decider decide them, publishes each volume's new snapshot on
// every reactor before it answers, delivers notices, and sends the answer back to the
// reactor the command came from. Reactors never change reservation state themselves.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	ring  *reactor.MPSC[*request]
	wake  chan struct{}
	quit  chan struct{}
	slots chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	vols  map[[16]byte]*Volume // +checklocks:mu
	sinks []Sink               // +checklocks:mu

	stats struct {
		submitted, refused, retryable atomic.Uint64
	}
}

// request is one command on the control ring.
type request struct {
	vol   *Volume
	cmd   reservation.Command
	from  *reactor.Reactor
	reply func(reservation.Result, error)
}

// controlRing bounds the commands waiting for the manager; past it Submit answers the
// retryable refusal at once (a host storm of reservation commands).
const controlRing = 1024

// New starts a manager.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Workers == 0 {
		cfg.Workers = 64
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, ring: reactor.NewMPSC[*request](controlRing),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), slots: make(chan struct{}, cfg.Workers),
		vols: map[[16]byte]*Volume{}}
	m.wg.Add(1)
	go m.loop()
	return m
}

// Close stops the manager; commands still waiting get ErrRetryable.
func (m *Manager) Close() {
	close(m.quit)
	m.wg.Wait()
}

// AddSink registers a protocol target.
func (m *Manager) AddSink(s Sink) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sinks = append(m.sinks, s)
}

// Volume returns the volume's reservation view, loading its current state from the
// decider the first time. Every export of the volume shares it.
func (m *Manager) Volume(nguid [16]byte) *Volume {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.vols[nguid]; v != nil {
		return v
	}
	v := &Volume{NGUID: nguid, mgr: m}
	st, _ := m.cfg.Decider.Volume(nguid)
	v.publish(&st)
	m.vols[nguid] = v
	return v
}

func (v *Volume) publish(st *reservation.State) {
	cp := st.Clone()
	v.state.Store(&cp)
	if cp.Type == reservation.TypeNone && !cp.SCSI2.Held {
		// No reservation: the I/O path's check is one nil test.
		v.view.Store(nil)
		return
	}
	v.view.Store(cp.View())
}

// Submit queues a reservation command for vol. reply runs later on the reactor r (the
// command's), never inside Submit.
//
// Preconditions: on r; the control path (it allocates).
func (m *Manager) Submit(r *reactor.Reactor, vol *Volume, cmd reservation.Command,
	reply func(reservation.Result, error)) {
	req := &request{vol: vol, cmd: cmd, from: r, reply: reply}
	if !m.ring.Push(req) {
		m.stats.retryable.Add(1)
		_ = r.Post(func() { reply(reservation.Result{}, fmt.Errorf("control ring full: %w", ErrRetryable)) })
		return
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) loop() {
	defer m.wg.Done()
	for {
		for {
			req, ok := m.ring.Pop()
			if !ok {
				break
			}
			m.stats.submitted.Add(1)
			m.enqueue(req)
		}
		select {
		case <-m.wake:
		case <-m.quit:
			for {
				req, ok := m.ring.Pop()
				if !ok {
					return
				}
				m.answer(req, reservation.Result{}, fmt.Errorf("shutting down: %w", ErrRetryable))
			}
		}
	}
}

// enqueue queues req behind its volume's earlier commands and starts the volume's
// worker if none runs: volumes proceed in parallel, each in order.
func (m *Manager) enqueue(req *request) {
	v := req.vol
	v.qmu.Lock()
	v.queue = append(v.queue, req)
	start := !v.running
	v.running = true
	v.qmu.Unlock()
	if start {
		m.wg.Add(1)
		go m.work(v)
	}
}

// work decides a volume's queued commands one by one, holding a worker slot each time.
func (m *Manager) work(v *Volume) {
	defer m.wg.Done()
	for {
		v.qmu.Lock()
		if len(v.queue) == 0 {
			v.running = false
			v.qmu.Unlock()
			return
		}
		req := v.queue[0]
		v.queue[0] = nil
		v.queue = v.queue[1:]
		v.qmu.Unlock()
		select {
		case m.slots <- struct{}{}:
			m.decide(req)
			<-m.slots
		case <-m.quit:
			m.answer(req, reservation.Result{}, fmt.Errorf("shutting down: %w", ErrRetryable))
		}
	}
}

// decide runs one command: decision, publication on every reactor, the drain of
// preempted hosts' commands, notices, answer.
func (m *Manager) decide(req *request) {
	v := req.vol
	v.order.Lock()
	defer v.order.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
	res, err := m.cfg.Decider.Reserve(ctx, v.NGUID, req.cmd)
	cancel()
	if err != nil {
		if !errors.Is(err, ErrRetryable) && ctx.Err() != nil {
			err = fmt.Errorf("%v: %w", err, ErrRetryable)
		}
		m.stats.refused.Add(1)
		m.answer(req, reservation.Result{}, err)
		return
	}
	if res.Status == reservation.StatusOK {
		m.install(v)
		if len(res.Aborts) > 0 {
			m.drain(v.NGUID, res.Aborts)
		}
		m.notify(v.NGUID, res.Notices)
	}
	m.answer(req, res, nil)
}

// install publishes the volume's decided state and waits until every reactor has run a
// step after it: a command checked before that has been submitted already, and every
// check after it sees the new snapshot. A fencing command is answered only then.
func (m *Manager) install(v *Volume) {
	st, _ := m.cfg.Decider.Volume(v.NGUID)
	v.publish(&st)
	m.barrier()
}

func (m *Manager) barrier() {
	var wg sync.WaitGroup
	for _, r := range m.cfg.Reactors {
		wg.Add(1)
		if r.Post(wg.Done) != nil {
			wg.Done() // a stopped reactor checks nothing any more
		}
	}
	wg.Wait()
}

func (m *Manager) drain(vol [16]byte, subjects []reservation.Subject) {
	m.mu.Lock()
	sinks := append([]Sink(nil), m.sinks...)
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range sinks {
		wg.Add(1)
		s.Drain(vol, subjects, wg.Done)
	}
	wg.Wait()
}

func (m *Manager) notify(vol [16]byte, notices []reservation.Notice) {
	if len(notices) == 0 {
		return
	}
	m.mu.Lock()
	sinks := append([]Sink(nil), m.sinks...)
	m.mu.Unlock()
	for _, s := range sinks {
		s.Notify(vol, notices)
	}
}

func (m *Manager) answer(req *request, res reservation.Result, err error) {
	if errors.Is(err, ErrRetryable) {
		m.stats.retryable.Add(1)
	}
	if req.from.Post(func() { req.reply(res, err) }) != nil {
		m.log.Warn("reservation: answer not delivered, reactor stopped")
	}
}

// Refresh republishes a volume whose state changed outside this node's commands (an
// operator's clear, a command decided elsewhere, a revalidation after the group leader
// changed) and delivers notices for it.
func (m *Manager) Refresh(nguid [16]byte, notices []reservation.Notice) {
	m.mu.Lock()
	v := m.vols[nguid]
	m.mu.Unlock()
	if v == nil {
		return
	}
	v.order.Lock()
	m.install(v)
	v.order.Unlock()
	m.notify(nguid, notices)
}

// RefreshAll republishes every volume from the decider's state: after the group leader
// changed and the node revalidated its copy, no cached snapshot stays in use.
func (m *Manager) RefreshAll() {
	m.mu.Lock()
	vols := make([]*Volume, 0, len(m.vols))
	for _, v := range m.vols {
		vols = append(vols, v)
	}
	m.mu.Unlock()
	for _, v := range vols {
		v.order.Lock()
		st, _ := m.cfg.Decider.Volume(v.NGUID)
		v.publish(&st)
		v.order.Unlock()
	}
	m.barrier()
}

// Stats are the manager's counters.
type Stats struct {
	Submitted uint64 `json:"submitted"`
	Refused   uint64 `json:"refused"`
	Retryable uint64 `json:"retryable"`
}

// Stats reads the counters.
func (m *Manager) Stats() Stats {
	return Stats{Submitted: m.stats.submitted.Load(), Refused: m.stats.refused.Load(),
		Retryable: m.stats.retryable.Load()}
}
