package crypt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"sluice/engine/bdev"
	"sluice/engine/rpc"
)

func newRegistry(g *rig) *rpc.Registry {
	reg := rpc.NewRegistry(rpc.RegistryOptions{Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	bdev.RegisterRPC(reg, g.m, nil)
	RegisterRPC(reg, g.m, g.env)
	return reg
}

func invoke(t *testing.T, reg *rpc.Registry, method string, params any) (json.RawMessage, error) {
	t.Helper()
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return reg.Invoke(context.Background(), method, raw)
}

// TestRPC drives the module through its methods: create (format, then reopen), key info,
// rekey, delete; the JSON-RPC codes of a wrong key and of bad parameters; and the
// config dump, which records how to reopen a volume and never a secret.
func TestRPC(t *testing.T) {
	g := newRig(t)
	reg := newRegistry(g)
	dir := diskTempDir(t)
	if _, err := invoke(t, reg, "bdev_file_create", map[string]any{"name": "f", "filename": filepath.Join(dir, "vol"),
		"size_bytes": 4 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(t, reg, "bdev_malloc_create", map[string]any{"name": "m", "num_blocks": 512, "block_size": 4096}); err != nil {
		t.Fatal(err)
	}
	kf := keyFile(t)
	const pass = "a passphrase that must not leak"
	for _, bad := range []map[string]any{
		{"name": "c", "base_bdev_name": "f", "format": true},
		{"name": "c", "base_bdev_name": "f", "key_file": kf, "passphrase": pass},
		{"name": "c", "base_bdev_name": "f", "key_file": kf, "force": true},
		{"name": "c", "base_bdev_name": "f", "key_file": kf, "size": 1},
	} {
		if _, err := invoke(t, reg, "bdev_crypt_create", bad); rpc.AsError(err) == nil || rpc.AsError(err).Code != -32602 {
			t.Errorf("create %v: %v, want invalid params", bad, err)
		}
	}
	if _, err := invoke(t, reg, "bdev_crypt_create", map[string]any{"name": "c", "base_bdev_name": "f", "key_file": kf,
		"format": true, "block_size": 4096}); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(t, reg, "bdev_crypt_create", map[string]any{"name": "p", "base_bdev_name": "m", "passphrase": pass,
		"format": true}); err != nil {
		t.Fatal(err)
	}
	res, err := invoke(t, reg, "bdev_crypt_get_key_info", map[string]any{"name": "p"})
	if err != nil {
		t.Fatal(err)
	}
	var info KeyInfo
	if err := json.Unmarshal(res, &info); err != nil || info.KEKSource != "passphrase" || info.Cipher != "aes-256-xts" ||
		info.KDF == nil || info.Wrap != "aes-256-gcm" {
		t.Fatalf("key info %s (%v)", res, err)
	}
	res, err = invoke(t, reg, "bdev_get_bdevs", map[string]any{"name": "c"})
	if err != nil || !bytes.Contains(res, []byte(`"module":"crypt"`)) || !bytes.Contains(res, []byte(`"key_file":`)) {
		t.Fatalf("bdev_get_bdevs: %s %v", res, err)
	}

	cfg, err := reg.SaveConfig()
	if err != nil {
		t.Fatal(err)
	}
	dump, _ := json.Marshal(cfg)
	for _, leak := range []string{pass, `"format"`, `"force"`, `"passphrase"`} {
		if bytes.Contains(dump, []byte(leak)) {
			t.Fatalf("save_config holds %s:\n%s", leak, dump)
		}
	}
	if !bytes.Contains(dump, []byte(kf)) {
		t.Fatalf("save_config lost the key file path:\n%s", dump)
	}

	// Replay into a new daemon: the file volume reopens with the same identity; the
	// passphrase volume's record cannot, and says why.
	c, _ := g.m.Get("c")
	uuid := c.UUID()
	if _, err := invoke(t, reg, "bdev_crypt_delete", map[string]any{"name": "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(t, reg, "bdev_file_delete", map[string]any{"name": "f"}); err != nil {
		t.Fatal(err)
	}
	g2 := newRig(t)
	reg2 := newRegistry(g2)
	var fileOnly rpc.Config
	for _, s := range cfg.Subsystems {
		if s.Subsystem != "bdev" {
			fileOnly.Subsystems = append(fileOnly.Subsystems, s)
			continue
		}
		var calls []rpc.Call
		for _, call := range s.Config {
			if !strings.HasPrefix(call.Method, "bdev_malloc") && !bytes.Contains(call.Params, []byte(`"p"`)) {
				calls = append(calls, call)
			}
		}
		fileOnly.Subsystems = append(fileOnly.Subsystems, rpc.ConfigSection{Subsystem: "bdev", Config: calls})
	}
	js, _ := json.Marshal(fileOnly)
	if err := reg2.LoadConfig(context.Background(), bytes.NewReader(js)); err != nil {
		t.Fatalf("replay of the saved config: %v\n%s", err, js)
	}
	c2, err := g2.m.Get("c")
	if err != nil || c2.UUID() != uuid || c2.BlockSize() != 4096 {
		t.Fatalf("replayed crypt bdev: %v", err)
	}
	var pcall rpc.Call
	for _, call := range cfg.Subsystems[0].Config {
		if call.Method == "bdev_crypt_create" && bytes.Contains(call.Params, []byte(`"p"`)) {
			pcall = call
		}
	}
	if _, err := reg.Invoke(context.Background(), "bdev_crypt_delete", json.RawMessage(`{"name":"p"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Invoke(context.Background(), pcall.Method, pcall.Params); err == nil ||
		!strings.Contains(err.Error(), "give passphrase") {
		t.Fatalf("replay of a passphrase volume's record: %v, want a request for the passphrase", err)
	}

	// Wrong key: EACCES (-13); rekey through the RPC; delete of a non-crypt bdev refused.
	if _, err := invoke(t, reg, "bdev_crypt_create", map[string]any{"name": "p", "base_bdev_name": "m",
		"passphrase": "wrong"}); rpc.AsError(err) == nil || rpc.AsError(err).Code != -13 {
		t.Fatalf("wrong passphrase over RPC: %v, want code -13", err)
	}
	if _, err := invoke(t, reg, "bdev_crypt_create", map[string]any{"name": "p", "base_bdev_name": "m",
		"passphrase": pass}); err != nil {
		t.Fatal(err)
	}
	kf2 := keyFile(t)
	if _, err := invoke(t, reg, "bdev_crypt_rekey", map[string]any{"name": "p", "passphrase": pass,
		"new_key_file": kf2}); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(t, reg, "bdev_crypt_rekey", map[string]any{"name": "p", "key_file": kf2}); rpc.AsError(err) == nil ||
		rpc.AsError(err).Code != -32602 {
		t.Fatalf("rekey without a new KEK: %v", err)
	}
	cfg, _ = reg.SaveConfig()
	dump, _ = json.Marshal(cfg)
	if !bytes.Contains(dump, []byte(kf2)) {
		t.Fatalf("save_config after a rekey to a key file lacks it:\n%s", dump)
	}
	if _, err := invoke(t, reg, "bdev_crypt_delete", map[string]any{"name": "m"}); !errors.Is(err, rpc.ErrNotFound) {
		t.Fatalf("bdev_crypt_delete of a malloc bdev: %v", err)
	}
	if _, err := invoke(t, reg, "bdev_crypt_get_key_info", map[string]any{"name": "m"}); !errors.Is(err, rpc.ErrNotFound) {
		t.Fatalf("key info of a malloc bdev: %v", err)
	}
	if !errors.Is(ErrWrongKey, fs.ErrPermission) {
		t.Fatal("ErrWrongKey does not map to EACCES")
	}
}
