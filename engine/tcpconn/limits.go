package tcpconn

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Limits bound what one host can take from a target. Zero fields take the defaults;
// every field is reported by the protocol's transport RPCs and can be set by RPC and
// config.
type Limits struct {
	// MaxConnsPerListener bounds the connections of one listening address. At the
	// limit a new connection takes the place of the oldest one that has not finished
	// its setup (never sent ICReq or Connect, never logged in), so a flood of idle
	// sockets cannot lock out a real host; when every connection is set up, the new
	// one is refused (closed at once).
	MaxConnsPerListener int `json:"max_connections_per_listener,omitempty"`
	// MaxConnsPerHost bounds the connections from one peer IP address, with the same
	// eviction rule within that address. A Linux host opens 1 + nr_io_queues per
	// controller, and one per path of each subsystem it uses.
	MaxConnsPerHost int `json:"max_connections_per_host,omitempty"`
	// SetupTimeoutMs closes a connection that has not finished its setup this long
	// after it was accepted. The Linux host gives up on ICResp after 10 s.
	SetupTimeoutMs uint32 `json:"setup_timeout_ms,omitempty"`
	// DataTimeoutMs closes a connection whose host was asked for data (R2T) and has
	// not sent all of it this long after: the buffers it pins are released.
	DataTimeoutMs uint32 `json:"data_timeout_ms,omitempty"`
	// MaxAwaitedDataBytes bounds the buffers one connection holds for data its host was
	// asked for and has not sent yet. Past it, further requests wait for theirs before
	// the host is asked (no R2T goes out), so a host that never sends its data pins at
	// most this much memory. The protocol also caps the sum over a reactor's
	// connections at half that reactor's share of buffer memory, so that reads always
	// find buffers; a connection with nothing awaited may always ask for one request's
	// data, so that every connection makes progress.
	MaxAwaitedDataBytes uint32 `json:"max_awaited_data_per_connection,omitempty"`
}

// Defaults, chosen for a target that serves tens of hosts from one address.
const (
	DefaultMaxConnsPerListener = 4096
	DefaultMaxConnsPerHost     = 1024
	DefaultSetupTimeoutMs      = 10_000
	DefaultDataTimeoutMs       = 30_000
	DefaultMaxAwaitedDataBytes = 1 << 20
)

// Normalize fills defaults and checks ranges.
func (l Limits) Normalize() (Limits, error) {
	if l.MaxConnsPerListener == 0 {
		l.MaxConnsPerListener = DefaultMaxConnsPerListener
	}
	if l.MaxConnsPerHost == 0 {
		l.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if l.SetupTimeoutMs == 0 {
		l.SetupTimeoutMs = DefaultSetupTimeoutMs
	}
	if l.DataTimeoutMs == 0 {
		l.DataTimeoutMs = DefaultDataTimeoutMs
	}
	if l.MaxAwaitedDataBytes == 0 {
		l.MaxAwaitedDataBytes = DefaultMaxAwaitedDataBytes
	}
	switch {
	case l.MaxConnsPerListener < 1 || l.MaxConnsPerListener > 1<<20:
		return l, fmt.Errorf("max_connections_per_listener %d not in [1, 1048576]", l.MaxConnsPerListener)
	case l.MaxConnsPerHost < 1 || l.MaxConnsPerHost > l.MaxConnsPerListener:
		return l, fmt.Errorf("max_connections_per_host %d not in [1, max_connections_per_listener]", l.MaxConnsPerHost)
	case l.SetupTimeoutMs < 100 || l.SetupTimeoutMs > 3_600_000:
		return l, fmt.Errorf("setup_timeout_ms %d not in [100, 3600000]", l.SetupTimeoutMs)
	case l.DataTimeoutMs < 100 || l.DataTimeoutMs > 3_600_000:
		return l, fmt.Errorf("data_timeout_ms %d not in [100, 3600000]", l.DataTimeoutMs)
	case l.MaxAwaitedDataBytes < 4096:
		return l, fmt.Errorf("max_awaited_data_per_connection %d below 4096", l.MaxAwaitedDataBytes)
	}
	return l, nil
}

// LimitSet is the limits in force, changeable while connections run, with the
// counters of the times they bit. Safe from any goroutine.
type LimitSet struct {
	cur atomic.Pointer[Limits]

	refused       atomic.Uint64
	evicted       atomic.Uint64
	setupTimeouts atomic.Uint64
	dataTimeouts  atomic.Uint64
	quotaWaits    atomic.Uint64

	warn Throttle
}

// NewLimitSet starts with l (normalized).
func NewLimitSet(l Limits) (*LimitSet, error) {
	s := &LimitSet{}
	return s, s.Set(l)
}

// Set replaces the limits; they apply to new decisions from now on.
func (s *LimitSet) Set(l Limits) error {
	l, err := l.Normalize()
	if err != nil {
		return err
	}
	s.cur.Store(&l)
	return nil
}

// Get is the limits in force.
func (s *LimitSet) Get() Limits { return *s.cur.Load() }

// SetupTimeoutNs and the others below read one limit in the units the data path wants.
func (s *LimitSet) SetupTimeoutNs() int64 { return int64(s.cur.Load().SetupTimeoutMs) * 1e6 }

// DataTimeoutNs is DataTimeoutMs in nanoseconds.
func (s *LimitSet) DataTimeoutNs() int64 { return int64(s.cur.Load().DataTimeoutMs) * 1e6 }

// MaxAwaitedDataBytes is the per-connection quota of buffers awaiting data.
func (s *LimitSet) MaxAwaitedDataBytes() uint32 { return s.cur.Load().MaxAwaitedDataBytes }

// CountSetupTimeout, CountDataTimeout and CountQuotaWait record a limit biting.
func (s *LimitSet) CountSetupTimeout() { s.setupTimeouts.Add(1) }

// CountDataTimeout records a connection closed for data that never came.
func (s *LimitSet) CountDataTimeout() { s.dataTimeouts.Add(1) }

// CountQuotaWait records a request that waited for the awaited-data quota.
func (s *LimitSet) CountQuotaWait() { s.quotaWaits.Add(1) }

// Warn reports whether a warning about a limit may be logged now: at most one per
// warnEvery, so that a flood is told about without flooding the log.
func (s *LimitSet) Warn() bool { return s.warn.Allow(warnEvery) }

const warnEvery = 10 * time.Second

// LimitStats are the counters of limits that bit, for the protocol's stats RPC.
type LimitStats struct {
	ConnectionsRefused uint64 `json:"connections_refused"`
	ConnectionsEvicted uint64 `json:"connections_evicted"`
	SetupTimeouts      uint64 `json:"setup_timeouts"`
	DataTimeouts       uint64 `json:"data_timeouts"`
	QuotaWaits         uint64 `json:"awaited_data_quota_waits"`
}

// Stats reads the counters.
func (s *LimitSet) Stats() LimitStats {
	return LimitStats{ConnectionsRefused: s.refused.Load(), ConnectionsEvicted: s.evicted.Load(),
		SetupTimeouts: s.setupTimeouts.Load(), DataTimeouts: s.dataTimeouts.Load(), QuotaWaits: s.quotaWaits.Load()}
}

// Throttle lets an event through at most once per period. Safe from any goroutine.
type Throttle struct {
	last atomic.Int64
}

// Allow reports whether the event may pass now.
func (t *Throttle) Allow(every time.Duration) bool {
	now := time.Now().UnixNano()
	last := t.last.Load()
	if now-last < int64(every) {
		return false
	}
	return t.last.CompareAndSwap(last, now)
}
