package replication

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Link names one communication link of a partnership: the tunnel itself, on the base
// port, and the channels forwarded through it, each at its offset from the base port
// (US10944819 claim 1 (b): for each pre-established offset, port = base + offset).
type Link uint8

// The links, in the order of Offsets.
const (
	LinkTunnel  Link = iota // the SSH connection: the only socket B listens on
	LinkControl             // hello and liveness
	LinkData                // one channel per replicated volume: writes, acks, resync
	LinkKeys                // the volume key exchange
	numLinks
)

func (l Link) String() string {
	switch l {
	case LinkTunnel:
		return "tunnel"
	case LinkControl:
		return "control"
	case LinkData:
		return "data"
	case LinkKeys:
		return "keys"
	}
	return fmt.Sprintf("Link(%d)", uint8(l))
}

// DefaultOffsets are the pre-established offsets of the control, data and keys links
// from the base port. The tunnel is always at offset 0. Both partners must use the
// same set: a forward to a port the other side does not serve is refused.
var DefaultOffsets = []uint16{1, 2, 3}

// ErrPorts marks a port configuration that cannot be set up: a derived port above
// 65535, two links on one port, or a port some other listener holds. It matches
// ErrInvalid so that an RPC client gets EINVAL.
var ErrPorts = &portsError{}

type portsError struct{}

func (*portsError) Error() string { return "replication: bad port configuration" }

// Is makes errors.Is(err, ErrInvalid) hold.
func (*portsError) Is(target error) bool { return target == ErrInvalid }

// Ports is a partnership's forwarding configuration: the port of each link.
type Ports [numLinks]uint16

// DerivePorts computes base + offset for each link. It fails with ErrPorts when a port
// overflows 16 bits, when an offset is 0 (the tunnel's own port) or when two links
// would share a port: each link is its own forward, and two forwards on one port
// could not be told apart by the partner or by a proxy translating them.
func DerivePorts(base uint16, offsets []uint16) (Ports, error) {
	var p Ports
	if base == 0 {
		return p, fmt.Errorf("base port 0: %w", ErrPorts)
	}
	if len(offsets) == 0 {
		offsets = DefaultOffsets
	}
	if len(offsets) != int(numLinks)-1 {
		return p, fmt.Errorf("%d offsets, want %d (control, data, keys): %w",
			len(offsets), numLinks-1, ErrPorts)
	}
	p[LinkTunnel] = base
	for i, off := range offsets {
		l := Link(i + 1)
		port := uint32(base) + uint32(off)
		switch {
		case off == 0:
			return Ports{}, fmt.Errorf("%v offset 0 is the tunnel's base port: %w", l, ErrPorts)
		case port > 65535:
			return Ports{}, fmt.Errorf("%v port %d+%d=%d above 65535: %w", l, base, off, port, ErrPorts)
		}
		p[l] = uint16(port)
	}
	for i := range p {
		for j := i + 1; j < len(p); j++ {
			if p[i] == p[j] {
				return Ports{}, fmt.Errorf("%v and %v both on port %d: %w",
					Link(i), Link(j), p[i], ErrPorts)
			}
		}
	}
	return p, nil
}

// Offsets returns the offsets p was derived with, for display and for the agent.
func (p Ports) Offsets() []uint16 {
	out := make([]uint16, 0, numLinks-1)
	for l := LinkControl; l < numLinks; l++ {
		out = append(out, p[l]-p[LinkTunnel])
	}
	return out
}

// linkOf finds the link served on port, or false.
func (p Ports) linkOf(port uint16) (Link, bool) {
	for l := LinkControl; l < numLinks; l++ {
		if p[l] == port {
			return l, true
		}
	}
	return 0, false
}

// overlaps reports whether p and q share a port.
func (p Ports) overlaps(q Ports) bool {
	for _, a := range p {
		for _, b := range q {
			if a == b {
				return true
			}
		}
	}
	return false
}

// checkUnbound fails with ErrPorts when another listener already holds one of the
// derived ports on host. The listening partner reserves the whole range: its forwards
// are addressed to these ports, and a port that another service listens on would make
// a forward (or a proxy's translation onto it) ambiguous to whoever reads the
// configuration. The probe binds and closes at once; the tunnel's own port is bound for
// real by the caller.
func (p Ports) checkUnbound(host string) error {
	for l := LinkControl; l < numLinks; l++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(int(p[l]))))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%v port %d is already bound on %s: %w", l, p[l], host, ErrPorts)
			}
			return fmt.Errorf("%v port %d on %s: %w", l, p[l], host, err)
		}
		ln.Close()
	}
	return nil
}
