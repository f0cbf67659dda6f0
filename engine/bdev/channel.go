package bdev

import (
	"fmt"
	"sync/atomic"
	"time"

	"sluice/engine/reactor"
)

// Channel is a bdev's I/O state on one reactor.
type Channel struct {
	bdev      *Bdev
	r         *reactor.Reactor
	be        BackendChannel
	refs      int  // guarded by bdev.mu
	releasing bool // guarded by bdev.mu; written on r only: refs hit 0 with I/O in flight
	caps      Caps
	sizeBytes uint64
	blockMask uint64
	inflight  int
	sampleCtr uint32 // picks the I/Os whose latency is timed

	st chanStats
}

// latencySampleEvery: one I/O in this many has its latency timed with the monotonic
// clock (two reads, tens of nanoseconds), so that timing costs about a nanosecond per
// I/O; the reactor's per-iteration clock would time an I/O that completes within its
// iteration (null, malloc, a page-cache hit) as zero.
const latencySampleEvery = 32

var clockBase = time.Now()

func monotonicNs() int64 { return int64(time.Since(clockBase)) }

// chanStats are written only by the owning reactor and read atomically by IOStat.
type chanStats struct {
	ops, bytes [numIOTypes]atomic.Uint64
	// latNs sums the latencies of the sampled I/Os, latN counts them.
	latNs, latN [numIOTypes]atomic.Uint64
	errors      atomic.Uint64
}

// Bdev is the channel's block device.
func (c *Channel) Bdev() *Bdev { return c.bdev }

// Inflight is the number of I/Os submitted and not yet completed.
//
// Preconditions: called on the channel's reactor.
func (c *Channel) Inflight() int { return c.inflight }

// Put releases the caller's reference. The caller may still have I/O in flight: its
// completions arrive as usual. The last Put releases the channel once every I/O on it
// has completed, and closes the backend channel in a reactor message of its own, never
// inside the backend's poller or a completion.
//
// Preconditions: called on the channel's reactor.
func (c *Channel) Put() { c.bdev.putChannel(c) }

// closeChannelMsg is bound once: closing a channel allocates no closure.
func closeChannelMsg(arg any) { arg.(*Channel).closeBackend() }

// scheduleClose closes the backend channel in a later reactor step. A reactor that is
// stopping runs its last messages itself, outside any poller, so closing at once there
// is safe.
func (c *Channel) scheduleClose() {
	if c.r.Send(closeChannelMsg, c) != nil {
		c.closeBackend()
	}
}

func (c *Channel) closeBackend() {
	c.be.Close()
	c.bdev.backendClosed()
}

// Submit starts io. Invalid requests complete at once with StatusOutOfRange or
// StatusUnsupported; valid ones go to the backend. io.Done runs exactly once.
//
// Preconditions: called on the channel's reactor; io.Done is set; io is not in flight.
func (c *Channel) Submit(io *IO) {
	if io.inFlight {
		panic(fmt.Sprintf("bdev %q: I/O submitted while still in flight", c.bdev.cfg.Name))
	}
	io.inFlight = true
	io.ch = c
	io.Status = StatusSuccess
	io.Errno = 0
	io.startNs = 0
	if c.sampleCtr++; c.sampleCtr%latencySampleEvery == 0 {
		io.startNs = monotonicNs()
	}
	c.inflight++
	switch io.Type {
	case IORead, IOWrite:
		if io.Length == 0 || uint64(len(io.Buf)) != io.Length {
			io.Complete(StatusOutOfRange)
			return
		}
		fallthrough
	case IOWriteZeroes, IOUnmap:
		if io.Offset&c.blockMask != 0 || io.Length&c.blockMask != 0 ||
			io.Offset > c.sizeBytes || io.Length > c.sizeBytes-io.Offset {
			io.Complete(StatusOutOfRange)
			return
		}
		if (io.Type == IOWriteZeroes && !c.caps.WriteZeroes) || (io.Type == IOUnmap && !c.caps.Unmap) {
			io.Complete(StatusUnsupported)
			return
		}
		if io.Length == 0 {
			io.Complete(StatusSuccess)
			return
		}
	case IOFlush:
		if !c.caps.VolatileCache {
			io.Complete(StatusSuccess)
			return
		}
	default:
		// Not counted per type: the statistics arrays are indexed by known types.
		c.inflight--
		io.inFlight = false
		c.st.errors.Add(1)
		io.Status = StatusUnsupported
		io.Done(io)
		return
	}
	c.be.Submit(io)
}

// Complete finishes io with status s: statistics first, then io.Done.
//
// Preconditions: called on the reactor the I/O was submitted on, once per Submit.
func (io *IO) Complete(s Status) {
	c := io.ch
	if !io.inFlight {
		panic(fmt.Sprintf("bdev %q: I/O completed twice", c.bdev.cfg.Name))
	}
	io.inFlight = false
	io.Status = s
	c.inflight--
	t := io.Type
	c.st.ops[t].Add(1)
	if s == StatusSuccess {
		c.st.bytes[t].Add(io.Length)
	} else {
		c.st.errors.Add(1)
	}
	if io.startNs != 0 {
		c.st.latNs[t].Add(uint64(monotonicNs() - io.startNs))
		c.st.latN[t].Add(1)
	}
	io.Done(io)
	// Done may have submitted again, or dropped the last reference: read the state
	// only now. releasing is written on this reactor only, so no lock is needed here.
	if c.inflight == 0 && c.releasing {
		c.bdev.releaseDrained(c)
	}
}

func (c *Channel) snapshot() IOStat {
	var s IOStat
	s.NumReadOps = c.st.ops[IORead].Load()
	s.BytesRead = c.st.bytes[IORead].Load()
	s.ReadLatencyNs = c.st.latNs[IORead].Load()
	s.ReadLatencySamples = c.st.latN[IORead].Load()
	s.NumWriteOps = c.st.ops[IOWrite].Load()
	s.BytesWritten = c.st.bytes[IOWrite].Load()
	s.WriteLatencyNs = c.st.latNs[IOWrite].Load()
	s.WriteLatencySamples = c.st.latN[IOWrite].Load()
	s.NumFlushOps = c.st.ops[IOFlush].Load()
	s.NumWriteZeroesOps = c.st.ops[IOWriteZeroes].Load()
	s.NumUnmapOps = c.st.ops[IOUnmap].Load()
	s.BytesUnmapped = c.st.bytes[IOUnmap].Load()
	s.NumErrors = c.st.errors.Load()
	if sc, ok := c.be.(SyncCounter); ok {
		s.NumSyncOps = sc.SyncOps()
	}
	if fc, ok := c.be.(FixedBufferCounter); ok {
		s.NumFixedBufferOps, s.NumFixedBufferFaults = fc.FixedBufferOps()
	}
	return s
}

// IOStat is a bdev's cumulative I/O statistics (bdev_get_iostat). Latencies are timed
// on one I/O in latencySampleEvery with the monotonic clock: *LatencyNs is the sum over
// the *LatencySamples timed I/Os, so their ratio is the mean latency, from submission to
// completion in the bdev layer.
type IOStat struct {
	Name                string `json:"name"`
	NumReadOps          uint64 `json:"num_read_ops"`
	BytesRead           uint64 `json:"bytes_read"`
	ReadLatencyNs       uint64 `json:"read_latency_ns"`
	ReadLatencySamples  uint64 `json:"read_latency_samples"`
	NumWriteOps         uint64 `json:"num_write_ops"`
	BytesWritten        uint64 `json:"bytes_written"`
	WriteLatencyNs      uint64 `json:"write_latency_ns"`
	WriteLatencySamples uint64 `json:"write_latency_samples"`
	NumFlushOps         uint64 `json:"num_flush_ops"`
	NumWriteZeroesOps   uint64 `json:"num_write_zeroes_ops"`
	NumUnmapOps         uint64 `json:"num_unmap_ops"`
	BytesUnmapped       uint64 `json:"bytes_unmapped"`
	NumErrors           uint64 `json:"num_errors"`
	// NumSyncOps counts fdatasync calls issued for FLUSH and FUA writes.
	NumSyncOps uint64 `json:"num_sync_ops"`
	// NumFixedBufferOps counts reads and writes served with io_uring fixed buffers
	// (IORING_OP_{READ,WRITE}_FIXED): zero on a file bdev means the memory was never
	// registered (see the daemon's log) or the I/Os' buffers are not the allocator's.
	NumFixedBufferOps uint64 `json:"num_fixed_buffer_ops"`
	// NumFixedBufferFaults counts I/Os whose fixed buffer the kernel refused (EFAULT:
	// the buffer is not inside the registered one the I/O named) and that were redone
	// without it. Non-zero means a caller names buffers of memory that is not the
	// registered domain's.
	NumFixedBufferFaults uint64 `json:"num_fixed_buffer_faults"`
}

func (s *IOStat) add(o IOStat) {
	s.NumReadOps += o.NumReadOps
	s.BytesRead += o.BytesRead
	s.ReadLatencyNs += o.ReadLatencyNs
	s.ReadLatencySamples += o.ReadLatencySamples
	s.NumWriteOps += o.NumWriteOps
	s.BytesWritten += o.BytesWritten
	s.WriteLatencyNs += o.WriteLatencyNs
	s.WriteLatencySamples += o.WriteLatencySamples
	s.NumFlushOps += o.NumFlushOps
	s.NumWriteZeroesOps += o.NumWriteZeroesOps
	s.NumUnmapOps += o.NumUnmapOps
	s.BytesUnmapped += o.BytesUnmapped
	s.NumErrors += o.NumErrors
	s.NumSyncOps += o.NumSyncOps
	s.NumFixedBufferOps += o.NumFixedBufferOps
	s.NumFixedBufferFaults += o.NumFixedBufferFaults
}
