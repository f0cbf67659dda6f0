package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/engine/iscsi"
	"sluice/engine/mem"
	"sluice/engine/nvmf"
	"sluice/engine/nvmf/host"
	"sluice/engine/proto/nvme"
	"sluice/engine/rpc"
)

// The hardening issue's lifecycle events, 60 rounds each (SPDK's nvmf_tgt survives
// 60), on the daemon's default file-backed volume with writes in flight, through real
// TCP connections. After each event the daemon must still serve, hold no connection
// and no data buffer once its hosts are gone, and never log a panic.

const lifecycleRounds = 60

// rstDialer records the connections it opens, so that a test can reset them (RST, as
// a host whose network blips does) instead of closing them.
type rstDialer struct {
	mu    sync.Mutex
	conns []*net.TCPConn
}

func (d *rstDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, c.(*net.TCPConn))
	d.mu.Unlock()
	return c, nil
}

// reset aborts every recorded connection with an RST.
func (d *rstDialer) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		_ = c.SetLinger(0)
		_ = c.Close()
	}
	d.conns = nil
}

// loaded is a controller with I/O queues that have writes in flight.
type loaded struct {
	ctrl   *host.Controller
	qs     []*host.IOQueue
	dialer *rstDialer
}

// connectLoaded connects a controller with nq I/O queues and leaves each with a full
// queue of 4 KiB writes in flight (every fourth FUA, so that an fdatasync keeps them
// in the kernel longer).
func connectLoaded(t *testing.T, d *daemon, nq int, opts host.Options) *loaded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := &loaded{dialer: &rstDialer{}}
	opts.Dialer = l.dialer
	ctrl, err := host.Connect(ctx, fmt.Sprintf("127.0.0.1:%d", d.nvmfPort), defaultNQN, opts)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	l.ctrl = ctrl
	for i := 0; i < nq; i++ {
		q, err := ctrl.NewIOQueue(ctx)
		if err != nil {
			t.Fatalf("I/O queue: %v", err)
		}
		l.qs = append(l.qs, q)
	}
	buf := make([]byte, 4096)
	for qi, q := range l.qs {
		n := q.Size() - 1
		for tag := 0; tag < n; tag++ {
			lba := uint64((qi*n + tag) * 8)
			if err := q.SubmitWrite(1, lba, 8, buf, tag%4 == 0, uint16(tag)); err != nil {
				t.Fatalf("submit: %v", err)
			}
		}
		if err := q.Flush(); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
	return l
}

// healthy checks that the daemon serves: once its hosts are gone it holds no
// connection and no data buffer, and a fresh host writes and reads back.
func healthy(t *testing.T, d *daemon, round int) {
	t.Helper()
	select {
	case <-d.exited:
		t.Fatalf("round %d: sluiced died", round)
	default:
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st nvmf.Stats
		d.call("nvmf_get_stats", nil, &st)
		var ms mem.DomainStats
		d.call("mem_get_stats", nil, &ms)
		inUse := int64(0)
		for _, c := range ms.Cores {
			inUse += c.BytesInUse
		}
		if st.Connections == 0 && inUse == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("round %d: %d connections and %d buffer bytes still held with no host", round, st.Connections, inUse)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctrl, q := connectIO(t, d)
	defer ctrl.Close()
	want := make([]byte, 4096)
	for i := range want {
		want[i] = byte(round + i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Write(ctx, 1, 1<<20, 8, want, true); err != nil {
		t.Fatalf("round %d: write after the event: %v", round, err)
	}
	got := make([]byte, 4096)
	if err := q.Read(ctx, 1, 1<<20, 8, got); err != nil || string(got) != string(want) {
		t.Fatalf("round %d: read back after the event: %v", round, err)
	}
}

func noPanicLogged(t *testing.T, d *daemon) {
	t.Helper()
	b, _ := os.ReadFile(d.logPath)
	if i := strings.Index(string(b), "panic"); i >= 0 {
		t.Fatalf("sluiced logged a panic:\n%s", tail(string(b[i:]), 40))
	}
}

func TestLifecycleUnderWriteLoad(t *testing.T) {
	d := newDaemon(t, "--cores", "0,1")
	ctx := context.Background()
	t.Run("connection_reset", func(t *testing.T) {
		for round := 0; round < lifecycleRounds; round++ {
			l := connectLoaded(t, d, 2, host.Options{})
			l.dialer.reset()
			l.ctrl.Close()
			if round%10 == 9 {
				healthy(t, d, round)
			}
		}
		healthy(t, d, lifecycleRounds)
	})
	t.Run("controller_reset", func(t *testing.T) {
		for round := 0; round < lifecycleRounds; round++ {
			l := connectLoaded(t, d, 2, host.Options{})
			ctrlReset(t, l.ctrl)
			for _, q := range l.qs {
				q.Close() // the target closed them; the host lets go of their QIDs
			}
			q, err := l.ctrl.NewIOQueue(ctx)
			if err != nil {
				t.Fatalf("round %d: I/O queue after reset: %v", round, err)
			}
			if err := q.Write(ctx, 1, 0, 8, make([]byte, 4096), false); err != nil {
				t.Fatalf("round %d: write after reset: %v", round, err)
			}
			l.ctrl.Close()
		}
		healthy(t, d, lifecycleRounds)
	})
	t.Run("shutdown_notification", func(t *testing.T) {
		for round := 0; round < lifecycleRounds; round++ {
			l := connectLoaded(t, d, 2, host.Options{})
			if err := shutdownNotice(ctx, l.ctrl); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			l.ctrl.Close()
		}
		healthy(t, d, lifecycleRounds)
	})
	t.Run("disconnect_busy_queue", func(t *testing.T) {
		for round := 0; round < lifecycleRounds; round++ {
			l := connectLoaded(t, d, 2, host.Options{})
			var sqe nvme.SQE
			sqe.SetOpcode(nvme.OpcodeFabrics)
			sqe.SetFCTYPE(nvme.FCTDisconnect)
			raw := l.dialer.conns[1] // the first I/O queue's connection
			if _, err := raw.Write(capsule(&sqe, 0xFFF)); err != nil {
				t.Fatalf("round %d: disconnect: %v", round, err)
			}
			waitClosed(t, raw)
			l.ctrl.Close()
		}
		healthy(t, d, lifecycleRounds)
	})
	t.Run("keep_alive_expiry", func(t *testing.T) {
		// All the controllers expire together: 60 expiries in about two seconds.
		var ls []*loaded
		for round := 0; round < lifecycleRounds; round++ {
			ls = append(ls, connectLoaded(t, d, 1, host.Options{KATO: time.Second, ManualKeepAlive: true}))
		}
		for _, l := range ls {
			waitClosed(t, l.dialer.conns[0])
			l.ctrl.Close()
		}
		var st nvmf.Stats
		d.call("nvmf_get_stats", nil, &st)
		if st.KeepAliveTimeouts < lifecycleRounds {
			t.Fatalf("%d keep-alive timeouts, want %d", st.KeepAliveTimeouts, lifecycleRounds)
		}
		healthy(t, d, lifecycleRounds)
	})
	t.Run("remove_ns_and_delete_bdev", func(t *testing.T) {
		var info []nvmf.SubsystemInfo
		d.call("nvmf_get_subsystems", nil, &info)
		var bdevs []map[string]any
		d.call("bdev_get_bdevs", map[string]string{"name": "vol0"}, &bdevs)
		params := bdevs[0]["driver_specific"]
		// The default config also exports vol0 over iSCSI, whose claim keeps the bdev
		// from being deleted (-16): this event is NVMe's namespace removal alone.
		d.call("iscsi_delete_target_node", iscsi.NameParams{Name: iscVol0}, nil)
		for round := 0; round < lifecycleRounds; round++ {
			l := connectLoaded(t, d, 2, host.Options{})
			d.call("nvmf_subsystem_remove_ns", map[string]any{"nqn": defaultNQN, "nsid": 1}, nil)
			if round%2 == 0 {
				// Delete and recreate the file bdev while the writes drain.
				d.call("bdev_file_delete", map[string]string{"name": "vol0"}, nil)
				d.call("bdev_file_create", params, nil)
			}
			d.call("nvmf_subsystem_add_ns", map[string]any{"nqn": defaultNQN,
				"namespace": map[string]any{"nsid": 1, "bdev_name": "vol0"}}, nil)
			l.ctrl.Close()
		}
		healthy(t, d, lifecycleRounds)
	})
	t.Run("delete_subsystem", func(t *testing.T) {
		var info []nvmf.SubsystemInfo
		d.call("nvmf_get_subsystems", nil, &info)
		var sub nvmf.SubsystemInfo
		for _, s := range info {
			if s.NQN == defaultNQN {
				sub = s
			}
		}
		for round := 0; round < lifecycleRounds; round++ {
			l := connectLoaded(t, d, 2, host.Options{})
			d.call("nvmf_delete_subsystem", map[string]string{"nqn": defaultNQN}, nil)
			recreate(t, d, sub)
			l.ctrl.Close()
		}
		healthy(t, d, lifecycleRounds)
	})
	t.Run("rpc_races", func(t *testing.T) {
		rpcRaces(t, d)
		healthy(t, d, 0)
	})
	noPanicLogged(t, d)
	d.stop()
	noPanicLogged(t, d)
}

// TestSIGTERMUnderWriteLoad: a daemon told to stop with writes in flight drains them,
// exits 0 and logs no panic, round after round on the same data.
func TestSIGTERMUnderWriteLoad(t *testing.T) {
	d := newDaemon(t, "--cores", "0,1")
	for round := 0; round < lifecycleRounds; round++ {
		l := connectLoaded(t, d, 2, host.Options{})
		d.stop()
		noPanicLogged(t, d)
		l.ctrl.Close()
		d.start()
	}
	healthy(t, d, lifecycleRounds)
}

func ctrlReset(t *testing.T, c *host.Controller) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := c.PropertyGet(ctx, nvme.PropCC)
	if err != nil {
		t.Fatal(err)
	}
	cc := nvme.DecodeCC(uint32(v))
	cc.EN = false
	if err := c.PropertySet(ctx, nvme.PropCC, uint64(cc.Value())); err != nil {
		t.Fatalf("CC.EN=0: %v", err)
	}
	for {
		v, err := c.PropertyGet(ctx, nvme.PropCSTS)
		if err != nil {
			t.Fatalf("CSTS: %v", err)
		}
		if !nvme.DecodeCSTS(uint32(v)).RDY {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cc.EN = true
	if err := c.PropertySet(ctx, nvme.PropCC, uint64(cc.Value())); err != nil {
		t.Fatalf("CC.EN=1: %v", err)
	}
}

// shutdownNotice sets CC.SHN with the I/O queues still open and busy, and waits for
// CSTS.SHST complete: the target closes the queues itself.
func shutdownNotice(ctx context.Context, c *host.Controller) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := c.PropertyGet(ctx, nvme.PropCC)
	if err != nil {
		return err
	}
	cc := nvme.DecodeCC(uint32(v))
	cc.SHN = nvme.SHNNormal
	if err := c.PropertySet(ctx, nvme.PropCC, uint64(cc.Value())); err != nil {
		return fmt.Errorf("CC.SHN: %w", err)
	}
	for {
		v, err := c.PropertyGet(ctx, nvme.PropCSTS)
		if err != nil {
			return fmt.Errorf("CSTS: %w", err)
		}
		if nvme.DecodeCSTS(uint32(v)).SHST == nvme.SHSTComplete {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// capsule frames an SQE as a CapsuleCmd PDU without digests.
func capsule(sqe *nvme.SQE, cid uint16) []byte {
	sqe.SetCID(cid)
	b := make([]byte, nvme.CapsuleCmdHLen)
	nvme.CommonHeader{Type: nvme.PDUTypeCapsuleCmd, HLen: nvme.CapsuleCmdHLen, PLen: nvme.CapsuleCmdHLen}.Put(b)
	copy(b[nvme.CHLen:], sqe[:])
	return b
}

// waitClosed reads until the target closes the connection.
func waitClosed(t *testing.T, c *net.TCPConn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the target did not close the connection")
		}
		return
	}
}

func recreate(t *testing.T, d *daemon, s nvmf.SubsystemInfo) {
	t.Helper()
	d.call("nvmf_create_subsystem", nvmf.SubsystemParams{NQN: s.NQN, SerialNumber: s.SerialNumber,
		ModelNumber: s.ModelNumber, AllowAnyHost: s.AllowAnyHost, MaxNamespaces: s.MaxNamespaces}, nil)
	for _, ns := range s.Namespaces {
		d.call("nvmf_subsystem_add_ns", nvmf.AddNSParams{NQN: s.NQN, Namespace: nvmf.NamespaceParams(ns)}, nil)
	}
	for _, l := range s.Listeners {
		d.call("nvmf_subsystem_add_listener", nvmf.ListenerParams{NQN: s.NQN, ListenAddress: l}, nil)
	}
}

// rpcRaces drives the two races the issue names from two clients at once, with writes
// in flight, and checks that every RPC leaves a state a later RPC can see and undo.
func rpcRaces(t *testing.T, d *daemon) {
	var bdevs []map[string]any
	d.call("bdev_get_bdevs", map[string]string{"name": "vol0"}, &bdevs)
	params := bdevs[0]["driver_specific"]
	var info []nvmf.SubsystemInfo
	d.call("nvmf_get_subsystems", nil, &info)
	var sub nvmf.SubsystemInfo
	for _, s := range info {
		if s.NQN == defaultNQN {
			sub = s
		}
	}
	for round := 0; round < lifecycleRounds; round++ {
		l := connectLoaded(t, d, 1, host.Options{})
		// remove_ns racing the bdev's delete: afterwards vol0 is either gone or still
		// listed and deletable, never gone from the list while still open.
		var wg sync.WaitGroup
		var errDel error
		wg.Add(2)
		go func() {
			defer wg.Done()
			_ = tryCall(d, "nvmf_subsystem_remove_ns", map[string]any{"nqn": defaultNQN, "nsid": 1})
		}()
		go func() { defer wg.Done(); errDel = tryCall(d, "bdev_file_delete", map[string]string{"name": "vol0"}) }()
		wg.Wait()
		var got []map[string]any
		listed := tryCallResult(d, "bdev_get_bdevs", map[string]string{"name": "vol0"}, &got) == nil
		switch {
		case errDel == nil && listed:
			t.Fatalf("round %d: delete succeeded but vol0 is still listed", round)
		case errDel != nil && !listed:
			t.Fatalf("round %d: delete failed (%v) and vol0 vanished", round, errDel)
		case errDel != nil:
			d.call("bdev_file_delete", map[string]string{"name": "vol0"}, nil) // a retry succeeds
		}
		d.call("bdev_file_create", params, nil)
		// add_ns racing delete_subsystem: afterwards vol0 is claimed by nobody.
		wg.Add(2)
		go func() {
			defer wg.Done()
			_ = tryCall(d, "nvmf_subsystem_add_ns", map[string]any{"nqn": defaultNQN,
				"namespace": map[string]any{"nsid": 1, "bdev_name": "vol0"}})
		}()
		go func() { defer wg.Done(); _ = tryCall(d, "nvmf_delete_subsystem", map[string]string{"nqn": defaultNQN}) }()
		wg.Wait()
		d.call("bdev_get_bdevs", map[string]string{"name": "vol0"}, &got)
		if claimed, _ := got[0]["claimed"].(bool); claimed {
			t.Fatalf("round %d: vol0 claimed (%v) after its subsystem was deleted", round, got[0]["claimed_by"])
		}
		recreate(t, d, sub)
		l.ctrl.Close()
	}
}

func tryCall(d *daemon, method string, params any) error {
	return tryCallResult(d, method, params, nil)
}

func tryCallResult(d *daemon, method string, params, result any) error {
	c, err := rpc.Dial(d.sock)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	return c.Call(ctx, method, params, result)
}
