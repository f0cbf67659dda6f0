package mem

import "fmt"

// Buf is an allocated buffer: a small value (two words, no Go pointer, no heap
// allocation) that names its memory by domain id and offset. Its memory is outside the Go
// heap and must never hold Go pointers: the GC does not see it. Having no pointer itself,
// a Buf costs the GC nothing either, wherever the caller keeps it.
//
// A Buf is owned by whoever holds it until it is passed to Core.Free; after that neither
// the Buf nor any slice obtained from Bytes may be used.
type Buf struct {
	// Both words are built by makeBuf; all-uint64 fields keep a Buf in two registers
	// across calls (mixed widths were spilled and re-read with stalls on every hop).
	a uint64 // offset in the domain (bits 0-47) | domain id (48-55) | class (56-63)
	b uint64 // requested length (bits 0-31) | object index in its slice, or span length (32-47)
}

func makeBuf(dom uint8, off uint64, n uint32, idx uint16, cls uint8) Buf {
	return Buf{a: off | uint64(dom)<<48 | uint64(cls)<<56, b: uint64(n) | uint64(idx)<<32}
}

func (b Buf) off() uint64 { return b.a & (1<<48 - 1) }
func (b Buf) dom() uint8  { return uint8(b.a >> 48) }
func (b Buf) cls() uint8  { return uint8(b.a >> 56) }
func (b Buf) n() uint32   { return uint32(b.b) }
func (b Buf) idx() uint16 { return uint16(b.b >> 32) }

// domain returns the domain of b, or nil for the zero Buf or a closed domain.
func (b Buf) domain() *Domain { return domainTable[b.dom()].Load() }

// Bytes returns the buffer's memory: len is the requested size, cap the class size (so
// appending up to the class size stays in place). The zero Buf returns nil. A Buf of a
// closed domain panics; built with the invariants tag, so does a freed one.
func (b Buf) Bytes() []byte {
	d := b.domain()
	if d == nil {
		if b.a == 0 && b.b == 0 {
			return nil
		}
		panic("mem: Bytes of a Buf whose domain is closed")
	}
	if invariantsEnabled {
		d.inv.checkLive(d, b)
	}
	off := b.off()
	end := off + uint64(b.n())
	capEnd := end
	if c := b.cls(); c < numClasses {
		capEnd = off + uint64(classSizes[c])
	}
	return d.mem[off:end:capEnd]
}

// Len returns the requested size.
func (b Buf) Len() int { return int(b.n()) }

// IsZero reports whether b is the zero Buf (what a failed Alloc returns).
func (b Buf) IsZero() bool { return b.dom() == 0 }

// Offset returns the buffer's offset in its domain's mapping. With FixedBuffers it gives
// the address io_uring needs for a fixed-buffer read or write.
func (b Buf) Offset() uint64 { return b.off() }

// String describes the buffer for logs and test failures.
func (b Buf) String() string {
	if b.IsZero() {
		return "Buf{}"
	}
	kind := "span"
	switch c := b.cls(); {
	case c < numClasses:
		kind = rowName(int(c))
	case c == clsPages:
		kind = "pages"
	}
	return fmt.Sprintf("Buf{domain %d off %#x len %d class %s}", b.dom(), b.off(), b.n(), kind)
}

// Region is a run of whole pages lent by a domain, for large users such as the RAM disk
// (malloc bdev). It is contiguous when the domain had a long enough run of free pages;
// otherwise it is a list of pages and Page gives each one.
//
// A Region is a value; Free returns its pages to the domain. It is safe to use from any
// goroutine, and Free from any goroutine, once.
type Region struct {
	d     *Domain
	first int32   // first page when contiguous, -1 otherwise
	pages []int32 // the pages when scattered
	n     int     // page count
	size  int64   // requested size
}

// AllocRegion lends size bytes (rounded up to whole pages) of the domain's memory as a
// Region: contiguous if a long enough run of pages is free, else scattered pages. It
// returns ErrNoMemory when the pool has too few pages.
func (d *Domain) AllocRegion(size int64) (Region, error) {
	if size <= 0 {
		return Region{}, ErrInvalidSize
	}
	n := int((size + PageSize - 1) >> pageShift)
	if n > d.npages {
		return Region{}, fmt.Errorf("mem: region of %d bytes on node %d: %w", size, d.node, ErrNoMemory)
	}
	if p := d.takeRun(n); p >= 0 {
		return Region{d: d, first: int32(p), n: n, size: size}, nil
	}
	pages := d.takeScattered(n)
	if pages == nil {
		return Region{}, fmt.Errorf("mem: region of %d bytes on node %d: %w", size, d.node, ErrNoMemory)
	}
	return Region{d: d, first: -1, pages: pages, n: n, size: size}, nil
}

// Size returns the requested size in bytes.
func (r Region) Size() int64 { return r.size }

// Pages returns the number of pages.
func (r Region) Pages() int { return r.n }

// Contiguous reports whether Bytes can return the whole region.
func (r Region) Contiguous() bool { return r.d != nil && r.first >= 0 }

// Bytes returns the whole region as one slice of Size bytes, or nil when it is not
// contiguous.
func (r Region) Bytes() []byte {
	if !r.Contiguous() {
		return nil
	}
	off := int64(r.first) << pageShift
	return r.d.mem[off : off+r.size : off+int64(r.n)<<pageShift]
}

// Page returns page i of the region (PageSize bytes; the last page is cut to Size).
func (r Region) Page(i int) []byte {
	if i < 0 || i >= r.n {
		panic(fmt.Sprintf("mem: region page %d of %d", i, r.n))
	}
	p := int64(r.first) + int64(i)
	if r.first < 0 {
		p = int64(r.pages[i])
	}
	n := min(int64(PageSize), r.size-int64(i)<<pageShift)
	return r.d.mem[p<<pageShift : p<<pageShift+n : (p+1)<<pageShift]
}

// Free returns the region's pages to the domain's pool. Freeing a region twice panics.
func (r Region) Free() {
	if r.d == nil {
		return
	}
	if r.first >= 0 {
		r.d.giveBackRun(int(r.first), r.n)
		return
	}
	for _, p := range r.pages {
		r.d.giveBackRun(int(p), 1)
	}
}
