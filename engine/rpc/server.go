package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSocketPath is where the daemon listens unless told otherwise, in SPDK's style
// (/var/tmp/spdk.sock).
const DefaultSocketPath = "/var/tmp/sluice.sock"

// Defaults of ServerOptions.
const (
	DefaultMaxRequestBytes = 4 << 20
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultWriteTimeout    = 10 * time.Second
	DefaultMaxConns        = 64
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("rpc: server closed")

// errTooLarge is returned by boundedReader when a request exceeds its limit.
var errTooLarge = errors.New("request too large")

// ServerOptions configures NewServer. Zero fields take the defaults above.
type ServerOptions struct {
	// MaxRequestBytes bounds one request (or batch) on the wire. A larger one is
	// answered with -32700 and the connection is closed.
	MaxRequestBytes int64
	// IdleTimeout closes a connection that sends no complete request for this long.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response to a client that does not read.
	WriteTimeout time.Duration
	// MaxConns bounds concurrent connections. At the limit a new connection takes the
	// place of the one idle longest (waiting for its next request, or dribbling one),
	// so idle or stuck clients can never lock the operator out; only when every
	// connection is running a request is the newcomer answered with -16 and closed.
	MaxConns int
	// Logger receives connection-level events; nil means the registry's logger.
	Logger *slog.Logger
}

// Server serves a Registry over stream connections (a Unix socket in the daemon).
//
// Each connection is served by its own goroutine, which reads requests back to back (any
// whitespace or none between them), runs each to completion and writes its response
// followed by a newline, in order. Requests of different connections run concurrently.
// Malformed JSON is answered with -32700 and the connection is closed: after a syntax
// error the start of the next request cannot be found reliably, so there is no resync.
//
// Handlers run on these goroutines, the control plane; see Handle for what they may touch.
// Their context is canceled when Shutdown gives up waiting, not when a client hangs up: a
// handler that waits on a reactor should bound its wait.
type Server struct {
	reg      *Registry
	opts     ServerOptions
	log      *slog.Logger
	baseCtx  context.Context
	cancel   context.CancelFunc
	closing  atomic.Bool
	handlers sync.WaitGroup

	mu sync.Mutex
	// +checklocks:mu
	listeners map[net.Listener]struct{}
	// +checklocks:mu
	conns map[*serverConn]struct{}
}

// NewServer returns a server for reg. It does not listen yet: see Listen and Serve.
func NewServer(reg *Registry, opts ServerOptions) *Server {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	log := opts.Logger
	if log == nil {
		log = reg.log
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		reg:       reg,
		opts:      opts,
		log:       log,
		baseCtx:   ctx,
		cancel:    cancel,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*serverConn]struct{}{},
	}
}

// Serve accepts connections on ln until Shutdown, then returns ErrServerClosed; it
// returns other accept errors that are not transient. Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and the like: wait for descriptors to free up, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("rpc accept failed; retrying", "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.accept(c)
	}
}

func (s *Server) accept(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		c.Close()
		return
	}
	sc := &serverConn{srv: s, conn: c}
	sc.idleSince.Store(time.Now().UnixNano())
	if len(s.conns) >= s.opts.MaxConns {
		s.evictIdleLocked()
	}
	if len(s.conns) >= s.opts.MaxConns {
		// Tell a human with nc why, rather than closing silently.
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			sc.write(encodeResponse(errorResponse(nullID, errorf(-16,
				"server busy: %d connections already open", s.opts.MaxConns))))
			c.Close()
		}()
		return
	}
	s.conns[sc] = struct{}{}
	s.handlers.Add(1)
	go sc.serve()
}

// evictIdleLocked closes the connection idle longest, if any is idle.
//
// +checklocks:s.mu
func (s *Server) evictIdleLocked() {
	var victim *serverConn
	for c := range s.conns {
		if c.busy.Load() {
			continue
		}
		if victim == nil || c.idleSince.Load() < victim.idleSince.Load() {
			victim = c
		}
	}
	if victim == nil {
		return
	}
	delete(s.conns, victim)
	idle := time.Since(time.Unix(0, victim.idleSince.Load()))
	s.log.Info("rpc: connection limit reached; closing the connection idle longest",
		"limit", s.opts.MaxConns, "idle", idle.Round(time.Millisecond))
	victim.conn.Close()
}

// Shutdown stops accepting, closes idle connections, and waits for requests in flight to
// be answered. If ctx ends first, it cancels the handlers' context, closes every
// connection and returns ctx.Err() without waiting further (a handler that ignores its
// context may still be running). Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.interruptRead()
	}

	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		for _, c := range conns {
			c.conn.Close()
		}
		return ctx.Err()
	}
}

type serverConn struct {
	srv  *Server
	conn net.Conn

	// busy is set while a request runs; idleSince is when the last one finished (or
	// the connection opened), in Unix nanoseconds. Both guide eviction at the limit.
	busy      atomic.Bool
	idleSince atomic.Int64

	// mu orders arming the read deadline against Shutdown's interruptRead, so that an
	// idle connection cannot miss the shutdown and sleep for a whole IdleTimeout.
	mu sync.Mutex
}

// armRead sets the idle deadline for the next request; false means the server is closing.
func (c *serverConn) armRead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv.closing.Load() {
		return false
	}
	c.conn.SetReadDeadline(time.Now().Add(c.srv.opts.IdleTimeout))
	return true
}

func (c *serverConn) interruptRead() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetReadDeadline(time.Unix(1, 0))
}

func (c *serverConn) serve() {
	s := c.srv
	defer func() {
		c.conn.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.handlers.Done()
	}()
	br := &boundedReader{r: c.conn}
	dec := json.NewDecoder(br)
	for c.armRead() {
		br.limit = dec.InputOffset() + s.opts.MaxRequestBytes
		var msg json.RawMessage
		err := dec.Decode(&msg)
		if err != nil {
			c.readFailed(err)
			return
		}
		c.busy.Store(true)
		resp := s.reg.serveMessage(s.baseCtx, msg)
		ok := resp == nil || c.write(resp)
		c.idleSince.Store(time.Now().UnixNano())
		c.busy.Store(false)
		if !ok {
			return
		}
	}
}

// readFailed answers what can be answered about a failed read. It never resyncs.
func (c *serverConn) readFailed(err error) {
	s := c.srv
	var syntax *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		// The client closed between requests.
	case errors.Is(err, errTooLarge):
		c.write(encodeResponse(errorResponse(nullID, errorf(CodeParseError,
			"parse error: request larger than %d bytes", s.opts.MaxRequestBytes))))
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		c.write(encodeResponse(errorResponse(nullID, errorf(CodeParseError,
			"parse error: %v", err))))
	case errors.Is(err, os.ErrDeadlineExceeded):
		if !s.closing.Load() {
			s.log.Debug("rpc connection idle; closing", "timeout", s.opts.IdleTimeout)
		}
	default:
		s.log.Debug("rpc connection read failed", "err", err)
	}
}

func (c *serverConn) write(resp []byte) bool {
	c.conn.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteTimeout))
	if _, err := c.conn.Write(append(resp, '\n')); err != nil {
		c.srv.log.Debug("rpc response not sent", "err", err)
		return false
	}
	return true
}

// boundedReader fails with errTooLarge rather than read past limit, an absolute offset in
// the stream; the server moves limit forward as each request is consumed, so that a
// client cannot make it buffer more than MaxRequestBytes for one request.
type boundedReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n >= b.limit {
		return 0, errTooLarge
	}
	if rem := b.limit - b.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}
