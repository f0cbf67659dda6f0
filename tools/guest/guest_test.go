package guest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestGuest is the spike: one boot (about 4 s under TCG), then checks that the
// pieces the NVMe/TCP interop tests rely on are all there and behave.
func TestGuest(t *testing.T) {
	vm := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	run := func(t *testing.T, script string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := vm.RunOK(ctx, script)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("kernel", func(t *testing.T) {
		if got, want := strings.TrimSpace(run(t, "uname -r")), vm.Image().Release; got != want {
			t.Fatalf("uname -r = %q, want %q", got, want)
		}
	})

	t.Run("nvme-cli", func(t *testing.T) {
		if out := run(t, "nvme version"); !strings.HasPrefix(out, "nvme version ") {
			t.Fatalf("nvme version printed %q", out)
		}
		if got := strings.TrimSpace(run(t, "cat /etc/nvme/hostnqn")); got != HostNQN {
			t.Fatalf("/etc/nvme/hostnqn = %q, want %q", got, HostNQN)
		}
		if got := strings.TrimSpace(run(t, "cat /etc/nvme/hostid")); got != HostID {
			t.Fatalf("/etc/nvme/hostid = %q, want %q", got, HostID)
		}
	})

	t.Run("modules", func(t *testing.T) {
		out := run(t, "lsmod")
		for _, m := range []string{"nvme_tcp", "nvme_fabrics", "nvme_core", "virtio_net"} {
			if !hasLineWithPrefix(out, m+" ") {
				t.Errorf("lsmod has no %s:\n%s", m, out)
			}
		}
		run(t, "test -e /sys/class/nvme-fabrics/ctl && test -c /dev/nvme-fabrics")
	})

	t.Run("open-iscsi", func(t *testing.T) {
		out := run(t, "lsmod")
		for _, m := range []string{"iscsi_tcp", "libiscsi_tcp", "libiscsi", "scsi_transport_iscsi", "sd_mod", "sg"} {
			if !hasLineWithPrefix(out, m+" ") {
				t.Errorf("lsmod has no %s:\n%s", m, out)
			}
		}
		run(t, "test -e /sys/class/iscsi_transport/tcp")
		if got := strings.TrimSpace(run(t, "cat /etc/iscsi/initiatorname.iscsi")); got != "InitiatorName="+InitiatorName {
			t.Fatalf("/etc/iscsi/initiatorname.iscsi = %q, want InitiatorName=%s", got, InitiatorName)
		}
		if out := run(t, "iscsiadm --version; sg_inq --version 2>&1; sg_persist --version 2>&1"); !strings.Contains(out, "iscsiadm version ") {
			t.Fatalf("got %q", out)
		}
		// iscsid starts on demand (iscsiadm runs iscsid-start when a request
		// needs the daemon, as discovery and login do; the interop tests rely
		// on that) and answers on its socket; a second start is a no-op.
		run(t, "iscsid-start && pidof iscsid && iscsid-start && [ $(pidof iscsid | wc -w) = 1 ]")
		out, code, err := vm.Run(ctx, "iscsiadm -m session")
		if err != nil || code != 21 || !strings.Contains(out, "No active sessions") {
			t.Fatalf("iscsiadm -m session: %q, %d, %v (want exit 21, ISCSI_ERR_NO_OBJS_FOUND)", out, code, err)
		}
		if log := run(t, "cat /run/iscsid.log"); strings.TrimSpace(log) != "" {
			t.Errorf("iscsid complained:\n%s", log)
		}
	})

	t.Run("tcp-to-host", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan string, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- "accept: " + err.Error()
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				got <- "read: " + err.Error()
				return
			}
			got <- strings.TrimSpace(line)
			fmt.Fprintf(c, "pong %s", line)
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		out := run(t, fmt.Sprintf("echo ping-from-guest | nc -w 10 %s %d", HostAddr, port))
		if g := <-got; g != "ping-from-guest" {
			t.Fatalf("host received %q", g)
		}
		if strings.TrimSpace(out) != "pong ping-from-guest" {
			t.Fatalf("guest received %q", out)
		}
	})

	t.Run("only-host-reachable", func(t *testing.T) {
		// No default route: an address other than the host's is refused by the
		// guest's own routing table, before any packet is sent.
		run(t, "ip route get "+HostAddr)
		if out, code, err := vm.Run(ctx, "ip route get 192.0.2.1"); err != nil || code == 0 {
			t.Fatalf("192.0.2.1 is routable from the guest: %q, %d, %v", out, code, err)
		}
	})

	t.Run("discover-refused", func(t *testing.T) {
		// A port on which nothing listens: take one, then free it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		out, code, err := vm.Run(ctx, fmt.Sprintf("nvme discover -t tcp -a %s -s %d", HostAddr, port))
		if err != nil {
			t.Fatal(err)
		}
		// nvme-cli asks the kernel (nvme-fabrics, nvme-tcp) to connect; the
		// refusal coming back proves the whole stack is wired up.
		if code == 0 || !strings.Contains(strings.ToLower(out), "connection refused") {
			t.Fatalf("nvme discover exited %d with %q; want a connection-refused failure", code, out)
		}
		if dmesg := run(t, "dmesg"); !strings.Contains(dmesg, "failed to connect socket: -111") {
			t.Fatalf("dmesg has no nvme-tcp connect failure:\n%s", lastLines(dmesg, 20))
		}
	})

	t.Run("console-protocol", func(t *testing.T) {
		// Multi-line scripts, quoting, output without a trailing newline, and
		// the exit status.
		out, code, err := vm.Run(ctx, "printf '%s|' \"a'b\" 'c\"d'\necho $((6*7))\nprintf tail\nexit 3")
		if err != nil || code != 3 || out != "a'b|c\"d|42\ntail" {
			t.Fatalf("got %q, %d, %v", out, code, err)
		}
		if out, code, err := vm.Run(ctx, "true"); err != nil || code != 0 || out != "" {
			t.Fatalf("empty output: got %q, %d, %v", out, code, err)
		}
		// Kernel messages go to the other console and never into output.
		out = run(t, "echo '<3>sluice-kmsg-test' >/dev/kmsg; echo clean")
		if out != "clean\n" {
			t.Fatalf("got %q", out)
		}
		if dmesg := run(t, "dmesg"); !strings.Contains(dmesg, "sluice-kmsg-test") {
			t.Fatal("dmesg lost the message")
		}
		// A request that lost bytes on the way is refused, not run, and
		// answered under the id that ends its line.
		if err := vm.send(ctx, "mangled 5 ZWNobyBubw== garbled-1\n"); err != nil {
			t.Fatal(err)
		}
		if out, code, err := vm.await(ctx, "garbled-1"); err != nil || code != garbledStatus || !strings.HasPrefix(out, "sluice: garbled request") {
			t.Fatalf("garbled request: got %q, %d, %v", out, code, err)
		}
		// stderr is merged into the output.
		if out := run(t, "echo to-stderr >&2"); out != "to-stderr\n" {
			t.Fatalf("got %q", out)
		}
	})

	t.Run("command-timeout", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, guestKillMargin+3*time.Second)
		defer cancel()
		_, code, err := vm.Run(tctx, "echo started; sleep 60")
		if !errors.Is(err, ErrCommandTimeout) || code != 137 {
			t.Fatalf("got status %d, err %v; want 137 and ErrCommandTimeout", code, err)
		}
		// The console is still in step afterwards.
		if out := run(t, "echo after"); out != "after\n" {
			t.Fatalf("got %q", out)
		}
	})

	t.Run("orphans", func(t *testing.T) {
		// Processes that outlive their command die while the server reads the
		// next requests; their SIGCHLD must not cost the server any input
		// (a busybox ash read restarts and drops bytes when interrupted).
		run(t, "for i in $(seq 10 3 99); do (sleep 0.$i) & done")
		filler := strings.Repeat("x", 1500) // a long request: a long read
		for i := range 16 {
			want := fmt.Sprintf("n%d\n", i)
			if out := run(t, ": "+filler+"; echo n"+fmt.Sprint(i)); out != want {
				t.Fatalf("got %q, want %q", out, want)
			}
		}
	})

	t.Run("guestio", func(t *testing.T) {
		// brd: a 16 MiB RAM disk, loaded through the guest's own modprobe.
		run(t, "modprobe brd rd_nr=1 rd_size=16384 && test -b /dev/ram0")
		out := run(t, "guestio write -dev /dev/ram0 -bs 131072 -count 8 -offset 1048576 -seed 7 && "+
			"guestio verify -dev /dev/ram0 -bs 4096 -count 256 -offset 1048576 -seed 7 && "+
			"guestio zero-check -dev /dev/ram0 -offset 0 -len 1048576")
		if strings.Count(out, "guestio: ok ") != 3 {
			t.Fatalf("got %q", out)
		}
		// Wrong seed, and a corrupted byte: a mismatch names its offset.
		out, code, err := vm.Run(ctx, "guestio verify -dev /dev/ram0 -bs 4096 -count 1 -offset 1048576 -seed 8")
		if err != nil || code != 1 || !strings.Contains(out, "first bad offset=1048576 ") {
			t.Fatalf("wrong seed: got %q, %d, %v", out, code, err)
		}
		run(t, "printf X | dd of=/dev/ram0 bs=1 seek=1050000 conv=notrunc 2>/dev/null && sync && echo 1 >/proc/sys/vm/drop_caches")
		out, code, err = vm.Run(ctx, "guestio verify -dev /dev/ram0 -bs 4096 -count 256 -offset 1048576 -seed 7")
		if err != nil || code != 1 || !strings.Contains(out, "first bad offset=1050000 ") {
			t.Fatalf("corrupted byte: got %q, %d, %v", out, code, err)
		}
		out, code, err = vm.Run(ctx, "guestio zero-check -dev /dev/ram0 -offset 0 -len 2097152")
		if err != nil || code != 1 || !strings.Contains(out, "first bad offset=1048576 ") {
			t.Fatalf("zero-check over data: got %q, %d, %v", out, code, err)
		}
	})

	t.Run("nvmet-loopback", func(t *testing.T) {
		// The whole host path against a target known to work: nvme discover,
		// connect, a namespace block device, O_DIRECT I/O through nvme-tcp.
		run(t, "modprobe brd rd_nr=1 rd_size=16384")
		out := run(t, nvmetLoopback)
		if !strings.Contains(out, "subnqn:  nqn.2014-08.org.sluice:guest-loopback") {
			t.Errorf("discovery log lacks the subsystem:\n%s", out)
		}
		out = run(t, "guestio write -dev /dev/nvme0n1 -bs 131072 -count 16 -offset 4194304 -seed 11 && "+
			"guestio verify -dev /dev/nvme0n1 -bs 4096 -count 512 -offset 4194304 -seed 11 && "+
			"guestio verify -dev /dev/ram0 -bs 131072 -count 16 -offset 4194304 -seed 11")
		if strings.Count(out, "guestio: ok ") != 3 {
			t.Fatalf("got %q", out)
		}
		out = run(t, "nvme id-ctrl /dev/nvme0 | grep -E '^(subnqn|kas|sgls) '; nvme disconnect -n nqn.2014-08.org.sluice:guest-loopback")
		if !strings.Contains(out, "disconnected 1 controller") {
			t.Fatalf("got %q", out)
		}
	})
}

// nvmetLoopback exports /dev/ram0 with the kernel's own target on the guest's
// loopback (configfs, as nvmetcli would) and connects nvme-cli to it.
const nvmetLoopback = `set -e
nqn=nqn.2014-08.org.sluice:guest-loopback
modprobe nvmet-tcp
cd /sys/kernel/config/nvmet
mkdir subsystems/$nqn
echo 1 >subsystems/$nqn/attr_allow_any_host
mkdir subsystems/$nqn/namespaces/1
echo -n /dev/ram0 >subsystems/$nqn/namespaces/1/device_path
echo 1 >subsystems/$nqn/namespaces/1/enable
mkdir ports/1
echo ipv4 >ports/1/addr_adrfam
echo tcp >ports/1/addr_trtype
echo 127.0.0.1 >ports/1/addr_traddr
echo 4420 >ports/1/addr_trsvcid
ln -s /sys/kernel/config/nvmet/subsystems/$nqn ports/1/subsystems/$nqn
nvme discover -t tcp -a 127.0.0.1 -s 4420
nvme connect -t tcp -a 127.0.0.1 -s 4420 -n $nqn
i=0
while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
test -b /dev/nvme0n1
`

func hasLineWithPrefix(s, prefix string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// BenchmarkBoot measures boot to a ready command server (the figure in doc.go).
func BenchmarkBoot(b *testing.B) {
	img, err := Build(context.Background())
	if err != nil {
		SkipOrFail(b, err.Error())
	}
	for b.Loop() {
		vm, err := Boot(context.Background(), Options{Image: img})
		if errors.Is(err, ErrNoQEMU) {
			SkipOrFail(b, err.Error())
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := vm.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// TestGuestTwoCPUs: with two vCPUs the Linux host opens two NVMe/TCP I/O
// queues, which is how interop tests reach multi-queue paths. The same boot
// checks that Options.InitiatorName reaches open-iscsi.
func TestGuestTwoCPUs(t *testing.T) {
	const iqn = "iqn.2026-11.dev.sluice:guest-two"
	vm := Start(t, Options{CPUs: 2, InitiatorName: iqn})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := vm.RunOK(ctx, "cat /etc/iscsi/initiatorname.iscsi"); err != nil || strings.TrimSpace(out) != "InitiatorName="+iqn {
		t.Fatalf("initiatorname.iscsi: %q, %v", out, err)
	}
	if out, err := vm.RunOK(ctx, "nproc"); err != nil || strings.TrimSpace(out) != "2" {
		t.Fatalf("nproc: %q, %v", out, err)
	}
	if _, err := vm.RunOK(ctx, "modprobe brd rd_nr=1 rd_size=16384\n"+nvmetLoopback); err != nil {
		t.Fatal(err)
	}
	if out, err := vm.RunOK(ctx, "dmesg | grep 'mapped .* queues'"); err != nil || !strings.Contains(out, "mapped 2/0/0 default/read/poll queues") {
		t.Fatalf("want two I/O queues: %q, %v", out, err)
	}
}

// TestBootFailure: a guest that cannot boot is reported promptly, with qemu's
// own words, instead of hanging until the boot timeout.
func TestBootFailure(t *testing.T) {
	dir := t.TempDir()
	bogus := dir + "/not-a-kernel"
	if err := os.WriteFile(bogus, []byte("this is not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Boot(context.Background(), Options{Image: Image{Kernel: bogus, Initrd: bogus}, BootTimeout: 60 * time.Second})
	if errors.Is(err, ErrNoQEMU) {
		SkipOrFail(t, err.Error())
	}
	if !errors.Is(err, ErrExited) {
		t.Fatalf("got %v, want ErrExited", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("took %s to notice", d)
	}
	if !strings.Contains(err.Error(), "qemu|") {
		t.Fatalf("error carries no qemu output: %v", err)
	}
}
