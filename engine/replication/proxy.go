package replication

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// The proxy beside the partner (US11233850): a principal of its own, with its own host
// key, configured by the agent. For each partnership it listens on a public port and
// runs an SSH server that admits only the credential the agent stored (the replicating
// node's public key, under the partnership's name) and opens only direct-tcpip channels
// to the ports the agent asked it to translate, each to the partner's base port plus
// the same offset. The replicating node dials out to it (the proxy never dials a
// replicating node), and runs its own end-to-end tunnel to the partner inside the
// translated channel, so the proxy relays ciphertext it cannot read.

// Translation maps a public port of the proxy to a partner's address.
type Translation struct {
	PublicPort uint16 `json:"public_port"`
	Target     string `json:"target"` // host:port on the partner's side
}

// ProxyEntry is what an agent registers for one partnership.
type ProxyEntry struct {
	Partnership  string        `json:"partnership"`
	Credential   string        `json:"credential"` // the replicating node's public key
	Listen       string        `json:"listen"`     // host:port: the public port it dials
	Translations []Translation `json:"translations"`
}

// ProxyEntryStatus reports an entry and what it saw.
type ProxyEntryStatus struct {
	ProxyEntry
	AuthFailures    uint64 `json:"auth_failures"`
	Sessions        uint64 `json:"sessions"`
	ChannelsOpened  uint64 `json:"channels_opened"`
	ChannelsRefused uint64 `json:"channels_refused"`
	BytesToTarget   uint64 `json:"bytes_to_target"`
	BytesFromTarget uint64 `json:"bytes_from_target"`
	ActiveForwards  int64  `json:"active_forwards"`
	ActiveSessions  int64  `json:"active_sessions"`
}

// Proxy serves the registered partnerships. Safe for concurrent use.
type Proxy struct {
	id  *Identity
	log *slog.Logger

	mu      sync.Mutex
	entries map[string]*proxyEntry // +checklocks:mu
}

type proxyEntry struct {
	e     ProxyEntry
	key   ssh.PublicKey
	ln    net.Listener
	cfg   *ssh.ServerConfig
	trans map[uint16]string
	wg    sync.WaitGroup

	authFailures, sessions, opened, refused, toTarget, fromTarget atomic.Uint64
	forwards, live                                                atomic.Int64

	mu     sync.Mutex
	conns  map[io.Closer]struct{} // +checklocks:mu
	closed bool                   // +checklocks:mu
}

// NewProxy makes a proxy with host key id.
func NewProxy(id *Identity, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Proxy{id: id, log: log, entries: map[string]*proxyEntry{}}
}

// HostKey is the proxy's public host key, which the replicating node pins.
func (px *Proxy) HostKey() string { return px.id.AuthorizedKey() }

// Add registers a partnership: it stores the credential, binds the public port and
// starts admitting that credential, for those translations only.
func (px *Proxy) Add(e ProxyEntry) error {
	if !safeName(e.Partnership) {
		return fmt.Errorf("partnership %q: %w", e.Partnership, ErrInvalid)
	}
	key, err := ParsePublicKey(e.Credential)
	if err != nil {
		return err
	}
	if len(e.Translations) == 0 {
		return fmt.Errorf("no translation: %w", ErrInvalid)
	}
	pe := &proxyEntry{e: e, key: key, trans: map[uint16]string{}, conns: map[io.Closer]struct{}{}}
	for _, t := range e.Translations {
		if _, _, err := net.SplitHostPort(t.Target); err != nil || t.PublicPort == 0 {
			return fmt.Errorf("translation %d → %q: %w", t.PublicPort, t.Target, ErrInvalid)
		}
		if _, dup := pe.trans[t.PublicPort]; dup {
			return fmt.Errorf("public port %d translated twice: %w", t.PublicPort, ErrPorts)
		}
		pe.trans[t.PublicPort] = t.Target
	}
	px.mu.Lock()
	defer px.mu.Unlock()
	if _, dup := px.entries[e.Partnership]; dup {
		return fmt.Errorf("partnership %q: %w", e.Partnership, ErrExists)
	}
	if pe.ln, err = net.Listen("tcp", e.Listen); err != nil {
		return fmt.Errorf("public port %s: %v: %w", e.Listen, err, ErrPorts)
	}
	pe.cfg = &ssh.ServerConfig{
		ServerVersion: sshVersion,
		MaxAuthTries:  2,
		PublicKeyCallback: func(md ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if md.User() == e.Partnership && sameKey(k, key) {
				return &ssh.Permissions{}, nil
			}
			pe.authFailures.Add(1)
			return nil, fmt.Errorf("credential %s is not registered for %q", ssh.FingerprintSHA256(k), e.Partnership)
		},
	}
	pe.cfg.AddHostKey(px.id.signer)
	px.entries[e.Partnership] = pe
	pe.wg.Add(1)
	go pe.serve(px.log)
	return nil
}

// Remove unregisters a partnership: its port closes and every session ends.
func (px *Proxy) Remove(partnership string) error {
	px.mu.Lock()
	pe := px.entries[partnership]
	delete(px.entries, partnership)
	px.mu.Unlock()
	if pe == nil {
		return fmt.Errorf("partnership %q: %w", partnership, ErrNotFound)
	}
	pe.close()
	return nil
}

// Close removes every entry.
func (px *Proxy) Close() {
	px.mu.Lock()
	all := make([]*proxyEntry, 0, len(px.entries))
	for _, pe := range px.entries {
		all = append(all, pe)
	}
	clear(px.entries)
	px.mu.Unlock()
	for _, pe := range all {
		pe.close()
	}
}

// List reports the entries.
func (px *Proxy) List() []ProxyEntryStatus {
	px.mu.Lock()
	defer px.mu.Unlock()
	out := make([]ProxyEntryStatus, 0, len(px.entries))
	for _, pe := range px.entries {
		out = append(out, ProxyEntryStatus{ProxyEntry: pe.e, AuthFailures: pe.authFailures.Load(),
			Sessions: pe.sessions.Load(), ChannelsOpened: pe.opened.Load(),
			ChannelsRefused: pe.refused.Load(), BytesToTarget: pe.toTarget.Load(),
			BytesFromTarget: pe.fromTarget.Load(), ActiveForwards: pe.forwards.Load(),
			ActiveSessions: pe.live.Load()})
	}
	return out
}

func (pe *proxyEntry) track(c io.Closer) bool {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	if pe.closed {
		return false
	}
	pe.conns[c] = struct{}{}
	return true
}

func (pe *proxyEntry) untrack(c io.Closer) {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	delete(pe.conns, c)
}

func (pe *proxyEntry) close() {
	pe.mu.Lock()
	pe.closed = true
	all := make([]io.Closer, 0, len(pe.conns))
	for c := range pe.conns {
		all = append(all, c)
	}
	pe.mu.Unlock()
	pe.ln.Close()
	for _, c := range all {
		c.Close()
	}
	pe.wg.Wait()
}

func (pe *proxyEntry) serve(log *slog.Logger) {
	defer pe.wg.Done()
	for {
		nc, err := pe.ln.Accept()
		if err != nil {
			return
		}
		pe.wg.Add(1)
		go func() {
			defer pe.wg.Done()
			pe.serveConn(nc, log)
		}()
	}
}

func (pe *proxyEntry) serveConn(nc net.Conn, log *slog.Logger) {
	if !pe.track(nc) {
		nc.Close()
		return
	}
	defer pe.untrack(nc)
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(nc, pe.cfg)
	if err != nil {
		nc.Close()
		log.Warn("proxy: session refused", "partnership", pe.e.Partnership,
			"remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	pe.sessions.Add(1)
	pe.live.Add(1)
	defer pe.live.Add(-1)
	go replyKeepalives(reqs)
	go keepalive(sc, nil)
	for nch := range chans {
		pe.forward(nch)
	}
}

// forward opens a translated channel: the destination port must be one the agent
// asked for (A3); the host part names the partnership and is not resolved.
func (pe *proxyEntry) forward(nch ssh.NewChannel) {
	if nch.ChannelType() != "direct-tcpip" {
		pe.refused.Add(1)
		_ = nch.Reject(ssh.UnknownChannelType, "only direct-tcpip")
		return
	}
	var req directTCPIP
	if err := ssh.Unmarshal(nch.ExtraData(), &req); err != nil || req.Port > 65535 {
		pe.refused.Add(1)
		_ = nch.Reject(ssh.ConnectionFailed, "bad direct-tcpip payload")
		return
	}
	target, ok := pe.trans[uint16(req.Port)]
	if !ok {
		pe.refused.Add(1)
		_ = nch.Reject(ssh.Prohibited, fmt.Sprintf("port %d is not translated", req.Port))
		return
	}
	tc, err := net.DialTimeout("tcp", target, handshakeTimeout)
	if err != nil {
		pe.refused.Add(1)
		_ = nch.Reject(ssh.ConnectionFailed, "partner unreachable")
		return
	}
	ch, creqs, err := nch.Accept()
	if err != nil {
		tc.Close()
		return
	}
	go ssh.DiscardRequests(creqs)
	pe.opened.Add(1)
	pe.forwards.Add(1)
	if !pe.track(tc) {
		tc.Close()
		ch.Close()
		return
	}
	go pe.splice(ch, tc)
}

func (pe *proxyEntry) splice(ch ssh.Channel, tc net.Conn) {
	defer pe.forwards.Add(-1)
	defer pe.untrack(tc)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(countingWriter{ch, &pe.fromTarget}, tc)
		_ = ch.CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(countingWriter{tc, &pe.toTarget}, ch)
	if cw, ok := tc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	<-done
	ch.Close()
	tc.Close()
}

// TranslationsFor derives a partnership's translations: public port base + offset to
// the partner's base port + the same offset, for the tunnel and every link.
func TranslationsFor(publicBase uint16, partnerHost string, partnerBase uint16, offsets []uint16) ([]Translation, error) {
	pub, err := DerivePorts(publicBase, offsets)
	if err != nil {
		return nil, err
	}
	priv, err := DerivePorts(partnerBase, offsets)
	if err != nil {
		return nil, err
	}
	out := make([]Translation, 0, len(pub))
	for l := range pub {
		out = append(out, Translation{PublicPort: pub[l],
			Target: net.JoinHostPort(partnerHost, strconv.Itoa(int(priv[l])))})
	}
	return out, nil
}

// countingWriter counts what it relays as it goes, so that status shows live traffic.
type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(uint64(n))
	return n, err
}
