package tcpconn

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"sluice/engine/reactor"
)

// Adopt is how a protocol takes an accepted connection: it runs on r, the reactor the
// connection is handed to, and owns fd from then on (it closes it on failure). slot is
// the connection's place in the listener's limits; the protocol binds its eviction to
// it and releases it when the connection closes.
type Adopt func(r *reactor.Reactor, fd int, peer netip.AddrPort, slot *Slot)

// ListenerConfig describes a listener.
type ListenerConfig struct {
	Addr     netip.AddrPort
	Reactors []*reactor.Reactor // accepted connections go to these round robin; [0] accepts
	Adopt    Adopt
	Limits   *LimitSet
	Logger   *slog.Logger
	// Stopping, when set and true, refuses new connections (a target shutting down).
	Stopping func() bool
}

// Listener is a listening socket owned by its first reactor.
type Listener struct {
	cfg  ListenerConfig
	fd   int
	tok  int32
	next uint32 // round-robin cursor; reactor 0 only

	mu      sync.Mutex
	live    int                // +checklocks:mu; admitted and not released
	perHost map[netip.Addr]int // +checklocks:mu
	setup   slotList           // +checklocks:mu; admitted, not yet set up, oldest first
	seq     uint64             // +checklocks:mu
}

// Listen opens a listening socket on cfg.Addr and registers it on cfg.Reactors[0].
// It waits on that reactor (Do), so the caller must hold no lock a reactor takes.
func Listen(cfg ListenerConfig) (*Listener, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	fd, err := listenTCP(cfg.Addr)
	if err != nil {
		return nil, err
	}
	l := &Listener{cfg: cfg, fd: fd, tok: -1, perHost: map[netip.Addr]int{}}
	r0 := cfg.Reactors[0]
	var aerr error
	if err := r0.Do(func() { l.tok, aerr = r0.AddFD(fd, unix.EPOLLIN, l) }); err != nil || aerr != nil {
		unix.Close(fd)
		if aerr != nil {
			return nil, aerr
		}
		return nil, err
	}
	return l, nil
}

// Addr is the listening address.
func (l *Listener) Addr() netip.AddrPort { return l.cfg.Addr }

// Close stops listening. Connections already accepted stay. Like Listen, it waits on
// reactor 0.
func (l *Listener) Close() {
	r0 := l.cfg.Reactors[0]
	_ = r0.Do(func() { r0.RemoveFD(l.fd, l.tok) })
	unix.Close(l.fd)
}

// Live is the number of admitted connections not yet released.
func (l *Listener) Live() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.live
}

func listenTCP(a netip.AddrPort) (int, error) {
	family := unix.AF_INET6
	if a.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket for %s: %w", a, err)
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	} else {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		sa = &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on %s: %w", a, err)
	}
	if err := unix.Listen(fd, 1024); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on %s: %w", a, err)
	}
	return fd, nil
}

// OnEvents accepts every pending connection and hands each to a reactor.
//
// Preconditions: on reactor 0.
func (l *Listener) OnEvents(uint32) {
	for {
		nfd, sa, err := unix.Accept4(l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			if err != unix.EAGAIN && err != unix.EINTR && err != unix.ECONNABORTED {
				l.cfg.Logger.Warn("tcpconn: accept failed", "listener", l.cfg.Addr.String(), "err", err)
			}
			return
		}
		peer := addrPort(sa)
		if l.cfg.Stopping != nil && l.cfg.Stopping() {
			unix.Close(nfd)
			continue
		}
		slot := l.admit(peer.Addr())
		if slot == nil {
			unix.Close(nfd)
			continue
		}
		_ = unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		rs := l.cfg.Reactors
		r := rs[int(l.next)%len(rs)]
		l.next++
		a := &accepted{fd: nfd, peer: peer, slot: slot, adopt: l.cfg.Adopt, r: r}
		if err := r.Send(adoptMsg, a); err != nil {
			slot.Release()
			unix.Close(nfd)
		}
	}
}

type accepted struct {
	fd    int
	peer  netip.AddrPort
	slot  *Slot
	adopt Adopt
	r     *reactor.Reactor
}

func adoptMsg(arg any) {
	a := arg.(*accepted)
	a.adopt(a.r, a.fd, a.peer, a.slot)
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch s := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), uint16(s.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(s.Addr).Unmap(), uint16(s.Port))
	}
	return netip.AddrPort{}
}

// ParseAddrPort reads "ip" and "port" as a listener address.
func ParseAddrPort(ip, port string) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", ip, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("port %q is not a TCP port", port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// HostPort formats an address as host:port (IPv6 in brackets).
func HostPort(a netip.AddrPort) string {
	return net.JoinHostPort(a.Addr().String(), strconv.Itoa(int(a.Port())))
}

// LocalAddr is the local address of a connected socket: where an accepted connection
// arrived, which a target reports back (an iSCSI SendTargets answer names the portal
// the initiator reached).
func LocalAddr(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return addrPort(sa), nil
}

// BoundAddr is the address the socket is bound to (the kernel's port when Addr asked
// for port 0).
func (l *Listener) BoundAddr() (netip.AddrPort, error) {
	sa, err := unix.Getsockname(l.fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return addrPort(sa), nil
}
