package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeNVMf is a second section that depends on the first: a subsystem namespace names a
// bdev, so bdev must replay before nvmf whatever the file order.
type fakeNVMf struct {
	bdevs *fakeBdevs
	mu    sync.Mutex
	// +checklocks:mu
	subsystems []fakeSubsystem
}

type fakeSubsystem struct {
	NQN  string `json:"nqn" rpc:"required"`
	Bdev string `json:"bdev" rpc:"required"`
}

func (n *fakeNVMf) register(reg *Registry) {
	Handle(reg, "nvmf_fake_create_subsystem", func(_ context.Context, p fakeSubsystem) (bool, error) {
		if _, ok := n.bdevs.list2()[p.Bdev]; !ok {
			return false, fmt.Errorf("bdev %q: %w", p.Bdev, ErrNotFound)
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		n.subsystems = append(n.subsystems, p)
		return true, nil
	})
	reg.RegisterConfigSection("nvmf", 20, func() ([]Call, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		var calls []Call
		for _, s := range n.subsystems {
			c, err := NewCall("nvmf_fake_create_subsystem", s)
			if err != nil {
				return nil, err
			}
			calls = append(calls, c)
		}
		return calls, nil
	})
}

func (m *fakeBdevs) list2() map[string]fakeBdev {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]fakeBdev{}
	for k, v := range m.bdevs {
		out[k] = v
	}
	return out
}

func configRegistry(t *testing.T) (*Registry, *fakeBdevs, *fakeNVMf) {
	reg, m := testRegistry(t)
	n := &fakeNVMf{bdevs: m}
	n.register(reg)
	reg.RegisterConfigSection("empty", 30, func() ([]Call, error) { return nil, nil })
	return reg, m, n
}

// The nvmf section comes first in the file: replay follows registered order.
const testConfig = `{
  "subsystems": [
    {
      "subsystem": "nvmf",
      "config": [
        {"method": "nvmf_fake_create_subsystem", "params": {"nqn": "nqn.2016-06.io.sluice:cnode1", "bdev": "Malloc0"}}
      ]
    },
    {
      "subsystem": "bdev",
      "config": [
        {"method": "bdev_fake_create", "params": {"name": "Malloc0", "num_blocks": 32768, "block_size": 4096}},
        {"method": "bdev_fake_create", "params": {"name": "Malloc1", "num_blocks": 16, "block_size": 512, "uuid": "u1"}}
      ]
    }
  ]
}`

func TestConfigRoundTrip(t *testing.T) {
	reg, m, n := configRegistry(t)
	if err := reg.LoadConfig(context.Background(), strings.NewReader(testConfig)); err != nil {
		t.Fatal(err)
	}
	if len(m.list()) != 2 || len(n.subsystems) != 1 {
		t.Fatalf("state after load: %v %v", m.list(), n.subsystems)
	}
	saved, err := reg.SaveConfig()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(saved)
	want := `{"subsystems":[` +
		`{"subsystem":"bdev","config":[` +
		`{"method":"bdev_fake_create","params":{"name":"Malloc0","num_blocks":32768,"block_size":4096}},` +
		`{"method":"bdev_fake_create","params":{"name":"Malloc1","num_blocks":16,"block_size":512,"uuid":"u1"}}]},` +
		`{"subsystem":"nvmf","config":[` +
		`{"method":"nvmf_fake_create_subsystem","params":{"nqn":"nqn.2016-06.io.sluice:cnode1","bdev":"Malloc0"}}]},` +
		`{"subsystem":"empty","config":[]}]}`
	if string(got) != want {
		t.Errorf("save after load:\n got %s\nwant %s", got, want)
	}

	// Loading the saved config into a fresh daemon gives the same state and the same save.
	reg2, _, _ := configRegistry(t)
	if err := reg2.LoadConfig(context.Background(), bytes.NewReader(got)); err != nil {
		t.Fatal(err)
	}
	saved2, err := reg2.SaveConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got2, _ := json.Marshal(saved2); string(got2) != string(got) {
		t.Errorf("second round trip differs:\n%s\n%s", got2, got)
	}

	// save_config over RPC returns the same object.
	out, err := reg.Invoke(context.Background(), "save_config", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(got) {
		t.Errorf("save_config = %s", out)
	}
}

func TestLoadConfigValidation(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     []string
	}{
		{"not json", `{"subsystems": [`, []string{"config: unexpected EOF"}},
		{"trailing data", `{"subsystems": []} {}`, []string{"config: unexpected data after the top-level object"}},
		{"unknown top-level member", `{"subsystem": []}`, []string{`config: unknown field "subsystem"`}},
		{"unknown call member", `{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_fake_create","parms":{}}]}]}`,
			[]string{`config: unknown field "parms"`}},
		{"many problems", `{"subsystems":[
			{"subsystem":"bdevs","config":[]},
			{"subsystem":"bdev","config":[
				{"method":"bdev_fake_create","params":{"name":"a","num_blocks":1}},
				{"method":"bdev_fake_craete","params":{"name":"b","num_blocks":1}},
				{"method":"bdev_fake_create","params":{"name":"c","num_blocks":"many"}},
				{"method":"bdev_fake_create","params":{"name":"d"}},
				{"method":"bdev_fake_create","params":7},
				{"params":{}}]},
			{"subsystem":"bdev","config":[]}]}`,
			[]string{
				"config: invalid, nothing applied:",
				`subsystem "bdevs" (section 0): unknown subsystem`,
				`subsystem "bdev" call 1 (bdev_fake_craete): error -32601: method not found: bdev_fake_craete`,
				`subsystem "bdev" call 2 (bdev_fake_create): error -32602: invalid params: field "num_blocks": want uint64, got string`,
				`subsystem "bdev" call 3 (bdev_fake_create): error -32602: invalid params: missing required field "num_blocks"`,
				`subsystem "bdev" call 4 (bdev_fake_create): error -32602: invalid params: params must be an object or an array`,
				`subsystem "bdev" call 5 (): error -32600: missing method`,
				`subsystem "bdev" (section 2): appears twice`,
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg, m, _ := configRegistry(t)
			err := reg.LoadConfig(context.Background(), strings.NewReader(tt.in))
			if err == nil {
				t.Fatal("LoadConfig succeeded")
			}
			if got := strings.Split(err.Error(), "\n"); !equalLines(got, tt.want) {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
			if len(m.list()) != 0 {
				t.Errorf("applied %v despite invalid config", m.list())
			}
		})
	}
}

func TestLoadConfigTooManyErrors(t *testing.T) {
	reg, _, _ := configRegistry(t)
	var calls []string
	for range 30 {
		calls = append(calls, `{"method":"no_such_method"}`)
	}
	in := `{"subsystems":[{"subsystem":"bdev","config":[` + strings.Join(calls, ",") + `]}]}`
	err := reg.LoadConfig(context.Background(), strings.NewReader(in))
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 1+maxConfigErrors+1 || lines[len(lines)-1] != "and 10 more errors" {
		t.Errorf("error has %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestLoadConfigStopsAtFirstFailure(t *testing.T) {
	reg, m, n := configRegistry(t)
	in := `{"subsystems":[
		{"subsystem":"bdev","config":[
			{"method":"bdev_fake_create","params":{"name":"a","num_blocks":1}},
			{"method":"bdev_fake_create","params":{"name":"a","num_blocks":2}},
			{"method":"bdev_fake_create","params":{"name":"b","num_blocks":1}}]},
		{"subsystem":"nvmf","config":[{"method":"nvmf_fake_create_subsystem","params":{"nqn":"n","bdev":"a"}}]}]}`
	err := reg.LoadConfig(context.Background(), strings.NewReader(in))
	want := `config: subsystem "bdev" call 1 (bdev_fake_create): bdev "a": already exists`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if !errors.Is(err, ErrExists) {
		t.Errorf("errors.Is(err, ErrExists) = false")
	}
	if got := m.list(); len(got) != 1 || got[0].Name != "a" || len(n.subsystems) != 0 {
		t.Errorf("state %v %v, want only bdev a", got, n.subsystems)
	}
}

func TestSaveConfigChecksDump(t *testing.T) {
	reg, _, _ := configRegistry(t)
	reg.RegisterConfigSection("broken", 40, func() ([]Call, error) {
		return []Call{{Method: "bdev_fake_create", Params: json.RawMessage(`{"name":"x"}`)}}, nil
	})
	_, err := reg.SaveConfig()
	want := `save config: subsystem "broken" call 0 (bdev_fake_create): error -32602: invalid params: missing required field "num_blocks"`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}

	reg2, _, _ := configRegistry(t)
	reg2.RegisterConfigSection("failing", 40, func() ([]Call, error) {
		return nil, fmt.Errorf("reactor 3: %w", ErrTimeout)
	})
	_, err = reg2.Invoke(context.Background(), "save_config", nil)
	if !errors.Is(err, ErrTimeout) || AsError(err).Code != -110 {
		t.Errorf("err = %v, want a timeout", err)
	}
}

func TestSaveConfigToFile(t *testing.T) {
	reg, _, _ := configRegistry(t)
	reg.writeFile = writeFileAtomic
	if err := reg.LoadConfig(context.Background(), strings.NewReader(testConfig)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := reg.Invoke(context.Background(), "save_config", json.RawMessage(`{"path":"`+path+`"}`))
	if err != nil || string(out) != "true" {
		t.Fatalf("save_config = %s, %v", out, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want 1 (temp file left?)", len(entries))
	}
	// The file loads back into a fresh registry.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reg2, m2, _ := configRegistry(t)
	if err := reg2.LoadConfig(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	if len(m2.list()) != 2 {
		t.Errorf("reloaded %v", m2.list())
	}

	_, err = reg.Invoke(context.Background(), "save_config", json.RawMessage(`{"path":"rel.json"}`))
	if want := `error -32602: invalid params: path "rel.json" is not absolute`; err == nil || err.Error() != want {
		t.Errorf("relative path: %v, want %s", err, want)
	}
	_, err = reg.Invoke(context.Background(), "save_config",
		json.RawMessage(`{"path":"`+filepath.Join(dir, "missing", "x.json")+`"}`))
	if AsError(err).Code != -2 {
		t.Errorf("save to a missing directory: %v, want -2", err)
	}
}

func equalLines(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
