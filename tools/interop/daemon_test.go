package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"sluice/engine/rpc"
)

var sluicedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-interop-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluicedBin = filepath.Join(dir, "sluiced")
	if bin := os.Getenv("SLUICED_BIN"); bin != "" {
		// Run the suites against another build (an older commit, to check that a test
		// catches what it claims to).
		sluicedBin = bin
	} else if out, err := exec.Command("go", "build", "-o", sluicedBin, "sluice/tools/sluiced").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building sluiced: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running sluiced process with its own data directory, RPC socket and
// ports, so that tests do not collide with each other or with `make run`.
type daemon struct {
	t         testing.TB
	dataDir   string
	sock      string
	nvmfPort  int
	discPort  int
	iscsiPort int
	args      []string
	cmd       *exec.Cmd
	logPath   string
	exited    chan struct{}
}

// dataRoot is on the root file system, where O_DIRECT works (tmpfs refuses it).
const dataRoot = "/var/tmp"

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newDaemon(t testing.TB, extra ...string) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp(dataRoot, "sluice-interop-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{t: t, dataDir: dir, sock: filepath.Join(dir, "rpc.sock"),
		nvmfPort: freePort(t), discPort: freePort(t), iscsiPort: freePort(t),
		logPath: filepath.Join(dir, "sluiced.log")}
	d.args = append([]string{"--data-dir", dir, "--rpc-socket", d.sock,
		"--nvmf-port", strconv.Itoa(d.nvmfPort), "--discovery-port", strconv.Itoa(d.discPort),
		"--iscsi-port", strconv.Itoa(d.iscsiPort), "--group-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--mem-size", "128M", "--cores", "0"}, extra...)
	d.start()
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			b, _ := os.ReadFile(d.logPath)
			t.Logf("sluiced log:\n%s", tail(string(b), 60))
		}
	})
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	lf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	d.cmd = exec.Command(sluicedBin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = lf, lf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	lf.Close()
	d.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(d.cmd, d.exited)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := rpc.Dial(d.sock)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-d.exited:
			b, _ := os.ReadFile(d.logPath)
			d.t.Fatalf("sluiced exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("sluiced did not answer on %s within 20s", d.sock)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the graceful exit.
func (d *daemon) stop() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(40 * time.Second):
		d.t.Fatal("sluiced did not exit within 40s of SIGTERM")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		d.t.Errorf("sluiced exited with status %d after SIGTERM", code)
	}
	d.cmd = nil
}

// kill is kill -9: no drain, no clean-shutdown mark.
func (d *daemon) kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
}

func (d *daemon) call(method string, params, result any) {
	d.t.Helper()
	c, err := rpc.Dial(d.sock)
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Call(ctx, method, params, result); err != nil {
		d.t.Fatalf("%s: %v", method, err)
	}
}

func tail(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}
