package replication

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"sluice/cgo/xts"
	"sluice/engine/bdev"
	"sluice/engine/bdev/crypt"
)

// The replication figures, measured in one run so that their ratios mean something on
// a shared machine:
//
//	go test -run '^$' -bench 'Replication' -benchtime 1x -count 3 ./engine/replication/
//
// BenchmarkReplicationThroughput: 128 KiB writes, 16 in flight, through crypt → replica
// → malloc on A, shipped over the SSH tunnel on loopback to malloc copies on B, until B
// holds them all; against the same run's ceilings: AES-XTS on one core (cgo/xts, what
// crypt pays per byte), raw TCP on loopback, and an SSH channel on loopback (x/crypto/ssh's
// cipher and framing, what the tunnel pays). BenchmarkReplicationSyncLatency: 4 KiB
// writes one at a time on a replica over malloc, without a replication and with a
// synchronous one: p50 and p99. BenchmarkReplicationResync: a full sync of 256 MiB of
// data, as seconds per GiB.

const benchWrite = 128 << 10

func BenchmarkReplicationThroughput(b *testing.B) {
	b.Run("xts-1core", benchXTS)
	b.Run("tcp-loopback", benchTCPLoopback)
	b.Run("ssh-loopback", benchSSHLoopback)
	b.Run("encrypted-async", func(b *testing.B) { benchReplication(b, "async") })
	b.Run("encrypted-sync", func(b *testing.B) { benchReplication(b, "sync") })
}

// benchXTS encrypts 256 MiB in 128 KiB calls on one core, as crypt's channel does.
func benchXTS(b *testing.B) {
	const total = 256 << 20
	key := make([]byte, 64)
	_, _ = rand.Read(key)
	c, err := xts.New(key)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	src, dst := make([]byte, benchWrite), make([]byte, benchWrite)
	b.SetBytes(total)
	for b.Loop() {
		for i := 0; i < total/benchWrite; i++ {
			if err := c.EncryptSectors(dst, src, uint64(i)*32, 4096); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportMiBs(b)
}

// streamBench moves 256 MiB through w, read on the other side from r.
func streamBench(b *testing.B, w io.Writer, r io.Reader) {
	const total = 256 << 20
	buf := make([]byte, benchWrite)
	b.SetBytes(total)
	for b.Loop() {
		done := make(chan error, 1)
		go func() {
			_, err := io.CopyN(io.Discard, r, total)
			done <- err
		}()
		for n := 0; n < total; n += len(buf) {
			if _, err := w.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	reportMiBs(b)
}

func benchTCPLoopback(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r := <-accepted
	defer r.Close()
	streamBench(b, w, r)
}

func benchSSHLoopback(b *testing.B) {
	ports := freeBase(b)
	a, bid := mustIdentity(b), mustIdentity(b)
	got := make(chan *linkConn, 1)
	srv, err := listenTunnel("bench", "127.0.0.1", ports, bid, a.PublicKey(), quietLog(),
		func(_ Link, c *linkConn) { got <- c })
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	tc, err := dialTunnel(context.Background(), dialConfig{name: "bench",
		addr: fmt.Sprintf("127.0.0.1:%d", ports[LinkTunnel]), ports: ports, id: a, peer: bid.PublicKey()})
	if err != nil {
		b.Fatal(err)
	}
	defer tc.Close()
	w, err := tc.open(LinkData, "")
	if err != nil {
		b.Fatal(err)
	}
	streamBench(b, w, <-got)
}

func mustIdentity(b testing.TB) *Identity {
	id, err := NewIdentity()
	if err != nil {
		b.Fatal(err)
	}
	return id
}

// benchReplication writes 128 MiB through the encrypted stack and waits until B has it.
func benchReplication(b *testing.B, mode string) {
	const vol = 512 << 20
	const total = 128 << 20
	p := newPair(b, vol, 4<<20, false)
	p.direct()
	kek, _ := writeKey(b, b.TempDir(), "kek", false)
	if _, err := crypt.Create(context.Background(), p.a.m, p.a.svc.cryptEnv(),
		crypt.CreateParams{Name: "cvol", BaseBdevName: "vol0", KeyFile: kek, Format: true,
			BlockSize: 4096}); err != nil {
		b.Fatal(err)
	}
	p.listen(b, PartnershipParams{KeyFile: kek})
	p.dial(b, false)
	if err := p.a.svc.StartVolume(VolumeParams{Volume: "vol0", Partnership: "p1", Mode: mode,
		JournalBytes: 64 << 20}); err != nil {
		b.Fatal(err)
	}
	p.waitInSync(b)
	o := p.a.open(b, "cvol")
	b.SetBytes(total)
	var off uint64
	for b.Loop() {
		o.pipeline(b, 16, total/benchWrite, benchWrite, &off, vol-(8<<20))
		p.waitInSync(b)
	}
	reportMiBs(b)
	st := p.vol(b).status(false)
	b.ReportMetric(float64(st.JournalFull+st.NotShipped), "not-shipped")
}

// pipeline keeps qd writes of size in flight on o's reactor until n completed.
func (o *ioer) pipeline(b testing.TB, qd, n, size int, off *uint64, limit uint64) {
	done := make(chan struct{})
	left, inflight, finished := n, 0, false
	ios := make([]*bdev.IO, qd)
	submit := func(io *bdev.IO) {
		if left == 0 {
			if inflight == 0 && !finished {
				finished = true
				close(done)
			}
			return
		}
		left--
		inflight++
		io.Offset = *off
		*off = (*off + uint64(size)) % limit
		o.ch.Submit(io)
	}
	for i := range ios {
		buf := make([]byte, size)
		_, _ = rand.Read(buf)
		ios[i] = &bdev.IO{Type: bdev.IOWrite, Length: uint64(size), Buf: buf}
		ios[i].Done = func(io *bdev.IO) {
			inflight--
			if io.Status != bdev.StatusSuccess {
				panic(fmt.Sprintf("write: %v", io.Status))
			}
			submit(io)
		}
	}
	_ = o.n.r.Post(func() {
		for _, io := range ios {
			submit(io)
		}
	})
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("pipeline stuck")
	}
}

func reportMiBs(b *testing.B) {
	b.ReportMetric(float64(b.N)*float64(bytesPerOp(b))/b.Elapsed().Seconds()/(1<<20), "MiB/s")
}

func bytesPerOp(b *testing.B) int64 {
	if strings.Contains(b.Name(), "xts") || strings.Contains(b.Name(), "loopback") {
		return 256 << 20
	}
	return 128 << 20
}

// BenchmarkReplicationSyncLatency: the latency synchronous replication adds to a 4 KiB
// write, one at a time (the tunnel and the partner's write in the path), over 2000
// writes per iteration, timed from the test's goroutine (so both include a hop to the
// reactor and back).
func BenchmarkReplicationSyncLatency(b *testing.B) {
	for _, repl := range []bool{false, true} {
		name := "local-only"
		if repl {
			name = "sync-replicated"
		}
		b.Run(name, func(b *testing.B) {
			p := newPair(b, 64<<20, 1<<20, false)
			p.direct()
			if repl {
				p.start(b, "sync", 0)
				p.waitInSync(b)
			}
			o := p.a.open(b, "vol0")
			buf := make([]byte, 4096)
			var lat []time.Duration
			for b.Loop() {
				for i := range 2000 {
					t0 := time.Now()
					o.write(b, uint64(i%16384)*4096, buf)
					lat = append(lat, time.Since(t0))
				}
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkReplicationResync: a full sync of a volume filled with data, in s/GiB.
func BenchmarkReplicationResync(b *testing.B) {
	const vol = 256 << 20
	for b.Loop() {
		p := newPair(b, vol, 1<<20, false)
		p.direct()
		o := p.a.open(b, "vol0")
		var off uint64
		o.pipeline(b, 8, vol/benchWrite, benchWrite, &off, vol)
		t0 := time.Now()
		p.start(b, "async", 0)
		p.waitInSync(b)
		el := time.Since(t0)
		b.ReportMetric(el.Seconds()*float64(1<<30)/vol, "s/GiB")
		b.ReportMetric(vol/el.Seconds()/(1<<20), "MiB/s")
	}
}
