package interop

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/engine/nvmf"
	"sluice/engine/nvmf/host"
)

var sluicectlBin string

func buildCLI(t *testing.T) string {
	t.Helper()
	if sluicectlBin == "" {
		sluicectlBin = filepath.Join(filepath.Dir(sluicedBin), "sluicectl")
		if out, err := exec.Command("go", "build", "-o", sluicectlBin, "sluice/tools/sluicectl").CombinedOutput(); err != nil {
			t.Fatalf("building sluicectl: %v\n%s", err, out)
		}
	}
	return sluicectlBin
}

func (d *daemon) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(buildCLI(t), append([]string{"-s", d.sock}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestControlPlane drives the daemon the way an operator does: sluicectl to build a
// configuration, save_config, a restart on the saved file, and bad input that must be
// refused with a clear message while the daemon keeps serving.
func TestControlPlane(t *testing.T) {
	d := newDaemon(t)
	const nqn = "nqn.2026-11.dev.sluice:cp"
	port := freePort(t)
	steps := [][]string{
		{"bdev_malloc_create", "name=m0", "num_blocks=2048", "block_size=4096"},
		{"bdev_null_create", "name=n0", "num_blocks=1048576", "block_size=512"},
		{"nvmf_create_subsystem", "nqn=" + nqn, "serial_number=SLUICE-CP-1", "model_number=sluice test"},
		{"nvmf_subsystem_add_ns", "nqn=" + nqn, `namespace={"bdev_name":"m0"}`},
		{"nvmf_subsystem_add_ns", "nqn=" + nqn, `namespace={"bdev_name":"n0","nsid":5}`},
		{"nvmf_subsystem_add_host", "nqn=" + nqn, "host=nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"},
		{"nvmf_subsystem_add_listener", "nqn=" + nqn, `listen_address={"trtype":"TCP","traddr":"127.0.0.1","trsvcid":"` + itoa(port) + `","advertised_traddr":"192.0.2.10"}`},
		{"nvmf_subsystem_add_listener", "nqn=" + nqn, `listen_address={"trtype":"TCP","traddr":"::1","trsvcid":"` + itoa(port) + `"}`},
	}
	for _, s := range steps {
		if out, err := d.cli(t, s...); err != nil {
			t.Fatalf("sluicectl %v: %v\n%s", s, err, out)
		}
	}
	// Readable output: a table for lists.
	out, err := d.cli(t, "bdev_get_bdevs")
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "m0") || !strings.Contains(out, "n0") {
		t.Fatalf("bdev_get_bdevs table:\n%s (%v)", out, err)
	}
	// The allowed host reaches the subsystem through both listeners, IPv4 and IPv6.
	for _, a := range []string{"127.0.0.1", "::1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ctrl, err := host.Connect(ctx, net.JoinHostPort(a, itoa(port)), nqn,
			host.Options{HostNQN: "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"})
		cancel()
		if err != nil {
			t.Fatalf("NVMe/TCP connect through %s: %v", a, err)
		}
		ctrl.Close()
	}

	// Bad input is refused with the right code and a message naming the problem.
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"bdev_malloc_create", "name=m0", "num_blocks=8", "block_size=4096"}, "error -17"},
		{[]string{"bdev_malloc_create", "name=x", "num_blocks=8", "block_size=1000"}, "error -22"},
		{[]string{"bdev_malloc_create", "name=x", "num_blocks=8"}, "block_size"},
		{[]string{"bdev_malloc_create", "name=x", "num_blocks=8", "block_size=4096", "colour=red"}, "colour"},
		{[]string{"nvmf_create_subsystem", "nqn=not-an-nqn"}, "error -22"},
		{[]string{"nvmf_subsystem_add_ns", "nqn=" + nqn, `namespace={"bdev_name":"m0"}`}, "error -16"},
		{[]string{"bdev_malloc_delete", "name=m0"}, "error -16"},
		{[]string{"nvmf_subsystem_add_listener", "nqn=" + nqn, `listen_address={"traddr":"example.com"}`}, "error -22"},
		{[]string{"no_such_method"}, "-32601"},
	} {
		out, err := d.cli(t, bad.args...)
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("sluicectl %v: err=%v, output %q, want it to contain %q", bad.args, err, out, bad.want)
		}
	}
	// A malformed request on the raw socket gets a parse error; the daemon serves on.
	c, err := net.Dial("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("{\"jsonrpc\":\"2.0\",\"method\":\n\x00garbage"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	c.Close()
	if !strings.Contains(string(buf[:n]), "-32700") {
		t.Errorf("malformed JSON answered with %q, want a -32700 parse error", buf[:n])
	}

	// save_config, then a restart on the saved file rebuilds the same target.
	saved := filepath.Join(d.dataDir, "saved.json")
	if out, err := d.cli(t, "save_config", "path="+saved); err != nil {
		t.Fatalf("save_config: %v\n%s", err, out)
	}
	var before []nvmf.SubsystemInfo
	d.call("nvmf_get_subsystems", nil, &before)
	d.stop()
	d.args = append(d.args, "--config", saved)
	d.start()
	var after []nvmf.SubsystemInfo
	d.call("nvmf_get_subsystems", nil, &after)
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(after)
	if string(b1) != string(b2) {
		t.Fatalf("subsystems differ after restart from save_config:\nbefore %s\nafter  %s", b1, b2)
	}
}

// TestBadConfigRefused: a config with a wrong call stops the daemon at start with a
// message that names the section, the call and the problem.
func TestBadConfigRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.json")
	os.WriteFile(cfg, []byte(`{"subsystems":[{"subsystem":"bdev","config":[
		{"method":"bdev_malloc_create","params":{"name":"m0","num_blocks":8,"block_size":4096}},
		{"method":"bdev_malloc_create","params":{"name":"m1","num_blocks":"eight","block_size":4096}}]}]}`), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, sluicedBin, "--config", cfg, "--data-dir", dir,
		"--rpc-socket", filepath.Join(dir, "rpc.sock"), "--mem-size", "64M").CombinedOutput()
	if err == nil {
		t.Fatal("sluiced started with a bad config")
	}
	for _, want := range []string{"bdev_malloc_create", "num_blocks", "call 1", "nothing applied"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error output lacks %q:\n%s", want, out)
		}
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
