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

// TgtIQN is the target the tgt peer exports.
const TgtIQN = "iqn.2026-11.dev.sluice.bench:tgt"

// tgtTarget is the Linux SCSI target framework's user-space daemon (tgtd), the iSCSI
// peer these machines have (their kernel has no nvmet, and LIO needs configfs
// modules), confined to the target core with taskset. Its backends: null is tgt's
// null backing store, malloc a file in /dev/shm (RAM), file a file opened O_DIRECT.
type tgtTarget struct {
	env     *Env
	backend string
	port    int // control port: a private management socket
	p       *proc
	img     string
}

// NewTgt returns tgtd on backend.
func NewTgt(env *Env, backend string) Target { return &tgtTarget{env: env, backend: backend} }

func (t *tgtTarget) Name() string     { return "tgt-" + t.backend }
func (t *tgtTarget) Family() string   { return "tgt" }
func (t *tgtTarget) Backend() string  { return t.backend }
func (t *tgtTarget) Protocol() string { return ProtoISCSI }

func (t *tgtTarget) adm(ctx context.Context, args ...string) error {
	full := append([]string{"-C", strconv.Itoa(t.port), "--lld", "iscsi"}, args...)
	out, err := exec.CommandContext(ctx, "tgtadm", full...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tgtadm %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (t *tgtTarget) Start(ctx context.Context) (Endpoint, error) {
	if _, err := exec.LookPath("tgtd"); err != nil {
		return Endpoint{}, fmt.Errorf("tgtd: %w", ErrUnavailable)
	}
	t.port = 100 + os.Getpid()%800
	port := freePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProc(t.env.Dir, "tgtd", "taskset", "-c", strconv.Itoa(t.env.ServerCPU), "tgtd", "-f",
		"--control-port", strconv.Itoa(t.port), "--iscsi", "portal="+addr)
	if err != nil {
		return Endpoint{}, err
	}
	t.p = p
	up := func() bool { return t.adm(ctx, "--op", "show", "--mode", "target") == nil }
	if err := waitFor(ctx, p, 20*time.Second, "tgtd", up); err != nil {
		t.Stop()
		return Endpoint{}, err
	}
	if err := t.configure(ctx); err != nil {
		t.Stop()
		return Endpoint{}, err
	}
	return Endpoint{Protocol: ProtoISCSI, Addr: addr, Name: TgtIQN, LUN: 1, PID: p.pid(), MaxQD: 128,
		BlockSize: t.env.BlockSize}, nil
}

func (t *tgtTarget) lunArgs() ([]string, error) {
	bs := []string{"--blocksize", strconv.Itoa(t.env.BlockSize)}
	switch t.backend {
	case BackendNull:
		return append([]string{"--bstype", "null", "-b", "null"}, bs...), nil
	case BackendMalloc:
		t.img = filepath.Join("/dev/shm", fmt.Sprintf("sluicebench-tgt-%d.img", os.Getpid()))
	case BackendFile:
		t.img = filepath.Join(t.env.Dir, "tgt-bench0.img")
		bs = append(bs, "--bsoflags", "direct")
	default:
		return nil, fmt.Errorf("tgt: unknown backend %q", t.backend)
	}
	if err := os.WriteFile(t.img, nil, 0o644); err != nil {
		return nil, err
	}
	if err := os.Truncate(t.img, t.env.SizeBytes); err != nil {
		return nil, err
	}
	return append([]string{"-b", t.img}, bs...), nil
}

func (t *tgtTarget) configure(ctx context.Context) error {
	lun, err := t.lunArgs()
	if err != nil {
		return err
	}
	steps := [][]string{
		{"--op", "new", "--mode", "target", "--tid", "1", "-T", TgtIQN},
		append([]string{"--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1"}, lun...),
		{"--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL"},
	}
	for _, s := range steps {
		if err := t.adm(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

// Stop removes the target (tgtd ignores SIGTERM while one exists), then the daemon.
func (t *tgtTarget) Stop() error {
	if t.p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = t.adm(ctx, "--op", "delete", "--mode", "target", "--tid", "1", "--force")
	_ = exec.CommandContext(ctx, "tgtadm", "-C", strconv.Itoa(t.port), "--op", "delete", "--mode", "system").Run()
	t.p.stop(5 * time.Second)
	t.p = nil
	if t.img != "" {
		os.Remove(t.img)
	}
	for _, s := range []string{"", ".lock"} {
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d%s", t.port, s))
	}
	return nil
}
