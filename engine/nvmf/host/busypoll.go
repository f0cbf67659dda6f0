package host

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/internal/sys"
)

// spinCheckEvery is how many EAGAINs a spinning call takes between deadline checks:
// a clock read per syscall would cost as much as the syscall.
const spinCheckEvery = 64

// spinConn is an I/O queue's TCP connection driven the way SPDK's initiator drives its
// sockets: raw non-blocking read/readv/writev on the calling thread, spinning on EAGAIN,
// so that waiting for a completion never parks the goroutine in Go's netpoller and
// never hands the thread to the scheduler. It replaces both the net.Conn and the
// bufio.Reader under a pduConn.
//
// Waiting for input polls a private epoll instance with a zero timeout rather than
// retrying read: an empty read takes the socket's lock, which the sender delivering
// into this socket then waits for, while epoll looks at its ready list only (SPDK's
// sock layer waits the same way).
//
// The receive side is a buffer that is refilled only once empty. A read larger than
// rxDirect that finds the buffer empty goes straight into the caller's memory with one
// readv whose second iovec is the buffer, so that C2H data lands in place and the PDUs
// behind it still arrive in the same syscall.
//
// Preconditions: reads come from one goroutine at a time and so do writes (the queue's
// rule); deadlines and Close may come from any goroutine.
type spinConn struct {
	nc     net.Conn // kept for Close and the addresses
	fd     int
	ep     int // a private epoll instance watching fd for input
	evs    [1]unix.EpollEvent
	rd, wd atomic.Int64 // read and write deadlines, Unix ns; 0: none
	closed atomic.Bool

	rx   []byte
	r, w int
	riov [2]unix.Iovec
	wiov []unix.Iovec
}

// sockBufSize is SPDK's MIN_SO_RCVBUF_SIZE and MIN_SO_SNDBUF_SIZE.
const sockBufSize = 2 << 20

// rxDirect is the smallest read that bypasses the receive buffer when it is empty.
const rxDirect = 1024

func newSpinConn(nc net.Conn) (*spinConn, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("busy polling needs a socket, not %T: %w", nc, ErrUnsupported)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("busy polling: %w", err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return nil, fmt.Errorf("busy polling: %w", err)
	}
	// Go's sockets are non-blocking already; the raw calls rely on it.
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("busy polling: %w", err)
	}
	// Socket buffers as SPDK's sock layer sizes them: large enough that a full queue
	// of reads never waits for the window.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sockBufSize)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBufSize)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("busy polling: epoll: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("busy polling: epoll: %w", err)
	}
	return &spinConn{nc: nc, fd: fd, ep: ep, rx: make([]byte, readBufSize),
		wiov: make([]unix.Iovec, sys.IOVMax)}, nil
}

// readable reports, without blocking, whether the socket has input (or an error or
// end of file for read to report).
func (s *spinConn) readable() bool {
	n, e := sys.EpollPoll(s.ep, s.evs[:])
	return e == 0 && n > 0
}

// awaitInput spins on epoll until the socket is readable or the deadline passes.
func (s *spinConn) awaitInput() error {
	for i := 1; !s.readable(); i++ {
		if i%spinCheckEvery == 0 {
			if err := s.expired(&s.rd); err != nil {
				return err
			}
		}
	}
	return nil
}

// Buffered and Peek serve pduConn.buffered: they never read the socket.
func (s *spinConn) Buffered() int { return s.w - s.r }

func (s *spinConn) Peek(n int) ([]byte, error) {
	if s.w-s.r < n {
		return nil, io.ErrShortBuffer
	}
	return s.rx[s.r : s.r+n], nil
}

// Read returns buffered bytes, or waits (spinning) for new ones.
func (s *spinConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.r < s.w {
		n := copy(p, s.rx[s.r:s.w])
		s.r += n
		return n, nil
	}
	s.r, s.w = 0, 0
	if len(p) >= rxDirect {
		return s.readDirect(p)
	}
	if err := s.fill(true); err != nil {
		return 0, err
	}
	n := copy(p, s.rx[:s.w])
	s.r = n
	return n, nil
}

// readDirect reads into p first and the receive buffer after it.
func (s *spinConn) readDirect(p []byte) (int, error) {
	s.riov[0].Base, s.riov[1].Base = &p[0], &s.rx[0]
	s.riov[0].SetLen(len(p))
	s.riov[1].SetLen(len(s.rx))
	n, err := s.spin(&s.rd, func() (int, unix.Errno) { return sys.Readv(s.fd, s.riov[:]) })
	clear(s.riov[:])
	if err != nil {
		return 0, err
	}
	if n > len(p) {
		s.w = n - len(p)
		return len(p), nil
	}
	return n, nil
}

// fill reads into the empty receive buffer; without wait it tries once and reports
// io.ErrNoProgress when nothing has arrived.
func (s *spinConn) fill(wait bool) error {
	if !wait {
		n, e := sys.Read(s.fd, s.rx)
		switch {
		case e == unix.EAGAIN || e == unix.EINTR:
			return io.ErrNoProgress
		case e != 0:
			return s.errno(e)
		case n == 0:
			return io.EOF
		}
		s.r, s.w = 0, n
		return nil
	}
	n, err := s.spin(&s.rd, func() (int, unix.Errno) { return sys.Read(s.fd, s.rx) })
	if err != nil {
		return err
	}
	s.r, s.w = 0, n
	return nil
}

// spin repeats call until it moves bytes, fails, or the deadline passes. Reads wait
// for input on epoll between attempts; writes (rarely refused: only when the socket's
// send buffer is full) retry at once.
func (s *spinConn) spin(deadline *atomic.Int64, call func() (int, unix.Errno)) (int, error) {
	for i := 1; ; i++ {
		n, e := call()
		switch {
		case e == 0 && n > 0:
			return n, nil
		case e == 0:
			return 0, io.EOF
		case e != unix.EAGAIN && e != unix.EINTR:
			return 0, s.errno(e)
		}
		if deadline == &s.rd {
			if err := s.awaitInput(); err != nil {
				return 0, err
			}
			continue
		}
		if i%spinCheckEvery == 0 {
			if err := s.expired(deadline); err != nil {
				return 0, err
			}
		}
	}
}

func (s *spinConn) expired(deadline *atomic.Int64) error {
	if s.closed.Load() {
		return net.ErrClosed
	}
	if d := deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
		return fmt.Errorf("busy poll: %w", os.ErrDeadlineExceeded)
	}
	return nil
}

func (s *spinConn) errno(e unix.Errno) error {
	if s.closed.Load() {
		return net.ErrClosed
	}
	return &net.OpError{Op: "read", Net: "tcp", Err: e}
}

// writeBuffers writes every buffer with raw writev calls, spinning while the socket is
// full and resuming after partial writes.
func (s *spinConn) writeBuffers(bufs [][]byte) error {
	for len(bufs) > 0 {
		k := 0
		for _, b := range bufs {
			if k == len(s.wiov) {
				break
			}
			if len(b) > 0 {
				s.wiov[k].Base = &b[0]
				s.wiov[k].SetLen(len(b))
				k++
			}
		}
		if k == 0 {
			return nil
		}
		n, err := s.spin(&s.wd, func() (int, unix.Errno) { return sys.Writev(s.fd, s.wiov[:k]) })
		clear(s.wiov[:k])
		if err != nil {
			return err
		}
		bufs = consume(bufs, n)
	}
	return nil
}

// consume drops n written bytes from the front of bufs, re-slicing in place.
func consume(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 && n > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// Write is net.Conn's, for the rare writes that do not go through writev (TermReq).
func (s *spinConn) Write(b []byte) (int, error) {
	var one [1][]byte
	one[0] = b
	if err := s.writeBuffers(one[:]); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (s *spinConn) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	unix.Close(s.ep)
	return s.nc.Close()
}

func (s *spinConn) LocalAddr() net.Addr  { return s.nc.LocalAddr() }
func (s *spinConn) RemoteAddr() net.Addr { return s.nc.RemoteAddr() }

func (s *spinConn) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *spinConn) SetReadDeadline(t time.Time) error  { s.rd.Store(unixNano(t)); return nil }
func (s *spinConn) SetWriteDeadline(t time.Time) error { s.wd.Store(unixNano(t)); return nil }

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ErrNotBusyPolling: Poll was called on a queue that does not busy-poll.
var ErrNotBusyPolling = errors.New("nvme/tcp host: queue is not busy-polling")

// BusyPoll switches the queue to busy polling, the way SPDK's initiator runs: from then
// on every call that waits on the queue (Reap, the synchronous helpers, Poll) reads and
// writes its socket with raw non-blocking syscalls on the calling thread and spins on
// EAGAIN, instead of parking in Go's netpoller. It trades a whole core for the
// scheduler hand-offs, wakeups and copies of the default path: it is the benchmark's
// load path, where the initiator must not be the bottleneck. Timeouts and Close keep
// working (they are checked between spins). Switching twice is a no-op.
//
// Preconditions: nothing is in flight, and no other goroutine uses the queue during the
// call (Close included). The goroutine that drives the queue afterwards should be
// locked to an OS thread of its own, ideally pinned to a core the target does not use:
// a spinning call never yields that core.
func (q *IOQueue) BusyPoll() error {
	q.syncMu.Lock()
	defer q.syncMu.Unlock()
	if q.q.err != nil {
		return q.q.err
	}
	c := q.q.c
	if c.spin != nil {
		return nil
	}
	if q.q.inflight > 0 || len(q.q.iov) > 0 || c.br.Buffered() > 0 {
		return ErrBusy
	}
	sc, err := newSpinConn(c.nc)
	if err != nil {
		return err
	}
	c.nc, c.br, c.spin = sc, sc, sc
	q.armed = time.Time{}
	return nil
}

// Poll is Reap without the wait, so that one thread can drive several queues: it sends
// what was submitted, reads the socket once without blocking, and returns every
// completion that arrived (up to len(dst)), possibly none. A PDU caught half-received
// is finished by spinning, since its remainder is already on the way. Poll applies no
// timeout of its own: a caller that polls forever decides when a silent queue is dead.
//
// Preconditions: the queue busy-polls (BusyPoll); one goroutine drives it.
func (q *IOQueue) Poll(dst []Completion) (int, error) {
	if q.q.err != nil {
		return 0, q.q.err
	}
	sc := q.q.c.spin
	if sc == nil {
		return 0, ErrNotBusyPolling
	}
	if err := q.q.flush(); err != nil {
		return 0, err
	}
	if len(dst) == 0 || q.q.inflight == 0 {
		return 0, nil
	}
	if sc.Buffered() == 0 {
		if !sc.readable() {
			return 0, nil
		}
		if err := sc.fill(false); err == io.ErrNoProgress {
			return 0, nil
		} else if err != nil {
			return 0, q.q.fail(q.q.c.ioErr("read pdu", err))
		}
	}
	return q.drainBuffered(dst)
}

// drainBuffered completes commands from the PDUs in the receive buffer.
func (q *IOQueue) drainBuffered(dst []Completion) (int, error) {
	sc := q.q.c.spin
	n := 0
	var now time.Time
	for n < len(dst) && q.q.inflight > 0 && sc.Buffered() > 0 {
		idx, err := q.q.step()
		if err != nil {
			return n, err
		}
		if idx < 0 {
			continue
		}
		if n == 0 {
			now = time.Now()
		}
		s := &q.q.slots[idx]
		dst[n] = Completion{Tag: uint16(idx), Status: s.cqe.Status(), DW0: s.cqe.DW0(), Latency: now.Sub(s.start)}
		q.q.release(idx)
		n++
	}
	return n, nil
}
