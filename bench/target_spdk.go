package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SPDKNQN and SPDKIQN are what the SPDK peers export.
const (
	SPDKNQN = "nqn.2016-06.io.spdk:bench"
	SPDKIQN = "iqn.2016-06.io.spdk:bench"
)

// spdkTarget is SPDK's nvmf_tgt or iscsi_tgt from a build the user pointed at
// (--spdk-dir), on the same core and backing size as sluice. v23.01 has no way to run
// without hugepages, so they must be reserved and hugetlbfs mounted (see
// EnsureHugetlbfs); -u skips the PCI scan, and the RPC socket is private.
type spdkTarget struct {
	env     *Env
	backend string
	iscsi   bool
	p       *proc
	sock    string
}

// NewSPDK returns SPDK's nvmf_tgt on backend.
func NewSPDK(env *Env, backend string) Target { return &spdkTarget{env: env, backend: backend} }

// NewSPDKISCSI returns SPDK's iscsi_tgt on backend.
func NewSPDKISCSI(env *Env, backend string) Target {
	return &spdkTarget{env: env, backend: backend, iscsi: true}
}

func (t *spdkTarget) Name() string {
	if t.iscsi {
		return "spdk-iscsi-" + t.backend
	}
	return "spdk-" + t.backend
}
func (t *spdkTarget) Family() string  { return "spdk" }
func (t *spdkTarget) Backend() string { return t.backend }
func (t *spdkTarget) Protocol() string {
	if t.iscsi {
		return ProtoISCSI
	}
	return ProtoNVMeTCP
}

func (t *spdkTarget) bin() string {
	if t.iscsi {
		return filepath.Join(t.env.SPDKDir, "build/bin/iscsi_tgt")
	}
	return filepath.Join(t.env.SPDKDir, "build/bin/nvmf_tgt")
}

func (t *spdkTarget) rpc(ctx context.Context, args ...string) error {
	full := append([]string{filepath.Join(t.env.SPDKDir, "scripts/rpc.py"), "-s", t.sock, "-t", "30"}, args...)
	out, err := exec.CommandContext(ctx, "python3", full...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rpc.py %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (t *spdkTarget) Start(ctx context.Context) (Endpoint, error) {
	if _, err := os.Stat(t.bin()); err != nil || t.env.SPDKDir == "" {
		return Endpoint{}, fmt.Errorf("%s: %w", t.bin(), ErrUnavailable)
	}
	t.sock = filepath.Join(t.env.Dir, "spdk.sock")
	os.Remove(t.sock)
	mask := fmt.Sprintf("0x%x", 1<<t.env.ServerCPU)
	p, err := startProc(t.env.Dir, strings.TrimSuffix(filepath.Base(t.bin()), "_tgt")+"_tgt", t.bin(),
		"-m", mask, "-u", "-r", t.sock)
	if err != nil {
		return Endpoint{}, err
	}
	t.p = p
	sockUp := func() bool { _, err := os.Stat(t.sock); return err == nil }
	if err := waitFor(ctx, p, 60*time.Second, t.Name(), sockUp); err != nil {
		t.Stop()
		return Endpoint{}, err
	}
	if err := t.rpc(ctx, "framework_wait_init"); err != nil {
		t.Stop()
		return Endpoint{}, err
	}
	ep, err := t.configure(ctx)
	if err != nil {
		t.Stop()
		return Endpoint{}, err
	}
	ep.PID = p.pid()
	return ep, nil
}

// createBdev makes the backend as bdev "bench0": aio stands for sluice's file bdev.
func (t *spdkTarget) createBdev(ctx context.Context) error {
	e := t.env
	bs := strconv.Itoa(e.BlockSize)
	mb := strconv.FormatInt(e.SizeBytes>>20, 10)
	switch t.backend {
	case BackendNull:
		return t.rpc(ctx, "bdev_null_create", "bench0", mb, bs)
	case BackendMalloc:
		return t.rpc(ctx, "bdev_malloc_create", "-b", "bench0", mb, bs)
	case BackendFile:
		f := filepath.Join(e.Dir, "spdk-bench0.img")
		if err := os.Truncate(f, 0); err != nil && !os.IsNotExist(err) {
			return err
		}
		fh, err := os.Create(f)
		if err != nil {
			return err
		}
		defer fh.Close()
		if err := fh.Truncate(e.SizeBytes); err != nil {
			return err
		}
		return t.rpc(ctx, "bdev_aio_create", f, "bench0", bs)
	}
	return fmt.Errorf("spdk: unknown backend %q", t.backend)
}

func (t *spdkTarget) configure(ctx context.Context) (Endpoint, error) {
	if err := t.createBdev(ctx); err != nil {
		return Endpoint{}, err
	}
	port := strconv.Itoa(freePort())
	addr := "127.0.0.1:" + port
	var steps [][]string
	if t.iscsi {
		steps = [][]string{
			{"iscsi_create_portal_group", "1", addr},
			{"iscsi_create_initiator_group", "2", "ANY", "127.0.0.1/32"},
			{"iscsi_create_target_node", "bench", "bench", "bench0:0", "1:2", "64", "-d"},
		}
	} else {
		// Queue depth and in-capsule data as sluice's defaults, so that both take the
		// same path for 4 KiB writes.
		steps = [][]string{
			{"nvmf_create_transport", "-t", "TCP", "-q", "128", "-c", "4096"},
			{"nvmf_create_subsystem", SPDKNQN, "-a", "-s", "SPDK00000000000001", "-d", "SPDK_bench"},
			{"nvmf_subsystem_add_ns", SPDKNQN, "bench0"},
			{"nvmf_subsystem_add_listener", SPDKNQN, "-t", "tcp", "-a", "127.0.0.1", "-s", port},
		}
	}
	for _, s := range steps {
		if err := t.rpc(ctx, s...); err != nil {
			return Endpoint{}, err
		}
	}
	if t.iscsi {
		return Endpoint{Protocol: ProtoISCSI, Addr: addr, Name: SPDKIQN, LUN: 0, MaxQD: 64,
			BlockSize: t.env.BlockSize}, nil
	}
	return Endpoint{Protocol: ProtoNVMeTCP, Addr: addr, Name: SPDKNQN, BlockSize: t.env.BlockSize}, nil
}

func (t *spdkTarget) Stop() error {
	t.p.stop(20 * time.Second)
	t.p = nil
	os.Remove(t.sock)
	os.Remove(filepath.Join(t.env.Dir, "spdk-bench0.img"))
	return nil
}

// EnsureHugetlbfs mounts hugetlbfs on /dev/hugepages when nothing is mounted, for the
// SPDK peers (v23.01 cannot run without it); the returned function undoes only what
// it did.
func EnsureHugetlbfs() (undo func(), err error) {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return func() {}, err
	}
	if strings.Contains(string(b), " hugetlbfs ") {
		return func() {}, nil
	}
	made := false
	if _, err := os.Stat("/dev/hugepages"); os.IsNotExist(err) {
		if err := os.Mkdir("/dev/hugepages", 0o755); err != nil {
			return func() {}, err
		}
		made = true
	}
	if out, err := exec.Command("mount", "-t", "hugetlbfs", "nodev", "/dev/hugepages").CombinedOutput(); err != nil {
		return func() {}, fmt.Errorf("mount hugetlbfs: %v: %s", err, out)
	}
	return func() {
		_ = exec.Command("umount", "/dev/hugepages").Run()
		if made {
			os.Remove("/dev/hugepages")
		}
	}, nil
}
