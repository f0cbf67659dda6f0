package mem

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"sluice/engine/mem/hugetlb"
)

var (
	// ErrNoMemory is returned when the domain's cap is reached: back-pressure, not a
	// failure. The caller queues the I/O or completes it with a retryable status.
	ErrNoMemory = errors.New("mem: out of memory")
	// ErrInvalidSize is returned for a size the call cannot serve (<= 0, or a Buf above
	// 4 GiB; use AllocRegion).
	ErrInvalidSize = errors.New("mem: invalid size")
	// ErrNoHugepages is returned by NewDomain when hugepages are required and too few are
	// reserved.
	ErrNoHugepages = errors.New("mem: hugepages required but not reserved")
	// ErrClosed is returned by calls on a closed domain.
	ErrClosed = errors.New("mem: domain closed")
	// ErrNoCore is returned for an unknown core id, or when the domain has no room for
	// another core.
	ErrNoCore = errors.New("mem: no such core")
)

// maxDomains bounds the domains open at once in a process (a Buf names its domain in 8
// bits; id 0 is the zero Buf).
const maxDomains = 255

var (
	// domainTable maps a Buf's domain id to its domain. An entry is set before the domain
	// hands out any Buf and cleared when it closes; Free and Bytes read it without a lock.
	domainTable   [maxDomains + 1]atomic.Pointer[Domain]
	domainTableMu sync.Mutex
)

// register gives the domain an id in domainTable.
func (d *Domain) register() error {
	domainTableMu.Lock()
	defer domainTableMu.Unlock()
	for id := 1; id <= maxDomains; id++ {
		if domainTable[id].Load() == nil {
			d.id = uint8(id)
			domainTable[id].Store(d)
			return nil
		}
	}
	return fmt.Errorf("mem: new domain: %d domains open already", maxDomains)
}

// HugepageMode says whether a domain may fall back to ordinary pages.
type HugepageMode uint8

const (
	// HugepagesPrefer maps hugepages when enough are reserved and otherwise falls back to
	// ordinary pages with MADV_HUGEPAGE, logging one warning that names the sysctl.
	HugepagesPrefer HugepageMode = iota
	// HugepagesRequire fails NewDomain with ErrNoHugepages when too few are reserved.
	HugepagesRequire
	// HugepagesNever maps ordinary pages (tests of the fallback path, CGO-less setups).
	HugepagesNever
)

// Defaults for DomainConfig's zero values.
const (
	DefaultMaxDirtyPerClass = 2
	DefaultMaxCores         = 64
	DefaultFullThresholdDiv = 8
)

// DomainConfig configures a domain: one NUMA node's memory.
type DomainConfig struct {
	// Node is the NUMA node the memory is bound to.
	Node int
	// SizeBytes is the domain's memory, rounded up to a PageSize multiple. It is mapped and
	// pre-faulted once by NewDomain and is the domain's cap: nothing is mapped later.
	SizeBytes int64
	// Hugepages says whether the domain may fall back to ordinary pages.
	Hugepages HugepageMode
	// MaxDirtyPerClass is the footprint policy: each core keeps at most this many dirty
	// slices per class and returns pages beyond that to the domain. 0 means
	// DefaultMaxDirtyPerClass; a negative value keeps none.
	MaxDirtyPerClass int
	// MaxCores bounds the cores the domain serves (0 means DefaultMaxCores).
	MaxCores int
	// FullThresholdDiv sets the full threshold to objects/FullThresholdDiv (at least 1):
	// a slice with fewer free objects is full. 0 means DefaultFullThresholdDiv.
	FullThresholdDiv int
	// Weights are the initial weights of new cores (nil means DefaultWeights).
	Weights *Weights
	// Topology places the memory (nil means SystemTopology).
	Topology Topology
	// Logger receives the fallback warning (nil means slog.Default).
	Logger *slog.Logger
}

// Page owners other than a core index.
const (
	ownerPool   = -1
	ownerRegion = -2
)

// page is the bookkeeping of one page, kept by the core that holds it.
type page struct {
	busy     int16 // slices current, partial, full or in a span
	retained int16 // slices in a retained dirty list
}

// Domain is one NUMA node's memory: a mapping made once at start, cut into pages that
// move between the domain's pool and the cores (as slices) or regions.
//
// A Domain's methods are safe for concurrent use; the per-core allocation state lives in
// Core and is reached only from its owner.
type Domain struct {
	cfg      DomainConfig
	id       uint8 // slot in domainTable, named by every Buf of the domain
	node     int
	mem      []byte // the whole mapping; never holds Go pointers
	huge     bool
	bound    bool
	npages   int
	fullDiv  int
	maxDirty int
	logger   *slog.Logger

	slices []slice // metadata of every slice, owned by the core holding its page
	pages  []page  // owned by the core holding the page
	// pageOwner is the core index holding each page, or ownerPool/ownerRegion. Written
	// under mu when a page changes hands; read by Free on any core, which is safe because a
	// page with a live object never changes hands.
	pageOwner []int32
	cores     []*Core // by core index; an entry is set once under mu, before its first alloc

	inv *invState // nil unless built with the invariants tag

	poolUsed  atomic.Int32 // pages in the pool that were lent before (hint for the cost model)
	poolFresh atomic.Int32 // pages in the pool never lent (hint for the cost model)
	closed    atomic.Bool

	mu sync.Mutex
	// +checklocks:mu
	inPool []uint64 // bit per page in the pool
	// +checklocks:mu
	fresh []uint64 // bit per page never lent
	// +checklocks:mu
	regionLen []int32 // page count at the head page of each lent region or page Buf
	// +checklocks:mu
	pagesRegion int
	// +checklocks:mu
	peakPagesUsed int
	// +checklocks:mu
	byID map[int]*Core
}

// NewDomain maps, binds and pre-faults a domain's memory. It is slow (it zeroes the whole
// size) and is called once per node at start.
func NewDomain(cfg DomainConfig) (*Domain, error) {
	cfg = cfg.normalize()
	if !slices.Contains(cfg.Topology.Nodes(), cfg.Node) {
		return nil, fmt.Errorf("mem: new domain: node %d not in topology %v", cfg.Node, cfg.Topology.Nodes())
	}
	d := &Domain{
		cfg:      cfg,
		node:     cfg.Node,
		npages:   int(cfg.SizeBytes / PageSize),
		fullDiv:  cfg.FullThresholdDiv,
		maxDirty: cfg.MaxDirtyPerClass,
		logger:   cfg.Logger,
		byID:     make(map[int]*Core),
	}
	if cfg.SizeBytes >= 1<<48 {
		return nil, fmt.Errorf("mem: new domain of %d bytes: above 256 TiB: %w", cfg.SizeBytes, ErrInvalidSize)
	}
	if err := d.mapMemory(); err != nil {
		return nil, err
	}
	if err := d.bindAndFault(); err != nil {
		unmap(d.mem)
		return nil, err
	}
	if err := d.register(); err != nil {
		unmap(d.mem)
		return nil, err
	}
	d.slices = make([]slice, d.npages*slicesPerPage)
	for i := range d.slices {
		d.slices[i] = slice{cls: clsNone, state: SliceStateClean, where: inPool, prev: -1, next: -1}
	}
	d.pages = make([]page, d.npages)
	d.pageOwner = make([]int32, d.npages)
	for i := range d.pageOwner {
		d.pageOwner[i] = ownerPool
	}
	words := (d.npages + 63) / 64
	d.inPool = make([]uint64, words)
	d.fresh = make([]uint64, words)
	for p := range d.npages {
		d.inPool[p/64] |= 1 << (p % 64)
		d.fresh[p/64] |= 1 << (p % 64)
	}
	d.regionLen = make([]int32, d.npages)
	d.poolFresh.Store(int32(d.npages))
	d.cores = make([]*Core, cfg.MaxCores)
	if invariantsEnabled {
		d.inv = newInvState(len(d.slices))
	}
	return d, nil
}

func (cfg DomainConfig) normalize() DomainConfig {
	cfg.SizeBytes = max(PageSize, (cfg.SizeBytes+PageSize-1)&^(PageSize-1))
	switch {
	case cfg.MaxDirtyPerClass == 0:
		cfg.MaxDirtyPerClass = DefaultMaxDirtyPerClass
	case cfg.MaxDirtyPerClass < 0:
		cfg.MaxDirtyPerClass = 0
	}
	if cfg.MaxCores <= 0 {
		cfg.MaxCores = DefaultMaxCores
	}
	if cfg.FullThresholdDiv <= 0 {
		cfg.FullThresholdDiv = DefaultFullThresholdDiv
	}
	if cfg.Weights == nil {
		w := DefaultWeights()
		cfg.Weights = &w
	}
	if cfg.Topology == nil {
		cfg.Topology = SystemTopology()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// mapMemory maps the domain with hugepages when it can, else falls back as configured.
func (d *Domain) mapMemory() error {
	size := int(d.cfg.SizeBytes)
	if d.cfg.Hugepages != HugepagesNever {
		b, err := mapHugetlb(size)
		if err == nil {
			d.mem, d.huge = b, true
			return nil
		}
		if d.cfg.Hugepages == HugepagesRequire {
			return fmt.Errorf("mem: map %d MiB of hugepages on node %d: %w (%w)",
				size>>20, d.node, ErrNoHugepages, err)
		}
		d.warnFallback(err)
	}
	b, err := mapOrdinary(size)
	if err != nil {
		return fmt.Errorf("mem: map %d MiB on node %d: %w", size>>20, d.node, err)
	}
	d.mem = b
	return nil
}

// warnFallback logs the one warning of the fallback path, with what it takes to fix it.
func (d *Domain) warnFallback(cause error) {
	need := d.npages
	info, err := hugetlb.ReadInfo()
	if err != nil {
		info.AvailableNow = -1
	}
	d.logger.Warn("mem: no hugepages for domain; falling back to ordinary pages with MADV_HUGEPAGE "+
		"(slower: TLB misses, no io_uring-friendly 2 MiB pages). Reserve hugepages before start: "+
		"sysctl -w "+hugetlb.Sysctl+"=N (echo N > "+hugetlb.NrHugepagesPath+"), N >= pages_needed",
		"node", d.node, "size_mib", d.cfg.SizeBytes>>20, "pages_needed", need,
		"hugepages_available", info.AvailableNow, "err", cause)
}

// bindAndFault binds the mapping to the node and then faults every page in, so that the
// first touch happens on the right node and never on the I/O path.
func (d *Domain) bindAndFault() error {
	err := d.cfg.Topology.Bind(addrOf(d.mem), uintptr(len(d.mem)), d.node)
	switch {
	case err == nil:
		d.bound = true
	case errors.Is(err, ErrNotSupported):
	default:
		return fmt.Errorf("mem: bind domain to node %d: %w", d.node, err)
	}
	if err := unix.Madvise(d.mem, unix.MADV_POPULATE_WRITE); err != nil {
		// Kernels before 5.14 lack MADV_POPULATE_WRITE: touch one byte per 4 KiB page.
		for i := 0; i < len(d.mem); i += 4096 {
			d.mem[i] = 0
		}
	}
	return nil
}

// Node returns the NUMA node of the domain.
func (d *Domain) Node() int { return d.node }

// Hugepages reports whether the domain is backed by hugetlb pages (false: fallback).
func (d *Domain) Hugepages() bool { return d.huge }

// SizeBytes is the memory the domain maps, in bytes.
func (d *Domain) SizeBytes() int64 { return int64(d.npages) * PageSize }

// NewCore creates the allocation state of one reactor. coreID is the reactor's id, unique
// within the domain.
//
// Postconditions: all calls on the returned Core except Free are made by one goroutine
// (the reactor) at a time.
func (d *Domain) NewCore(coreID int) (*Core, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return nil, ErrClosed
	}
	if _, dup := d.byID[coreID]; dup {
		return nil, fmt.Errorf("mem: new core %d: duplicate id", coreID)
	}
	idx := slices.Index(d.cores, nil)
	if idx < 0 {
		return nil, fmt.Errorf("mem: new core %d: %d cores already: %w", coreID, len(d.cores), ErrNoCore)
	}
	c := newCore(d, coreID, int32(idx), *d.cfg.Weights)
	d.cores[idx] = c
	d.byID[coreID] = c
	return c, nil
}

// core returns the core with id coreID.
func (d *Domain) core(coreID int) (*Core, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.byID[coreID]
	if c == nil {
		return nil, fmt.Errorf("mem: core %d: %w", coreID, ErrNoCore)
	}
	return c, nil
}

// SetWeights sets one core's cost-model weights (the mem_set_weights RPC). The core
// applies them at its next refill or Reclaim; no other core is affected.
func (d *Domain) SetWeights(coreID int, w Weights) error {
	c, err := d.core(coreID)
	if err != nil {
		return err
	}
	d.mu.Lock()
	c.wReq, c.wCur = w, w
	c.wPending.Store(true)
	d.mu.Unlock()
	return nil
}

// Weights returns one core's current weights: as last set, or as its tuner derived them.
func (d *Domain) Weights(coreID int) (Weights, error) {
	c, err := d.core(coreID)
	if err != nil {
		return Weights{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return c.wCur, nil
}

// takePage lends the lowest pool page to core idx, a fresh one (never lent) when fresh
// is set and one is left, else a used one when one is left, else whatever the pool has.
func (d *Domain) takePage(idx int32, fresh bool) (int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return 0, false
	}
	p := d.lowestPoolPage(fresh)
	if p < 0 {
		p = d.lowestPoolPage(!fresh)
	}
	if p < 0 {
		return 0, false
	}
	d.lend(p, idx)
	return p, true
}

// lowestPoolPage returns the lowest page in the pool whose fresh bit equals fresh, or -1.
//
// +checklocks:d.mu
func (d *Domain) lowestPoolPage(fresh bool) int {
	for i, w := range d.inPool {
		if fresh {
			w &= d.fresh[i]
		} else {
			w &^= d.fresh[i]
		}
		if w != 0 {
			return i*64 + bits.TrailingZeros64(w)
		}
	}
	return -1
}

// lend moves page p out of the pool to owner.
//
// +checklocks:d.mu
func (d *Domain) lend(p int, owner int32) {
	w, bit := p/64, uint64(1)<<(p%64)
	if d.inPool[w]&bit == 0 {
		panic("mem: lend of a page not in the pool")
	}
	d.inPool[w] &^= bit
	if d.fresh[w]&bit != 0 {
		d.fresh[w] &^= bit
		d.poolFresh.Add(-1)
	} else {
		d.poolUsed.Add(-1)
	}
	d.pageOwner[p] = owner
	used := d.npages - int(d.poolFresh.Load()+d.poolUsed.Load())
	d.peakPagesUsed = max(d.peakPagesUsed, used)
}

// releasePage returns page p to the pool.
func (d *Domain) releasePage(p int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.giveBack(p)
}

// +checklocks:d.mu
func (d *Domain) giveBack(p int) {
	w, bit := p/64, uint64(1)<<(p%64)
	if d.inPool[w]&bit != 0 {
		panic("mem: page returned twice")
	}
	d.inPool[w] |= bit
	d.pageOwner[p] = ownerPool
	d.poolUsed.Add(1)
}

// takeRun lends the highest run of n contiguous pool pages as a region and returns its
// first page, or -1. Regions grow down from the top of the domain and slab pages up from
// the bottom, so that the two meet only when the domain is nearly full.
func (d *Domain) takeRun(n int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return -1
	}
	run := 0
	for p := d.npages - 1; p >= 0; p-- {
		if d.inPool[p/64]&(1<<(p%64)) == 0 {
			run = 0
			continue
		}
		if run++; run == n {
			for q := p; q < p+n; q++ {
				d.lend(q, ownerRegion)
			}
			d.regionLen[p] = int32(n)
			d.pagesRegion += n
			return p
		}
	}
	return -1
}

// takeScattered lends n pool pages, not necessarily contiguous, as a region; it returns
// nil when the pool has fewer than n.
func (d *Domain) takeScattered(n int) []int32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() || int(d.poolFresh.Load()+d.poolUsed.Load()) < n {
		return nil
	}
	out := make([]int32, 0, n)
	for p := d.npages - 1; p >= 0 && len(out) < n; p-- {
		if d.inPool[p/64]&(1<<(p%64)) != 0 {
			d.lend(p, ownerRegion)
			d.regionLen[p] = 1
			out = append(out, int32(p))
		}
	}
	slices.Reverse(out)
	d.pagesRegion += n
	return out
}

// giveBackRun returns the region of n pages starting at page p. It panics when p is not
// the head of a lent region of that length (a double free).
func (d *Domain) giveBackRun(p, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p < 0 || p >= d.npages || d.pageOwner[p] != ownerRegion || int(d.regionLen[p]) != n {
		panic("mem: free of a region that is not lent (double free?)")
	}
	d.regionLen[p] = 0
	for q := p; q < p+n; q++ {
		d.giveBack(q)
	}
	d.pagesRegion -= n
}

// Close drains every core's remote frees, reports what is still allocated, and unmaps
// the domain. With live objects it returns a *LeakError (listing each object when built
// with the invariants tag) and unmaps anyway: a Buf used after Close faults.
//
// Preconditions: no core allocates or frees any more (the reactors have stopped).
func (d *Domain) Close() error {
	d.mu.Lock()
	if d.closed.Load() {
		d.mu.Unlock()
		return nil
	}
	cores := slices.Clone(d.cores)
	d.mu.Unlock()
	for _, c := range cores {
		if c != nil {
			c.drainRemote()
			c.publish()
		}
	}
	leak := d.leaks()
	d.mu.Lock()
	d.closed.Store(true)
	d.mu.Unlock()
	domainTable[d.id].Store(nil)
	if err := unmap(d.mem); err != nil {
		return fmt.Errorf("mem: unmap domain on node %d: %w", d.node, err)
	}
	if leak != nil {
		return leak
	}
	return nil
}
