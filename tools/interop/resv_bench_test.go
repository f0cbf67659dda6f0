package interop

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"sluice/engine/nvmf/host"
	"sluice/engine/proto/nvme"
)

// Reservation benchmarks against real daemons, driven by our Go NVMe/TCP host: figures,
// not assertions (`make bench-resv`; group_test.go has the three-node group's).
//
// Latency: one command at a time, each a full decision (the manager's control ring, the
// group's log, the publication on every reactor), reported as p50 and p99 besides the
// mean (ns/op). "persistent" runs on the default volume with PTPL on, so every command
// asks to persist; "volatile" on a malloc volume whose PTPL is off. A register repeats
// the host's registration with its own key and an acquire repeats the holder's
// acquisition: both succeed every time and change nothing, so b.N does not drift the
// state.

// addVolatileNamespace exports a 64 MiB malloc bdev m1 as NSID 2 of the default
// subsystem: a volume that is not in the config, whose PTPL stays off.
func addVolatileNamespace(tb testing.TB, d *daemon) {
	tb.Helper()
	var name string
	d.call("bdev_malloc_create", map[string]any{"name": "m1", "num_blocks": 131072, "block_size": 512}, &name)
	var nsid uint32
	d.call("nvmf_subsystem_add_ns", map[string]any{"nqn": defaultNQN,
		"namespace": map[string]any{"nsid": 2, "bdev_name": "m1"}}, &nsid)
}

// benchResvLatency runs the four latency sub-benchmarks with h, which it registers
// (PTPL on for the persistent namespace) and makes the holder on both namespaces.
func benchResvLatency(b *testing.B, h *resvHost, persistentNSID, volatileNSID uint32) {
	wantStatus(b, "register CPTPL=11b", h.register(persistentNSID, 0xA1, nvme.CPTPLSet), nvme.StatusSuccess)
	wantStatus(b, "register", h.register(volatileNSID, 0xA1, nvme.CPTPLNoChange), nvme.StatusSuccess)
	for _, nsid := range []uint32{persistentNSID, volatileNSID} {
		wantStatus(b, "acquire", h.acquire(nsid, 0xA1, nvme.RTypeWriteExclusive), nvme.StatusSuccess)
	}
	cases := []struct {
		name string
		run  func(nsid uint32) nvme.Status
	}{
		{"register", func(nsid uint32) nvme.Status { return h.register(nsid, 0xA1, nvme.CPTPLNoChange) }},
		{"acquire", func(nsid uint32) nvme.Status { return h.acquire(nsid, 0xA1, nvme.RTypeWriteExclusive) }},
	}
	for _, c := range cases {
		for _, v := range []struct {
			name string
			nsid uint32
		}{{"persistent", persistentNSID}, {"volatile", volatileNSID}} {
			b.Run(c.name+"/"+v.name, func(b *testing.B) {
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for range b.N {
					start := time.Now()
					st := c.run(v.nsid)
					lat = append(lat, time.Since(start))
					if !st.Success() {
						b.Fatalf("%s on NSID %d: %v", c.name, v.nsid, st)
					}
				}
				reportPercentiles(b, lat)
			})
		}
	}
}

// reportPercentiles adds p50 and p99 of lat, in microseconds, to the benchmark line.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Microsecond)
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkStandaloneReservations: register and acquire latency on a standalone node
// (no group: `make run`), persistent and volatile.
func BenchmarkStandaloneReservations(b *testing.B) {
	d := newDaemon(b)
	addVolatileNamespace(b, d)
	h := newResvHost(b, "A", 1)
	h.connect(d.nvmfAddr("127.0.0.1"))
	defer h.close()
	benchResvLatency(b, h, defaultNSID, 2)
}

// readDepth is the benchmark's queue depth.
const readDepth = 32

// BenchmarkRandRead4KReservation: 4 KiB random reads at queue depth 32 from one host on
// one I/O queue, on a namespace without a reservation and then with a Write Exclusive
// reservation held by another host (reads stay allowed, and every one of them passes
// the reservation check against the published view), then released again, in one run
// against one daemon.
// IOPS is the figure; the volume is a malloc bdev, so the target's path, not a disk,
// sets the pace.
func BenchmarkRandRead4KReservation(b *testing.B) {
	d := newDaemon(b)
	addVolatileNamespace(b, d)
	addr := d.nvmfAddr("127.0.0.1")
	reader, holder := newResvHost(b, "reader", 1), newResvHost(b, "holder", 2)
	reader.opts.QueueSize = 64
	reader.connect(addr)
	holder.connect(addr)
	defer reader.close()
	defer holder.close()

	run := func(name string) {
		b.Run(name, func(b *testing.B) { randRead4K(b, reader.q, 2, 131072*512/4096) })
	}
	run("no-reservation")
	wantStatus(b, "holder register", holder.register(2, 0xB2, nvme.CPTPLNoChange), nvme.StatusSuccess)
	wantStatus(b, "holder acquire", holder.acquire(2, 0xB2, nvme.RTypeWriteExclusive), nvme.StatusSuccess)
	wantStatus(b, "reader write under the reservation", reader.write4K(2, 512), nvme.StatusReservationConflict)
	run("reservation-held")
	// And without it again: the first run warmed up what the second used, so the
	// bracket shows what order alone does to the figure.
	wantStatus(b, "holder release", holder.release(2, 0xB2, nvme.RTypeWriteExclusive), nvme.StatusSuccess)
	run("released")
}

// randRead4K reads b.N random 4 KiB blocks of nsid (blocks of 4 KiB in all) with
// readDepth in flight and reports IOPS.
func randRead4K(b *testing.B, q *host.IOQueue, nsid uint32, blocks uint64) {
	rng := rand.New(rand.NewPCG(1, 2))
	bufs := make([][]byte, readDepth)
	for i := range bufs {
		bufs[i] = make([]byte, 4096)
	}
	submit := func(tag uint16) {
		if err := q.SubmitRead(nsid, rng.Uint64N(blocks)*8, 8, bufs[tag], tag); err != nil {
			b.Fatal(err)
		}
	}
	comps := make([]host.Completion, readDepth)
	submitted, done := 0, 0
	b.ResetTimer()
	start := time.Now()
	for ; submitted < min(b.N, readDepth); submitted++ {
		submit(uint16(submitted))
	}
	for done < b.N {
		n, err := q.Reap(comps)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range comps[:n] {
			if !c.Status.Success() {
				b.Fatalf("read: %v", c.Status)
			}
			done++
			if submitted < b.N {
				submit(c.Tag)
				submitted++
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "IOPS")
}
