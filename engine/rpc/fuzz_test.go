package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// FuzzDecodeRequest drives the request decoding path (serveMessage) with arbitrary bytes.
// Properties: it never panics; the output is nothing or one valid JSON-RPC 2.0 response
// (or a batch of them); invalid JSON gets -32700; a single request object with a usable id
// gets a response with that same id.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"rpc_get_methods"}`,
		`{"jsonrpc":"2.0","id":"x","method":"bdev_fake_create","params":{"name":"a","num_blocks":8}}`,
		`{"jsonrpc":"2.0","method":"test_echo","params":{"value":[1,{"a":null}]}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"test_panic"},{"jsonrpc":"2.0","method":"test_fail"}]`,
		`{"jsonrpc":"2.0","id":-1.5e3,"method":"test_echo_raw","params":[true]}`,
		`{"jsonrpc":"2.0","id":{},"method":"x"}`,
		`[]`, `[[]]`, `{`, `null`, `"a"`,
	} {
		f.Add([]byte(seed))
	}
	reg, _ := testRegistry(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		out := reg.serveMessage(context.Background(), in)
		if !json.Valid(in) {
			var r response
			if err := json.Unmarshal(out, &r); err != nil || r.Error == nil || r.Error.Code != CodeParseError {
				t.Fatalf("invalid JSON %q answered with %s", in, out)
			}
			return
		}
		if out == nil {
			return // notifications
		}
		trimmed := trimJSONSpace(in)
		if out[0] == '[' {
			var rs []response
			if err := json.Unmarshal(out, &rs); err != nil || len(rs) == 0 {
				t.Fatalf("batch answer %s: %v", out, err)
			}
			for _, r := range rs {
				checkResponse(t, in, r)
			}
			return
		}
		var r response
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("answer %s: %v", out, err)
		}
		checkResponse(t, in, r)
		if trimmed[0] == '{' {
			var req map[string]json.RawMessage
			if json.Unmarshal(trimmed, &req) == nil {
				if id := req["id"]; len(id) > 0 && validID(id) && !bytes.Equal(r.ID, id) {
					t.Fatalf("request id %s answered with id %s", id, r.ID)
				}
			}
		}
	})
}

func checkResponse(t *testing.T, in []byte, r response) {
	t.Helper()
	if r.JSONRPC != "2.0" || r.ID == nil || (r.Result == nil) == (r.Error == nil) {
		t.Fatalf("input %q: malformed response %+v", in, r)
	}
	if r.Error != nil && r.Error.Message == "" {
		t.Fatalf("input %q: error without a message", in)
	}
}

func validID(id json.RawMessage) bool {
	c := id[0]
	return c == '"' || c == '-' || c >= '0' && c <= '9' || bytes.Equal(id, nullID)
}
