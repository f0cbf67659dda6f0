package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sentinel errors. Test helpers use ErrNoQEMU to tell "this machine cannot run
// the guest" from a real failure.
var (
	ErrNoQEMU          = errors.New("qemu-system-x86_64 not found")
	ErrExited          = errors.New("guest exited")
	ErrCommandTimeout  = errors.New("guest command timed out")
	ErrConsoleConfused = errors.New("guest console out of step")
)

// Defaults for Options' zero values.
const (
	DefaultMemoryMB       = 512
	DefaultBootTimeout    = 90 * time.Second // boots in about 4 s; leaves room for a loaded CI machine
	DefaultCommandTimeout = 60 * time.Second
	closeTimeout          = 10 * time.Second
	// guestKillMargin is how much sooner than the host's deadline the guest
	// kills a command, so that the host normally sees the exit status (137)
	// instead of losing track of the console.
	guestKillMargin = 3 * time.Second
	logTailLines    = 400
	garbledStatus   = 254 // init.sh's answer to a request that lost bytes
	qboot           = "/usr/share/qemu/qboot.rom"
)

// Options configure Boot. The zero value of every field but Image is usable.
type Options struct {
	Image Image // from Build

	// ConsoleLog, if set, is a file that receives the whole session, one
	// timestamped line at a time, tagged "con" (the command console, ttyS0,
	// including the request markers), "krn" (the kernel console, ttyS1: boot
	// warnings and, after boot, every message up to KERN_INFO) and "qemu"
	// (qemu's own stderr). Read it when a test fails.
	ConsoleLog string

	MemoryMB int // default DefaultMemoryMB

	// CPUs is the number of vCPUs, default 1. The Linux host opens one
	// NVMe/TCP I/O queue per CPU, so 2 or more exercise multi-queue
	// connections; each vCPU is a host thread under TCG, and the machine has
	// only 2 cores.
	CPUs int

	// HostNQN and HostID override the guest's NVMe host identity (default
	// HostNQN/HostID): boot two guests with different ones to test
	// reservations between hosts. Neither may contain spaces.
	HostNQN, HostID string

	// InitiatorName overrides the guest's iSCSI initiator name (default
	// InitiatorName), the iSCSI counterpart of HostNQN. No spaces.
	InitiatorName string

	BootTimeout    time.Duration // default DefaultBootTimeout
	CommandTimeout time.Duration // for Run when its context has no deadline; default DefaultCommandTimeout

	QEMU       string   // qemu binary; default qemu-system-x86_64 from PATH
	KernelArgs string   // appended to the kernel command line
	ExtraArgs  []string // appended to qemu's arguments
}

// VM is a booted guest. Its methods are safe for concurrent use; Run calls are
// served one at a time, in order, because the guest has one console.
type VM struct {
	opts  Options
	cmd   *exec.Cmd
	nonce string
	log   *logSink

	writeMu sync.Mutex // serializes writes to stdin (Run and Close)
	stdin   io.WriteCloser

	runMu sync.Mutex // one request on the console at a time
	seq   int        // guarded by runMu

	mu     sync.Mutex    // guards con
	con    []byte        // console bytes not yet consumed by Run
	notify chan struct{} // capacity 1: signalled when con grows

	exited  chan struct{} // closed once qemu has exited and its output is drained
	waitErr error         // qemu's exit, valid after exited is closed

	closeOnce sync.Once
	closeErr  error
}

// Boot starts qemu with opts.Image and waits until the guest's command server
// is ready (bounded by opts.BootTimeout and ctx). ctx covers the boot only: the
// VM lives until Close.
func Boot(ctx context.Context, opts Options) (*VM, error) {
	if opts.Image.Kernel == "" || opts.Image.Initrd == "" {
		return nil, errors.New("guest: boot: Options.Image has no kernel or initrd (call Build)")
	}
	for _, p := range []string{opts.Image.Kernel, opts.Image.Initrd} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("guest: boot: %w", err)
		}
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = DefaultMemoryMB
	}
	if opts.CPUs == 0 {
		opts.CPUs = 1
	}
	if opts.BootTimeout == 0 {
		opts.BootTimeout = DefaultBootTimeout
	}
	if opts.CommandTimeout == 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	if opts.HostNQN == "" {
		opts.HostNQN = HostNQN
	}
	if opts.HostID == "" {
		opts.HostID = HostID
	}
	if opts.InitiatorName == "" {
		opts.InitiatorName = InitiatorName
	}
	if strings.ContainsAny(opts.HostNQN+opts.HostID+opts.InitiatorName, " \t\n") {
		return nil, errors.New("guest: boot: HostNQN, HostID and InitiatorName may not contain spaces")
	}
	qemu := opts.QEMU
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	qemuPath, err := exec.LookPath(qemu)
	if err != nil {
		return nil, fmt.Errorf("guest: boot: %w (%v; Debian package qemu-system-x86)", ErrNoQEMU, err)
	}

	var nb [8]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return nil, fmt.Errorf("guest: boot: nonce: %w", err)
	}
	vm := &VM{
		opts:   opts,
		nonce:  hex.EncodeToString(nb[:]),
		notify: make(chan struct{}, 1),
		exited: make(chan struct{}),
	}
	vm.log, err = newLogSink(opts.ConsoleLog)
	if err != nil {
		return nil, fmt.Errorf("guest: boot: console log: %w", err)
	}

	// The kernel console goes to a pipe that qemu opens as /dev/fd/3, so that
	// kernel messages reach our log but never the command console.
	kmsgR, kmsgW, err := os.Pipe()
	if err != nil {
		vm.log.close()
		return nil, fmt.Errorf("guest: boot: %w", err)
	}
	cmdline := fmt.Sprintf("console=ttyS1 quiet panic=-1 sluice.nonce=%s sluice.hostnqn=%s sluice.hostid=%s "+
		"sluice.initiatorname=%s %s", vm.nonce, opts.HostNQN, opts.HostID, opts.InitiatorName, opts.KernelArgs)
	args := []string{
		// TCG: these machines have no KVM. One CPU by default: the guest is a
		// client, and a second vCPU would compete with the target for the
		// host's two cores. -cpu max offers RDRAND, so the guest's entropy pool
		// is ready at once (getrandom never blocks guestio), and SSE4.2/PCLMUL.
		"-accel", "tcg", "-M", "pc", "-cpu", "max", "-smp", strconv.Itoa(opts.CPUs),
		"-m", strconv.Itoa(opts.MemoryMB) + "M",
		// No default devices (VGA, floppy, ...): less to emulate, faster boot.
		"-nodefaults", "-no-user-config", "-display", "none",
		// A guest panic or reboot ends qemu instead of looping.
		"-no-reboot",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-chardev", "file,id=kmsg,path=/dev/fd/3", "-serial", "chardev:kmsg",
		// User networking: the guest reaches the host's loopback as HostAddr
		// through qemu's own sockets. romfile= skips the NIC's iPXE option
		// ROM, which the firmware would otherwise run: about 0.5 s per boot.
		"-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=",
		"-kernel", opts.Image.Kernel, "-initrd", opts.Image.Initrd,
		"-append", strings.TrimSpace(cmdline),
	}
	if _, err := os.Stat(qboot); err == nil {
		// qboot (shipped with qemu) instead of SeaBIOS: the kernel is loaded
		// by qemu anyway, and the minimal firmware starts it about 0.3 s sooner.
		args = append(args, "-bios", qboot)
	}
	args = append(args, opts.ExtraArgs...)
	cmd := exec.Command(qemuPath, args...)
	cmd.ExtraFiles = []*os.File{kmsgW}
	// If the test binary dies, so does qemu: no orphaned guests on a shared machine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	vm.stdin, err = cmd.StdinPipe()
	stdout, err2 := cmd.StdoutPipe()
	stderr, err3 := cmd.StderrPipe()
	if err = errors.Join(err, err2, err3); err != nil {
		kmsgR.Close()
		kmsgW.Close()
		vm.log.close()
		return nil, fmt.Errorf("guest: boot: %w", err)
	}
	vm.log.printf("qemu", "%s %s", qemuPath, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		kmsgR.Close()
		kmsgW.Close()
		vm.log.close()
		return nil, fmt.Errorf("guest: boot: start qemu: %w", err)
	}
	kmsgW.Close() // qemu holds its own copy; ours would keep the pipe from ever reaching EOF
	vm.cmd = cmd

	var readers sync.WaitGroup
	readers.Add(3)
	go func() { defer readers.Done(); vm.readConsole(stdout) }()
	go func() { defer readers.Done(); vm.log.copyLines("krn", kmsgR); kmsgR.Close() }()
	go func() { defer readers.Done(); vm.log.copyLines("qemu", stderr) }()
	go func() {
		// Wait only after every pipe is drained, as os/exec requires.
		readers.Wait()
		vm.waitErr = cmd.Wait()
		vm.log.printf("qemu", "exited: %v", vm.waitErr)
		close(vm.exited)
	}()

	bctx, cancel := context.WithTimeout(ctx, opts.BootTimeout)
	defer cancel()
	ready := []byte("@@SLUICE-READY " + vm.nonce + "@@\n")
	if err := vm.waitConsole(bctx, func(con []byte) (int, bool) {
		i := bytes.Index(con, ready)
		if i < 0 {
			return 0, false
		}
		return i + len(ready), true
	}); err != nil {
		vm.kill()
		tail := vm.LogTail(40)
		vm.stdin.Close()
		vm.log.close()
		return nil, fmt.Errorf("guest: boot: waiting for the command server: %w\n%s", err, tail)
	}
	return vm, nil
}

// Image returns the image the VM booted.
func (vm *VM) Image() Image { return vm.opts.Image }

// Run sends a shell script (one command or several lines) to the guest, waits
// for it to finish and returns its combined stdout and stderr and its exit
// status. Each Run starts a fresh sh in /, with stdin from /dev/null, so
// neither the working directory nor variables carry over between calls.
//
// A nonzero exit status is not an error: err is set only when the exchange
// itself failed. The wait is bounded by ctx or, when ctx has no deadline, by
// Options.CommandTimeout; the guest kills the script shortly before that
// deadline (exit status 137, err wrapping ErrCommandTimeout; processes the
// script put in the background live on).
func (vm *VM) Run(ctx context.Context, script string) (out string, exitCode int, err error) {
	vm.runMu.Lock()
	defer vm.runMu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, vm.opts.CommandTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	limit := time.Until(deadline) - guestKillMargin
	secs := int(limit / time.Second)
	if secs < 1 {
		secs = 1
	}
	vm.seq++
	id := fmt.Sprintf("%s-%d", vm.nonce, vm.seq)
	req := fmt.Sprintf("%s %d %s %s\n", id, secs, base64.StdEncoding.EncodeToString([]byte(script)), id)
	start := time.Now()
	if err := vm.send(ctx, req); err != nil {
		return "", -1, fmt.Errorf("guest: run %s: %w", quoteShort(script), err)
	}
	// A reply to an earlier request that timed out on our side may come
	// first; await skips it, since the guest answers strictly in order.
	out, exitCode, err = vm.await(ctx, id)
	if err != nil {
		return out, -1, fmt.Errorf("guest: run %s: %w", quoteShort(script), err)
	}
	if exitCode == garbledStatus && strings.HasPrefix(out, "sluice: garbled request") {
		return out, -1, fmt.Errorf("guest: run %s: the guest received a damaged request: %w", quoteShort(script), ErrConsoleConfused)
	}
	if exitCode == 128+int(syscall.SIGKILL) && time.Since(start) >= time.Duration(secs)*time.Second {
		return out, exitCode, fmt.Errorf("guest: run %s: killed after %ds: %w", quoteShort(script), secs, ErrCommandTimeout)
	}
	return out, exitCode, nil
}

// RunOK is Run for scripts that must succeed: a nonzero exit status becomes an
// error that carries the output.
func (vm *VM) RunOK(ctx context.Context, script string) (string, error) {
	out, code, err := vm.Run(ctx, script)
	if err != nil {
		return out, err
	}
	if code != 0 {
		return out, fmt.Errorf("guest: %s exited %d:\n%s", quoteShort(script), code, out)
	}
	return out, nil
}

// quoteShort quotes a script for an error message, cut to a readable length.
func quoteShort(script string) string {
	const limit = 120
	if len(script) > limit {
		return strconv.Quote(script[:limit]) + "..."
	}
	return strconv.Quote(script)
}

// send writes one request line to the console.
func (vm *VM) send(ctx context.Context, req string) error {
	done := make(chan error, 1)
	go func() {
		vm.writeMu.Lock()
		defer vm.writeMu.Unlock()
		_, err := io.WriteString(vm.stdin, req)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("write to console: %w", err)
		}
		return nil
	case <-ctx.Done():
		// The writer goroutine ends when qemu reads or exits (Close kills it).
		return fmt.Errorf("write to console: %w", ctx.Err())
	case <-vm.exited:
		return fmt.Errorf("%w: %v", ErrExited, vm.waitErr)
	}
}

// await waits for the reply to request id and consumes it from the console.
// The guest prints "BEGIN@@\n", the output, then "\nEND id status@@\n": the
// newline before END is the guest's own, so the output is exactly what lies
// between, even when it is empty or does not end in a newline.
func (vm *VM) await(ctx context.Context, id string) (string, int, error) {
	begin := []byte("@@SLUICE-BEGIN " + id + "@@\n")
	end := []byte("\n@@SLUICE-END " + id + " ")
	var (
		out    string
		code   int
		badErr error
	)
	err := vm.waitConsole(ctx, func(con []byte) (int, bool) {
		b := bytes.Index(con, begin)
		if b < 0 {
			return 0, false
		}
		b += len(begin)
		e := bytes.Index(con[b:], end)
		if e < 0 {
			return 0, false
		}
		e += b
		status := con[e+len(end):]
		stop := bytes.Index(status, []byte("@@\n"))
		if stop < 0 {
			return 0, false
		}
		out = string(con[b:e])
		n, err := strconv.Atoi(string(status[:stop]))
		if err != nil {
			badErr = fmt.Errorf("%w: reply to %s has status %q", ErrConsoleConfused, id, status[:stop])
		}
		code = n
		return e + len(end) + stop + len("@@\n"), true
	})
	if err != nil {
		return "", -1, err
	}
	return out, code, badErr
}

// waitConsole calls match on the unconsumed console bytes each time they grow,
// until match reports a hit (and how many bytes it consumed), ctx ends or qemu
// exits.
func (vm *VM) waitConsole(ctx context.Context, match func(con []byte) (consumed int, ok bool)) error {
	for {
		vm.mu.Lock()
		n, ok := match(vm.con)
		if ok {
			vm.con = append(vm.con[:0], vm.con[n:]...)
		}
		vm.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-vm.notify:
		case <-ctx.Done():
			return ctx.Err()
		case <-vm.exited:
			// Everything qemu wrote is in vm.con by now: one last look.
			vm.mu.Lock()
			_, ok := match(vm.con)
			vm.mu.Unlock()
			if ok {
				return nil
			}
			return fmt.Errorf("%w: %v", ErrExited, vm.waitErr)
		}
	}
}

// readConsole appends the command console's output to vm.con and the log.
func (vm *VM) readConsole(r io.Reader) {
	w := vm.log.lineWriter("con")
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
			vm.mu.Lock()
			vm.con = append(vm.con, buf[:n]...)
			vm.mu.Unlock()
			select {
			case vm.notify <- struct{}{}:
			default:
			}
		}
		if err != nil {
			w.flush()
			return
		}
	}
}

// Close powers the guest off (poweroff -f, no clean unmount: there is nothing
// to keep) and kills qemu if it has not exited within 10 s. It waits for qemu
// to exit and closes the console log. Safe to call more than once.
func (vm *VM) Close() error {
	vm.closeOnce.Do(func() {
		select {
		case <-vm.exited:
		default:
			// Not through Run: it would wait for a reply that never comes.
			// If a command is still running, the guest reads this request
			// after it; the timeout below covers a guest that never does.
			id := "poweroff-" + vm.nonce
			req := fmt.Sprintf("%s 5 %s %s\n", id, base64.StdEncoding.EncodeToString([]byte("poweroff -f")), id)
			go func() {
				vm.writeMu.Lock()
				defer vm.writeMu.Unlock()
				_, _ = io.WriteString(vm.stdin, req)
			}()
			select {
			case <-vm.exited:
			case <-time.After(closeTimeout):
				vm.log.printf("qemu", "no power-off after %s: killing qemu", closeTimeout)
				vm.closeErr = errors.New("guest: close: guest did not power off; killed qemu")
				vm.kill()
			}
		}
		vm.stdin.Close()
		vm.log.close()
	})
	return vm.closeErr
}

// kill ends qemu (our own child, by its pid) and waits until it is reaped.
func (vm *VM) kill() {
	_ = vm.cmd.Process.Kill()
	select {
	case <-vm.exited:
	case <-time.After(closeTimeout):
		// Only a process stuck in the kernel gets here; nothing more to do.
	}
}

// LogTail returns the last n lines of the session log (the same lines that
// Options.ConsoleLog receives), for a failing test to print.
func (vm *VM) LogTail(n int) string { return vm.log.tail(n) }

// logSink merges the VM's output streams into one timestamped log: a file if
// one was named, and always a bounded in-memory tail.
type logSink struct {
	start time.Time
	mu    sync.Mutex
	f     *os.File // nil when no ConsoleLog
	lines []string // ring of the last logTailLines lines
	next  int
}

func newLogSink(path string) (*logSink, error) {
	s := &logSink{start: time.Now()}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		s.f = f
	}
	return s, nil
}

func (s *logSink) printf(tag, format string, args ...any) {
	s.emit(tag, fmt.Sprintf(format, args...))
}

func (s *logSink) emit(tag, line string) {
	l := fmt.Sprintf("%8.3f %-4s| %s", time.Since(s.start).Seconds(), tag, strings.TrimRight(line, "\r"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		_, _ = s.f.WriteString(l + "\n")
	}
	if len(s.lines) < logTailLines {
		s.lines = append(s.lines, l)
	} else {
		s.lines[s.next] = l
		s.next = (s.next + 1) % logTailLines
	}
}

func (s *logSink) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ordered := append(append([]string(nil), s.lines[s.next:]...), s.lines[:s.next]...)
	if len(ordered) > n {
		ordered = ordered[len(ordered)-n:]
	}
	return strings.Join(ordered, "\n")
}

func (s *logSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
}

func (s *logSink) copyLines(tag string, r io.Reader) {
	w := s.lineWriter(tag)
	_, _ = io.Copy(w, r)
	w.flush()
}

func (s *logSink) lineWriter(tag string) *lineWriter { return &lineWriter{sink: s, tag: tag} }

// lineWriter cuts a stream into lines for the sink; it is used by one goroutine.
type lineWriter struct {
	sink    *logSink
	tag     string
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.sink.emit(w.tag, string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.partial) > 0 {
		w.sink.emit(w.tag, string(w.partial))
		w.partial = nil
	}
}
