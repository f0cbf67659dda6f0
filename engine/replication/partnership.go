package replication

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"sluice/engine/rpc"
)

// Role says which end of a partnership a node is.
type Role string

// Roles.
const (
	// RoleDial is the replicating node (A): it dials out, directly or through a proxy,
	// and never listens.
	RoleDial Role = "dial"
	// RoleListen is the partner (B): it listens on the base port for A's tunnel alone.
	RoleListen Role = "listen"
)

// PartnershipParams are replication_partnership_create's parameters (US10944819 claim
// 1 (a): the remote address, a base port and an identifying key pair).
//
//   - Address: on the dialing side, the partner's host (or the proxy's); on the
//     listening side, the host to bind.
//   - BasePort: the partner's tunnel port; Offsets (default 1, 2, 3) place the control,
//     data and keys links from it. Both sides must agree.
//   - PeerKey: the other side's public key (authorized_keys line): the only key B lets
//     in, the only host key A accepts.
//   - ProxyPort and ProxyHostKey (dialing side): reach B through a proxy listening on
//     Address:ProxyPort, which translates that public port to B's base port.
//   - KeyFile (listening side): B's KEK (32 bytes or 64 hex digits, mode 0600), which
//     wraps the volume keys A sends, and which a promoted volume is rekeyed to.
//   - ReplicaDir (listening side): where the copies' files go (default: the data
//     directory's replicas/<name>).
//   - IdentityFile: an OpenSSH private key to use instead of the node's identity.
//   - NoWait (dialing side): return without the first connection (a config replay on a
//     node whose partner is down); the tunnel comes up when the partner does.
type PartnershipParams struct {
	Name         string   `json:"name" rpc:"required"`
	Role         Role     `json:"role" rpc:"required"`
	Address      string   `json:"address" rpc:"required"`
	BasePort     uint16   `json:"base_port" rpc:"required"`
	Offsets      []uint16 `json:"offsets,omitempty"`
	PeerKey      string   `json:"peer_key" rpc:"required"`
	ProxyPort    uint16   `json:"proxy_port,omitempty"`
	ProxyHostKey string   `json:"proxy_host_key,omitempty"`
	KeyFile      string   `json:"key_file,omitempty"`
	ReplicaDir   string   `json:"replica_dir,omitempty"`
	IdentityFile string   `json:"identity_file,omitempty"`
	NoWait       bool     `json:"no_wait,omitempty"`
}

// Validate checks what needs nothing but the parameters.
func (p *PartnershipParams) Validate() error {
	if p.Name == "" || len(p.Name) > 64 || !safeName(p.Name) {
		return fmt.Errorf("name %q: want 1-64 of [A-Za-z0-9._-]: %w", p.Name, ErrInvalid)
	}
	switch p.Role {
	case RoleDial:
		if p.KeyFile != "" || p.ReplicaDir != "" {
			return fmt.Errorf("key_file and replica_dir are the listening side's: %w", ErrInvalid)
		}
		if (p.ProxyPort == 0) != (p.ProxyHostKey == "") {
			return fmt.Errorf("give proxy_port and proxy_host_key together: %w", ErrInvalid)
		}
	case RoleListen:
		if p.ProxyPort != 0 || p.ProxyHostKey != "" {
			return fmt.Errorf("proxy_* are the dialing side's: %w", ErrInvalid)
		}
	default:
		return fmt.Errorf("role %q: want dial or listen: %w", p.Role, ErrInvalid)
	}
	if _, err := DerivePorts(p.BasePort, p.Offsets); err != nil {
		return err
	}
	return nil
}

// safeName: names become file names and SSH user names.
func safeName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return s != "." && s != ".."
}

// Partnership is one end of a replication partnership.
type Partnership struct {
	svc    *Service
	name   string
	params PartnershipParams
	ports  Ports
	id     *Identity
	peer   ssh.PublicKey
	log    *slog.Logger

	// The dialing side.
	dc      dialConfig
	cancel  context.CancelFunc
	stopped chan struct{}

	mu       sync.Mutex
	tc       *tunnelClient       // +checklocks:mu; the live tunnel, or nil
	changed  chan struct{}       // +checklocks:mu; closed at each change of tc
	lastErr  string              // +checklocks:mu
	connects uint64              // +checklocks:mu
	targets  map[string]*target  // +checklocks:mu; the listening side's copies
	keys     map[string]keyEntry // +checklocks:mu; the listening side's key store index

	// The listening side.
	srv        *tunnelServer
	kekPath    string
	replicaDir string
}

// CreatePartnership sets up one end of a partnership. The dialing side connects once
// before it returns, so that a wrong key pair, an unknown host key or a proxy that does
// not know this node fails the call and leaves nothing behind (no partnership, no
// forward); later disconnections are retried. The listening side binds the base port
// after checking that no derived port is taken.
func (s *Service) CreatePartnership(ctx context.Context, p PartnershipParams) (*Partnership, error) {
	pt, err := s.createPartnership(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("replication_partnership_create %q: %w", p.Name, err)
	}
	return pt, nil
}

func (s *Service) createPartnership(ctx context.Context, p PartnershipParams) (*Partnership, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	pt, err := s.newPartnership(p)
	if err != nil {
		return nil, err
	}
	if err := s.checkNew(pt); err != nil {
		return nil, err
	}
	if p.Role == RoleDial {
		err = pt.startDial(ctx)
	} else {
		err = pt.startListen()
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.parts[p.Name]; dup {
		pt.close()
		return nil, ErrExists
	}
	s.parts[p.Name] = pt
	return pt, nil
}

// checkNew refuses a second partnership of the same name, and a listening one whose
// ports overlap another's on this node: two tunnels cannot share a forward.
func (s *Service) checkNew(pt *Partnership) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.parts {
		if o.name == pt.name {
			return ErrExists
		}
		if pt.params.Role == RoleListen && o.params.Role == RoleListen && o.ports.overlaps(pt.ports) {
			return fmt.Errorf("ports %v overlap partnership %q's %v: %w", pt.ports, o.name, o.ports, ErrPorts)
		}
	}
	return nil
}

func (s *Service) newPartnership(p PartnershipParams) (*Partnership, error) {
	ports, err := DerivePorts(p.BasePort, p.Offsets)
	if err != nil {
		return nil, err
	}
	peer, err := ParsePublicKey(p.PeerKey)
	if err != nil {
		return nil, err
	}
	var id *Identity
	if p.IdentityFile != "" {
		id, err = LoadIdentity(p.IdentityFile)
	} else {
		id, err = s.Identity()
	}
	if err != nil {
		return nil, err
	}
	pt := &Partnership{svc: s, name: p.Name, params: p, ports: ports, id: id, peer: peer,
		log: s.log.With("partnership", p.Name), changed: make(chan struct{}),
		targets: map[string]*target{}, keys: map[string]keyEntry{}}
	if p.Role == RoleDial {
		pt.dc = dialConfig{name: p.Name, ports: ports, id: id, peer: peer,
			addr: net.JoinHostPort(p.Address, strconv.Itoa(int(p.BasePort)))}
		if p.ProxyPort != 0 {
			hk, err := ParsePublicKey(p.ProxyHostKey)
			if err != nil {
				return nil, err
			}
			pt.dc.addr = net.JoinHostPort(p.Address, strconv.Itoa(int(p.ProxyPort)))
			pt.dc.proxy = &proxyHop{hostKey: hk, publicPort: p.ProxyPort}
		}
	}
	return pt, nil
}

// Name is the partnership's name.
func (p *Partnership) Name() string { return p.name }

// ---- the dialing side

func (p *Partnership) startDial(ctx context.Context) error {
	var tc *tunnelClient
	if !p.params.NoWait {
		var err error
		if tc, err = p.connect(ctx); err != nil {
			return err
		}
	}
	if tc != nil {
		p.setTunnel(tc, nil) // connected when the call returns, not when maintain runs
	}
	mctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.stopped = cancel, make(chan struct{})
	go p.maintain(mctx, tc)
	return nil
}

// connect opens the tunnel and says hello on the control link.
func (p *Partnership) connect(ctx context.Context) (*tunnelClient, error) {
	tc, err := dialTunnel(ctx, p.dc)
	if err != nil {
		return nil, err
	}
	ctl, err := tc.open(LinkControl, "")
	if err != nil {
		tc.Close()
		return nil, err
	}
	if _, err := writeFrame(ctl, nil, &Frame{Type: FrameHello, Text: p.name,
		Flags: uint32(LinkControl), Seq: ProtocolVersion}); err != nil {
		tc.Close()
		return nil, err
	}
	f, err := readWithin(ctx, ctl, openTimeout)
	if err != nil || f.Type != FrameHello || f.Seq != ProtocolVersion {
		tc.Close()
		return nil, fmt.Errorf("control link hello: %v %v: %w", f.Type, err, ErrFrame)
	}
	// The control link stays open for the tunnel's life; its end is the tunnel's.
	go func() { _, _ = io.Copy(io.Discard, ctl) }()
	return tc, nil
}

// maintain keeps the tunnel up: when it dies it reconnects with a capped backoff.
func (p *Partnership) maintain(ctx context.Context, tc *tunnelClient) {
	defer close(p.stopped)
	for {
		if tc != nil {
			p.setTunnel(tc, nil)
			select {
			case <-tc.Done():
			case <-ctx.Done():
				p.setTunnel(nil, nil)
				tc.Close()
				return
			}
			p.setTunnel(nil, nil)
		}
		backoff := 100 * time.Millisecond
		for {
			var err error
			if tc, err = p.connect(ctx); err == nil {
				break
			}
			p.setTunnel(nil, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

func (p *Partnership) setTunnel(tc *tunnelClient, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.lastErr = err.Error()
	}
	if tc == p.tc {
		return
	}
	if tc != nil {
		p.connects++
	}
	p.tc = tc
	close(p.changed)
	p.changed = make(chan struct{})
}

// awaitTunnel returns the live tunnel, waiting for one.
func (p *Partnership) awaitTunnel(ctx context.Context) (*tunnelClient, error) {
	for {
		p.mu.Lock()
		tc, ch := p.tc, p.changed
		p.mu.Unlock()
		if tc != nil {
			select {
			case <-tc.Done():
			default:
				return tc, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ---- the listening side

func (p *Partnership) startListen() error {
	if p.params.KeyFile != "" {
		if _, err := readKEK(p.params.KeyFile); err != nil {
			return err
		}
		p.kekPath = p.params.KeyFile
	}
	p.replicaDir = p.params.ReplicaDir
	if p.replicaDir == "" && p.svc.env.DataDir != "" {
		p.replicaDir = filepath.Join(p.svc.env.DataDir, "replicas", p.name)
	}
	if p.replicaDir != "" {
		if err := os.MkdirAll(p.replicaDir, 0o700); err != nil {
			return err
		}
	}
	if err := p.loadTargets(); err != nil {
		return err
	}
	if err := p.loadKeys(); err != nil {
		p.closeTargets()
		return err
	}
	srv, err := listenTunnel(p.name, p.params.Address, p.ports, p.id, p.peer, p.log, p.serveLink)
	if err != nil {
		p.closeTargets()
		return err
	}
	p.srv = srv
	return nil
}

// serveLink serves one link A opened.
func (p *Partnership) serveLink(l Link, c *linkConn) {
	defer c.Close()
	fr := &frameReader{r: c}
	f, err := fr.Read()
	if err != nil || f.Type != FrameHello || f.Text != p.name || f.Seq != ProtocolVersion ||
		f.Flags != uint32(l) {
		_, _ = writeFrame(c, nil, &Frame{Type: FrameError, Status: errnoInvalid,
			Text: fmt.Sprintf("bad hello on the %v link", l)})
		return
	}
	switch l {
	case LinkControl:
		_, err = writeFrame(c, nil, &Frame{Type: FrameHello, Text: p.name,
			Flags: uint32(LinkControl), Seq: ProtocolVersion})
		if err == nil {
			_, _ = io.Copy(io.Discard, c)
		}
	case LinkData:
		p.serveData(c, fr)
	case LinkKeys:
		p.serveKeys(c, fr)
	}
}

// ---- both sides

// Teardown ends the partnership: every link, the tunnel, the listener (R5).
func (p *Partnership) close() {
	if p.cancel != nil {
		p.cancel()
		<-p.stopped
	}
	if p.srv != nil {
		p.srv.Close()
		p.closeTargets()
	}
}

// DeletePartnership tears a partnership down. A dialing partnership with volumes
// replicating over it is refused: stop them first.
func (s *Service) DeletePartnership(name string) error {
	p, err := s.partnership(name)
	if err != nil {
		return err
	}
	for _, v := range s.volumeList() {
		if att := v.att.Load(); att != nil && att.partner == name {
			return fmt.Errorf("partnership %q carries volume %q; stop its replication first: %w",
				name, v.name, rpc.ErrBusy)
		}
	}
	s.mu.Lock()
	delete(s.parts, name)
	s.mu.Unlock()
	p.close()
	return nil
}

// PartnershipStatus is replication_get_partnerships' view of a partnership.
type PartnershipStatus struct {
	Name          string        `json:"name"`
	Role          Role          `json:"role"`
	Address       string        `json:"address"`
	BasePort      uint16        `json:"base_port"`
	Offsets       []uint16      `json:"offsets"`
	Ports         []uint16      `json:"ports"`
	PeerKey       string        `json:"peer_key"`
	Proxy         string        `json:"proxy,omitempty"`
	State         string        `json:"state"`
	Connects      uint64        `json:"connects,omitempty"`
	LastError     string        `json:"last_error,omitempty"`
	Forwards      []forwardInfo `json:"forwards"`
	AuthFailures  uint64        `json:"auth_failures,omitempty"`
	Tunnels       uint64        `json:"tunnels_accepted,omitempty"`
	Copies        []CopyStatus  `json:"copies,omitempty"`
	KeysReceived  []string      `json:"keys_received,omitempty"`
	ListenAddress string        `json:"listen_address,omitempty"`
}

// Status describes the partnership.
func (p *Partnership) Status() PartnershipStatus {
	st := PartnershipStatus{Name: p.name, Role: p.params.Role, Address: p.params.Address,
		BasePort: p.params.BasePort, Offsets: p.ports.Offsets(), Ports: p.ports[:],
		PeerKey: FormatPublicKey(p.peer), Forwards: []forwardInfo{}}
	p.mu.Lock()
	tc := p.tc
	st.Connects, st.LastError = p.connects, p.lastErr
	for name := range p.keys {
		st.KeysReceived = append(st.KeysReceived, name)
	}
	p.mu.Unlock()
	if p.params.Role == RoleDial {
		if p.dc.proxy != nil {
			st.Proxy = p.dc.addr
		}
		st.State = "disconnected"
		if tc != nil {
			st.State = "connected"
			st.Forwards = tc.fwds.list()
		}
		return st
	}
	st.State = "listening"
	st.ListenAddress = p.srv.ln.Addr().String()
	st.Forwards = p.srv.fwds.list()
	st.AuthFailures = p.srv.authFailures.Load()
	st.Tunnels = p.srv.accepted.Load()
	st.Copies = p.copies()
	return st
}
