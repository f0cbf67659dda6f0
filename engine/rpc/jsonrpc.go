package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// The JSON-RPC 2.0 message layer (https://www.jsonrpc.org/specification): one message in,
// at most one message out, no I/O. The server and FuzzDecodeRequest drive it.

// maxBatch bounds the requests of one batch (the specification sets no limit).
const maxBatch = 1024

// response is a JSON-RPC 2.0 response object (specification section 5). Exactly one of
// Result and Error is set; ID is "null" when the request's id could not be read.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

var nullID = json.RawMessage("null")

// serveMessage answers one JSON text: a request object or a batch (an array of them). It
// returns the encoded response, or nil when nothing must be sent (a notification, or a
// batch of notifications). It never panics on any input.
func (r *Registry) serveMessage(ctx context.Context, msg []byte) []byte {
	if !json.Valid(msg) {
		return encodeResponse(errorResponse(nullID, errorf(CodeParseError, "parse error: invalid JSON")))
	}
	msg = trimJSONSpace(msg)
	if msg[0] != '[' {
		resp := r.serveRequest(ctx, msg)
		if resp == nil {
			return nil
		}
		return encodeResponse(resp)
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(msg, &batch); err != nil {
		return encodeResponse(errorResponse(nullID, errorf(CodeParseError, "parse error: %v", err)))
	}
	switch {
	case len(batch) == 0:
		return encodeResponse(errorResponse(nullID,
			errorf(CodeInvalidRequest, "invalid request: empty batch")))
	case len(batch) > maxBatch:
		return encodeResponse(errorResponse(nullID, errorf(CodeInvalidRequest,
			"invalid request: batch of %d requests exceeds %d", len(batch), maxBatch)))
	}
	var out [][]byte
	for _, req := range batch {
		if resp := r.serveRequest(ctx, req); resp != nil {
			out = append(out, encodeResponse(resp))
		}
	}
	if len(out) == 0 {
		return nil
	}
	b := append([]byte{'['}, bytes.Join(out, []byte{','})...)
	return append(b, ']')
}

// serveRequest answers one request object; nil means a notification (no response).
func (r *Registry) serveRequest(ctx context.Context, raw json.RawMessage) *response {
	req, rerr := parseRequest(raw)
	if rerr != nil {
		return errorResponse(req.id, rerr)
	}
	notification := req.id == nil
	m := r.lookup(req.method)
	if m == nil {
		if notification {
			return nil
		}
		return errorResponse(req.id, errorf(CodeMethodNotFound, "method not found: %s", req.method))
	}
	res, err := r.run(ctx, req.method, m, req.params)
	if notification {
		if err != nil {
			r.log.Debug("rpc notification failed", "method", req.method, "err", err)
		}
		return nil
	}
	if err != nil {
		return errorResponse(req.id, AsError(err))
	}
	b, err := json.Marshal(res)
	if err != nil {
		return errorResponse(req.id, errorf(CodeInternalError,
			"internal error: method %s: encode result: %v", req.method, err))
	}
	return &response{JSONRPC: "2.0", ID: req.id, Result: b}
}

type request struct {
	id     json.RawMessage // nil: absent (a notification); else a string, number or null
	method string
	params json.RawMessage
}

// parseRequest checks a request object (specification section 4). On error it still
// returns the id when the id itself was readable, so that a client can match the error to
// its request; otherwise the id is null.
func parseRequest(raw json.RawMessage) (request, *Error) {
	req := request{id: nullID}
	var members map[string]json.RawMessage
	if firstByte(raw) != '{' || json.Unmarshal(raw, &members) != nil {
		return req, errorf(CodeInvalidRequest, "invalid request: not a JSON object")
	}
	id, hasID := members["id"]
	if hasID {
		switch c := firstByte(id); {
		case c == '"', c == '-', c >= '0' && c <= '9', isNull(id):
			req.id = id
		default:
			return req, errorf(CodeInvalidRequest, "invalid request: id must be a string, number or null")
		}
	}
	// Unknown members are refused rather than ignored: "param" for "params" would
	// otherwise call the method with no params.
	for _, k := range sortedKeys(members) {
		switch k {
		case "jsonrpc", "method", "params", "id":
		default:
			return req, errorf(CodeInvalidRequest, "invalid request: unknown member %q", k)
		}
	}
	var version string
	if json.Unmarshal(members["jsonrpc"], &version) != nil || version != "2.0" {
		return req, errorf(CodeInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`)
	}
	if json.Unmarshal(members["method"], &req.method) != nil || req.method == "" {
		return req, errorf(CodeInvalidRequest, `invalid request: "method" must be a non-empty string`)
	}
	if p, ok := members["params"]; ok && !isNull(p) {
		if c := firstByte(p); c != '{' && c != '[' {
			return req, errorf(CodeInvalidRequest, `invalid request: "params" must be an object or an array`)
		}
		req.params = p
	}
	if !hasID {
		req.id = nil
	}
	return req, nil
}

func errorResponse(id json.RawMessage, e *Error) *response {
	if id == nil {
		id = nullID
	}
	return &response{JSONRPC: "2.0", ID: id, Error: e}
}

// encodeResponse never fails: a handler's error data that does not encode is dropped, and
// the client is told so, rather than leaving the request unanswered.
func encodeResponse(resp *response) []byte {
	b, err := json.Marshal(resp)
	if err == nil {
		return b
	}
	fallback := &response{JSONRPC: "2.0", ID: resp.ID, Error: errorf(CodeInternalError,
		"internal error: encode response: %v", err)}
	if resp.Error != nil {
		fallback.Error = &Error{Code: resp.Error.Code, Message: resp.Error.Message}
	}
	b, err = json.Marshal(fallback)
	if err != nil {
		panic(fmt.Sprintf("rpc: encode response: %v", err)) // only strings and ints left
	}
	return b
}
