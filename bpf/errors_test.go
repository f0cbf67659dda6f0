package bpf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// TestExplain: the kernel's refusals become the error an operator can act on.
func TestExplain(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error
	}{
		{fmt.Errorf("map create: %w", unix.EPERM), ErrNotPermitted},
		{&os.PathError{Op: "open", Path: "/proc/1/exe", Err: unix.EACCES}, ErrNotPermitted},
		{fmt.Errorf("load BTF: %w", btf.ErrNotSupported), ErrNoBTF},
	} {
		if got := explain("x", c.err); !errors.Is(got, c.want) || !errors.Is(got, c.err) {
			t.Errorf("explain(%v) = %v, want %v and the cause", c.err, got, c.want)
		}
	}
	if got := explain("x", unix.EINVAL); errors.Is(got, ErrNotPermitted) || errors.Is(got, ErrNoBTF) {
		t.Errorf("EINVAL explained as %v", got)
	}
}

// TestNoUprobes: a kernel without the uprobe event source is named before anything
// is loaded.
func TestNoUprobes(t *testing.T) {
	old := uprobePMU
	uprobePMU = filepath.Join(t.TempDir(), "no-uprobe-pmu")
	defer func() { uprobePMU = old }()
	if _, err := Attach(os.Getpid(), Options{}); !errors.Is(err, ErrNoUprobes) {
		t.Fatalf("Attach without uprobes: %v, want ErrNoUprobes", err)
	}
}

// TestNotASluiceProcess: a pid whose binary has no probe sites is refused as such.
func TestNotASluiceProcess(t *testing.T) {
	needRoot(t)
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if _, err := Attach(cmd.Process.Pid, Options{}); !errors.Is(err, ErrNoProbes) {
		t.Fatalf("Attach to sleep: %v, want ErrNoProbes", err)
	}
}

// TestNotRoot: sluicetrace run as an unprivileged user against a sluice process says
// that tracing needs root, and exits 1.
func TestNotRoot(t *testing.T) {
	needRoot(t)
	d := startDriver(t) // a process with sluice's probe sites, running as root
	dir, err := os.MkdirTemp("", "sluicetrace-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sluicetrace")
	if out, err := exec.Command("go", "build", "-o", bin, "sluice/tools/sluicetrace").CombinedOutput(); err != nil {
		t.Fatalf("build sluicetrace: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-p", fmt.Sprint(d.cmd.Process.Pid), "-duration", "1s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), ErrNotPermitted.Error()) {
		t.Fatalf("sluicetrace as nobody: %v\n%s", err, out)
	}
	t.Logf("as nobody: %s", strings.TrimSpace(string(out)))
}
