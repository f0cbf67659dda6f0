package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// FuzzLoadConfig feeds arbitrary config files to LoadConfig. Properties: it never
// panics; a file that fails validation applies nothing (no module state changes); a
// file that loads round-trips through SaveConfig into a file that loads again.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(`{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_fake_create","params":{"name":"a","num_blocks":8}}]}]}`))
	f.Add([]byte(`{"subsystems":[{"subsystem":"nvmf","config":[{"method":"nvmf_fake_create_subsystem","params":{"nqn":"n","bdev":"a"}}]},` +
		`{"subsystem":"bdev","config":[{"method":"bdev_fake_create","params":{"name":"a","num_blocks":8,"block_size":4096}}]}]}`))
	f.Add([]byte(`{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_fake_create","params":{"name":"a","num_blocks":"x"}}]}]}`))
	f.Add([]byte(`{"subsystems":[{"subsystem":"bdev","config":[{"method":"no_such_method"}]}]}`))
	f.Add([]byte(`{"subsystems":[]}`))
	f.Add([]byte(`{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_fake_create","params":{"name":"a","num_blocks":8,"extra":1}}]}]}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, file []byte) {
		reg := NewRegistry(RegistryOptions{Logger: quietLogger})
		bdevs := &fakeBdevs{bdevs: map[string]fakeBdev{}}
		bdevs.register(reg)
		nv := &fakeNVMf{bdevs: bdevs}
		nv.register(reg)
		err := reg.LoadConfig(context.Background(), bytes.NewReader(file))
		if err != nil {
			if cfg, derr := decodeConfig(bytes.NewReader(file)); derr != nil || reg.validateConfig(cfg) != nil {
				if len(bdevs.list()) != 0 || len(nv.subsystems) != 0 {
					t.Fatalf("a config refused before replay changed state: %v", err)
				}
			}
			return
		}
		saved, err := reg.SaveConfig()
		if err != nil {
			t.Fatalf("loaded config does not save: %v", err)
		}
		b, err := json.Marshal(saved)
		if err != nil {
			t.Fatal(err)
		}
		buf := bytes.NewReader(b)
		again := NewRegistry(RegistryOptions{Logger: quietLogger})
		b2 := &fakeBdevs{bdevs: map[string]fakeBdev{}}
		b2.register(again)
		(&fakeNVMf{bdevs: b2}).register(again)
		if err := again.LoadConfig(context.Background(), buf); err != nil {
			t.Fatalf("saved config does not load: %v\n%s", err, b)
		}
	})
}
