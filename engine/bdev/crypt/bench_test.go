package crypt

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/cgo/xts"
	"sluice/engine/bdev"
)

// BenchmarkCryptWrite compares, on one core and in one run, the write throughput of a
// bdev without encryption (null, malloc), of the raw cipher alone (cgo/xts on the same
// buffer sizes: the ceiling), and of a crypt bdev over the same bases: the gap between
// the raw cipher and crypt-over-null is the layer's own cost. One I/O at a time on a
// stepped busy reactor, buffers from the allocator, 4 KiB blocks. Besides wall-clock MB/s
// each reports cpu-MB/s, bytes per second of the process's CPU time: on a shared machine
// whose other work preempts the benchmark, that is the per-core throughput the wall clock
// hides. Run:
//
//	go test -run '^$' -bench CryptWrite -benchtime 2s ./engine/bdev/crypt/
func BenchmarkCryptWrite(b *testing.B) {
	for _, size := range []int{4 << 10, 128 << 10} {
		for _, base := range []string{"null", "malloc"} {
			b.Run(fmt.Sprintf("plain/%s/%dK", base, size>>10), func(b *testing.B) { benchIO(b, base, false, bdev.IOWrite, size) })
		}
		b.Run(fmt.Sprintf("xts-raw/%dK", size>>10), func(b *testing.B) { benchRawXTS(b, size) })
		for _, base := range []string{"null", "malloc"} {
			b.Run(fmt.Sprintf("crypt/%s/%dK", base, size>>10), func(b *testing.B) { benchIO(b, base, true, bdev.IOWrite, size) })
		}
	}
}

// BenchmarkCryptRead is BenchmarkCryptWrite's read side over malloc: the layer decrypts
// in place, with no buffer of its own.
func BenchmarkCryptRead(b *testing.B) {
	for _, size := range []int{4 << 10, 128 << 10} {
		b.Run(fmt.Sprintf("plain/malloc/%dK", size>>10), func(b *testing.B) { benchIO(b, "malloc", false, bdev.IORead, size) })
		b.Run(fmt.Sprintf("crypt/malloc/%dK", size>>10), func(b *testing.B) { benchIO(b, "malloc", true, bdev.IORead, size) })
	}
}

func benchIO(b *testing.B, base string, crypt bool, typ bdev.IOType, size int) {
	g := newRig(b)
	const volBytes = 64 << 20
	var err error
	switch base {
	case "null":
		_, err = bdev.CreateNull(g.m, bdev.NullParams{Name: "base", NumBlocks: volBytes / 4096, BlockSize: 4096})
	case "malloc":
		_, err = bdev.CreateMalloc(g.m, bdev.MallocParams{Name: "base", NumBlocks: volBytes / 4096, BlockSize: 4096}, nil)
	}
	if err != nil {
		b.Fatal(err)
	}
	target, _ := g.m.Get("base")
	if crypt {
		target = g.create(b, CreateParams{Name: "c", BaseBdevName: "base", KeyFile: keyFile(b), Format: true})
	}
	ch, _ := g.open(b, target)
	m := allocOn(b, g.cores[0], size)
	fill(m.Bytes(), 1)
	done := false
	io := &bdev.IO{Type: typ, Length: uint64(size), Done: func(*bdev.IO) { done = true }}
	io.SetBuf(m.Bytes(), m)
	span := target.SizeBytes() / uint64(size) * uint64(size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	defer cpuMeter(b, size)()
	var off uint64
	for b.Loop() {
		io.Offset, done = off, false
		ch.Submit(io)
		for !done {
			g.r.PollOnce()
		}
		if io.Status != bdev.StatusSuccess {
			b.Fatal(io.Status)
		}
		if off += uint64(size); off >= span {
			off = 0
		}
	}
}

func benchRawXTS(b *testing.B, size int) {
	g := newRig(b)
	key, err := newDataKey()
	if err != nil {
		b.Fatal(err)
	}
	c, err := xts.New(key)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	src, dst := allocOn(b, g.cores[0], size), allocOn(b, g.cores[0], size)
	fill(src.Bytes(), 1)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	defer cpuMeter(b, size)()
	var sector uint64
	for b.Loop() {
		if err := c.EncryptSectors(dst.Bytes(), src.Bytes(), sector, 4096); err != nil {
			b.Fatal(err)
		}
		sector += uint64(size / 4096)
	}
}

// cpuMeter starts counting the process's CPU time (user and system); the function it
// returns reports bytes per CPU second over the b.N operations of size bytes. The
// control reactor sleeps while idle, so the count is the benchmark's own work plus a
// little runtime overhead.
func cpuMeter(b *testing.B, size int) func() {
	start := cpuTime(b)
	return func() {
		if cpu := cpuTime(b) - start; cpu > 0 && b.N > 0 {
			b.ReportMetric(float64(size)*float64(b.N)/cpu.Seconds()/1e6, "cpu-MB/s")
		}
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
