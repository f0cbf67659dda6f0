package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/nvmf/host"
	"sluice/engine/replication"
	"sluice/engine/rpc"
)

// Helpers of the replication suites: network namespaces and veth links the tests make,
// daemons started inside them, dialers and packet captures that run inside them.

func needNetnsRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the replication suites need root (ip netns, AF_PACKET)")
		}
		t.Skip("the replication suites need root (ip netns, AF_PACKET)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("ip (iproute2) not found: %v", err)
	}
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// topo is a set of network namespaces joined by veth pairs. Names carry the test
// process's pid, so that concurrent runs on the shared machine never collide; cleanup
// deletes the namespaces, which deletes their links.
type topo struct {
	t      testing.TB
	tag    string
	subnet int // the second octet of this run's 10.x.y.z addresses
	ns     map[string]string
	links  map[string][2]string // link name → the two interface names
}

func newTopo(t testing.TB) *topo {
	t.Helper()
	needNetnsRoot(t)
	pid := os.Getpid()
	tp := &topo{t: t, tag: strconv.Itoa(pid % 100000), subnet: 100 + pid%150,
		ns: map[string]string{}, links: map[string][2]string{}}
	t.Cleanup(func() {
		for _, ns := range tp.ns {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	return tp
}

// node makes namespace name with its loopback up and forwarding off: nothing routes
// between links, so a node is reachable only by what listens on its segments.
func (tp *topo) node(name string) string {
	ns := "sl" + tp.tag + name
	run(tp.t, "ip", "netns", "add", ns)
	tp.ns[name] = ns
	run(tp.t, "ip", "-n", ns, "link", "set", "lo", "up")
	run(tp.t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	return ns
}

// link joins namespaces a and b by a veth pair on 10.subnet.seg.0/24: a gets .1, b .2.
// It returns the interface names, a's first.
func (tp *topo) link(name, a, b string, seg int) (string, string) {
	ia, ib := "s"+tp.tag+name+"a", "s"+tp.tag+name+"b"
	run(tp.t, "ip", "link", "add", ia, "netns", tp.ns[a], "type", "veth", "peer", "name", ib, "netns", tp.ns[b])
	for _, x := range []struct{ ns, ifc, addr string }{{tp.ns[a], ia, tp.addr(seg, 1)}, {tp.ns[b], ib, tp.addr(seg, 2)}} {
		run(tp.t, "ip", "-n", x.ns, "addr", "add", x.addr+"/24", "dev", x.ifc)
		run(tp.t, "ip", "-n", x.ns, "link", "set", x.ifc, "up")
	}
	tp.links[name] = [2]string{ia, ib}
	return ia, ib
}

func (tp *topo) addr(seg, host int) string { return fmt.Sprintf("10.%d.%d.%d", tp.subnet, seg, host) }

// setLink brings a link's interface in namespace ns down or up (a partition).
func (tp *topo) setLink(ns, ifc string, up bool) {
	state := "down"
	if up {
		state = "up"
	}
	run(tp.t, "ip", "-n", ns, "link", "set", ifc, state)
}

// inNetns runs fn on an OS thread moved into namespace ns. The thread is never given
// back to the scheduler (the goroutine exits still locked, and Go then ends the
// thread), so no other goroutine ever runs in ns by accident. Sockets fn creates stay
// in ns and may be used from any goroutine.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// nsDialer dials from inside a namespace: the NVMe/TCP initiator and HTTP clients run
// in the test process but connect as if from that node.
type nsDialer struct{ ns string }

func (d nsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(d.ns, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// listenIn listens on addr inside namespace ns.
func listenIn(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// newDaemonIn starts sluiced inside namespace ns (ip netns exec, which execs, so the
// process is sluiced itself and kill -9 reaches it) with an empty config: the tests
// make their bdevs by RPC. The RPC socket is a file, reachable from the host.
func newDaemonIn(t testing.TB, ns, dataDir string, extra ...string) *daemon {
	t.Helper()
	if dataDir == "" {
		dir, err := os.MkdirTemp(dataRoot, "sluice-repl-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		dataDir = dir
	}
	cfg := filepath.Join(dataDir, "empty.json")
	if err := os.WriteFile(cfg, []byte(`{"subsystems": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dataDir: dataDir, sock: filepath.Join(dataDir, "rpc.sock"),
		logPath: filepath.Join(dataDir, "sluiced.log")}
	d.args = append([]string{"--data-dir", dataDir, "--rpc-socket", d.sock, "--config", cfg,
		"--group-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--mem-size", "128M", "--cores", "0"}, extra...)
	startIn(d, ns)
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			b, _ := os.ReadFile(d.logPath)
			t.Logf("sluiced log (%s):\n%s", ns, tail(string(b), 40))
		}
	})
	return d
}

// startIn is daemon.start inside a namespace ("" for the host's).
func startIn(d *daemon, ns string) {
	d.t.Helper()
	lf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	if ns == "" {
		d.cmd = exec.Command(sluicedBin, d.args...)
	} else {
		d.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, sluicedBin}, d.args...)...)
	}
	d.cmd.Stdout, d.cmd.Stderr = lf, lf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	lf.Close()
	d.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(d.cmd, d.exited)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := rpc.Dial(d.sock); err == nil {
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

// tryCall is call that returns the error instead of failing the test.
func (d *daemon) tryCall(method string, params, result any) error {
	c, err := rpc.Dial(d.sock)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Call(ctx, method, params, result)
}

func (d *daemon) identity() string {
	var id replication.IdentityResult
	d.call("replication_get_identity", nil, &id)
	return id.PublicKey
}

func (d *daemon) volumeStatus(name string) replication.VolumeStatus {
	var st []replication.VolumeStatus
	d.call("replication_get_volumes", map[string]any{"name": name}, &st)
	return st[0]
}

// waitInSync waits until the volume replicates with nothing left to ship or copy.
func (d *daemon) waitInSync(name string, within time.Duration) replication.VolumeStatus {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := d.volumeStatus(name)
		if st.State == "replicating" && st.ResyncRegions == 0 && st.LagWrites == 0 && st.LagBytes == 0 {
			return st
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s not in sync after %v: %+v", name, within, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exportNVMe exports bdev as namespace 1 of a new subsystem listening on addr:port.
func (d *daemon) exportNVMe(nqn, bdevName, addr string, port int) {
	d.call("nvmf_create_subsystem", map[string]any{"nqn": nqn, "allow_any_host": true}, nil)
	d.call("nvmf_subsystem_add_ns", map[string]any{"nqn": nqn,
		"namespace": map[string]any{"nsid": 1, "bdev_name": bdevName}}, nil)
	d.call("nvmf_subsystem_add_listener", map[string]any{"nqn": nqn, "listen_address": map[string]any{
		"trtype": "TCP", "traddr": addr, "trsvcid": strconv.Itoa(port)}}, nil)
}

// connectNVMe connects our Go initiator to nqn at addr, dialing from namespace ns.
func connectNVMe(t testing.TB, ns, addr, nqn string) (*host.Controller, *host.IOQueue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := host.Options{}
	if ns != "" {
		opts.Dialer = nsDialer{ns}
	}
	ctrl, err := host.Connect(ctx, addr, nqn, opts)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ctrl.NewIOQueue(ctx)
	if err != nil {
		ctrl.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrl.Close() })
	return ctrl, q
}

// keyFile writes a random 32-byte KEK (as hex when asHex) into dir, mode 0600.
func keyFile(t testing.TB, dir, name string, asHex bool) (string, []byte) {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	data := k
	if asHex {
		data = []byte(hex.EncodeToString(k))
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, k
}

// dataKey reads the crypt header at the start of a base file and unwraps the volume's
// data key with the KEK, as an independent reader of the documented format would
// (engine/bdev/crypt header.go: wrapped key at byte 120, nonce at 104, GCM additional
// data bytes 0-119), so that the tests can look for the data key itself on the wire
// and on B's disk.
func dataKey(t testing.TB, baseFile string, kek []byte) []byte {
	t.Helper()
	f, err := os.Open(baseFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := make([]byte, 256)
	if _, err := f.ReadAt(h, 0); err != nil {
		t.Fatal(err)
	}
	if string(h[:8]) != "SLUICECR" {
		t.Fatalf("%s holds no crypt header", baseFile)
	}
	blk, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		t.Fatal(err)
	}
	dek, err := g.Open(nil, h[104:116], h[120:200], h[:120])
	if err != nil {
		t.Fatalf("the header of %s does not open with the KEK: %v", baseFile, err)
	}
	if len(dek) != 64 {
		t.Fatalf("data key of %d bytes", len(dek))
	}
	return dek
}

// secrets are the byte strings that must never appear outside the tunnel or on B's
// disk: each with a name for the failure message.
type secrets map[string][]byte

func (s secrets) addKey(name string, k []byte) {
	s[name] = k
	s[name+" (hex)"] = []byte(hex.EncodeToString(k))
}

// findIn reports which secrets occur in b.
func (s secrets) findIn(b []byte) []string {
	var found []string
	for name, needle := range s {
		if bytes.Contains(b, needle) {
			found = append(found, name)
		}
	}
	sort.Strings(found)
	return found
}

// scanDir searches every regular file below dir for the secrets.
func (s secrets) scanDir(t testing.TB, dir string) map[string][]string {
	t.Helper()
	hits := map[string][]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if f := s.findIn(b); len(f) > 0 {
			hits[p] = f
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// capture records every frame on one interface of a namespace through an AF_PACKET
// socket (no tshark needed), and reassembles the TCP byte streams, so that a secret
// split across segments is still found.
type capture struct {
	fd     int
	mu     sync.Mutex
	frames int
	bytes  int
	flows  map[flowKey]*flow
	done   chan struct{}
}

type flowKey struct {
	src, dst [4]byte
	sp, dp   uint16
}

type flow struct {
	isn  uint32
	data []byte
}

func startCapture(t testing.TB, ns, ifc string) *capture {
	t.Helper()
	c := &capture{flows: map[flowKey]*flow{}, done: make(chan struct{})}
	err := inNetns(ns, func() error {
		ni, err := net.InterfaceByName(ifc)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ni.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 32<<20)
		tv := unix.Timeval{Usec: 100000}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		c.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", ifc, ns, err)
	}
	go c.read()
	t.Cleanup(func() { c.stop() })
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *capture) read() {
	buf := make([]byte, 1<<17)
	for {
		select {
		case <-c.done:
			return
		default:
		}
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue
		}
		c.add(buf[:n])
	}
}

// add parses Ethernet / IPv4 / TCP and files the payload into its flow.
func (c *capture) add(f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames++
	c.bytes += len(f)
	if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] != 6 || len(ip) < ihl+20 {
		return
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total > len(ip) || total < ihl+20 {
		total = len(ip)
	}
	tcp := ip[ihl:total]
	doff := int(tcp[12]>>4) * 4
	if doff > len(tcp) {
		return
	}
	var k flowKey
	copy(k.src[:], ip[12:16])
	copy(k.dst[:], ip[16:20])
	k.sp, k.dp = binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:])
	seq := binary.BigEndian.Uint32(tcp[4:])
	payload := tcp[doff:]
	fl := c.flows[k]
	if fl == nil {
		fl = &flow{isn: seq}
		c.flows[k] = fl
	}
	if len(payload) == 0 {
		return
	}
	off := int(seq - fl.isn)
	if off < 0 || off > 1<<30 {
		return
	}
	if need := off + len(payload); need > len(fl.data) {
		fl.data = append(fl.data, make([]byte, need-len(fl.data))...)
	}
	copy(fl.data[off:], payload)
}

func (c *capture) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	close(c.done)
	time.Sleep(150 * time.Millisecond)
	unix.Close(c.fd)
}

// search stops the capture and reports, per flow, the secrets found in its stream.
func (c *capture) search(s secrets) (hits []string, frames, nbytes int) {
	c.stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, fl := range c.flows {
		for _, name := range s.findIn(fl.data) {
			hits = append(hits, fmt.Sprintf("%s in %v:%d→%v:%d", name, net.IP(k.src[:]), k.sp,
				net.IP(k.dst[:]), k.dp))
		}
	}
	return hits, c.frames, c.bytes
}

// ports reports the TCP ports seen on the capture, for checks of what crossed a link.
func (c *capture) ports() map[uint16]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[uint16]bool{}
	for k := range c.flows {
		out[k.sp], out[k.dp] = true, true
	}
	return out
}

// tcpStates reads a process's TCP sockets (its namespace's table) as "port:state".
func tcpSockets(t testing.TB, pid int) (listen map[uint16]bool, established []string) {
	t.Helper()
	listen = map[uint16]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		fh, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[0] == "sl" {
				continue
			}
			_, lp, _ := strings.Cut(fields[1], ":")
			_, rp, _ := strings.Cut(fields[2], ":")
			l, _ := strconv.ParseUint(lp, 16, 16)
			r, _ := strconv.ParseUint(rp, 16, 16)
			switch fields[3] {
			case "0A":
				listen[uint16(l)] = true
			case "01":
				established = append(established, fmt.Sprintf("%d→%d", l, r))
			}
		}
		fh.Close()
	}
	return listen, established
}

// startAgentProc runs `sluice-agent args...` inside namespace ns.
func startAgentProc(t testing.TB, bin, ns, logPath string, args ...string) *exec.Cmd {
	t.Helper()
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", filepath.Base(bin), tail(string(b), 30))
		}
	})
	return cmd
}

func buildAgent(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "sluice/tools/sluice-agent").CombinedOutput(); err != nil {
		t.Fatalf("building sluice-agent: %v\n%s", err, out)
	}
	return bin
}

// waitHTTP waits until something accepts TCP on addr from namespace ns.
func waitListening(t testing.TB, ns, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := nsDialer{ns}.DialContext(context.Background(), "tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s in %s: %v", addr, ns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
