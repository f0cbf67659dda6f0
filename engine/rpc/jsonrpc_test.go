package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestServeMessage(t *testing.T) {
	reg, _ := testRegistry(t)
	tests := []struct {
		name string
		in   string
		want string // "" means no response
	}{
		{"call", `{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"value":[1,2]}}`,
			`{"jsonrpc":"2.0","id":1,"result":[1,2]}`},
		{"string id", `{"jsonrpc":"2.0","id":"a-1","method":"test_echo"}`,
			`{"jsonrpc":"2.0","id":"a-1","result":null}`},
		{"null id is a call", `{"jsonrpc":"2.0","id":null,"method":"test_echo"}`,
			`{"jsonrpc":"2.0","id":null,"result":null}`},
		{"id echoed verbatim", `{"jsonrpc":"2.0","id":12345678901234567890,"method":"test_echo"}`,
			`{"jsonrpc":"2.0","id":12345678901234567890,"result":null}`},
		{"null params are absent", `{"jsonrpc":"2.0","id":1,"method":"test_echo_raw","params":null}`,
			`{"jsonrpc":"2.0","id":1,"result":null}`},
		{"raw handler gets array", `{"jsonrpc":"2.0","id":1,"method":"test_echo_raw","params":[1,"x"]}`,
			`{"jsonrpc":"2.0","id":1,"result":[1,"x"]}`},
		{"notification", `{"jsonrpc":"2.0","method":"test_echo"}`, ``},
		{"failed notification", `{"jsonrpc":"2.0","method":"test_fail"}`, ``},
		{"notification of unknown method", `{"jsonrpc":"2.0","method":"no_such"}`, ``},
		{"parse error", `{"jsonrpc":"2.0",`,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: invalid JSON"}}`},
		{"empty", ``,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: invalid JSON"}}`},
		{"not an object", `5`,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: not a JSON object"}}`},
		{"wrong version", `{"jsonrpc":"1.0","id":7,"method":"test_echo"}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"invalid request: \"jsonrpc\" must be \"2.0\""}}`},
		{"missing version", `{"id":7,"method":"test_echo"}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"invalid request: \"jsonrpc\" must be \"2.0\""}}`},
		{"method not a string", `{"jsonrpc":"2.0","id":7,"method":1}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"invalid request: \"method\" must be a non-empty string"}}`},
		{"bad id type", `{"jsonrpc":"2.0","id":{},"method":"test_echo"}`,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: id must be a string, number or null"}}`},
		{"scalar params", `{"jsonrpc":"2.0","id":7,"method":"test_echo","params":3}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"invalid request: \"params\" must be an object or an array"}}`},
		{"unknown member", `{"jsonrpc":"2.0","id":7,"method":"test_echo","param":{}}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"invalid request: unknown member \"param\""}}`},
		{"invalid notification is answered", `{"jsonrpc":"2.0","method":5}`,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: \"method\" must be a non-empty string"}}`},
		{"method not found", `{"jsonrpc":"2.0","id":7,"method":"no_such"}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"method not found: no_such"}}`},
		{"invalid params", `{"jsonrpc":"2.0","id":7,"method":"bdev_fake_create","params":{"name":"a","num_blocks":1,"nmae":"b"}}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"invalid params: unknown field \"nmae\""}}`},
		{"sentinel mapped", `{"jsonrpc":"2.0","id":7,"method":"bdev_fake_delete","params":{"name":"nope"}}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-19,"message":"bdev \"nope\": not found"}}`},
		{"unmapped error", `{"jsonrpc":"2.0","id":7,"method":"test_fail"}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"plain failure"}}`},
		{"panic", `{"jsonrpc":"2.0","id":7,"method":"test_panic"}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"internal error: method test_panic panicked: boom"}}`},
		{"empty batch", `[]`,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: empty batch"}}`},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"value":1}},
			{"jsonrpc":"2.0","method":"test_echo"},
			1,
			{"jsonrpc":"2.0","id":2,"method":"no_such"}]`,
			`[{"jsonrpc":"2.0","id":1,"result":1},` +
				`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: not a JSON object"}},` +
				`{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"method not found: no_such"}}]`},
		{"batch of notifications", `[{"jsonrpc":"2.0","method":"test_echo"},{"jsonrpc":"2.0","method":"test_fail"}]`, ``},
		{"nested batch", `[[]]`,
			`[{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: not a JSON object"}}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := reg.serveMessage(context.Background(), []byte(tt.in))
			if string(got) != tt.want {
				t.Errorf("serveMessage(%s)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestServeMessageBatchLimit(t *testing.T) {
	reg, _ := testRegistry(t)
	var b strings.Builder
	b.WriteString("[")
	for i := range maxBatch + 1 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"jsonrpc":"2.0","method":"test_echo"}`)
	}
	b.WriteString("]")
	got := reg.serveMessage(context.Background(), []byte(b.String()))
	want := fmt.Sprintf(`"code":-32600,"message":"invalid request: batch of %d requests exceeds %d"`, maxBatch+1, maxBatch)
	if !strings.Contains(string(got), want) {
		t.Errorf("got %s, want it to contain %s", got, want)
	}
}

func TestPanicIsLogged(t *testing.T) {
	var logs bytes.Buffer
	reg := NewRegistry(RegistryOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	reg.HandleRaw("test_panic", func(context.Context, json.RawMessage) (any, error) {
		panic("boom")
	})
	got := reg.serveMessage(context.Background(), []byte(`{"jsonrpc":"2.0","id":1,"method":"test_panic"}`))
	if !strings.Contains(string(got), `"code":-32603`) {
		t.Errorf("response %s, want -32603", got)
	}
	if !strings.Contains(logs.String(), "rpc handler panicked") || !strings.Contains(logs.String(), "boom") {
		t.Errorf("log %q does not record the panic", logs.String())
	}
}

func TestHandlerErrorData(t *testing.T) {
	reg := NewRegistry(RegistryOptions{Logger: quietLogger})
	reg.HandleRaw("test_data", func(context.Context, json.RawMessage) (any, error) {
		return nil, fmt.Errorf("ctx: %w", &Error{Code: -5, Message: "io", Data: json.RawMessage(`{"lba":7}`)})
	})
	reg.HandleRaw("test_bad_data", func(context.Context, json.RawMessage) (any, error) {
		return nil, &Error{Code: -5, Message: "io", Data: json.RawMessage(`{`)}
	})
	reg.HandleRaw("test_bad_result", func(context.Context, json.RawMessage) (any, error) {
		return func() {}, nil
	})
	for _, tt := range []struct{ method, want string }{
		{"test_data", `{"jsonrpc":"2.0","id":1,"error":{"code":-5,"message":"ctx: io","data":{"lba":7}}}`},
		{"test_bad_data", `{"jsonrpc":"2.0","id":1,"error":{"code":-5,"message":"io"}}`},
		{"test_bad_result", `{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"internal error: method test_bad_result: encode result: json: unsupported type: func()"}}`},
	} {
		got := reg.serveMessage(context.Background(), []byte(`{"jsonrpc":"2.0","id":1,"method":"`+tt.method+`"}`))
		if string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.method, got, tt.want)
		}
	}
}

func TestBuiltins(t *testing.T) {
	reg, _ := testRegistry(t)
	ctx := context.Background()
	out, err := reg.Invoke(ctx, "rpc_get_methods", nil)
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	if err := json.Unmarshal(out, &methods); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"rpc_get_methods", "save_config", "sluice_get_version", "bdev_fake_create"} {
		if !slices.Contains(methods, m) {
			t.Errorf("rpc_get_methods = %v, missing %s", methods, m)
		}
	}
	for i := 1; i < len(methods); i++ {
		if methods[i-1] >= methods[i] {
			t.Errorf("rpc_get_methods not sorted: %v", methods)
		}
	}
	if _, err := reg.Invoke(ctx, "rpc_get_methods", json.RawMessage(`{"current":true}`)); AsError(err).Code != CodeInvalidParams {
		t.Errorf("rpc_get_methods with unknown param: err %v, want -32602", err)
	}

	out, err = reg.Invoke(ctx, "sluice_get_version", nil)
	if err != nil {
		t.Fatal(err)
	}
	var v VersionInfo
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	want := VersionFields{Major: 1, Minor: 2, Patch: 3, Suffix: "-pre"}
	if v.Version != "sluice v1.2.3-pre" || v.Fields == nil || *v.Fields != want || v.Go == "" {
		t.Errorf("sluice_get_version = %s", out)
	}
}

func TestParseVersion(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want *VersionFields
	}{
		{"v0.1.0", &VersionFields{0, 1, 0, ""}},
		{"24.01", &VersionFields{24, 1, 0, ""}},
		{"v1.2.3-rc1+dirty", &VersionFields{1, 2, 3, "-rc1+dirty"}},
		{"", nil},
		{"devel", nil},
		{"v1", nil},
		{"v1.-2.3", nil},
	} {
		got := parseVersion(tt.in)
		if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
			t.Errorf("parseVersion(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
