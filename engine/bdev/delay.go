package bdev

import (
	"fmt"

	"sluice/engine/reactor"
)

// DelayParams are bdev_delay_create's parameters (SPDK's names; latencies in
// microseconds). Every I/O completes no sooner than its latency after the base
// completed it; one in a hundred gets the p99 latency instead of the average. Reads use
// the read latencies, every other type the write latencies.
//
// DelayPolls and Reorder are sluice's, for deterministic tests of teardown with I/O in
// flight: DelayPolls holds each completion for that many runs of the layer's poller
// (added to any latency), and Reorder completes the I/Os that are due together newest
// first, so that completions reach the layer above out of submission order.
type DelayParams struct {
	Name            string `json:"name" rpc:"required"`
	BaseBdevName    string `json:"base_bdev_name" rpc:"required"`
	AvgReadLatency  uint64 `json:"avg_read_latency"`
	P99ReadLatency  uint64 `json:"p99_read_latency"`
	AvgWriteLatency uint64 `json:"avg_write_latency"`
	P99WriteLatency uint64 `json:"p99_write_latency"`
	DelayPolls      uint32 `json:"delay_polls,omitempty"`
	Reorder         bool   `json:"reorder,omitempty"`
	UUID            string `json:"uuid,omitempty"`
}

// maxDelayUs bounds a latency at one minute: longer would outlast every host's I/O
// timeout and read as a hang rather than a slow disk.
const maxDelayUs = 60_000_000

// CreateDelay registers a delay bdev over p.BaseBdevName, which it claims.
func CreateDelay(m *Manager, p DelayParams) (*Bdev, error) {
	b, err := createDelay(m, p)
	if err != nil {
		return nil, fmt.Errorf("bdev_delay_create %q: %w", p.Name, err)
	}
	return b, nil
}

func createDelay(m *Manager, p DelayParams) (*Bdev, error) {
	for _, us := range []uint64{p.AvgReadLatency, p.P99ReadLatency, p.AvgWriteLatency, p.P99WriteLatency} {
		if us > maxDelayUs {
			return nil, fmt.Errorf("latency %d µs above %d: %w", us, uint64(maxDelayUs), ErrInvalid)
		}
	}
	if p.P99ReadLatency < p.AvgReadLatency || p.P99WriteLatency < p.AvgWriteLatency {
		return nil, fmt.Errorf("a p99 latency below its average: %w", ErrInvalid)
	}
	u, err := parseOptionalUUID(p.UUID)
	if err != nil {
		return nil, err
	}
	if u == ([16]byte{}) {
		u = DeriveUUID("delay", p.Name)
	}
	lb, err := ClaimBase(m, "delay", p.Name, p.BaseBdevName)
	if err != nil {
		return nil, err
	}
	be := &delayBackend{base: lb, p: p}
	// Register closes be on error, which releases the claim.
	return m.Register(lb.LayerConfig(p.Name, "delay", u, p), be)
}

type delayBackend struct {
	base LayerBase
	p    DelayParams
}

func (be *delayBackend) NewChannel(r *reactor.Reactor) (BackendChannel, error) {
	lc, err := openLayerChannel(be.base, r)
	if err != nil {
		return nil, err
	}
	c := &delayChannel{layerChannel: lc, be: be, held: make([]*delayIO, 0, 256)}
	c.pool = NewPool(64, c.newIO)
	c.poller = r.AddPoller("bdev_delay "+be.p.Name, c.poll)
	return c, nil
}

func (be *delayBackend) Close() error {
	be.base.Release()
	return nil
}

type delayIO struct {
	ChildIO
	c       *delayChannel
	dueNs   int64
	duePoll uint64
}

type delayChannel struct {
	layerChannel
	be     *delayBackend
	pool   *Pool[delayIO]
	held   []*delayIO // completed by the base, waiting until due
	due    []*delayIO // reused by poll
	poller *reactor.Poller
	polls  uint64
	count  uint64 // I/Os served, to pick the one in a hundred that gets p99
}

func (c *delayChannel) newIO() *delayIO {
	d := &delayIO{c: c}
	d.Child.Done = d.baseDone
	return d
}

func (c *delayChannel) Submit(io *IO) {
	d := c.pool.Get()
	d.Prepare(io)
	c.base.Submit(&d.Child)
}

// baseDone starts the wait of an I/O the base has completed.
func (d *delayIO) baseDone(*IO) {
	c := d.c
	p := &c.be.p
	avg, p99 := p.AvgWriteLatency, p.P99WriteLatency
	if d.Child.Type == IORead {
		avg, p99 = p.AvgReadLatency, p.P99ReadLatency
	}
	us := avg
	if c.count++; c.count%100 == 0 {
		us = p99
	}
	d.dueNs = c.r.Now() + int64(us)*1000
	d.duePoll = c.polls + uint64(p.DelayPolls)
	c.held = append(c.held, d)
}

// poll completes the held I/Os that are due. While any is held it reports busy, so
// that an adaptive reactor does not sleep past a microsecond deadline: a delay bdev is
// a test and fault-injection tool, and keeping its reactor awake is the honest cost.
func (c *delayChannel) poll() bool {
	c.polls++
	if len(c.held) == 0 {
		return false
	}
	now := c.r.Now()
	keep := c.held[:0]
	for _, d := range c.held {
		if now >= d.dueNs && c.polls >= d.duePoll {
			c.due = append(c.due, d)
		} else {
			keep = append(keep, d)
		}
	}
	clear(c.held[len(keep):])
	c.held = keep
	c.completeDue()
	return true
}

func (c *delayChannel) completeDue() {
	n := len(c.due)
	for i := range n {
		k := i
		if c.be.p.Reorder {
			k = n - 1 - i
		}
		d := c.due[k]
		c.due[k] = nil
		p := d.Detach()
		c.pool.Put(d)
		p.Complete(p.Status)
	}
	c.due = c.due[:0]
}

// Close runs once every parent I/O has completed, so nothing is held.
func (c *delayChannel) Close() {
	if len(c.held) != 0 {
		panic(fmt.Sprintf("bdev_delay %q: channel closed with %d I/Os held", c.be.p.Name, len(c.held)))
	}
	c.r.RemovePoller(c.poller)
	c.base.Put()
}
