package replication

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"sluice/engine/bdev"
	"sluice/engine/probe"
	"sluice/engine/reactor"
)

// Mode is how a volume's writes wait for the partner.
type Mode uint8

// Modes.
const (
	// ModeSync acknowledges a host write once it is written locally and the partner
	// acknowledged it. With the partner away the volume degrades: writes complete
	// locally and their regions are resynchronized when it returns.
	ModeSync Mode = iota + 1
	// ModeAsync acknowledges a host write once it is written locally; the write waits
	// in the journal (bounded in bytes) until the partner acknowledges it. When the
	// journal is full, writes fall back to dirty-region tracking.
	ModeAsync
)

func (m Mode) String() string {
	switch m {
	case ModeSync:
		return "sync"
	case ModeAsync:
		return "async"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode reads "sync" or "async".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "sync", "":
		return ModeSync, nil
	case "async":
		return ModeAsync, nil
	}
	return 0, fmt.Errorf("mode %q: want sync or async: %w", s, ErrInvalid)
}

// VolState is a replicated volume's state on the replicating node.
type VolState uint32

// Volume states. Only Syncing and Replicating ship writes; in every other state writes
// are tracked as dirty regions, so that nothing written is ever lost to the partner.
const (
	VolStateStopped      VolState = iota // not replicated: writes pass through untracked
	VolStateDisconnected                 // no tunnel: writes tracked for resync
	VolStateConnecting                   // tunnel up; keys and volume being set up
	VolStateSyncing                      // shipping writes to clean regions, copying dirty ones
	VolStateReplicating                  // in sync: every write shipped
	VolStateRefused                      // the partner refused the volume (promoted, keys)
)

func (s VolState) String() string {
	switch s {
	case VolStateStopped:
		return "stopped"
	case VolStateDisconnected:
		return "disconnected"
	case VolStateConnecting:
		return "connecting"
	case VolStateSyncing:
		return "syncing"
	case VolStateReplicating:
		return "replicating"
	case VolStateRefused:
		return "refused"
	}
	return fmt.Sprintf("VolState(%d)", uint32(s))
}

const (
	// ringSize bounds the frames handed to the tunnel and not yet taken by the pump.
	ringSize = 4096
	// waitersSize: every channel of the volume (at most one per reactor) may wait for
	// the bitmap at once.
	waitersSize = 256
	// cleanEvery: how often idle regions' intent bits are cleared. Longer keeps a hot
	// region's bit set (no persist per write); shorter shrinks what a crash resyncs.
	cleanEvery = time.Second
	// DefaultRegionBytes is the resync granularity: 1 MiB, md's and DRBD's order of
	// magnitude, so that the bitmap of a 1 TiB volume is 128 KiB.
	DefaultRegionBytes = 1 << 20
	// DefaultJournalBytes bounds the asynchronous journal.
	DefaultJournalBytes = 64 << 20
)

// attachment is a volume's replication configuration, read by the reactors on every
// write: immutable, swapped whole.
type attachment struct {
	partner    string // the partnership's name, the probe sites' partner
	mode       Mode
	journalCap int64
	passphrase []byte // a passphrase-keyed crypt volume's, held in memory for the exchange
}

// volume is a replica bdev's replication state on the replicating node, shared by the
// reactors that write it (through the atomics and the ring) and by the goroutines that
// ship its frames, persist its bitmap and resynchronize it.
type volume struct {
	name        string
	svc         *Service
	base        *bdev.Bdev
	blockSize   uint32
	sizeBytes   uint64
	regionBytes uint32
	regionShift uint8
	rg          *regions
	path        string // the bitmap file; "" keeps it in memory (tests)
	log         *slog.Logger

	ring *reactor.MPSC[*record]
	wake chan struct{} // the pump's wake-up: a non-blocking send never allocates

	tracked atomic.Bool // writes mark regions; false: plain pass-through
	state   atomic.Uint32
	att     atomic.Pointer[attachment]
	stream  atomic.Pointer[stream]
	seq     atomic.Uint64

	keysExchanged atomic.Bool
	keyGeneration atomic.Uint64 // the crypt header generation whose KEK B holds

	journalBytes atomic.Int64 // host-write frames in flight
	syncBytes    atomic.Int64 // resync frames in flight
	st           volStats

	persistReq, persistDone atomic.Uint64
	persistWake             chan struct{}
	cleanWake               chan struct{}
	waiters                 *reactor.MPSC[*channel]
	resyncWake              chan struct{}

	hdrMu sync.Mutex
	hdr   bitmapFile // +checklocks:hdrMu

	lat latency

	quit chan struct{}
	wg   sync.WaitGroup

	runMu  sync.Mutex
	runner *runner // +checklocks:runMu; the goroutine that keeps a stream going
}

// volStats are counters read by status.
type volStats struct {
	framesSent, bytesSent   atomic.Uint64
	pushed, retired         atomic.Uint64
	acked, failed           atomic.Uint64
	journalFull, notShipped atomic.Uint64
	fullSyncs, resyncPasses atomic.Uint64
	resyncBytes             atomic.Uint64
	bitmapWrites            atomic.Uint64
	lastErr                 atomic.Pointer[string]
}

func (st *volStats) setErr(err error) {
	s := err.Error()
	st.lastErr.Store(&s)
}

var clockBase = time.Now()

// monoNs is the monotonic clock in ns, read the same way on the reactors (at send) and
// on the tunnel's goroutines (at ack): two words of vDSO, no allocation.
func monoNs() int64 { return int64(time.Since(clockBase)) }

func newVolume(svc *Service, name string, base *bdev.Bdev, regionBytes uint32, path string) (*volume, error) {
	bs := base.BlockSize()
	if regionBytes == 0 {
		regionBytes = DefaultRegionBytes
	}
	if regionBytes&(regionBytes-1) != 0 || regionBytes < bs || regionBytes < 4096 {
		return nil, fmt.Errorf("region_bytes %d: want a power of two of at least 4096 and the "+
			"block size: %w", regionBytes, ErrInvalid)
	}
	size := base.SizeBytes()
	n := int((size + uint64(regionBytes) - 1) / uint64(regionBytes))
	v := &volume{name: name, svc: svc, base: base, blockSize: bs, sizeBytes: size,
		regionBytes: regionBytes, regionShift: uint8(bits.TrailingZeros32(regionBytes)),
		rg: newRegions(n), path: path, log: svc.log,
		ring: reactor.NewMPSC[*record](ringSize), wake: make(chan struct{}, 1),
		persistWake: make(chan struct{}, 1), cleanWake: make(chan struct{}, 1), waiters: reactor.NewMPSC[*channel](waitersSize),
		resyncWake: make(chan struct{}, 1), quit: make(chan struct{})}
	v.lat.reset()
	if err := v.load(); err != nil {
		return nil, err
	}
	v.wg.Add(2)
	go v.pump()
	go v.persister()
	return v, nil
}

// load picks up the bitmap a previous run left: the volume was replicated, so its
// writes are tracked from the first one, and every region whose intent bit survived is
// resynchronized (no full sync after a crash).
func (v *volume) load() error {
	if v.path == "" {
		return nil
	}
	h, words, err := loadBitmap(v.path, v.rg.n, v.regionBytes)
	if errors.Is(err, errBitmap) {
		// A torn or foreign file: start over with a full sync, which is always safe.
		v.log.Warn("replication: bitmap unusable; the volume will be fully resynchronized",
			"volume", v.name, "err", err)
		h, words = bitmapFile{regionBytes: v.regionBytes, n: v.rg.n}, nil
		setAll(v.rg.intent, v.rg.n)
		setAll(v.rg.durable, v.rg.n)
		setAll(v.rg.resync, v.rg.n)
	} else if err != nil {
		return fmt.Errorf("bitmap %s: %w", v.path, err)
	} else if h.n == 0 {
		return nil // never replicated
	} else if h.uuid != v.base.UUID() {
		return fmt.Errorf("bitmap %s belongs to another volume: %w", v.path, ErrInvalid)
	}
	for i, w := range words {
		v.rg.intent[i].Store(w)
		v.rg.durable[i].Store(w)
		v.rg.resync[i].Store(w)
	}
	v.hdrMu.Lock()
	v.hdr = h
	v.hdrMu.Unlock()
	v.tracked.Store(true)
	v.setState(VolStateDisconnected)
	return nil
}

func (v *volume) setState(s VolState) { v.state.Store(uint32(s)) }

func (v *volume) State() VolState { return VolState(v.state.Load()) }

// sending reports whether writes to clean regions are shipped now.
func (v *volume) sending() bool {
	s := VolState(v.state.Load())
	return s == VolStateSyncing || s == VolStateReplicating
}

// regionsOf is the first and last region of [off, off+n).
func (v *volume) regionsOf(off, n uint64) (int32, int32) {
	if n == 0 {
		return int32(off >> v.regionShift), int32(off>>v.regionShift) - 1
	}
	return int32(off >> v.regionShift), int32((off + n - 1) >> v.regionShift)
}

// blocked reports whether a write to [r0, r1] must not be shipped: a region that differs
// from the partner's copy, or that the resync loop is reading, is copied whole later.
func (v *volume) blocked(r0, r1 int32) bool {
	for r := int(r0); r <= int(r1); r++ {
		if bitTest(v.rg.resync, r) || bitTest(v.rg.syncing, r) {
			return true
		}
	}
	return false
}

// markIntent makes the intent bits of [r0, r1] durable: it returns 0 when they are
// already, else the persist generation the write must wait for.
//
// The bit is set before the generation is taken, and the persister takes the
// generation before it snapshots the bits, so the snapshot of that generation holds it.
func (v *volume) markIntent(r0, r1 int32) uint64 {
	need := false
	for r := int(r0); r <= int(r1); r++ {
		if !bitTest(v.rg.durable, r) {
			bitSet(v.rg.intent, r)
			need = true
		}
	}
	if !need {
		return 0
	}
	gen := v.persistReq.Add(1)
	kick(v.persistWake)
	return gen
}

// kick wakes a goroutine that waits on w, without blocking or allocating.
func kick(w chan struct{}) {
	select {
	case w <- struct{}{}:
	default:
	}
}

// persister writes the intent bitmap whenever a write asks, then tells the waiting
// channels; once a second it clears the bits of regions known to be identical on the
// partner. Both happen on this goroutine only, so a snapshot never sees a bit the
// cleaner has cleared and is about to set again.
func (v *volume) persister() {
	defer v.wg.Done()
	tick := time.NewTicker(cleanEvery)
	defer tick.Stop()
	for {
		select {
		case <-v.quit:
			return
		case <-v.persistWake:
		case <-v.cleanWake:
			if v.clean() {
				v.persist(v.persistReq.Load())
			}
		case <-tick.C:
			if v.clean() {
				v.persist(v.persistReq.Load())
			}
		}
		for {
			gen := v.persistReq.Load()
			if gen <= v.persistDone.Load() {
				break
			}
			v.persist(gen)
		}
	}
}

// persist writes the bitmap as of generation gen and wakes the channels waiting for it.
func (v *volume) persist(gen uint64) {
	snap := v.snapshot()
	if err := v.writeBitmap(snap); err != nil {
		// The file may now be stale: remove it, so that a restart finds no bitmap and
		// the next start of the replication does a full sync rather than trust it.
		v.st.setErr(err)
		v.log.Error("replication: bitmap write failed", "volume", v.name, "err", err)
		if v.path != "" {
			_ = os.Remove(v.path)
		}
	}
	for i, w := range snap {
		v.rg.durable[i].Or(w)
	}
	v.persistDone.Store(max(gen, v.persistDone.Load()))
	for {
		c, ok := v.waiters.Pop()
		if !ok {
			break
		}
		_ = c.r.Send(persistedMsg, c)
	}
}

func (v *volume) snapshot() []uint64 {
	snap := make([]uint64, len(v.rg.intent))
	for i := range v.rg.intent {
		snap[i] = v.rg.intent[i].Load()
	}
	return snap
}

func (v *volume) writeBitmap(snap []uint64) error {
	v.st.bitmapWrites.Add(1)
	if v.path == "" || !v.tracked.Load() {
		return nil
	}
	v.hdrMu.Lock()
	h := v.hdr
	v.hdrMu.Unlock()
	h.regionBytes, h.n, h.uuid = v.regionBytes, v.rg.n, v.base.UUID()
	return writeFileSync(v.path, encodeBitmap(h, snap), 0o600)
}

// clean clears the intent bits of regions the partner holds as they are here: nothing
// in flight, nothing to resync. A write that raced (counted itself, then saw the bit
// still durable) is caught by the re-check, which sets the bits back: the write counts
// before it reads, the cleaner clears before it reads, so one of them sees the other.
func (v *volume) clean() bool {
	if VolState(v.state.Load()) != VolStateReplicating {
		return false
	}
	cleared := false
	for r := bitNext(v.rg.intent, 0, v.rg.n); r >= 0; r = bitNext(v.rg.intent, r+1, v.rg.n) {
		if v.rg.local[r].Load() != 0 || v.rg.pending[r].Load() != 0 ||
			bitTest(v.rg.resync, r) || bitTest(v.rg.syncing, r) {
			continue
		}
		bitClear(v.rg.durable, r)
		bitClear(v.rg.intent, r)
		if v.rg.local[r].Load() != 0 || v.rg.pending[r].Load() != 0 {
			bitSet(v.rg.intent, r)
			bitSet(v.rg.durable, r)
			continue
		}
		cleared = true
	}
	return cleared
}

// persistNow asks for a bitmap write and waits for it, from the control plane.
func (v *volume) persistNow() {
	gen := v.persistReq.Add(1)
	kick(v.persistWake)
	for v.persistDone.Load() < gen {
		select {
		case <-v.quit:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// pump is the ring's single consumer: it hands each frame to the stream, or, with no
// stream, fails it back to its owner so that its regions are marked for resync. It
// lives as long as the volume, so that a frame pushed while a stream dies is never
// orphaned.
func (v *volume) pump() {
	defer v.wg.Done()
	for {
		rec, ok := v.ring.Pop()
		if !ok {
			if s := v.stream.Load(); s != nil {
				s.flush()
			}
			select {
			case <-v.wake:
				continue
			case <-v.quit:
			}
			for rec, ok := v.ring.Pop(); ok; rec, ok = v.ring.Pop() {
				v.retire(rec, true)
			}
			return
		}
		s := v.stream.Load()
		if s == nil || !s.send(rec) {
			v.retire(rec, true)
		}
	}
}

// retire ends a frame's life: acknowledged, or failed (its regions then need a resync).
// A host write's frame goes back to its reactor, which owns its buffer and its parent.
func (v *volume) retire(rec *record, failed bool) {
	rec.failed = failed
	v.st.retired.Add(1)
	if failed {
		v.st.failed.Add(1)
	} else {
		v.st.acked.Add(1)
	}
	if rec.journaled {
		probe.JournalDequeue(v.name, rec.seq)
	}
	if rec.ch != nil {
		_ = rec.ch.r.Send(retireMsg, rec)
		return
	}
	v.retireOwn(rec)
}

// retireOwn retires a frame the goroutines made (resync data, markers).
func (v *volume) retireOwn(rec *record) {
	for r := int(rec.r0); r <= int(rec.r1); r++ {
		if rec.failed {
			bitSet(v.rg.resync, r)
		}
		v.rg.pending[r].Add(-1)
	}
	v.syncBytes.Add(-int64(len(rec.heap)))
	if rec.failed {
		kick(v.resyncWake)
	}
	if rec.done != nil {
		close(rec.done)
	}
}

// push hands a goroutine-made frame to the ring, waiting while it is full.
func (v *volume) push(rec *record, alive func() bool) bool {
	rec.sentNs = monoNs()
	if att := v.att.Load(); att != nil {
		probe.ReplSend(v.name, att.partner, rec.seq)
	}
	for !v.ring.Push(rec) {
		if !alive() {
			return false
		}
		time.Sleep(50 * time.Microsecond)
	}
	v.st.pushed.Add(1)
	kick(v.wake)
	return true
}

// newEpoch starts a new lineage of the partner's copy: every region is marked for the
// full sync and the bitmap is persisted before any frame of it is sent.
func (v *volume) newEpoch() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	e := binary.LittleEndian.Uint64(b[:]) | 1
	setAll(v.rg.intent, v.rg.n)
	setAll(v.rg.resync, v.rg.n)
	v.hdrMu.Lock()
	v.hdr.epoch, v.hdr.synced = e, false
	v.hdrMu.Unlock()
	v.persistNow()
	return e
}

func (v *volume) epoch() (uint64, bool) {
	v.hdrMu.Lock()
	defer v.hdrMu.Unlock()
	return v.hdr.epoch, v.hdr.synced
}

func (v *volume) setSynced() {
	v.hdrMu.Lock()
	v.hdr.synced = true
	v.hdrMu.Unlock()
	v.persistNow()
}

// startTracking makes writes mark regions from now on, persisting an empty bitmap first
// so that a restart knows the volume is replicated.
func (v *volume) startTracking() error {
	if v.tracked.Load() {
		return nil
	}
	v.tracked.Store(true)
	v.setState(VolStateDisconnected)
	if err := v.writeBitmap(v.snapshot()); err != nil {
		v.tracked.Store(false)
		v.setState(VolStateStopped)
		return err
	}
	return nil
}

// stopTracking ends the replication of the volume: the bitmap is forgotten.
func (v *volume) stopTracking() {
	v.tracked.Store(false)
	v.setState(VolStateStopped)
	for i := range v.rg.intent {
		v.rg.intent[i].Store(0)
		v.rg.durable[i].Store(0)
		v.rg.resync[i].Store(0)
	}
	v.hdrMu.Lock()
	v.hdr = bitmapFile{}
	v.hdrMu.Unlock()
	if v.path != "" {
		if err := os.Remove(v.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			v.log.Warn("replication: removing bitmap", "volume", v.name, "err", err)
		}
	}
}

// close stops the volume's goroutines; the caller stopped its runner first.
func (v *volume) close() {
	close(v.quit)
	v.wg.Wait()
}

// latency is the engine's own measure of the send→ack latency of the frames, taken at
// the same two points as the probe sites (ReplSend, ReplAck), so that a tracer's
// histogram can be checked against it.
type latency struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram // +checklocks:mu
}

func (l *latency) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.h = hdrhistogram.New(1, int64(time.Minute), 3)
}

func (l *latency) record(ns int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.h.RecordValue(max(ns, 1))
}

// LatencyStats summarizes the send→ack latencies in ns.
type LatencyStats struct {
	Count  int64   `json:"count"`
	MeanNs float64 `json:"mean_ns"`
	P50Ns  int64   `json:"p50_ns"`
	P90Ns  int64   `json:"p90_ns"`
	P99Ns  int64   `json:"p99_ns"`
	MaxNs  int64   `json:"max_ns"`
}

func (l *latency) stats(reset bool) LatencyStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LatencyStats{Count: l.h.TotalCount(), MeanNs: l.h.Mean(), P50Ns: l.h.ValueAtQuantile(50),
		P90Ns: l.h.ValueAtQuantile(90), P99Ns: l.h.ValueAtQuantile(99), MaxNs: l.h.Max()}
	if reset {
		l.h.Reset()
	}
	return s
}
