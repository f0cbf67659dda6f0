package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"sluice/engine/rpc"
)

// SluiceNQN is the subsystem every NVMe target of the harness exports.
const SluiceNQN = "nqn.2026-11.dev.sluice:bench"

// sluiceTarget is sluiced on one backend, exported over NVMe/TCP, or over iSCSI when
// the daemon has it (the iscsi_* RPCs, named as SPDK's).
type sluiceTarget struct {
	env     *Env
	backend string
	iscsi   bool
	// mode is the reactors' poll mode, Env.PollMode unless the target was made for
	// one; tagged says the name carries it, for runs that pair several modes.
	mode   string
	tagged bool
	p      *proc
	sock   string
}

// NewSluice returns sluiced on backend over NVMe/TCP.
func NewSluice(env *Env, backend string) Target {
	return &sluiceTarget{env: env, backend: backend, mode: env.PollMode}
}

// NewSluiceMode returns sluiced on backend over NVMe/TCP with its reactors in poll
// mode, named for it ("sluice-null-adaptive"), so that one run pairs several modes.
func NewSluiceMode(env *Env, backend, mode string) Target {
	return &sluiceTarget{env: env, backend: backend, mode: mode, tagged: true}
}

// NewSluiceISCSI returns sluiced on backend over iSCSI; it is unavailable until the
// daemon registers iscsi_create_target_node.
func NewSluiceISCSI(env *Env, backend string) Target {
	return &sluiceTarget{env: env, backend: backend, iscsi: true, mode: env.PollMode}
}

func (t *sluiceTarget) Name() string {
	n := "sluice-" + t.backend
	if t.iscsi {
		n = "sluice-iscsi-" + t.backend
	}
	if t.tagged {
		n += "-" + t.mode
	}
	return n
}
func (t *sluiceTarget) Family() string  { return "sluice" }
func (t *sluiceTarget) Backend() string { return t.backend }
func (t *sluiceTarget) Protocol() string {
	if t.iscsi {
		return ProtoISCSI
	}
	return ProtoNVMeTCP
}

// bdevConfig is the config entry that creates the backend as bdev "bench0".
func (t *sluiceTarget) bdevConfig() (map[string]any, error) {
	e := t.env
	switch t.backend {
	case BackendNull:
		return call("bdev_null_create", map[string]any{"name": "bench0", "num_blocks": e.blocks(),
			"block_size": e.BlockSize}), nil
	case BackendMalloc:
		return call("bdev_malloc_create", map[string]any{"name": "bench0", "num_blocks": e.blocks(),
			"block_size": e.BlockSize}), nil
	case BackendFile:
		return call("bdev_file_create", map[string]any{"name": "bench0", "size_bytes": e.SizeBytes,
			"filename": filepath.Join(e.Dir, "sluice-bench0.img"), "block_size": e.BlockSize}), nil
	}
	return nil, fmt.Errorf("sluice: unknown backend %q", t.backend)
}

func call(method string, params map[string]any) map[string]any {
	return map[string]any{"method": method, "params": params}
}

func (t *sluiceTarget) writeConfig(port int) (string, error) {
	bdev, err := t.bdevConfig()
	if err != nil {
		return "", err
	}
	nvmf := []any{
		call("nvmf_create_subsystem", map[string]any{"nqn": SluiceNQN, "allow_any_host": true}),
		call("nvmf_subsystem_add_ns", map[string]any{"nqn": SluiceNQN,
			"namespace": map[string]any{"nsid": 1, "bdev_name": "bench0"}}),
		call("nvmf_subsystem_add_listener", map[string]any{"nqn": SluiceNQN, "listen_address": map[string]any{
			"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": strconv.Itoa(port)}}),
	}
	cfg := map[string]any{"subsystems": []any{
		map[string]any{"subsystem": "bdev", "config": []any{bdev}},
		map[string]any{"subsystem": "nvmf", "config": nvmf},
	}}
	b, _ := json.MarshalIndent(cfg, "", " ")
	path := filepath.Join(t.env.Dir, "sluiced-bench.json")
	return path, os.WriteFile(path, b, 0o644)
}

func (t *sluiceTarget) Start(ctx context.Context) (Endpoint, error) {
	port := freePort()
	cfg, err := t.writeConfig(port)
	if err != nil {
		return Endpoint{}, err
	}
	t.sock = filepath.Join(t.env.Dir, "sluiced.sock")
	os.Remove(t.sock)
	p, err := startProc(t.env.Dir, "sluiced", t.env.Sluiced, "--config", cfg, "--data-dir", t.env.Dir,
		"--rpc-socket", t.sock, "--cores", strconv.Itoa(t.env.ServerCPU), "--poll-mode", t.mode,
		"--mem-size", t.memSize(), "--log-level", "warn")
	if err != nil {
		return Endpoint{}, err
	}
	t.p = p
	if err := waitFor(ctx, p, 30*time.Second, "sluiced", t.rpcUp); err != nil {
		t.Stop()
		return Endpoint{}, err
	}
	ep := Endpoint{Protocol: ProtoNVMeTCP, Addr: fmt.Sprintf("127.0.0.1:%d", port), Name: SluiceNQN,
		PID: p.pid(), BlockSize: t.env.BlockSize}
	if t.iscsi {
		if ep, err = t.exportISCSI(ctx, ep); err != nil {
			t.Stop()
			return Endpoint{}, err
		}
	}
	return ep, nil
}

// memSize is the daemon's buffer memory: a malloc bdev lives in the same memory, so it
// gets its size on top, or the daemon would have nothing left for the connections.
func (t *sluiceTarget) memSize() string {
	if t.backend != BackendMalloc {
		return t.env.MemSize
	}
	return fmt.Sprintf("%dM", t.env.SizeBytes>>20+t.env.MemSizeBytes()>>20)
}

func (t *sluiceTarget) rpcUp() bool {
	c, err := rpc.Dial(t.sock)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// exportISCSI exports bench0 over iSCSI on 127.0.0.1 with SPDK's RPCs and parameters,
// as the daemon's iSCSI target is specified to accept them.
func (t *sluiceTarget) exportISCSI(ctx context.Context, ep Endpoint) (Endpoint, error) {
	c, err := rpc.Dial(t.sock)
	if err != nil {
		return ep, err
	}
	defer c.Close()
	var methods []string
	if err := c.Call(ctx, "rpc_get_methods", nil, &methods); err != nil {
		return ep, err
	}
	if !slices.Contains(methods, "iscsi_create_target_node") {
		return ep, fmt.Errorf("sluiced has no iscsi_create_target_node: %w", ErrUnavailable)
	}
	port := freePort()
	steps := []struct {
		method string
		params map[string]any
	}{
		{"iscsi_create_portal_group", map[string]any{"tag": 1,
			"portals": []any{map[string]any{"host": "127.0.0.1", "port": strconv.Itoa(port)}}}},
		{"iscsi_create_initiator_group", map[string]any{"tag": 2, "initiators": []string{"ANY"},
			"netmasks": []string{"127.0.0.1/32"}}},
		{"iscsi_create_target_node", map[string]any{"name": "bench", "alias_name": "bench",
			"luns":       []any{map[string]any{"bdev_name": "bench0", "lun_id": 0}},
			"pg_ig_maps": []any{map[string]any{"pg_tag": 1, "ig_tag": 2}}, "queue_depth": 64,
			"disable_chap": true}},
	}
	for _, s := range steps {
		if err := c.Call(ctx, s.method, s.params, nil); err != nil {
			return ep, fmt.Errorf("%s: %w", s.method, err)
		}
	}
	var nodes []struct {
		Name string `json:"name"`
	}
	if err := c.Call(ctx, "iscsi_get_target_nodes", nil, &nodes); err != nil || len(nodes) == 0 {
		return ep, fmt.Errorf("iscsi_get_target_nodes: %v", err)
	}
	return Endpoint{Protocol: ProtoISCSI, Addr: fmt.Sprintf("127.0.0.1:%d", port), Name: nodes[0].Name,
		LUN: 0, PID: ep.PID, MaxQD: 64, BlockSize: t.env.BlockSize}, nil
}

func (t *sluiceTarget) Stop() error {
	t.p.stop(20 * time.Second)
	t.p = nil
	os.Remove(filepath.Join(t.env.Dir, "sluice-bench0.img"))
	return nil
}
