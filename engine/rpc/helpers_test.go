package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"testing"
	"time"
)

// quietLogger discards logs; tests that check logging build their own.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeBdevs is a toy module: the state a real module keeps on its reactors, reduced to a
// map, with create/delete/get methods and a config section, registered the way modules do.
type fakeBdevs struct {
	mu sync.Mutex
	// +checklocks:mu
	bdevs map[string]fakeBdev
}

type fakeBdev struct {
	Name      string `json:"name"`
	NumBlocks uint64 `json:"num_blocks"`
	BlockSize uint32 `json:"block_size"`
	UUID      string `json:"uuid,omitempty"`
}

type fakeCreateParams struct {
	Name      string `json:"name" rpc:"required"`
	NumBlocks uint64 `json:"num_blocks" rpc:"required"`
	BlockSize uint32 `json:"block_size,omitempty"`
	UUID      string `json:"uuid,omitempty"`
}

func (p *fakeCreateParams) Validate() error {
	if p.BlockSize != 0 && p.BlockSize%512 != 0 {
		return fmt.Errorf("block_size %d is not a multiple of 512", p.BlockSize)
	}
	return nil
}

type fakeNameParams struct {
	Name string `json:"name" rpc:"required"`
}

func (m *fakeBdevs) register(reg *Registry) {
	Handle(reg, "bdev_fake_create", func(_ context.Context, p fakeCreateParams) (string, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.bdevs[p.Name]; ok {
			return "", fmt.Errorf("bdev %q: %w", p.Name, ErrExists)
		}
		if p.BlockSize == 0 {
			p.BlockSize = 512
		}
		m.bdevs[p.Name] = fakeBdev(p)
		return p.Name, nil
	})
	Handle(reg, "bdev_fake_delete", func(_ context.Context, p fakeNameParams) (bool, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.bdevs[p.Name]; !ok {
			return false, fmt.Errorf("bdev %q: %w", p.Name, ErrNotFound)
		}
		delete(m.bdevs, p.Name)
		return true, nil
	})
	Handle(reg, "bdev_fake_get_bdevs", func(_ context.Context, _ struct{}) ([]fakeBdev, error) {
		return m.list(), nil
	})
	reg.RegisterConfigSection("bdev", 10, m.dump)
}

func (m *fakeBdevs) list() []fakeBdev {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]fakeBdev, 0, len(m.bdevs))
	for _, b := range m.bdevs {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *fakeBdevs) dump() ([]Call, error) {
	var calls []Call
	for _, b := range m.list() {
		c, err := NewCall("bdev_fake_create", fakeCreateParams(b))
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
	}
	return calls, nil
}

// testRegistry returns a registry with the built-ins, the fake bdev module and a few
// methods that exercise the error paths.
func testRegistry(t testing.TB) (*Registry, *fakeBdevs) {
	t.Helper()
	reg := NewRegistry(RegistryOptions{Version: "v1.2.3-pre", Logger: quietLogger})
	reg.writeFile = func(string, []byte) error { return fmt.Errorf("test registry writes no files") }
	m := &fakeBdevs{bdevs: map[string]fakeBdev{}}
	m.register(reg)
	type echoParams struct {
		Value json.RawMessage `json:"value,omitempty"`
	}
	Handle(reg, "test_echo", func(_ context.Context, p echoParams) (json.RawMessage, error) {
		if p.Value == nil {
			return json.RawMessage("null"), nil
		}
		return p.Value, nil
	})
	reg.HandleRaw("test_echo_raw", func(_ context.Context, p json.RawMessage) (any, error) {
		return p, nil
	})
	reg.HandleRaw("test_panic", func(context.Context, json.RawMessage) (any, error) {
		panic("boom")
	})
	reg.HandleRaw("test_fail", func(context.Context, json.RawMessage) (any, error) {
		return nil, fmt.Errorf("plain failure")
	})
	return reg, m
}

// addBlockingMethods adds a method that waits: kept out of testRegistry so that the fuzz
// target cannot call them.
func addBlockingMethods(reg *Registry) {
	type sleepParams struct {
		Ms int `json:"ms" rpc:"required"`
	}
	Handle(reg, "test_sleep", func(ctx context.Context, p sleepParams) (bool, error) {
		select {
		case <-time.After(time.Duration(p.Ms) * time.Millisecond):
			return true, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	})
}

// shortTempDir returns a directory whose paths fit a Unix socket name (108 bytes), which
// t.TempDir's (named after the test) may not.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rpc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
