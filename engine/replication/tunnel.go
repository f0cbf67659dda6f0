package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// The tunnel is an SSH connection to the partner's base port, authenticated by key pairs
// on both sides: the listening partner (B) accepts only the replicating partner's (A's)
// public key, and A accepts only B's host key (strict checking; no known_hosts, no
// trust on first use). Each link is a direct-tcpip channel inside it addressed to
// 127.0.0.1 at the link's derived port; B serves those channels itself and refuses any
// other port, and nothing listens on the derived ports on either side, so a link is
// reachable only through the tunnel (R1). Over a public network A reaches B's base port
// through a proxy (proxy.go), and this tunnel runs inside the proxy's.

const (
	// handshakeTimeout bounds an SSH handshake, so that a peer that connects and says
	// nothing cannot hold a partnership setup.
	handshakeTimeout = 10 * time.Second
	// keepaliveEvery and keepaliveTimeout detect a dead tunnel (a partition: TCP
	// itself would wait minutes): a keepalive unanswered for keepaliveTimeout closes the
	// connection, and the streams fail over to dirty-region tracking.
	keepaliveEvery   = 500 * time.Millisecond
	keepaliveTimeout = 3 * time.Second
	keepaliveRequest = "keepalive@sluice"
	// sshVersion is sent by both ends. The SSH user is the partnership's name, so that a
	// key authorized for one partnership cannot open another's tunnel.
	sshVersion = "SSH-2.0-sluice"
)

// forwardInfo describes one open link: a forward of the partnership's configuration.
type forwardInfo struct {
	Link   string `json:"link"`
	Port   uint16 `json:"port"`
	Volume string `json:"volume,omitempty"`
}

// forwards is the set of a tunnel's open links, so that status can list them and
// teardown can close every one (R5).
type forwards struct {
	mu   sync.Mutex
	open map[*forward]struct{} // +checklocks:mu
}

type forward struct {
	info forwardInfo
	c    io.Closer
	set  *forwards
	once sync.Once
}

func (f *forward) Close() error {
	var err error
	f.once.Do(func() {
		f.set.mu.Lock()
		delete(f.set.open, f)
		f.set.mu.Unlock()
		err = f.c.Close()
	})
	return err
}

func (fs *forwards) add(info forwardInfo, c io.Closer) *forward {
	f := &forward{info: info, c: c, set: fs}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.open == nil {
		fs.open = map[*forward]struct{}{}
	}
	fs.open[f] = struct{}{}
	return f
}

func (fs *forwards) list() []forwardInfo {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]forwardInfo, 0, len(fs.open))
	for f := range fs.open {
		out = append(out, f.info)
	}
	return out
}

func (fs *forwards) closeAll() {
	fs.mu.Lock()
	all := make([]*forward, 0, len(fs.open))
	for f := range fs.open {
		all = append(all, f)
	}
	fs.mu.Unlock()
	for _, f := range all {
		f.Close()
	}
}

// linkConn is an open link: a channel that closes its forward entry with it.
type linkConn struct {
	io.ReadWriter
	fwd *forward
}

func (c *linkConn) Close() error { return c.fwd.Close() }

// linkHandler serves a link B accepted. It owns c.
type linkHandler func(l Link, c *linkConn)

// tunnelServer is B's end: the SSH server on the base port.
type tunnelServer struct {
	name   string
	ln     net.Listener
	cfg    *ssh.ServerConfig
	ports  Ports
	handle linkHandler
	log    *slog.Logger
	fwds   forwards

	authFailures atomic.Uint64
	accepted     atomic.Uint64

	mu     sync.Mutex
	conns  map[*ssh.ServerConn]struct{} // +checklocks:mu
	closed bool                         // +checklocks:mu
	wg     sync.WaitGroup
}

// listenTunnel binds B's base port on host and serves partnership name's tunnel: only
// user name with key peer may log in, and only the links of ports may be opened.
func listenTunnel(name, host string, ports Ports, id *Identity, peer ssh.PublicKey,
	log *slog.Logger, handle linkHandler) (*tunnelServer, error) {
	if err := ports.checkUnbound(host); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(int(ports[LinkTunnel]))))
	if err != nil {
		return nil, fmt.Errorf("tunnel port %d on %s: %v: %w", ports[LinkTunnel], host, err, ErrPorts)
	}
	s := &tunnelServer{name: name, ln: ln, ports: ports, handle: handle, log: log,
		conns: map[*ssh.ServerConn]struct{}{}}
	s.cfg = &ssh.ServerConfig{
		ServerVersion: sshVersion,
		MaxAuthTries:  2,
		PublicKeyCallback: func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if md.User() == name && sameKey(key, peer) {
				return &ssh.Permissions{}, nil
			}
			s.authFailures.Add(1)
			return nil, fmt.Errorf("key %s is not partnership %q's", ssh.FingerprintSHA256(key), name)
		},
	}
	s.cfg.AddHostKey(id.signer)
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *tunnelServer) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(nc)
		}()
	}
}

func (s *tunnelServer) serveConn(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		nc.Close()
		s.log.Warn("replication: tunnel handshake refused", "partnership", s.name,
			"remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	if !s.track(sc) {
		sc.Close()
		return
	}
	defer s.untrack(sc)
	s.accepted.Add(1)
	go replyKeepalives(reqs)
	go keepalive(sc, nil)
	for nch := range chans {
		s.accept(nch)
	}
}

func (s *tunnelServer) track(sc *ssh.ServerConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[sc] = struct{}{}
	return true
}

func (s *tunnelServer) untrack(sc *ssh.ServerConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, sc)
}

// directTCPIP is RFC 4254 7.2's payload of a "direct-tcpip" channel open.
type directTCPIP struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

// accept opens a forward when it names one of the partnership's links on loopback, and
// refuses every other channel: the tunnel is not a general port forwarder.
func (s *tunnelServer) accept(nch ssh.NewChannel) {
	if nch.ChannelType() != "direct-tcpip" {
		_ = nch.Reject(ssh.UnknownChannelType, "only direct-tcpip")
		return
	}
	var req directTCPIP
	if err := ssh.Unmarshal(nch.ExtraData(), &req); err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, "bad direct-tcpip payload")
		return
	}
	l, ok := s.ports.linkOf(uint16(req.Port))
	if !ok || req.Port > 65535 || !isLoopbackName(req.Host) {
		_ = nch.Reject(ssh.Prohibited, fmt.Sprintf("no forward to %s:%d", req.Host, req.Port))
		return
	}
	ch, creqs, err := nch.Accept()
	if err != nil {
		return
	}
	go ssh.DiscardRequests(creqs)
	f := s.fwds.add(forwardInfo{Link: l.String(), Port: s.ports[l]}, ch)
	go s.handle(l, &linkConn{ReadWriter: ch, fwd: f})
}

func isLoopbackName(h string) bool {
	return h == "127.0.0.1" || h == "localhost" || h == "::1"
}

// Close stops listening, closes every connection and link, and waits for the goroutines.
func (s *tunnelServer) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*ssh.ServerConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	s.fwds.closeAll()
	s.wg.Wait()
	return err
}

// dialConfig says how A reaches B.
type dialConfig struct {
	name  string // the partnership: the SSH user
	addr  string // host:port of B's tunnel, or of the proxy's public port
	ports Ports
	id    *Identity
	peer  ssh.PublicKey // B's host key
	// proxy, when set, is the hop in front of B: addr is the proxy's, and the tunnel
	// to B runs inside a direct-tcpip channel the proxy translates.
	proxy *proxyHop
}

// proxyHop is the proxy in front of B (US11233850): its host key, and the public port
// it translates to B's base port.
type proxyHop struct {
	hostKey    ssh.PublicKey
	publicPort uint16
}

// tunnelClient is A's end.
type tunnelClient struct {
	cfg    dialConfig
	outer  *ssh.Client // the proxy's connection, or nil
	client *ssh.Client
	fwds   forwards
	done   chan struct{}
}

func clientConfig(user string, id *Identity, host ssh.PublicKey) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(id.signer)},
		HostKeyCallback:   ssh.FixedHostKey(host),
		HostKeyAlgorithms: []string{host.Type()},
		ClientVersion:     sshVersion,
		Timeout:           handshakeTimeout,
	}
}

// dialTunnel connects to B (through the proxy when there is one) and authenticates
// both ways. It opens no link: links open on demand, each one forward.
func dialTunnel(ctx context.Context, dc dialConfig) (*tunnelClient, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", dc.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", dc.addr, err)
	}
	// One deadline covers both handshakes: a stuck proxy or partner fails the dial.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	t := &tunnelClient{cfg: dc, done: make(chan struct{})}
	conn := nc
	if dc.proxy != nil {
		oc, chans, reqs, err := ssh.NewClientConn(nc, dc.addr, clientConfig(dc.name, dc.id, dc.proxy.hostKey))
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("proxy %s: %w", dc.addr, err)
		}
		t.outer = ssh.NewClient(oc, chans, reqs)
		target := net.JoinHostPort(dc.name, strconv.Itoa(int(dc.proxy.publicPort)))
		if conn, err = t.outer.Dial("tcp", target); err != nil {
			t.outer.Close()
			return nil, fmt.Errorf("proxy %s refused the translation of %s: %w", dc.addr, target, err)
		}
	}
	ic, chans, reqs, err := ssh.NewClientConn(conn, dc.addr, clientConfig(dc.name, dc.id, dc.peer))
	if err != nil {
		conn.Close()
		t.closeOuter(nc)
		return nil, fmt.Errorf("partner tunnel: %w", err)
	}
	if ctx.Err() != nil {
		ic.Close()
		t.closeOuter(nc)
		return nil, ctx.Err()
	}
	t.client = ssh.NewClient(ic, chans, reqs)
	go func() {
		_ = t.client.Wait()
		t.closeOuter(nc)
		close(t.done)
	}()
	go keepalive(t.client, t.done)
	return t, nil
}

func (t *tunnelClient) closeOuter(nc net.Conn) {
	if t.outer != nil {
		t.outer.Close()
	}
	nc.Close()
}

// open opens link l: a direct-tcpip channel to the link's derived port on B. volume
// labels the forward in status.
func (t *tunnelClient) open(l Link, volume string) (*linkConn, error) {
	port := t.cfg.ports[l]
	c, err := t.client.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return nil, fmt.Errorf("open %v link (port %d): %w", l, port, err)
	}
	f := t.fwds.add(forwardInfo{Link: l.String(), Port: port, Volume: volume}, c)
	return &linkConn{ReadWriter: c, fwd: f}, nil
}

// Done is closed when the tunnel is gone.
func (t *tunnelClient) Done() <-chan struct{} { return t.done }

// Close tears the tunnel down: every link, the SSH connection and the proxy's.
func (t *tunnelClient) Close() error {
	t.fwds.closeAll()
	err := t.client.Close()
	<-t.done
	return err
}

// keepalive sends a keepalive every keepaliveEvery and closes conn when one stays
// unanswered for keepaliveTimeout. It returns when conn closes (or done does).
func keepalive(conn ssh.Conn, done <-chan struct{}) {
	closed := make(chan struct{})
	go func() { _ = conn.Wait(); close(closed) }()
	tick := time.NewTicker(keepaliveEvery)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			return
		case <-done:
			return
		case <-tick.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := conn.SendRequest(keepaliveRequest, true, nil)
			answered <- err
		}()
		select {
		case err := <-answered:
			if err != nil {
				conn.Close()
				return
			}
		case <-time.After(keepaliveTimeout):
			conn.Close()
			return
		case <-closed:
			return
		}
	}
}

// replyKeepalives answers the peer's keepalives and refuses every other global request
// (port forwarding requests among them: B never listens for A).
func replyKeepalives(reqs <-chan *ssh.Request) {
	for r := range reqs {
		if r.WantReply {
			_ = r.Reply(r.Type == keepaliveRequest, nil)
		}
	}
}

// errAuth reports whether err is an authentication failure of an SSH handshake (a wrong
// key pair, an unknown host key), which retrying does not cure.
func errAuth(err error) bool {
	var ke *ssh.ServerAuthError
	return err != nil && (errors.As(err, &ke) || containsAny(err.Error(),
		"unable to authenticate", "host key mismatch", "no supported methods remain"))
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
