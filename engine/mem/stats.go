package mem

// ClassStats are one core's figures for one size class (or for spans).
type ClassStats struct {
	// Class is the object size in bytes, or "span" for multi-slice allocations.
	Class         string `json:"class"`
	ObjectBytes   int    `json:"object_bytes"`
	PartialSlices int    `json:"partial_slices"`
	FullSlices    int    `json:"full_slices"`
	DirtySlices   int    `json:"dirty_slices"`
	ObjectsInUse  int64  `json:"objects_in_use"`
	// BytesReserved is the class's slices (partial, full, dirty) times SliceSize;
	// BytesInUse is its live objects times the object size. Their gap is the class's
	// fragmentation.
	BytesReserved int64  `json:"bytes_reserved"`
	BytesInUse    int64  `json:"bytes_in_use"`
	Allocs        uint64 `json:"allocs"`
	Frees         uint64 `json:"frees"`
}

// CoreStats are one core's figures, as of its last publication.
type CoreStats struct {
	Core             int   `json:"core"`
	PagesHeld        int   `json:"pages_held"`
	PeakPagesHeld    int   `json:"peak_pages_held"`
	CleanSlices      int   `json:"clean_slices"`
	SpareDirtySlices int   `json:"spare_dirty_slices"`
	BytesReserved    int64 `json:"bytes_reserved"` // pages held times PageSize
	BytesInUse       int64 `json:"bytes_in_use"`   // live objects times their class size

	Refills              uint64 `json:"refills"`
	Reformats            uint64 `json:"reformats"`
	NoMemory             uint64 `json:"no_memory"`
	RemoteFreesSent      uint64 `json:"remote_frees_sent"`
	RemoteFreesReclaimed uint64 `json:"remote_frees_reclaimed"`

	TuneMode string  `json:"tune_mode"`
	Weights  Weights `json:"weights"`
	// Classes lists the classes the core has used (slices or allocations), ascending.
	Classes []ClassStats `json:"classes"`
}

// DomainStats are a domain's figures, the payload of the mem_get_stats RPC.
type DomainStats struct {
	Node      int   `json:"node"`
	SizeBytes int64 `json:"size_bytes"`
	// Hugepages: backed by hugetlb pages. Fallback: ordinary pages (with MADV_HUGEPAGE).
	Hugepages bool `json:"hugepages"`
	Fallback  bool `json:"fallback"`
	NUMABound bool `json:"numa_bound"`

	PagesTotal    int `json:"pages_total"`
	PagesFree     int `json:"pages_free"`
	PagesFresh    int `json:"pages_fresh"` // free and never used since start
	PagesSlab     int `json:"pages_slab"`  // held by cores
	PagesRegion   int `json:"pages_region"`
	PeakPagesUsed int `json:"peak_pages_used"`
	// HugepagesUsed is the hugepages lent out (0 on the fallback path).
	HugepagesUsed int `json:"hugepages_used"`

	Cores []CoreStats `json:"cores"`
}

// Stats returns the domain's figures. Page counts are exact; each core's figures are as
// of its last publication: every publishEvery refills, at Trim and PublishStats, and at
// the core's next Reclaim after a Stats call (which asks every core to publish). It is
// safe for concurrent use and never touches a core's allocation state.
func (d *Domain) Stats() DomainStats {
	d.mu.Lock()
	free := int(d.poolFresh.Load() + d.poolUsed.Load())
	st := DomainStats{
		Node:          d.node,
		SizeBytes:     d.cfg.SizeBytes,
		Hugepages:     d.huge,
		Fallback:      !d.huge,
		NUMABound:     d.bound,
		PagesTotal:    d.npages,
		PagesFree:     free,
		PagesFresh:    int(d.poolFresh.Load()),
		PagesRegion:   d.pagesRegion,
		PagesSlab:     d.npages - free - d.pagesRegion,
		PeakPagesUsed: d.peakPagesUsed,
	}
	var cores []*Core
	for _, c := range d.cores {
		if c != nil {
			cores = append(cores, c)
		}
	}
	d.mu.Unlock()
	if d.huge {
		st.HugepagesUsed = d.npages - free
	}
	for _, c := range cores {
		c.statsReq.Store(true)
		c.pubMu.Lock()
		cs := c.pub
		cs.Classes = nil
		for _, cl := range c.pub.Classes {
			if cl.PartialSlices+cl.FullSlices+cl.DirtySlices > 0 || cl.Allocs > 0 {
				cs.Classes = append(cs.Classes, cl)
			}
		}
		c.pubMu.Unlock()
		st.Cores = append(st.Cores, cs)
	}
	return st
}

// PublishStats publishes the core's figures for Stats now.
//
// Preconditions: called by the core's owner.
func (c *Core) PublishStats() { c.publish() }

// publish copies the owner's counters where Stats can read them.
//
// Preconditions: called by the core's owner (or with the core stopped).
func (c *Core) publish() {
	c.statsReq.Store(false)
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	p := &c.pub
	p.Core = c.id
	p.PagesHeld, p.PeakPagesHeld = int(c.pages), int(c.peakPages)
	p.CleanSlices, p.SpareDirtySlices = int(c.cleanN), int(c.spare.n)
	p.BytesReserved = int64(c.pages) * PageSize
	p.Refills, p.Reformats, p.NoMemory = c.ctr.refills, c.ctr.reformats, c.ctr.noMemory
	p.RemoteFreesSent, p.RemoteFreesReclaimed = c.ctr.remoteSent, c.ctr.remoteReclaimed
	p.TuneMode, p.Weights = c.mode.String(), c.w
	p.BytesInUse = 0
	for i := range c.rows {
		r := &c.rows[i]
		cl := &p.Classes[i]
		*cl = ClassStats{
			Class:         rowName(i),
			PartialSlices: int(r.counts[SliceStatePartial]),
			FullSlices:    int(r.counts[SliceStateFull]),
			DirtySlices:   int(r.counts[SliceStateDirty]),
			ObjectsInUse:  r.inUse,
			Allocs:        r.allocs,
			Frees:         r.frees,
		}
		slices := int64(cl.PartialSlices + cl.FullSlices + cl.DirtySlices)
		cl.BytesReserved = slices * SliceSize
		if i < numClasses {
			cl.ObjectBytes = int(classSizes[i])
			cl.BytesInUse = r.inUse * int64(classSizes[i])
		} else {
			cl.BytesInUse = int64(cl.FullSlices) * SliceSize
		}
		p.BytesInUse += cl.BytesInUse
	}
}
