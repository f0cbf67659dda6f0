package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/engine/mem"
	"sluice/engine/nvmf"
	"sluice/engine/nvmf/host"
	"sluice/engine/proto/nvme"
	"sluice/engine/tcpconn"
)

// TestHostileHostsCannotStarveAGoodHost is the hardening issue's §4 against the daemon:
// a flood of sockets that never send ICReq, a flood of controllers from hosts the
// allow-list refuses, and allowed controllers that ask to write 512 KiB at a time and
// never send the data, while a well-behaved host keeps connecting and reading. The
// good host's latency with and without the hostile ones is logged for the closing
// note (a figure, never an assertion).
func TestHostileHostsCannotStarveAGoodHost(t *testing.T) {
	d := newDaemon(t, "--cores", "0,1")
	addr := fmt.Sprintf("127.0.0.1:%d", d.nvmfPort)
	var lim tcpconn.Limits
	d.call("nvmf_set_transport_limits", tcpconn.Limits{MaxConnsPerListener: 300, MaxConnsPerHost: 300,
		DataTimeoutMs: 3000}, &lim)
	if lim.MaxConnsPerListener != 300 || lim.DataTimeoutMs != 3000 || lim.SetupTimeoutMs != tcpconn.DefaultSetupTimeoutMs {
		t.Fatalf("limits in force %+v", lim)
	}
	rssBefore := rssKiB(t, d)
	baseline := goodHostLatency(t, addr, 2*time.Second)

	t.Run("idle_socket_flood", func(t *testing.T) {
		var flood []net.Conn
		for i := 0; i < 700; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			flood = append(flood, c)
		}
		defer func() {
			for _, c := range flood {
				c.Close()
			}
		}()
		goodHostIO(t, addr)
		var st nvmf.Stats
		d.call("nvmf_get_stats", nil, &st)
		if st.ConnectionsEvicted < 400 || st.Connections > 300 {
			t.Fatalf("stats %+v: want at least 400 idle sockets evicted and at most 300 open", st)
		}
		if grown := rssKiB(t, d) - rssBefore; grown > 64<<10 {
			t.Fatalf("the daemon grew by %d KiB holding 300 idle sockets", grown)
		}
		t.Logf("700 idle sockets: %d evicted, %d open, daemon RSS +%d KiB", st.ConnectionsEvicted, st.Connections,
			rssKiB(t, d)-rssBefore)
	})

	t.Run("unlisted_host_flood", func(t *testing.T) {
		d.call("bdev_malloc_create", map[string]any{"name": "locked0", "num_blocks": 2048, "block_size": 512}, nil)
		d.call("nvmf_create_subsystem", nvmf.SubsystemParams{NQN: "nqn.2026-11.dev.sluice:locked"}, nil)
		d.call("nvmf_subsystem_add_ns", nvmf.AddNSParams{NQN: "nqn.2026-11.dev.sluice:locked",
			Namespace: nvmf.NamespaceParams{BdevName: "locked0"}}, nil)
		d.call("nvmf_subsystem_add_host", nvmf.HostParams{NQN: "nqn.2026-11.dev.sluice:locked",
			Host: "nqn.2014-08.org.example:good"}, nil)
		d.call("nvmf_subsystem_add_listener", nvmf.ListenerParams{NQN: "nqn.2026-11.dev.sluice:locked",
			ListenAddress: nvmf.ListenAddress{TrAddr: "127.0.0.1", TrSvcID: strconv.Itoa(d.nvmfPort)}}, nil)
		for i := 0; i < 255; i++ {
			refusedConnect(t, addr, "nqn.2026-11.dev.sluice:locked", fmt.Sprintf("nqn.2014-08.org.example:hostile-%d", i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := host.Connect(ctx, addr, "nqn.2026-11.dev.sluice:locked", host.Options{HostNQN: "nqn.2014-08.org.example:good"})
		if err != nil {
			t.Fatalf("the listed host after the flood: %v", err)
		}
		c.Close()
		goodHostIO(t, addr)
	})

	var under latencies
	t.Run("hostile_writers_without_data", func(t *testing.T) {
		var raws []*host.RawConn
		for i := 0; i < 50; i++ {
			raws = append(raws, hostileWriter(t, addr, i))
		}
		under = goodHostLatency(t, addr, 2*time.Second)
		for i, r := range raws {
			if !closedWithin(r.Conn(), 20*time.Second) {
				t.Fatalf("hostile writer %d not cut after the data timeout", i)
			}
		}
		var st nvmf.Stats
		d.call("nvmf_get_stats", nil, &st)
		if st.DataTimeouts < 50 {
			t.Fatalf("data timeouts %d, want 50", st.DataTimeouts)
		}
		waitNoBuffers(t, d)
	})
	t.Logf("good host 4 KiB reads, QD1: alone p50 %v p99 %v; beside 50 hostile writers p50 %v p99 %v",
		baseline.p(50), baseline.p(99), under.p(50), under.p(99))
	noPanicLogged(t, d)
}

func rssKiB(t *testing.T, d *daemon) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func goodHostIO(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := host.Connect(ctx, addr, defaultNQN, host.Options{})
	if err != nil {
		t.Fatalf("good host connect: %v", err)
	}
	defer c.Close()
	q, err := c.NewIOQueue(ctx)
	if err != nil {
		t.Fatalf("good host I/O queue: %v", err)
	}
	buf := make([]byte, 4096)
	if err := q.Write(ctx, 1, 4096, 8, buf, false); err != nil {
		t.Fatalf("good host write: %v", err)
	}
	if err := q.Read(ctx, 1, 4096, 8, buf); err != nil {
		t.Fatalf("good host read: %v", err)
	}
}

type latencies []time.Duration

func (l latencies) p(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, int(float64(len(l))*q/100))]
}

// goodHostLatency reads 4 KiB at queue depth 1 for d and returns the sorted latencies.
func goodHostLatency(t *testing.T, addr string, d time.Duration) latencies {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+15*time.Second)
	defer cancel()
	c, err := host.Connect(ctx, addr, defaultNQN, host.Options{})
	if err != nil {
		t.Fatalf("good host connect: %v", err)
	}
	defer c.Close()
	q, err := c.NewIOQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var out latencies
	for end := time.Now().Add(d); time.Now().Before(end); {
		start := time.Now()
		if err := q.Read(ctx, 1, uint64(len(out)%1000)*8, 8, buf); err != nil {
			t.Fatalf("good host read: %v", err)
		}
		out = append(out, time.Since(start))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// connectCapsule builds an admin Connect capsule with its data in-capsule.
func connectCapsule(r *host.RawConn, subnqn, hostnqn string, qid uint16, cntlid uint16) []byte {
	var sqe nvme.SQE
	sqe.SetOpcode(nvme.OpcodeFabrics)
	sqe.SetFCTYPE(nvme.FCTConnect)
	sqe.SetCID(1)
	sqe.SetQID(qid)
	sqe.SetSQSIZE(31)
	sqe.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: nvme.ConnectDataLen})
	cd := nvme.ConnectData{HostID: [16]byte{byte(len(hostnqn)), 7}, CNTLID: cntlid, SubNQN: subnqn, HostNQN: hostnqn}
	var b [nvme.ConnectDataLen]byte
	cd.Put(&b)
	return r.CapsulePDU(&sqe, b[:])
}

// refusedConnect checks that an unlisted host gets Connect Invalid Host with DNR and
// is disconnected at once.
func refusedConnect(t *testing.T, addr, subnqn, hostnqn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := host.DialRaw(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Handshake(false, false, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.Send(connectCapsule(r, subnqn, hostnqn, 0, nvme.CNTLIDDynamic)); err != nil {
		t.Fatal(err)
	}
	ch, hdr, _, err := r.ReadPDU(5 * time.Second)
	if err != nil || ch.Type != nvme.PDUTypeCapsuleResp {
		t.Fatalf("Connect answer: %v %v", ch.Type, err)
	}
	if st := nvme.CapsuleCQE(hdr).Status(); st != nvme.StatusConnectInvalidHost.WithDNR() {
		t.Fatalf("unlisted host got %v, want Connect Invalid Host with DNR", st)
	}
	if err := r.WaitClosed(5 * time.Second); err != nil {
		t.Fatalf("refused host not disconnected: %v", err)
	}
}

// hostileWriter connects an allowed controller and queues 127 writes of 512 KiB whose
// data it will never send.
func hostileWriter(t *testing.T, addr string, i int) *host.RawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := host.DialRaw(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if _, err := r.Handshake(false, false, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// An admin queue only: its own controller, then I/O on a second connection would
	// need CC.EN; the admin queue cannot carry writes, so use the admin Connect, then
	// enable, then an I/O queue on the same identity.
	hostnqn := fmt.Sprintf("nqn.2014-08.org.example:writer-%d", i)
	if err := r.Send(connectCapsule(r, defaultNQN, hostnqn, 0, nvme.CNTLIDDynamic)); err != nil {
		t.Fatal(err)
	}
	ch, hdr, _, err := r.ReadPDU(5 * time.Second)
	if err != nil || ch.Type != nvme.PDUTypeCapsuleResp || !nvme.CapsuleCQE(hdr).Status().Success() {
		t.Fatalf("hostile admin connect: %v %v", ch.Type, err)
	}
	cntlid, _ := nvme.ConnectCNTLID(nvme.CapsuleCQE(hdr).DW0())
	var cc nvme.SQE
	cc.SetOpcode(nvme.OpcodeFabrics)
	cc.SetFCTYPE(nvme.FCTPropertySet)
	cc.SetCID(2)
	cc.SetPropOffset(nvme.PropCC)
	cc.SetPropValue(uint64(nvme.CC{EN: true, IOSQES: 6, IOCQES: 4}.Value()))
	if err := r.Send(r.CapsulePDU(&cc, nil)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.ReadPDU(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	io, err := host.DialRaw(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { io.Close() })
	if _, err := io.Handshake(false, false, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := io.Send(connectCapsule(io, defaultNQN, hostnqn, 1, cntlid)); err != nil {
		t.Fatal(err)
	}
	if ch, hdr, _, err := io.ReadPDU(5 * time.Second); err != nil || ch.Type != nvme.PDUTypeCapsuleResp ||
		!nvme.CapsuleCQE(hdr).Status().Success() {
		t.Fatalf("hostile I/O connect: %v %v", ch.Type, err)
	}
	for cid := uint16(10); cid < 10+127; cid++ {
		w := nvme.SQE{}
		w.SetOpcode(uint8(nvme.NVMWrite))
		w.SetCID(cid)
		w.SetNSID(1)
		w.SetSLBA(uint64(cid) * 1024)
		w.SetNLB(1024 - 1)
		w.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: 512 << 10})
		if err := io.Send(io.CapsulePDU(&w, nil)); err != nil {
			t.Fatal(err)
		}
	}
	return io
}

// waitNoBuffers waits until no data buffer is in use (all hostile connections gone).
func waitNoBuffers(t *testing.T, d *daemon) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ms mem.DomainStats
		d.call("mem_get_stats", nil, &ms)
		used := int64(0)
		for _, c := range ms.Cores {
			used += c.BytesInUse
		}
		if used == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of buffers still in use after the hostile hosts were cut", used)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// closedWithin reads and drops what arrives (R2Ts) until the peer closes c.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			ne, ok := err.(net.Error)
			return !ok || !ne.Timeout()
		}
	}
}
