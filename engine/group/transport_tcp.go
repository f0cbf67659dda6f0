package group

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// TCP transport limits.
const (
	tcpQueueFrames  = 4096            // frames queued per peer before Send drops
	tcpDialTimeout  = time.Second     // one dial attempt
	tcpWriteTimeout = 5 * time.Second // one frame write; a stalled peer is redialled
	tcpRedialMax    = 1 * time.Second // backoff cap between dials
	tcpRedialMin    = 50 * time.Millisecond
)

// TCPTransport is the production Transport: it listens on the node's peer address and
// keeps one outgoing connection per peer address, each written by its own goroutine from
// a bounded queue. Connections carry frames one way (codec.go: a 4-byte big-endian length,
// then one msgpack Envelope); a node answers on its own outgoing connection to the
// sender's address. It trusts its peers: the peer network is the cluster's own.
type TCPTransport struct {
	addr string
	log  *slog.Logger

	mu sync.Mutex
	// +checklocks:mu
	ln net.Listener
	// +checklocks:mu
	peers map[string]*tcpPeer
	// +checklocks:mu
	inbound map[net.Conn]struct{}
	// +checklocks:mu
	closed bool
	wg     sync.WaitGroup
}

type tcpPeer struct {
	addr  string
	queue chan []byte
	done  chan struct{}
}

// NewTCPTransport returns a transport that will listen on addr (host:port) when started.
func NewTCPTransport(addr string, log *slog.Logger) *TCPTransport {
	if log == nil {
		log = slog.Default()
	}
	return &TCPTransport{addr: addr, log: log, peers: map[string]*tcpPeer{},
		inbound: map[net.Conn]struct{}{}}
}

// Addr returns the listening address (useful with port 0) once started.
func (t *TCPTransport) Addr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ln != nil {
		return t.ln.Addr().String()
	}
	return t.addr
}

// Start implements Transport.
func (t *TCPTransport) Start(recv func(Envelope)) error {
	ln, err := net.Listen("tcp", t.addr)
	if err != nil {
		return fmt.Errorf("listen on peer address %s: %w", t.addr, err)
	}
	t.mu.Lock()
	t.ln = ln
	t.mu.Unlock()
	t.wg.Add(1)
	go t.accept(ln, recv)
	return nil
}

func (t *TCPTransport) accept(ln net.Listener, recv func(Envelope)) {
	defer t.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			_ = c.Close()
			return
		}
		t.inbound[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.read(c, recv)
	}
}

// read decodes frames from one inbound connection until it fails.
func (t *TCPTransport) read(c net.Conn, recv func(Envelope)) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.inbound, c)
		t.mu.Unlock()
		_ = c.Close()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	var hdr [frameHeaderBytes]byte
	var body []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxFrameBytes {
			t.log.Warn("group peer sent an oversized frame", "peer", c.RemoteAddr(), "bytes", n)
			return
		}
		if cap(body) < int(n) {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		env, err := DecodeEnvelope(body)
		if err != nil {
			t.log.Warn("group peer sent a bad frame", "peer", c.RemoteAddr(), "err", err)
			return
		}
		recv(env)
	}
}

// Send implements Transport.
func (t *TCPTransport) Send(addr string, env Envelope) {
	frame := appendFrame(nil, &env)
	t.mu.Lock()
	if t.closed || addr == "" {
		t.mu.Unlock()
		return
	}
	p := t.peers[addr]
	if p == nil {
		p = &tcpPeer{addr: addr, queue: make(chan []byte, tcpQueueFrames), done: make(chan struct{})}
		t.peers[addr] = p
		t.wg.Add(1)
		go t.write(p)
	}
	t.mu.Unlock()
	select {
	case p.queue <- frame:
	default: // full: drop, as a lossy network would
	}
}

// write dials the peer and writes its queued frames, redialling with backoff.
func (t *TCPTransport) write(p *tcpPeer) {
	defer t.wg.Done()
	backoff := tcpRedialMin
	for {
		c, err := net.DialTimeout("tcp", p.addr, tcpDialTimeout)
		if err != nil {
			select {
			case <-p.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, tcpRedialMax)
			continue
		}
		backoff = tcpRedialMin
		err = t.drain(c, p)
		_ = c.Close()
		if err == nil {
			return
		}
	}
}

// drain writes frames to c until the peer is closed (nil) or a write fails.
func (t *TCPTransport) drain(c net.Conn, p *tcpPeer) error {
	w := bufio.NewWriterSize(c, 64<<10)
	for {
		var frame []byte
		select {
		case <-p.done:
			return nil
		case frame = <-p.queue:
		}
		_ = c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
		if _, err := w.Write(frame); err != nil {
			return err
		}
		for more := true; more; { // batch what is queued into one flush
			select {
			case f := <-p.queue:
				if _, err := w.Write(f); err != nil {
					return err
				}
			default:
				more = false
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

// Close implements Transport.
func (t *TCPTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	var err error
	if t.ln != nil {
		err = t.ln.Close()
	}
	for _, p := range t.peers {
		close(p.done)
	}
	for c := range t.inbound {
		_ = c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close peer listener: %w", err)
	}
	return nil
}
