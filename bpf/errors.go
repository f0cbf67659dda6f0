package bpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// The reasons a tracer cannot attach that an operator can act on. Attach wraps them
// with what failed; ErrNoProbes (target.go) is the fourth.
var (
	// ErrNotPermitted: loading BPF programs, attaching uprobes and writing the
	// process's probe state need root (CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE).
	ErrNotPermitted = errors.New("tracing needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE)")
	// ErrNoUprobes: the kernel has no uprobe event source (CONFIG_UPROBE_EVENTS).
	ErrNoUprobes = errors.New("the kernel has no uprobes (CONFIG_UPROBE_EVENTS)")
	// ErrNoBTF: the kernel cannot load the programs' BTF (CONFIG_DEBUG_INFO_BTF, 5.x).
	ErrNoBTF = errors.New("the kernel lacks BTF support (CONFIG_DEBUG_INFO_BTF)")
)

// uprobePMU is where the kernel lists its uprobe event source; a variable for tests.
var uprobePMU = "/sys/bus/event_source/devices/uprobe/type"

// preflight checks, before anything is loaded, what the kernel must offer.
func preflight() error {
	if _, err := os.Stat(uprobePMU); err != nil {
		return fmt.Errorf("%w: %w", ErrNoUprobes, err)
	}
	return nil
}

// explain names the operator's problem in err, keeping err for the detail.
func explain(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s: %w: %w", what, ErrNotPermitted, err)
	case errors.Is(err, btf.ErrNotSupported):
		return fmt.Errorf("%s: %w: %w", what, ErrNoBTF, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
