package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startServer serves a test registry on a fresh socket and shuts it down at cleanup.
func startServer(t *testing.T, opts ServerOptions) (string, *Server, *fakeBdevs) {
	t.Helper()
	reg, m := testRegistry(t)
	addBlockingMethods(reg)
	path := filepath.Join(shortTempDir(t), "sluice.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(reg, opts)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return path, srv, m
}

func dialTest(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a connection driven by hand, as with nc.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

func (c *rawConn) line(t *testing.T) string {
	t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read response: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// expectClosed checks that the server closed the connection.
func (c *rawConn) expectClosed(t *testing.T) {
	t.Helper()
	// ECONNRESET when the server closed with unread input, as on TCP.
	if s, err := c.r.ReadString('\n'); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after close = %q, %v; want EOF", s, err)
	}
}

func TestClientCall(t *testing.T) {
	path, _, m := startServer(t, ServerOptions{})
	c := dialTest(t, path)
	ctx := context.Background()

	var name string
	if err := c.Call(ctx, "bdev_fake_create", map[string]any{"name": "Malloc0", "num_blocks": 64}, &name); err != nil {
		t.Fatal(err)
	}
	if name != "Malloc0" || len(m.list()) != 1 {
		t.Errorf("created %q, state %v", name, m.list())
	}
	err := c.Call(ctx, "bdev_fake_create", map[string]any{"name": "Malloc0", "num_blocks": 64}, nil)
	var rerr *Error
	if !errors.As(err, &rerr) || rerr.Code != -17 || rerr.Message != `bdev "Malloc0": already exists` {
		t.Errorf("duplicate create: %v", err)
	}
	if !errors.Is(err, ErrExists) {
		t.Errorf("errors.Is(%v, ErrExists) = false", err)
	}
	if err.Error() != `error -17: bdev "Malloc0": already exists` {
		t.Errorf("Error() = %q", err)
	}
	err = c.Call(ctx, "bdev_fake_delete", json.RawMessage(`{"name":"nope"}`), nil)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("delete missing: %v, want ErrNotFound", err)
	}
	var raw json.RawMessage
	if err := c.Call(ctx, "bdev_fake_get_bdevs", nil, &raw); err != nil {
		t.Fatal(err)
	}
	if want := `[{"name":"Malloc0","num_blocks":64,"block_size":512}]`; string(raw) != want {
		t.Errorf("get_bdevs = %s, want %s", raw, want)
	}
	// A panicking handler does not take the server down.
	if err := c.Call(ctx, "test_panic", nil, nil); AsError(err).Code != CodeInternalError {
		t.Errorf("test_panic: %v", err)
	}
	if err := c.Call(ctx, "bdev_fake_get_bdevs", nil, nil); err != nil {
		t.Errorf("call after panic: %v", err)
	}
	if err := c.Call(ctx, "no_such_method", nil, nil); AsError(err).Code != CodeMethodNotFound {
		t.Errorf("unknown method: %v", err)
	}
}

func TestClientCancel(t *testing.T) {
	path, _, _ := startServer(t, ServerOptions{})
	c := dialTest(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Call(ctx, "test_sleep", map[string]int{"ms": 200}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("blocked call: %v, want DeadlineExceeded", err)
	}
	if err := c.Call(context.Background(), "test_echo", nil, nil); !errors.Is(err, ErrClientClosed) {
		t.Errorf("call after cancel: %v, want ErrClientClosed", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	path, _, m := startServer(t, ServerOptions{})
	const clients, calls = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients*calls)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(path)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range calls {
				name := fmt.Sprintf("b%d_%d", i, j)
				var got string
				if err := c.Call(context.Background(), "bdev_fake_create",
					fakeCreateParams{Name: name, NumBlocks: 1}, &got); err != nil || got != name {
					errs <- fmt.Errorf("create %s: %q, %v", name, got, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(m.list()); n != clients*calls {
		t.Errorf("%d bdevs, want %d", n, clients*calls)
	}
}

func TestBackToBackRequests(t *testing.T) {
	path, _, _ := startServer(t, ServerOptions{})
	c := dialRaw(t, path)
	// Three requests in one write, no separators between the first two, a notification
	// and a batch: answers come in order, one line each, nothing for the notification.
	c.send(t, `{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"value":"a"}}`+
		`{"jsonrpc":"2.0","method":"test_echo"}  `+
		"\n\t"+`[{"jsonrpc":"2.0","id":2,"method":"test_echo","params":{"value":"b"}}]`+
		` {"jsonrpc":"2.0","id":3,"method":"test_echo","params":{"value":"c"}}`)
	for _, want := range []string{
		`{"jsonrpc":"2.0","id":1,"result":"a"}`,
		`[{"jsonrpc":"2.0","id":2,"result":"b"}]`,
		`{"jsonrpc":"2.0","id":3,"result":"c"}`,
	} {
		if got := c.line(t); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	// A request split across writes is assembled.
	c.send(t, `{"jsonrpc":"2.0","id":4,`)
	time.Sleep(10 * time.Millisecond)
	c.send(t, `"method":"test_echo"}`)
	if got, want := c.line(t), `{"jsonrpc":"2.0","id":4,"result":null}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestMalformedJSONClosesConnection(t *testing.T) {
	path, _, _ := startServer(t, ServerOptions{})
	c := dialRaw(t, path)
	c.send(t, `{"jsonrpc":"2.0","id":1,"method":"test_echo"} {"jsonrpc": nope}`)
	if got, want := c.line(t), `{"jsonrpc":"2.0","id":1,"result":null}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	got := c.line(t)
	if !strings.HasPrefix(got, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: invalid character 'o'`) {
		t.Errorf("got %s, want a parse error", got)
	}
	c.expectClosed(t)

	// A request cut short by the client's half-close is a parse error too.
	c = dialRaw(t, path)
	c.send(t, `{"jsonrpc":"2.0","id":1`)
	c.Conn.(*net.UnixConn).CloseWrite()
	if got := c.line(t); !strings.Contains(got, `"code":-32700,"message":"parse error: unexpected EOF"`) {
		t.Errorf("got %s, want a parse error", got)
	}
	c.expectClosed(t)
}

func TestRequestSizeLimit(t *testing.T) {
	path, _, _ := startServer(t, ServerOptions{MaxRequestBytes: 1024})
	c := dialRaw(t, path)
	// A request just under the limit passes, after another one on the same connection:
	// the limit applies per request, not per connection.
	small := `{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"value":"` + strings.Repeat("x", 900) + `"}}`
	c.send(t, small+small)
	for range 2 {
		if got := c.line(t); !strings.Contains(got, `"result":"xxx`) {
			t.Fatalf("got %.80s, want a result", got)
		}
	}
	big := `{"jsonrpc":"2.0","id":2,"method":"test_echo","params":{"value":"` + strings.Repeat("x", 2000) + `"}}`
	go io.WriteString(c, big) // the server may close before reading it all
	want := `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: request larger than 1024 bytes"}}`
	if got := c.line(t); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	c.expectClosed(t)
}

func TestIdleTimeout(t *testing.T) {
	path, _, _ := startServer(t, ServerOptions{IdleTimeout: 50 * time.Millisecond})
	c := dialRaw(t, path)
	c.send(t, `{"jsonrpc":"2.0","id":1,"method":"test_echo"}`)
	c.line(t)
	c.expectClosed(t) // within the 10 s test deadline, after about 50 ms
}

// TestMaxConnsAllBusy: only when every connection is running a request is a newcomer
// refused, with -16.
func TestMaxConnsAllBusy(t *testing.T) {
	path, _, _ := startServer(t, ServerOptions{MaxConns: 1})
	first := dialTest(t, path)
	done := make(chan error, 1)
	go func() { done <- first.Call(context.Background(), "test_sleep", map[string]int{"ms": 500}, nil) }()
	time.Sleep(100 * time.Millisecond)
	c := dialRaw(t, path)
	want := `{"jsonrpc":"2.0","id":null,"error":{"code":-16,"message":"server busy: 1 connections already open"}}`
	if got := c.line(t); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	c.expectClosed(t)
	if err := <-done; err != nil {
		t.Fatalf("the busy connection's request: %v", err)
	}
}

// TestIdleClientsCannotLockOutTheOperator: a full house of idle connections (and one
// dribbling half a request) makes room for the operator at once, oldest idle first.
func TestIdleClientsCannotLockOutTheOperator(t *testing.T) {
	const limit = 64
	path, _, _ := startServer(t, ServerOptions{MaxConns: limit})
	idle := make([]*rawConn, 0, limit)
	for i := 0; i < limit; i++ {
		c := dialRaw(t, path)
		if i == 0 {
			c.send(t, `{"jsonrpc":"2.0","id":1,"meth`) // a request never finished
		}
		idle = append(idle, c)
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 3; i++ {
		op := dialTest(t, path)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := op.Call(ctx, "test_echo", nil, nil)
		cancel()
		if err != nil {
			t.Fatalf("operator %d locked out by %d idle clients: %v", i, limit, err)
		}
		idle[i].expectClosed(t) // the longest idle went first
	}
}

func TestShutdown(t *testing.T) {
	reg, _ := testRegistry(t)
	started := make(chan struct{})
	release := make(chan struct{})
	reg.HandleRaw("test_slow", func(context.Context, json.RawMessage) (any, error) {
		close(started)
		<-release
		return "done", nil
	})
	path := filepath.Join(shortTempDir(t), "s.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(reg, ServerOptions{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	idle := dialRaw(t, path)
	idle.send(t, `{"jsonrpc":"2.0","id":1,"method":"test_echo"}`)
	idle.line(t)
	busy := dialTest(t, path)
	result := make(chan error, 1)
	go func() {
		var s string
		err := busy.Call(context.Background(), "test_slow", nil, &s)
		if err == nil && s != "done" {
			err = fmt.Errorf("result %q", s)
		}
		result <- err
	}()
	<-started

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	idle.expectClosed(t) // idle connections go at once
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Error("dial after Shutdown succeeded")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release) // the request in flight is answered
	if err := <-result; err != nil {
		t.Errorf("in-flight call: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file left behind: %v", err)
	}
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	reg, _ := testRegistry(t)
	started := make(chan struct{})
	canceled := make(chan struct{})
	reg.HandleRaw("test_stuck", func(ctx context.Context, _ json.RawMessage) (any, error) {
		close(started)
		<-ctx.Done()
		close(canceled)
		return nil, ctx.Err()
	})
	path := filepath.Join(shortTempDir(t), "s.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(reg, ServerOptions{})
	go srv.Serve(ln)
	c := dialTest(t, path)
	result := make(chan error, 1)
	go func() { result <- c.Call(context.Background(), "test_stuck", nil, nil) }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	<-canceled // the handler saw its context canceled
	// The client sees the answer or the closed connection, never a hang.
	if err := <-result; err == nil {
		t.Error("stuck call succeeded")
	}
}

func TestListen(t *testing.T) {
	dir := shortTempDir(t)
	path := filepath.Join(dir, "s.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the socket", len(entries))
	}
	// A live socket is not taken over.
	live := ln
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen(path); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("Listen on a live socket = %v, want ErrSocketInUse", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Close left the socket file: %v", err)
	}

	// A stale socket (bound, never served, left behind) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	ln, err = Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()

	// Anything else is never removed.
	if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Error("regular file was changed")
	}
}
