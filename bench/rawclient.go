package bench

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// InitiatorRaw names the limit's client in reports.
const InitiatorRaw = "raw-syscall client"

// rawClientConn is one connection of the limit's client: requests go out in order and
// the answers come back in order, so a FIFO of start times is all the state it needs.
type rawClientConn struct {
	nc      net.Conn
	fd      int
	rx      []byte
	need    int // bytes left of the answer being received
	start   []int64
	isRead  []bool
	head, n int // FIFO of outstanding requests
	tx      [][]byte
	txBack  [][]byte
	iov     []unix.Iovec
}

// RawLoad drives the raw-socket limit server from one pinned thread over conns
// connections, with raw non-blocking syscalls: the fastest client this machine has.
type RawLoad struct {
	conns   []*rawClientConn
	ep      int // epoll over the connections: input is awaited there, not by reading
	evs     []unix.EpollEvent
	readReq []byte
	wrReq   []byte
	payload []byte
	w       Workload
	qd      int
	rng     rng
	epoch   time.Time

	hist      *hdrhistogram.Histogram
	measuring bool
	ios       uint64
	idleNs    int64
}

// DialRaw opens conns connections to the limit server.
func DialRaw(ctx context.Context, addr string, conns int) (*RawLoad, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &RawLoad{rng: rng(0x2545F4914F6CDD1D), epoch: time.Now(), ep: ep, evs: make([]unix.EpollEvent, conns)}
	var d net.Dialer
	for range conns {
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			l.Close()
			return nil, err
		}
		c := &rawClientConn{nc: nc, rx: make([]byte, 1<<20), iov: make([]unix.Iovec, 1024)}
		if err := rawFD(nc, &c.fd); err != nil {
			nc.Close()
			l.Close()
			return nil, err
		}
		setSockOpts(c.fd)
		if err := epollAdd(ep, c.fd, len(l.conns)); err != nil {
			nc.Close()
			l.Close()
			return nil, err
		}
		l.conns = append(l.conns, c)
	}
	return l, nil
}

func rawFD(nc net.Conn, fd *int) error {
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(f uintptr) { *fd = int(f) })
}

// Close closes the connections.
func (l *RawLoad) Close() {
	for _, c := range l.conns {
		c.nc.Close()
	}
	unix.Close(l.ep)
}

func (l *RawLoad) prepare(w Workload, qd int) {
	l.w, l.qd = w, qd
	l.readReq, l.wrReq = make([]byte, RawReqSize), make([]byte, RawReqSize)
	putRawReq(l.readReq, rawOpRead, w.BlockSize)
	putRawReq(l.wrReq, rawOpWrite, w.BlockSize)
	l.payload = make([]byte, w.BlockSize)
	for _, c := range l.conns {
		c.start, c.isRead = make([]int64, qd), make([]bool, qd)
		c.head, c.n, c.need = 0, 0, 0
		c.txBack = make([][]byte, 0, 2*qd)
		c.tx = c.txBack[:0]
	}
	l.hist = newHist()
	l.measuring, l.ios, l.idleNs = false, 0, 0
}

// submit queues one request on c; it goes out with the next flush.
func (l *RawLoad) submit(c *rawClientConn, now int64) {
	read := l.w.ReadPct == 100 || (l.w.ReadPct > 0 && int(l.rng.next()%100) < l.w.ReadPct)
	i := (c.head + c.n) % l.qd
	c.start[i], c.isRead[i] = now, read
	c.n++
	if read {
		c.tx = append(c.tx, l.readReq)
		return
	}
	c.tx = append(c.tx, l.wrReq, l.payload)
}

// Run drives one point, like NVMeLoad.Run.
func (l *RawLoad) Run(ctx context.Context, w Workload, qd int, tm Timing, pid int) (Sample, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l.prepare(w, qd)
	now := l.now()
	for _, c := range l.conns {
		for range qd {
			l.submit(c, now)
		}
	}
	s, err := l.loop(ctx, tm, pid)
	s.Latency = summarize(l.hist)
	s.finish(w.BlockSize)
	return s, err
}

func (l *RawLoad) now() int64 { return int64(time.Since(l.epoch)) }

func (l *RawLoad) loop(ctx context.Context, tm Timing, pid int) (Sample, error) {
	var s Sample
	start := time.Now()
	measureAt, end := start.Add(tm.Warmup), start.Add(tm.Warmup+tm.Duration)
	var t0 time.Time
	var cpu0 time.Duration
	prev := start
	for i := 0; ; i++ {
		total, err := l.round()
		if err != nil {
			return s, err
		}
		now := time.Now()
		if l.measuring && total == 0 {
			l.idleNs += int64(now.Sub(prev))
		}
		prev = now
		if !l.measuring && !now.Before(measureAt) {
			l.measuring, t0, cpu0 = true, now, processCPU(pid)
		}
		if !now.Before(end) {
			s.ElapsedNs, s.TargetCPUNs = int64(now.Sub(t0)), int64(processCPU(pid)-cpu0)
			break
		}
		if i%4096 == 0 && ctx.Err() != nil {
			return s, ctx.Err()
		}
	}
	s.IOs = l.ios
	s.InitiatorIdle = float64(l.idleNs) / float64(max(s.ElapsedNs, 1))
	return s, nil
}

// round sends what every connection has queued, then reads the connections epoll
// reports readable.
func (l *RawLoad) round() (int, error) {
	for _, c := range l.conns {
		if err := l.flush(c); err != nil {
			return 0, err
		}
	}
	n, e := rawEpollPoll(l.ep, l.evs)
	if e != 0 {
		return 0, nil
	}
	total := 0
	for _, ev := range l.evs[:n] {
		k, err := l.recv(l.conns[ev.Fd])
		if err != nil {
			return total, err
		}
		total += k
	}
	return total, nil
}

// recv reads what arrived, completes whole answers and queues a new request for each.
func (l *RawLoad) recv(c *rawClientConn) (int, error) {
	n, e := rawRead(c.fd, c.rx)
	switch {
	case e == unix.EAGAIN:
		return 0, nil
	case e != 0:
		return 0, fmt.Errorf("raw limit read: %w", e)
	case n == 0:
		return 0, fmt.Errorf("raw limit server closed the connection")
	}
	done := 0
	var now int64
	for n > 0 {
		if c.need == 0 {
			c.need = RawRespSize
			if c.isRead[c.head] {
				c.need += l.w.BlockSize
			}
		}
		k := min(n, c.need)
		c.need -= k
		n -= k
		if c.need > 0 {
			break
		}
		if done == 0 {
			now = l.now()
		}
		l.complete(c, now)
		done++
	}
	return done, nil
}

func (l *RawLoad) complete(c *rawClientConn, now int64) {
	if l.measuring {
		l.ios++
		recordNs(l.hist, now-c.start[c.head])
	}
	c.head = (c.head + 1) % l.qd
	c.n--
	l.submit(c, now)
}

// flush writes the queued requests, spinning while the socket is full.
func (l *RawLoad) flush(c *rawClientConn) error {
	for len(c.tx) > 0 {
		k := 0
		for _, b := range c.tx {
			if k == len(c.iov) {
				break
			}
			k = appendIov(c.iov, k, b)
		}
		w, e := rawWritev(c.fd, c.iov[:k])
		if e == unix.EAGAIN {
			continue
		}
		if e != 0 {
			return fmt.Errorf("raw limit write: %w", e)
		}
		c.tx = consumeBufs(c.tx, w)
	}
	c.tx = c.txBack[:0]
	return nil
}

// consumeBufs drops n written bytes from the front of bufs.
func consumeBufs(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 && n > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}
