package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// The raw-socket limit's protocol mirrors NVMe/TCP's byte counts with no protocol
// work: a 72-byte request (a command capsule's size) whose byte 0 is the operation and
// bytes 4..7 the length, followed by the data for a write; the answer is a 24-byte
// header (a C2HData or CapsuleResp PDU's), followed by the data for a read.
const (
	RawReqSize  = 72
	RawRespSize = 24
	rawOpRead   = 1
	rawOpWrite  = 2
)

func putRawReq(b []byte, op byte, n int) {
	b[0] = op
	binary.LittleEndian.PutUint32(b[4:8], uint32(n))
}

// rawOweMax bounds the responses one connection may owe: more than any queue depth.
const rawOweMax = 8192

// rawServerConn is one accepted connection of the limit server.
type rawServerConn struct {
	fd      int
	rx      []byte
	have    int
	skip    int  // write data still to receive
	inWrite bool // the request being received is a write
	owe     [rawOweMax]int32
	oh, on  int // ring head and count of owed responses (data length; 0 for writes)
	sentOff int // bytes of the first owed response already sent
}

// RawServe runs the limit server on the calling goroutine, locked to an OS thread
// pinned to cpu, until the process is killed. It accepts any number of connections
// and serves them all from that thread, spinning over non-blocking sockets like a
// busy reactor: it is the most a single core can answer over loopback TCP.
func RawServe(addr string, cpu int, ready func(port int)) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to cpu %d: %w", cpu, err)
	}
	lfd, port, err := rawListen(addr)
	if err != nil {
		return err
	}
	defer unix.Close(lfd)
	ready(port)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := epollAdd(ep, lfd, -1); err != nil {
		return err
	}
	srv := &rawServer{lfd: lfd, ep: ep, data: make([]byte, 1<<20), hdr: make([]byte, RawRespSize),
		iov: make([]unix.Iovec, 1024), evs: make([]unix.EpollEvent, 64)}
	for {
		srv.poll()
	}
}

// epollAdd watches fd for input; data is what the event carries back (-1: the listener).
func epollAdd(ep, fd, data int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(data)}
	return unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev)
}

// rawServer is the limit server's state: one pinned thread, every connection.
type rawServer struct {
	lfd, ep int
	conns   []*rawServerConn // by slot; nil once closed
	data    []byte
	hdr     []byte
	iov     []unix.Iovec
	evs     []unix.EpollEvent
}

// poll serves what epoll reports readable, then sends whatever is owed.
func (s *rawServer) poll() {
	n, e := rawEpollPoll(s.ep, s.evs)
	if e != 0 {
		n = 0
	}
	for _, ev := range s.evs[:n] {
		if ev.Fd < 0 {
			s.accept()
			continue
		}
		if c := s.conns[ev.Fd]; c != nil && c.recv() != nil {
			s.drop(int(ev.Fd))
		}
	}
	for i, c := range s.conns {
		if c != nil && c.send(s.hdr, s.data, s.iov) != nil {
			s.drop(i)
		}
	}
}

func (s *rawServer) accept() {
	fd, e := rawAccept(s.lfd)
	if e != 0 {
		return
	}
	setSockOpts(fd)
	if epollAdd(s.ep, fd, len(s.conns)) != nil {
		unix.Close(fd)
		return
	}
	s.conns = append(s.conns, &rawServerConn{fd: fd, rx: make([]byte, 1<<20)})
}

func (s *rawServer) drop(i int) {
	unix.Close(s.conns[i].fd) // closing removes it from the epoll set
	s.conns[i] = nil
}

// setSockOpts gives both ends of the limit what the initiators' sockets get: no Nagle
// and SPDK's 2 MiB socket buffers.
func setSockOpts(fd int) {
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 2<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 2<<20)
}

func rawListen(addr string) (int, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return -1, 0, err
	}
	port, _ := strconv.Atoi(p)
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, 0, err
	}
	_ = unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	sa := &unix.SockaddrInet4{Port: port}
	copy(sa.Addr[:], net.ParseIP(h).To4())
	if err := unix.Bind(lfd, sa); err != nil {
		unix.Close(lfd)
		return -1, 0, err
	}
	if err := unix.Listen(lfd, 64); err != nil {
		unix.Close(lfd)
		return -1, 0, err
	}
	bound, _ := unix.Getsockname(lfd)
	return lfd, bound.(*unix.SockaddrInet4).Port, nil
}

// recv reads what has arrived.
func (c *rawServerConn) recv() error {
	n, e := rawRead(c.fd, c.rx[c.have:])
	switch {
	case e == unix.EAGAIN:
	case e != 0:
		return e
	case n == 0:
		return fmt.Errorf("closed")
	default:
		c.parse(c.have + n)
	}
	return nil
}

// parse turns received bytes into owed responses; a write is owed once its data is in.
func (c *rawServerConn) parse(end int) {
	p := 0
	for p < end {
		if c.skip > 0 {
			k := min(c.skip, end-p)
			c.skip -= k
			p += k
			continue
		}
		if c.inWrite {
			c.inWrite = false
			c.push(0)
			continue
		}
		if end-p < RawReqSize {
			break
		}
		op, ln := c.rx[p], int(binary.LittleEndian.Uint32(c.rx[p+4:p+8]))
		p += RawReqSize
		if op == rawOpWrite {
			c.skip, c.inWrite = ln, true
		} else {
			c.push(int32(ln))
		}
	}
	if c.inWrite && c.skip == 0 {
		c.inWrite = false
		c.push(0)
	}
	c.have = copy(c.rx, c.rx[p:end])
}

func (c *rawServerConn) push(n int32) {
	if c.on == rawOweMax {
		panic("raw limit: more responses owed than any queue depth")
	}
	c.owe[(c.oh+c.on)%rawOweMax] = n
	c.on++
}

// send writes owed responses with one writev, resuming after a partial one.
func (c *rawServerConn) send(hdr, data []byte, iov []unix.Iovec) error {
	if c.on == 0 {
		return nil
	}
	k := 0
	for i := 0; i < c.on && k+2 <= len(iov); i++ {
		ln := int(c.owe[(c.oh+i)%rawOweMax])
		k = appendIov(iov, k, hdr)
		if ln > 0 {
			k = appendIov(iov, k, data[:ln])
		}
	}
	if off := c.sentOff; off > 0 && off < RawRespSize {
		iov[0].Base = &hdr[off]
		iov[0].SetLen(RawRespSize - off)
	} else if off >= RawRespSize { // the header went out: resume in the data
		k = copy(iov, iov[1:k])
		d := off - RawRespSize
		iov[0].Base = &data[d]
		iov[0].SetLen(int(c.owe[c.oh]) - d)
	}
	w, e := rawWritev(c.fd, iov[:k])
	if e == unix.EAGAIN {
		return nil
	}
	if e != 0 {
		return e
	}
	c.advance(w)
	return nil
}

func appendIov(iov []unix.Iovec, k int, b []byte) int {
	iov[k].Base = &b[0]
	iov[k].SetLen(len(b))
	return k + 1
}

// advance retires w sent bytes from the owed responses.
func (c *rawServerConn) advance(w int) {
	w += c.sentOff
	for c.on > 0 {
		size := RawRespSize + int(c.owe[c.oh])
		if w < size {
			break
		}
		w -= size
		c.oh = (c.oh + 1) % rawOweMax
		c.on--
	}
	c.sentOff = w
}
