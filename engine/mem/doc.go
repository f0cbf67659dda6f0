// Package mem is sluice's memory allocator: request contexts and I/O buffers come from
// NUMA-local hugepages through a domain → page → slice → object hierarchy whose slices are
// chosen by a cost model (after US10733027).
//
// # What it owns
//
// A Domain is one NUMA node's memory. NewDomain maps it once (DomainConfig.SizeBytes, a
// multiple of PageSize = 2 MiB), binds it to its node (mbind through cgo/numa) and
// pre-faults it; nothing is mapped or unmapped after that, so the domain's size is its cap.
// It comes from MAP_HUGETLB when enough hugepages are reserved; otherwise it falls back to
// ordinary pages with MADV_HUGEPAGE (or fails, with HugepagesRequire) and logs one warning
// naming vm.nr_hugepages. Running out is back-pressure: Alloc returns ErrNoMemory and the
// caller queues the I/O or fails it with a retryable status. Nothing here panics for lack
// of memory.
//
// The domain lends its pages to cores (per-reactor Core state) and to regions. A core
// cuts a page into 8 slices of SliceSize = 256 KiB; a slice holds objects of one size
// class. Classes run from 64 B (multiples of 64 up to 3 KiB, 64-byte aligned: request
// contexts) to 256 KiB (multiples of 4 KiB, 4 KiB aligned: O_DIRECT and io_uring
// buffers); ClassSizes lists them. Larger allocations are spans of whole slices within a
// page (up to 2 MiB) or whole pages; AllocRegion lends pages for a RAM disk. An Arena
// holds one domain per node of a Topology.
//
// Metadata is kept apart from object memory (compact layout): a slice's record, its free
// bitmap (one bit per object) and its list links live in a Go array without pointers, so
// objects are packed back to back and a free object costs one bit and no header. Object
// memory never holds Go pointers; the GC neither scans it nor counts it. A Buf (24 bytes,
// a value) names an object by domain and offset and gives a []byte view.
//
// # Slice states
//
// Each slice is in one of the patent's states (SliceState): clean (never used since start),
// partial (live objects, at least the full threshold free), full (live objects, fewer
// free than the threshold, objects/FullThresholdDiv), dirty (emptied after use; it keeps
// its last class). The transitions:
//
//	clean   → partial   formatted for a class when first chosen
//	partial ⇄ full      as allocations and frees cross the full threshold
//	partial → dirty     when the last object is freed (full → dirty for 1-object slices)
//	dirty   → partial   reused, re-formatted for any class when chosen
//
// Nothing makes a slice clean again (M6): a page that goes back to the pool keeps its
// slices' states. A slice's class changes only in format, which refuses a slice with live
// objects (M5).
//
// # The fast path and the cost model
//
// Core.Alloc maps the size to a class with a table lookup and takes the lowest free
// object of the core's current slice of that class (a bitmap word and a
// trailing-zero count). Only when that slice has none left does the core refill: it
// takes back objects other cores freed to it, then runs the cost model over its candidate
// slices: up to 8 of each of the class's partial list, its retained dirty list, the core's
// clean and spare (surplus dirty) lists and the class's full list (only full slices with
// a free object: M4), the latest dirty slice of every other class, and two virtual
// candidates, a used and a fresh page from the domain's pool. Each candidate costs
//
//	state cost:  Partial | Dirty (+ Reformat if last used for another class) | Clean + Touch | Full
//	memory cost: Occupancy × idle slices of its page / 8      (fill busy pages, empty idle ones)
//	           + Fullness × free objects / objects            (partial and full: fill the fullest)
//	           + Pool                                         (a page taken from the pool)
//
// and the lowest total wins, ties going to the lowest address. Weights.Cost is the
// formula; it returns hundredths of a weight unit.
//
// DefaultWeights (Partial 0, Dirty 10, Clean 20, Full 40, Reformat 2, Occupancy 4,
// Fullness 2, Touch 1, Pool 12) give claim 1's order partial > dirty > clean > full: the
// memory terms of a held slice stay under the 10-unit gap between states. Pool 12 ranks a
// page from the pool after held slices of the same or a better state, so that the
// footprint grows only when the core's own memory cannot serve.
//
// Worked example. A core needs a 64 KiB object (4 per slice) and its current slice is
// exhausted. Its page has 3 busy slices (5 idle: occupancy term 4 × 5/8 = 2.5) and holds
// a partial slice A (3 of 4 free), a dirty slice C last used for 64 KiB, a dirty slice G
// last used for 128 KiB, clean slices, and a full slice B (1 of 4 free); the pool has
// used and fresh pages. With DefaultWeights:
//
//	A partial      0 + fullness 2×3/4 = 1.5 + occupancy 2.5           =  4.0  ← chosen
//	C dirty       10                       + occupancy 2.5           = 12.5
//	G dirty       10 + reformat 2           + occupancy 2.5           = 14.5
//	clean         20 + touch 1              + occupancy 2.5           = 23.5
//	used pool     10 + reformat 2 + pool 12 + occupancy 4 (idle page) = 28.0
//	fresh pool    20 + touch 1    + pool 12 + occupancy 4             = 37.0
//	B full        40 + fullness 2×1/4 = 0.5 + occupancy 2.5           = 43.0
//
// Without A the core takes C (12.5), re-formatting nothing; without dirty slices, a clean
// slice of its own page. With FreshWeights (Partial 0, Dirty 20, Clean 10, Reformat 10,
// Occupancy −4, others 0) the same candidates cost A −2.5, C 17.5, G 27.5, clean 7.5, used
// pool 26, fresh pool 6, B 37.5: A still wins, but without A the core takes a fresh page
// from the pool (6.0) before its own clean slice (7.5) or any dirty one: its footprint
// grows. TestCost pins these numbers, TestChoiceTable checks the choices, and the churn
// benchmark shows the footprints the two weightings reach.
//
// Weights are per core (Domain.SetWeights, Domain.Weights: the mem_set_weights RPC); a
// change affects that core only, from its next refill or Reclaim. With Weights.AutoTune
// the core re-derives its weights every 64 refills from what it observed: compact (double
// fullness, dearer pool, busy pages first, dirty before clean) when its footprint exceeds
// twice its live bytes or the pool runs low; segregate (reformat cost past the dirty-to-clean gap, so clean slices rank before
// other classes' dirty ones) under steady churn with frequent re-formatting; its base
// weights otherwise.
//
// # Footprint policy
//
// A core keeps at most DomainConfig.MaxDirtyPerClass dirty slices per class (retained,
// for quick reuse by that class). A slice emptied beyond that is surplus (spare), and as
// soon as none of its page's slices is in use or retained, the page goes back to the
// domain's pool. So a core that has freed everything and called Trim holds only pages
// with retained dirty slices.
//
// # Cores and cross-core frees
//
// A Core belongs to one reactor: Alloc, Free, Reclaim, Trim and PublishStats run on the
// reactor's goroutine without locks (Preconditions in each). A Buf may be freed on any
// core: if it belongs to another, Free pushes it on the owner's remote-free list with a
// CAS (the link lives in the freed object's first 8 bytes, so no Go allocation), and the
// owner takes the whole list with one atomic swap at its next refill or Reclaim. The
// owner's fast path never touches that list.
//
// # Who may call it
//
// engine/bdev, engine/reactor and the transports, through Arena, Domain and Core.
// Domain's methods (Stats, SetWeights, AllocRegion, NewCore) are safe for concurrent use;
// Core's are the owning reactor's.
//
// # What it must never do
//
// Map memory, take a lock, allocate on the Go heap or log on the Alloc/Free path; store
// a Go pointer in object memory; change a slice's class while it has live objects; make a
// used slice clean; panic when memory runs out (only programmer errors panic: a double
// free, a forged Buf).
//
// # Checking and measuring
//
// Built with -tags invariants, free objects are poisoned (0xdb) and checked at the next
// allocation (use after free), a live bit per object catches a double free at the second
// Free on any core and Buf.Bytes after Free, and Close lists leaked objects. Without the
// tag a double free on the owner still panics (its bit is checked anyway) and Close
// reports leaked counts as a *LeakError.
//
// Stats (mem_get_stats) gives, per core and class, slices per state, objects and bytes in
// use against bytes reserved, and per domain the pages free, fresh, held and lent, the
// hugepages used and whether the fallback is in use.
//
// To reserve hugepages, as root: sysctl -w vm.nr_hugepages=N (N ≥ the domain's size / 2
// MiB, per node), or echo N > /proc/sys/vm/nr_hugepages; package hugetlb reads and sets
// it. The package's tests reserve what they need themselves when run as root and restore
// the setting (memtest.ReserveHugepages); with CI=true as root, failing to reserve them
// fails the test instead of skipping it.
package mem
