package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/engine/rpc"
)

type createParams struct {
	Name      string `json:"name" rpc:"required"`
	NumBlocks uint64 `json:"num_blocks" rpc:"required"`
	BlockSize uint32 `json:"block_size,omitempty"`
}

// startDaemon serves a registry with a toy bdev module on a fresh socket.
func startDaemon(t *testing.T) string {
	t.Helper()
	reg := rpc.NewRegistry(rpc.RegistryOptions{Version: "v0.1.0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var mu sync.Mutex
	var bdevs []createParams
	rpc.Handle(reg, "bdev_fake_create", func(_ context.Context, p createParams) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bdevs {
			if b.Name == p.Name {
				return "", fmt.Errorf("bdev %q: %w", p.Name, rpc.ErrExists)
			}
		}
		bdevs = append(bdevs, p)
		return p.Name, nil
	})
	rpc.Handle(reg, "bdev_fake_get_bdevs", func(context.Context, struct{}) ([]createParams, error) {
		mu.Lock()
		defer mu.Unlock()
		return append([]createParams(nil), bdevs...), nil
	})
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	ln, err := rpc.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(reg, rpc.ServerOptions{})
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return path
}

func TestExecute(t *testing.T) {
	sock := startDaemon(t)
	run := func(method string, args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		opts := options{socket: sock, output: formatAuto, timeout: 5 * time.Second, method: method, args: args}
		code := execute(context.Background(), opts, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	for _, tt := range []struct {
		method         string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"bdev_fake_create", []string{"name=Malloc0", "num_blocks=64"}, 0, "\"Malloc0\"\n", ""},
		{"bdev_fake_create", []string{"--json", `{"name":"Malloc1","num_blocks":8}`, "block_size=4096"}, 0, "\"Malloc1\"\n", ""},
		{"bdev_fake_create", []string{"name=Malloc0", "num_blocks=64"}, 1, "", "error -17: bdev \"Malloc0\": already exists\n"},
		{"bdev_fake_create", []string{"name=x", "num_blocks=big"}, 1, "",
			"error -32602: invalid params: field \"num_blocks\": want uint64, got string\n"},
		{"bdev_fake_create", nil, 1, "",
			"error -32602: invalid params: missing params (required: name, num_blocks)\n"},
		{"bdev_fake_get_bdevs", nil, 0, "NAME     NUM_BLOCKS  BLOCK_SIZE\nMalloc0  64          -\nMalloc1  8           4096\n", ""},
		{"no_such_method", nil, 1, "", "error -32601: method not found: no_such_method\n"},
		{"methods", nil, 0, "bdev_fake_create\nbdev_fake_get_bdevs\nrpc_get_methods\nsave_config\nsluice_get_version\n", ""},
		{"bdev_fake_create", []string{"oops"}, 2, "", "sluicectl: argument \"oops\": want key=value or --json '{...}'\n"},
	} {
		code, stdout, stderr := run(tt.method, tt.args...)
		if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
			t.Errorf("sluicectl %s %q:\n got %d %q %q\nwant %d %q %q",
				tt.method, tt.args, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
		}
	}
	code, stdout, _ := run("version")
	if code != 0 || !strings.Contains(stdout, `"version": "sluice v0.1.0"`) {
		t.Errorf("version: %d %s", code, stdout)
	}
}

func TestExecuteNoDaemon(t *testing.T) {
	var stdout, stderr bytes.Buffer
	opts := options{socket: filepath.Join(t.TempDir(), "none.sock"), output: formatAuto, timeout: time.Second, method: "x_y"}
	if code := execute(context.Background(), opts, &stdout, &stderr); code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	if !strings.HasPrefix(stderr.String(), "error: rpc dial ") || !strings.Contains(stderr.String(), "SLUICE_RPC_SOCK") {
		t.Errorf("stderr %q", stderr.String())
	}
}
