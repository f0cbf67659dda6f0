package bench

import (
	"fmt"
	"net"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// RawReqSize and RawRespSize are the limit server's protocol: a 72-byte request (the
// size of an NVMe/TCP command capsule) answered by 4 KiB of data.
const (
	RawReqSize  = 72
	RawRespSize = 4096
)

// RawServe runs the raw-socket limit server on the calling goroutine, locked to an OS
// thread pinned to cpu, until the client disconnects. It serves one connection: the
// load has one queue. It reads whatever requests have arrived with one read and
// answers each with one 4 KiB iovec in a single writev, spinning on EAGAIN like a busy
// reactor.
func RawServe(addr string, cpu int, ready func(port int)) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to cpu %d: %w", cpu, err)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portStr)
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(lfd)
	_ = unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	sa := &unix.SockaddrInet4{Port: port}
	copy(sa.Addr[:], net.ParseIP(host).To4())
	if err := unix.Bind(lfd, sa); err != nil {
		return err
	}
	if err := unix.Listen(lfd, 16); err != nil {
		return err
	}
	bound, _ := unix.Getsockname(lfd)
	ready(bound.(*unix.SockaddrInet4).Port)
	fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return rawLoop(fd)
}

func rawLoop(fd int) error {
	in := make([]byte, 64<<10)
	resp := make([]byte, RawRespSize)
	iov := make([]unix.Iovec, 1024)
	for i := range iov {
		iov[i].Base = &resp[0]
		iov[i].SetLen(RawRespSize)
	}
	carry := 0   // bytes of a partial request kept from the last read
	pending := 0 // responses owed
	sentOff := 0 // bytes of the first owed response already written
	for {
		n, errno := rawRead(fd, in[carry:])
		switch {
		case errno == unix.EAGAIN:
		case errno != 0:
			return errno
		case n == 0:
			return nil
		default:
			total := carry + n
			pending += total / RawReqSize
			carry = total % RawReqSize
		}
		for pending > 0 {
			k := min(pending, len(iov))
			iov[0].Base = &resp[sentOff]
			iov[0].SetLen(RawRespSize - sentOff)
			w, errno := rawWritev(fd, iov[:k])
			iov[0].Base = &resp[0]
			iov[0].SetLen(RawRespSize)
			if errno == unix.EAGAIN {
				break
			}
			if errno != 0 {
				return errno
			}
			attempted := k*RawRespSize - sentOff
			done := sentOff + w
			pending -= done / RawRespSize
			sentOff = done % RawRespSize
			if w < attempted {
				break // the socket is full: read again, then retry
			}
		}
	}
}
