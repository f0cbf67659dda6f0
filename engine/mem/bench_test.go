package mem

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/engine/mem/memtest"
)

// Benchmarks. Quick by default; SLUICE_CHURN_LIVE sets the churn's live set (bytes, or
// with a KiB/MiB/GiB suffix: SLUICE_CHURN_LIVE=1GiB for the full run), and
// SLUICE_BENCH_TABLE=path also writes the footprint-evolution table to a file, and
// SLUICE_BENCH_HUGEPAGES=1 reserves hugepages for the domains (as root; restored after).
//
//	go test -run '^$' -bench . -benchtime 1x ./engine/mem/            # churn, quick
//	go test -run '^$' -bench 'AllocFree|CrossCore' ./engine/mem/       # fast paths
//	SLUICE_CHURN_LIVE=1GiB go test -run '^$' -bench Churn -benchtime 1x -timeout 30m ./engine/mem/

var benchSizes = []int{64, 256, 1024, 4096, 16 << 10, 128 << 10}

// benchHugepages reserves hugepages for a domain of size bytes when
// SLUICE_BENCH_HUGEPAGES is set (as root; restored when the benchmark ends).
func benchHugepages(b *testing.B, size int64) {
	if os.Getenv("SLUICE_BENCH_HUGEPAGES") != "" {
		memtest.ReserveHugepages(b, int(size/PageSize))
	}
}

// benchDomain maps a domain for a benchmark: hugepages when reserved, else the fallback.
func benchDomain(b *testing.B, size int64, w *Weights) *Domain {
	b.Helper()
	benchHugepages(b, size)
	d, err := NewDomain(DomainConfig{SizeBytes: size, Weights: w,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// The baselines: the Go heap (make + GC), sync.Pool per size, a plain per-size free
// list. Each hands out a []byte of the size and takes it back.
type baseline interface {
	get(size int) []byte
	put(b []byte)
}

type goHeap struct{ sink [][]byte }

func (g *goHeap) get(size int) []byte {
	b := make([]byte, size)
	g.sink[0] = b // escape, like a buffer handed to I/O
	return b
}
func (g *goHeap) put([]byte) {}

type poolSet struct {
	mu    sync.Mutex
	pools map[int]*sync.Pool
}

func (p *poolSet) pool(size int) *sync.Pool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pools == nil {
		p.pools = make(map[int]*sync.Pool)
	}
	sp := p.pools[size]
	if sp == nil {
		sp = &sync.Pool{New: func() any { b := make([]byte, size); return &b }}
		p.pools[size] = sp
	}
	return sp
}

// syncPool rounds to the allocator's classes so that it pools as few sizes as we do.
type syncPool struct{ byClass [numRows]*sync.Pool }

func newSyncPool() *syncPool {
	var s syncPool
	var ps poolSet
	for i := range numClasses {
		s.byClass[i] = ps.pool(int(classSizes[i]))
	}
	return &s
}

func (s *syncPool) get(size int) []byte {
	return (*s.byClass[classOf(size)].Get().(*[]byte))[:size]
}
func (s *syncPool) put(b []byte) {
	b = b[:cap(b)]
	s.byClass[classOf(cap(b))].Put(&b)
}

type freeList struct{ lists [numClasses][][]byte }

func (f *freeList) get(size int) []byte {
	c := classOf(size)
	l := f.lists[c]
	if n := len(l); n > 0 {
		b := l[n-1]
		f.lists[c] = l[:n-1]
		return b[:size]
	}
	return make([]byte, size, classSizes[c])
}
func (f *freeList) put(b []byte) {
	c := classOf(cap(b))
	f.lists[c] = append(f.lists[c], b)
}

// BenchmarkAllocFree: one alloc and one free per op on one core, per class, in batches
// of 16 (so the fast path moves through the bitmap rather than reusing one object).
func BenchmarkAllocFree(b *testing.B) {
	const batch = 16
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d/sluice", size), func(b *testing.B) {
			d := benchDomain(b, 64<<20, nil)
			c, _ := d.NewCore(0)
			var bufs [batch]Buf
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for j := range bufs {
					bufs[j], _ = c.Alloc(size)
				}
				for _, x := range bufs {
					c.Free(x)
				}
			}
		})
		for _, bl := range []struct {
			name string
			a    baseline
		}{{"goheap", &goHeap{sink: make([][]byte, 1)}}, {"syncpool", newSyncPool()}, {"freelist", &freeList{}}} {
			b.Run(fmt.Sprintf("size=%d/%s", size, bl.name), func(b *testing.B) {
				var bufs [batch][]byte
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					for j := range bufs {
						bufs[j] = bl.a.get(size)
					}
					for _, x := range bufs {
						bl.a.put(x)
					}
				}
			})
		}
	}
}

// BenchmarkCrossCore: a producer allocates, a consumer on another goroutine frees, in
// batches of 64 handed over a channel; ns/op is per object. The producer reclaims its
// objects (sluice) at each batch, as a reactor's poller would.
func BenchmarkCrossCore(b *testing.B) {
	const batch = 64
	for _, size := range []int{256, 4096} {
		b.Run(fmt.Sprintf("size=%d/sluice", size), func(b *testing.B) {
			d := benchDomain(b, 64<<20, nil)
			prod, _ := d.NewCore(0)
			cons, _ := d.NewCore(1)
			full, empty := make(chan *[batch]Buf, 4), make(chan *[batch]Buf, 4)
			for range 4 {
				empty <- new([batch]Buf)
			}
			done := make(chan struct{})
			go func() {
				for bs := range full {
					for _, x := range bs {
						cons.Free(x)
					}
					empty <- bs
				}
				close(done)
			}()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				bs := <-empty
				prod.Reclaim()
				for j := range bs {
					bs[j], _ = prod.Alloc(size)
				}
				full <- bs
			}
			close(full)
			<-done
		})
		for _, bl := range []struct {
			name string
			a    baseline
		}{{"goheap", &goHeap{sink: make([][]byte, 1)}}, {"syncpool", newSyncPool()}} {
			b.Run(fmt.Sprintf("size=%d/%s", size, bl.name), func(b *testing.B) {
				full, empty := make(chan *[batch][]byte, 4), make(chan *[batch][]byte, 4)
				for range 4 {
					empty <- new([batch][]byte)
				}
				done := make(chan struct{})
				go func() {
					for bs := range full {
						for _, x := range bs {
							bl.a.put(x)
						}
						empty <- bs
					}
					close(done)
				}()
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					bs := <-empty
					for j := range bs {
						bs[j] = bl.a.get(size)
					}
					full <- bs
				}
				close(full)
				<-done
			})
		}
	}
}

// churnLive returns the churn's live-set target from SLUICE_CHURN_LIVE (default 64 MiB).
func churnLive(b *testing.B) int64 {
	s := os.Getenv("SLUICE_CHURN_LIVE")
	if s == "" {
		return 64 << 20
	}
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = v, m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("SLUICE_CHURN_LIVE=%q: want bytes or a KiB/MiB/GiB suffix", os.Getenv("SLUICE_CHURN_LIVE"))
	}
	return n * mult
}

// churnSizes is the churn's size mix: half request contexts, half I/O buffers by count
// (mean about 19 KiB).
var churnSizes = []int{64, 64, 128, 200, 256, 512, 1024, 1500, 4096, 4096, 8192, 8192, 16 << 10, 64 << 10, 128 << 10, 128 << 10}

func churnMean() int64 {
	var s int64
	for _, n := range churnSizes {
		s += int64(n)
	}
	return s / int64(len(churnSizes))
}

// churnPlan drives a churn: each op frees the objects whose lifetime ends and allocates
// one with a random lifetime of 1..2L ops, so the live set settles at about L objects.
// Deaths are kept in intrusive per-op lists (head, next), so the driver itself allocates
// nothing while it runs.
type churnPlan struct {
	r    *rand.Rand
	life int
	ops  int
	head []int32 // first id dying at op modulo len(head), -1 if none
	next []int32 // next id dying at the same op
}

func newChurnPlan(live int64) *churnPlan {
	l := int(live / churnMean())
	p := &churnPlan{r: rand.New(rand.NewPCG(42, 42)), life: l, ops: 8 * l,
		head: make([]int32, 2*l+1), next: make([]int32, 8*l)}
	for i := range p.head {
		p.head[i] = -1
	}
	return p
}

// run calls free for each dying id and alloc for each new one (id = op), and sample
// every ops/20 ops.
func (p *churnPlan) run(alloc func(id, size int), free func(id int), sample func(op int)) {
	n := len(p.head)
	for op := range p.ops {
		slot := op % n
		for id := p.head[slot]; id >= 0; id = p.next[id] {
			free(int(id))
		}
		alloc(op, churnSizes[p.r.IntN(len(churnSizes))])
		p.head[slot] = -1
		death := (op + 1 + p.r.IntN(2*p.life)) % n
		p.next[op], p.head[death] = p.head[death], int32(op)
		if op%(p.ops/20) == 0 {
			sample(op)
		}
	}
	for slot := range p.head {
		for id := p.head[slot]; id >= 0; id = p.next[id] {
			free(int(id))
		}
		p.head[slot] = -1
	}
}

// goFootprint is the Go runtime's memory in use by the heap (objects + fragmentation,
// excluding what it returned to the OS).
func goFootprint() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}, {Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() + s[1].Value.Uint64() + s[2].Value.Uint64())
}

func gcCPU() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64()
}

// BenchmarkChurn runs the same mixed-size, random-lifetime workload on each allocator and
// reports the peak footprint over the peak live bytes (fragmentation), GC cycles, total
// GC pause and GC CPU during the run, and ns per alloc+free.
func BenchmarkChurn(b *testing.B) {
	live := churnLive(b)
	b.Logf("churn: live target %d MiB, mean object %d B", live>>20, churnMean())
	domainSize := 2*live + 64<<20
	for _, name := range []string{"sluice-default", "sluice-fresh", "goheap", "syncpool", "freelist"} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				runChurnBench(b, name, live, domainSize)
			}
		})
	}
}

func runChurnBench(b *testing.B, name string, live, domainSize int64) {
	b.StopTimer()
	plan := newChurnPlan(live)
	var alloc func(id, size int)
	var free func(id int)
	var footprint func() int64
	var curLive, peakLive int64
	var forcedGC, forcedPause, exTime, exPause time.Duration
	var exCycles int64
	var exCPU float64
	sizes := make([]int32, plan.ops)
	if strings.HasPrefix(name, "sluice") {
		w := DefaultWeights()
		if name == "sluice-fresh" {
			w = FreshWeights()
		}
		benchHugepages(b, domainSize)
		d, err := NewDomain(DomainConfig{SizeBytes: domainSize, Weights: &w,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		if d.Hugepages() {
			b.ReportMetric(1, "hugepages")
		}
		c, _ := d.NewCore(0)
		bufs := make([]Buf, plan.ops)
		alloc = func(id, size int) {
			x, err := c.Alloc(size)
			if err != nil {
				b.Fatalf("%s: Alloc(%d) with %d MiB live: %v", name, size, curLive>>20, err)
			}
			bufs[id] = x
		}
		free = func(id int) { c.Free(bufs[id]); bufs[id] = Buf{} }
		footprint = func() int64 { return int64(c.peakPages) * PageSize }
	} else {
		var a baseline
		switch name {
		case "goheap":
			a = &goHeap{sink: make([][]byte, 1)}
		case "syncpool":
			a = newSyncPool()
		default:
			a = &freeList{}
		}
		bufs := make([][]byte, plan.ops)
		alloc = func(id, size int) { bufs[id] = a.get(size) }
		free = func(id int) { a.put(bufs[id]); bufs[id] = nil }
		var peak int64
		footprint = func() int64 { peak = max(peak, goFootprint()); return peak }
	}
	runtime.GC()
	var gc0, gc1 debug.GCStats
	debug.ReadGCStats(&gc0)
	cpu0 := gcCPU()
	start := time.Now()
	b.StartTimer()
	plan.run(func(id, size int) {
		alloc(id, size)
		sizes[id] = int32(size)
		curLive += int64(size)
		peakLive = max(peakLive, curLive)
	}, func(id int) {
		curLive -= int64(sizes[id])
		free(id)
	}, func(op int) {
		footprint()
		if op == plan.ops/20*10 {
			// Mid-run, live set in place: two forced collections, the second (with nothing
			// left to sweep from the first) reported. Both are taken out of the run's figures.
			var sA, s0, s1 debug.GCStats
			debug.ReadGCStats(&sA)
			cpuA, t0 := gcCPU(), time.Now()
			runtime.GC()
			debug.ReadGCStats(&s0)
			t1 := time.Now()
			runtime.GC()
			forcedGC = time.Since(t1)
			debug.ReadGCStats(&s1)
			forcedPause = s1.PauseTotal - s0.PauseTotal
			exTime, exPause, exCycles = time.Since(t0), s1.PauseTotal-sA.PauseTotal, s1.NumGC-sA.NumGC
			exCPU = gcCPU() - cpuA
		}
	})
	b.StopTimer()
	elapsed := time.Since(start) - exTime
	debug.ReadGCStats(&gc1)
	fp := footprint()
	b.ReportMetric(float64(fp)/float64(peakLive), "footprint/live")
	b.ReportMetric(float64(fp>>20), "footprint-MiB")
	b.ReportMetric(float64(peakLive>>20), "peak-live-MiB")
	// The run's own collections, without the forced ones.
	b.ReportMetric(float64(gc1.NumGC-gc0.NumGC-exCycles), "gc-cycles")
	b.ReportMetric(float64((gc1.PauseTotal - gc0.PauseTotal - exPause).Microseconds()), "gc-pause-µs")
	b.ReportMetric((gcCPU()-cpu0-exCPU)*1e3, "gc-cpu-ms")
	// One forced collection with the live set in place: its wall time and its pauses.
	b.ReportMetric(float64(forcedGC.Microseconds()), "forced-gc-µs")
	b.ReportMetric(float64(forcedPause.Microseconds()), "forced-gc-pause-µs")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(plan.ops), "ns/alloc+free")
}

// BenchmarkChurnEvolution runs the churn on sluice with the default and the fresh
// weightings and prints how the footprint and the slice-state counts evolve (and writes
// the table to SLUICE_BENCH_TABLE when set).
func BenchmarkChurnEvolution(b *testing.B) {
	live := churnLive(b)
	var out strings.Builder
	fmt.Fprintf(&out, "churn evolution: live target %d MiB, domain %d MiB\n", live>>20, (2*live+64<<20)>>20)
	fmt.Fprintf(&out, "%-8s %8s %8s %9s %9s %8s %8s %8s %8s %8s\n",
		"weights", "op", "live-MiB", "held-MiB", "peak-MiB", "partial", "full", "dirty", "clean", "reform")
	benchHugepages(b, 2*live+64<<20)
	for range b.N {
		for _, wname := range []string{"default", "fresh", "auto"} {
			w := DefaultWeights()
			switch wname {
			case "fresh":
				w = FreshWeights()
			case "auto":
				w = FreshWeights()
				w.AutoTune = true
			}
			d, err := NewDomain(DomainConfig{SizeBytes: 2*live + 64<<20, Weights: &w,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			c, _ := d.NewCore(0)
			plan := newChurnPlan(live)
			bufs := make([]Buf, plan.ops)
			sizes := make([]int32, plan.ops)
			var cur int64
			plan.run(func(id, size int) {
				x, err := c.Alloc(size)
				if err != nil {
					b.Fatalf("%s: %v", wname, err)
				}
				bufs[id], sizes[id] = x, int32(size)
				cur += int64(size)
			}, func(id int) {
				c.Free(bufs[id])
				cur -= int64(sizes[id])
			}, func(op int) {
				var n [numStates]int32
				for i := range c.rows {
					for s, v := range c.rows[i].counts {
						n[s] += v
					}
				}
				fmt.Fprintf(&out, "%-8s %8d %8d %9d %9d %8d %8d %8d %8d %8d\n", wname, op, cur>>20,
					int64(c.pages)*PageSize>>20, int64(c.peakPages)*PageSize>>20,
					n[SliceStatePartial], n[SliceStateFull], n[SliceStateDirty], c.cleanN, c.ctr.reformats)
			})
			b.ReportMetric(float64(int64(c.peakPages)*PageSize>>20), "peak-MiB-"+wname)
			if err := d.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Log("\n" + out.String())
	if path := os.Getenv("SLUICE_BENCH_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
