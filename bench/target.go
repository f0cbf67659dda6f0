package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Target is a storage target the harness starts and stops around a block of points,
// pinned to the same cores and given the same backing size as its rivals.
type Target interface {
	// Name is the report's name: family-backend, e.g. "sluice-null", "tgt-malloc".
	Name() string
	Family() string  // "sluice", "spdk", "tgt" or "limit"
	Backend() string // "null", "malloc", "file" or "" for the limit
	Protocol() string
	Start(ctx context.Context) (Endpoint, error)
	Stop() error
}

// ErrUnavailable: a target or initiator is not on this machine (a peer not
// installed, sluice built without iSCSI); the harness skips it and says so.
var ErrUnavailable = errors.New("not available on this machine")

// Backends every target family offers, with the same size.
const (
	BackendNull   = "null"
	BackendMalloc = "malloc"
	BackendFile   = "file"
)

// Env is what every target shares: cores, sizes, scratch space and tools.
type Env struct {
	ServerCPU int    // the target's core
	ClientCPU int    // the initiators' core
	SizeBytes int64  // backing size of malloc and file backends (null: the same)
	BlockSize int    // LBA size every target is configured with
	Dir       string // scratch directory for configs, sockets, logs and files
	Sluiced   string // the daemon binary
	Self      string // this executable (runs the limit server)
	SPDKDir   string // an SPDK build, or ""
	PollMode  string // sluiced's poll mode
	MemSize   string // sluiced's --mem-size
}

func (e *Env) blocks() int64 { return e.SizeBytes / int64(e.BlockSize) }

// MemSizeBytes reads MemSize ("256M", "1G"), 256 MiB when it does not parse.
func (e *Env) MemSizeBytes() int64 {
	n, err := ParseSize(e.MemSize)
	if err != nil {
		return 256 << 20
	}
	return n
}

// ParseSize reads a size such as 256M or 1G.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want e.g. 256M or 1G", s)
	}
	return n * mult, nil
}

// proc is a target process the harness started: its log goes to a file in Env.Dir.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func startProc(dir, logName, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, logName+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then kills.
func (p *proc) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 800 {
		b = b[len(b)-800:]
	}
	return string(b)
}

// waitFor polls cond until it holds, the process dies, or the time runs out.
func waitFor(ctx context.Context, p *proc, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if p != nil && p.exited() {
			return fmt.Errorf("%s: process exited: %s", what, p.tail())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: not ready after %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// freePort asks the kernel for an unused loopback port.
func freePort() int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return 0
	}
	defer syscall.Close(fd)
	if syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}) != nil {
		return 0
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return 0
	}
	return sa.(*syscall.SockaddrInet4).Port
}
