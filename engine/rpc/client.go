package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// ErrClientClosed is returned by Call on a closed client, including one closed because an
// earlier call was canceled mid-flight.
var ErrClientClosed = errors.New("rpc: client closed")

// Client is a JSON-RPC 2.0 client over one stream connection, used by sluicectl and tests.
// Calls are sent one at a time and answered in order; Client is safe for concurrent use,
// concurrent calls wait for each other. A call whose context ends while it waits for the
// response closes the connection (a late response would desynchronise it); later calls
// return ErrClientClosed.
type Client struct {
	mu sync.Mutex
	// +checklocks:mu
	conn net.Conn
	// +checklocks:mu
	dec *json.Decoder
	// +checklocks:mu
	nextID uint64
	// +checklocks:mu
	closed bool
}

// Dial connects to the server's Unix socket at path.
func Dial(path string) (*Client, error) {
	return DialContext(context.Background(), path)
}

// DialContext is Dial with a context bounding the connection attempt.
func DialContext(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("rpc dial %s: %w", path, err)
	}
	return NewClient(conn), nil
}

// NewClient returns a client speaking over conn, which it owns from now on.
func NewClient(conn net.Conn) *Client {
	return &Client{conn: conn, dec: json.NewDecoder(conn)}
}

// Close closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.conn.Close()
}

type clientRequest struct {
	JSONRPC string `json:"jsonrpc"`
	ID      uint64 `json:"id"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
}

type clientResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *Error          `json:"error"`
}

// Call calls method with params (nil for none; anything encoding/json marshals, including
// json.RawMessage) and decodes the result into result (nil to discard it; a
// *json.RawMessage keeps it raw). A JSON-RPC error is returned as *Error, which matches the
// rpc sentinels with errors.Is; other errors are transport or decoding failures.
func (c *Client) Call(ctx context.Context, method string, params any, result any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClientClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if raw, ok := params.(json.RawMessage); ok && len(raw) == 0 {
		params = nil // omit, rather than send a nil RawMessage as null
	}
	c.nextID++
	id := c.nextID
	req, err := json.Marshal(clientRequest{JSONRPC: "2.0", ID: id, Method: method, Params: params})
	if err != nil {
		return fmt.Errorf("rpc call %s: encode params: %w", method, err)
	}

	// ctx ending (deadline or cancel) forces a past I/O deadline, so that the error
	// returned is ctx.Err() rather than a bare timeout.
	c.conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	resp, err := c.roundTrip(append(req, '\n'))
	if canceled := !stop(); canceled || err != nil {
		// The deadline was forced or the stream broke: its position is unknown.
		c.closed = true
		c.conn.Close()
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return fmt.Errorf("rpc call %s: %w", method, err)
	}
	if !bytes.Equal(resp.ID, strconv.AppendUint(nil, id, 10)) {
		c.closed = true
		c.conn.Close()
		if resp.Error != nil {
			return resp.Error // e.g. a parse error, sent with id null
		}
		return fmt.Errorf("rpc call %s: response id %s, want %d", method, resp.ID, id)
	}
	if resp.Error != nil {
		return resp.Error
	}
	if result == nil || resp.Result == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Result, result); err != nil {
		return fmt.Errorf("rpc call %s: decode result: %w", method, err)
	}
	return nil
}

// roundTrip writes one request and reads one response.
//
// Preconditions: c.mu is held.
func (c *Client) roundTrip(req []byte) (*clientResponse, error) {
	if _, err := c.conn.Write(req); err != nil {
		return nil, err
	}
	var resp clientResponse
	if err := c.dec.Decode(&resp); err != nil {
		return nil, err
	}
	if resp.JSONRPC != "2.0" {
		return nil, fmt.Errorf("response is not JSON-RPC 2.0")
	}
	return &resp, nil
}
