package interop

import (
	"context"
	"fmt"
	"testing"
	"time"

	"sluice/engine/nvmf/host"
	"sluice/engine/proto/nvme"
)

type identity struct {
	sn, subnqn  string
	nguid, eui  [16]byte
	nsze        uint64
	unsafeShuts uint64
	powerCycles uint64
}

func readIdentity(t *testing.T, d *daemon) identity {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctrl, err := host.Connect(ctx, fmt.Sprintf("127.0.0.1:%d", d.nvmfPort), defaultNQN, host.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	ic, err := ctrl.IdentifyController(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := ctrl.IdentifyNamespace(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := ctrl.SMARTLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := identity{sn: nvme.ASCIIString(ic.SN[:]), subnqn: nvme.NQNString(ic.SUBNQN[:]), nguid: ns.NGUID,
		nsze: ns.NSZE, unsafeShuts: sl.UnsafeShutdowns.Lo, powerCycles: sl.PowerCycles.Lo}
	copy(id.eui[:], ns.EUI64[:])
	return id
}

// TestIdentityAndHealthAcrossRestarts: serial number, NQN, NGUID and EUI-64 do not
// change when the daemon restarts, so hosts recognise the same namespace; the health
// log counts power cycles, and counts an unsafe shutdown after kill -9 but not after
// SIGTERM.
func TestIdentityAndHealthAcrossRestarts(t *testing.T) {
	d := newDaemon(t)
	first := readIdentity(t, d)
	if first.powerCycles != 1 || first.unsafeShuts != 0 {
		t.Fatalf("fresh daemon: power cycles %d, unsafe shutdowns %d", first.powerCycles, first.unsafeShuts)
	}
	d.stop()
	d.start()
	second := readIdentity(t, d)
	d.kill()
	d.start()
	third := readIdentity(t, d)
	for i, id := range []identity{second, third} {
		if id.sn != first.sn || id.subnqn != first.subnqn || id.nguid != first.nguid || id.eui != first.eui || id.nsze != first.nsze {
			t.Fatalf("identity changed after restart %d: %+v, was %+v", i+1, id, first)
		}
	}
	if second.powerCycles != 2 || second.unsafeShuts != 0 {
		t.Errorf("after SIGTERM restart: power cycles %d, unsafe shutdowns %d; want 2, 0", second.powerCycles, second.unsafeShuts)
	}
	if third.powerCycles != 3 || third.unsafeShuts != 1 {
		t.Errorf("after kill -9 restart: power cycles %d, unsafe shutdowns %d; want 3, 1", third.powerCycles, third.unsafeShuts)
	}
}

// TestHostAllowListAndAdvertisedAddress: a subsystem with an allow-list refuses other
// hosts at Connect, and shows up in discovery only for its hosts, under the
// advertised address of its listener.
func TestHostAllowListAndAdvertisedAddress(t *testing.T) {
	d := newDaemon(t)
	const nqn = "nqn.2026-11.dev.sluice:private"
	const allowed = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-000000000001"
	const other = "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-000000000002"
	port := freePort(t)
	var ok bool
	var name string
	d.call("bdev_malloc_create", map[string]any{"name": "p0", "num_blocks": 1024, "block_size": 4096}, &name)
	d.call("nvmf_create_subsystem", map[string]any{"nqn": nqn}, &ok)
	var nsid uint32
	d.call("nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": "p0"}}, &nsid)
	d.call("nvmf_subsystem_add_host", map[string]any{"nqn": nqn, "host": allowed}, &ok)
	d.call("nvmf_subsystem_add_listener", map[string]any{"nqn": nqn, "listen_address": map[string]any{
		"traddr": "127.0.0.1", "trsvcid": fmt.Sprint(port), "advertised_traddr": "192.0.2.10", "advertised_trsvcid": "14420"}}, &ok)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if _, err := host.Connect(ctx, addr, nqn, host.Options{HostNQN: other}); !host.IsStatus(err, nvme.StatusConnectInvalidHost) {
		t.Fatalf("connect from a host not on the list: %v, want Connect Invalid Host", err)
	}
	ctrl, err := host.Connect(ctx, addr, nqn, host.Options{HostNQN: allowed})
	if err != nil {
		t.Fatalf("connect from the allowed host: %v", err)
	}
	ctrl.Close()

	disc := fmt.Sprintf("127.0.0.1:%d", d.discPort)
	find := func(hostNQN string) *nvme.DiscoveryLogEntry {
		es, _, err := host.Discover(ctx, disc, host.Options{HostNQN: hostNQN})
		if err != nil {
			t.Fatal(err)
		}
		for i := range es {
			if nvme.NQNString(es[i].SUBNQN[:]) == nqn {
				return &es[i]
			}
		}
		return nil
	}
	if e := find(other); e != nil {
		t.Fatal("discovery shows the private subsystem to a host not on its list")
	}
	e := find(allowed)
	if e == nil {
		t.Fatal("discovery hides the subsystem from its allowed host")
	}
	if a, s := nvme.ASCIIString(e.TRADDR[:]), nvme.ASCIIString(e.TRSVCID[:]); a != "192.0.2.10" || s != "14420" {
		t.Fatalf("discovery entry %s:%s, want the advertised 192.0.2.10:14420", a, s)
	}
}
