package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/nvmf"
	"sluice/tools/guest"
)

const defaultNQN = "nqn.2026-11.dev.sluice:vol0"

// linuxHost is a booted guest plus helpers for the nvme-cli steps.
type linuxHost struct {
	t  *testing.T
	vm *guest.VM
	d  *daemon
}

func (h *linuxHost) run(script string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := h.vm.RunOK(ctx, script)
	if err != nil {
		h.t.Fatalf("guest: %v", err)
	}
	return out
}

func (h *linuxHost) connect(flags string) {
	h.t.Helper()
	h.run(fmt.Sprintf("nvme connect -t tcp -a 10.0.2.2 -s %d -n %s %s", h.d.nvmfPort, defaultNQN, flags))
	h.waitDevice()
}

// ctrl finds the controller (nvmeN) connected to the default subsystem.
func (h *linuxHost) ctrl() string {
	h.t.Helper()
	return strings.TrimSpace(h.run(fmt.Sprintf(
		`for c in /sys/class/nvme/nvme*; do if [ "$(cat $c/subsysnqn)" = %q ]; then basename $c; fi; done`, defaultNQN)))
}

// dev is the namespace block device. With native multipath (CMIC) it is the
// subsystem's head device, whose name follows the subsystem, not the controller.
func (h *linuxHost) dev() string {
	h.t.Helper()
	var list struct {
		Devices []struct {
			DevicePath   string `json:"DevicePath"`
			SerialNumber string `json:"SerialNumber"`
		} `json:"Devices"`
	}
	out := h.run("nvme list -o json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		h.t.Fatalf("nvme list -o json: %v\n%s", err, out)
	}
	want := nvmf.DeriveSerial(defaultNQN)
	for _, d := range list.Devices {
		if strings.TrimSpace(d.SerialNumber) == want {
			return d.DevicePath
		}
	}
	h.t.Fatalf("no namespace with serial %s in nvme list:\n%s", want, out)
	return ""
}

func (h *linuxHost) waitDevice() {
	h.t.Helper()
	h.run(`for i in $(seq 1 100); do ls /dev/nvme*n1 >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1`)
}

func (h *linuxHost) disconnect() {
	h.t.Helper()
	out := h.run("nvme disconnect -n " + defaultNQN)
	if !strings.Contains(out, "disconnected 1 controller") {
		h.t.Fatalf("nvme disconnect: %s", out)
	}
	waitFor(h.t, "target to drop the controller", 20*time.Second, func() bool {
		var cs []nvmf.CtrlrInfo
		h.d.call("nvmf_subsystem_get_controllers", map[string]string{"nqn": defaultNQN}, &cs)
		return len(cs) == 0
	})
}

func (h *linuxHost) guestio(args string) {
	h.t.Helper()
	out := h.run("guestio " + args)
	if !strings.HasPrefix(out, "guestio: ok") {
		h.t.Fatalf("guestio %s: %s", args, out)
	}
}

func (h *linuxHost) smart() map[string]json.Number {
	h.t.Helper()
	out := h.run("nvme smart-log /dev/" + h.ctrl() + " -o json")
	m := map[string]json.Number{}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		h.t.Fatalf("smart-log json: %v\n%s", err, out)
	}
	for k, v := range raw {
		switch n := v.(type) {
		case json.Number:
			m[k] = n
		case string: // nvme-cli prints 128-bit counters as strings
			m[k] = json.Number(n)
		}
	}
	return m
}

func (h *linuxHost) iostat() bdev.IOStat {
	h.t.Helper()
	var res bdev.IOStatResult
	h.d.call("bdev_get_iostat", map[string]string{"name": "vol0"}, &res)
	return res.Bdevs[0]
}

func (h *linuxHost) qpairs() []nvmf.QPairInfo {
	h.t.Helper()
	var qs []nvmf.QPairInfo
	h.d.call("nvmf_subsystem_get_qpairs", map[string]string{"nqn": defaultNQN}, &qs)
	return qs
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func num(t *testing.T, m map[string]json.Number, k string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(m[k].String(), 10, 64)
	if err != nil {
		t.Fatalf("smart-log field %q = %q: %v", k, m[k], err)
	}
	return n
}

// TestLinuxNVMeTCPHost drives the default volume from the Linux kernel NVMe/TCP host
// and nvme-cli, step by step as an operator would.
func TestLinuxNVMeTCPHost(t *testing.T) {
	d := newDaemon(t, "--cores", "0-1")
	// Two vCPUs: the Linux host creates at most one I/O queue per CPU.
	vm := guest.Start(t, guest.Options{CPUs: 2})
	h := &linuxHost{t: t, vm: vm, d: d}

	t.Run("discover", func(t *testing.T) {
		h.t = t
		out := h.run(fmt.Sprintf("nvme discover -t tcp -a 10.0.2.2 -s %d", d.discPort))
		for _, want := range []string{defaultNQN, "subtype: nvme subsystem", "trsvcid: " + strconv.Itoa(d.nvmfPort),
			"current discovery subsystem"} {
			if !strings.Contains(out, want) {
				t.Fatalf("discovery log lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("connect two io queues", func(t *testing.T) {
		h.t = t
		h.connect("--nr-io-queues 2")
		qs := h.qpairs()
		var io []nvmf.QPairInfo
		for _, q := range qs {
			if q.QID > 0 {
				io = append(io, q)
			}
		}
		if len(io) != 2 {
			t.Fatalf("target sees %d I/O queues, want 2: %+v", len(io), qs)
		}
		if io[0].Reactor == io[1].Reactor {
			t.Errorf("both I/O queues on reactor %d; connections should spread", io[0].Reactor)
		}
		if out := h.run("nvme list"); !strings.Contains(out, nvmf.DeriveSerial(defaultNQN)) {
			t.Fatalf("nvme list:\n%s", out)
		}
	})

	t.Run("identify", func(t *testing.T) {
		h.t = t
		ctrl := h.ctrl()
		out := h.run("nvme id-ctrl /dev/" + ctrl)
		for _, want := range []string{`mn +: sluice`, `sn +: ` + nvmf.DeriveSerial(defaultNQN),
			`subnqn +: ` + regexp.QuoteMeta(defaultNQN), `kas +: (0x)?1\n`, `sgls +: (0x)?100001`,
			// ONCS 2Ch: Write Zeroes (bit 3), Dataset Management (2) and Reservations (5).
			`oncs +: (0x)?0*2c\n`, `vwc +: (0x)?5\n`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Fatalf("id-ctrl lacks %q:\n%s", want, out)
			}
		}
		out = h.run("nvme id-ns " + h.dev() + " -n 1")
		if !strings.Contains(out, "nsze    : 0x200000") || !strings.Contains(out, "dlfeat  : 9") {
			t.Fatalf("id-ns:\n%s", out)
		}
	})

	before := h.smart()
	t.Run("write and read back 4k and 128k and 512k", func(t *testing.T) {
		h.t = t
		dev := h.dev()
		h.guestio("write -dev " + dev + " -bs 4096 -count 256 -offset 0 -seed 1")
		h.guestio("write -dev " + dev + " -bs 131072 -count 64 -offset 16777216 -seed 2")
		h.guestio("write -dev " + dev + " -bs 524288 -count 8 -offset 67108864 -seed 3")
		h.run("echo 3 > /proc/sys/vm/drop_caches")
		h.guestio("verify -dev " + dev + " -bs 4096 -count 256 -offset 0 -seed 1")
		h.guestio("verify -dev " + dev + " -bs 131072 -count 64 -offset 16777216 -seed 2")
		h.guestio("verify -dev " + dev + " -bs 524288 -count 8 -offset 67108864 -seed 3")
	})

	t.Run("smart log counts the I/O", func(t *testing.T) {
		h.t = t
		after := h.smart()
		// 1 MiB + 8 MiB + 4 MiB written = 13 MiB = 26624 units of 512 B = 27 data units.
		if w := num(t, after, "data_units_written") - num(t, before, "data_units_written"); w < 26 {
			t.Errorf("data_units_written grew by %d, want >= 26", w)
		}
		if w := num(t, after, "host_write_commands") - num(t, before, "host_write_commands"); w < 256+64+8 {
			t.Errorf("host_write_commands grew by %d, want >= 328", w)
		}
		if r := num(t, after, "host_read_commands") - num(t, before, "host_read_commands"); r < 256+64+8 {
			t.Errorf("host_read_commands grew by %d, want >= 328", r)
		}
	})

	t.Run("flush reaches fdatasync", func(t *testing.T) {
		h.t = t
		s0 := h.iostat()
		h.run("nvme flush " + h.dev() + " -n 1")
		s1 := h.iostat()
		if s1.NumFlushOps <= s0.NumFlushOps || s1.NumSyncOps <= s0.NumSyncOps {
			t.Fatalf("flush: ops %d→%d, fdatasync %d→%d", s0.NumFlushOps, s1.NumFlushOps, s0.NumSyncOps, s1.NumSyncOps)
		}
	})

	t.Run("write zeroes and deallocate read back zeros", func(t *testing.T) {
		h.t = t
		dev := h.dev()
		// 1 MiB at 128 MiB, then zero the first half with Write Zeroes and the
		// second half with DSM deallocate.
		h.guestio("write -dev " + dev + " -bs 131072 -count 8 -offset 134217728 -seed 4")
		h.run("nvme write-zeroes " + dev + " -n 1 -s 262144 -c 1023")
		h.guestio("zero-check -dev " + dev + " -offset 134217728 -len 524288")
		h.run("nvme dsm " + dev + " -n 1 --ad -s 263168 -b 1024")
		h.guestio("zero-check -dev " + dev + " -offset 134742016 -len 524288")
		st := h.iostat()
		if st.NumUnmapOps == 0 && st.NumWriteZeroesOps == 0 {
			t.Fatalf("no write-zeroes or unmap reached the bdev: %+v", st)
		}
	})

	t.Run("keep alive while idle", func(t *testing.T) {
		h.t = t
		ctrl := h.ctrl()
		cntlid := h.run("cat /sys/class/nvme/" + ctrl + "/cntlid")
		kato := strings.TrimSpace(h.run("cat /sys/class/nvme/" + ctrl + "/kato 2>/dev/null || echo 5"))
		k, _ := strconv.Atoi(kato)
		if k <= 0 {
			k = 5
		}
		time.Sleep(time.Duration(2*k+2) * time.Second)
		if got := h.run("cat /sys/class/nvme/" + ctrl + "/state"); strings.TrimSpace(got) != "live" {
			t.Fatalf("controller state after idling %ds: %s", 2*k+2, got)
		}
		if got := h.run("cat /sys/class/nvme/" + ctrl + "/cntlid"); got != cntlid {
			t.Fatalf("controller changed while idle: cntlid %s → %s", cntlid, got)
		}
		var st nvmf.Stats
		d.call("nvmf_get_stats", nil, &st)
		if st.KeepAliveTimeouts != 0 {
			t.Fatalf("target expired %d controllers", st.KeepAliveTimeouts)
		}
		h.guestio("verify -dev " + h.dev() + " -bs 4096 -count 256 -offset 0 -seed 1")
	})

	t.Run("namespace hot add and remove reach the host", func(t *testing.T) {
		h.t = t
		var name string
		d.call("bdev_malloc_create", map[string]any{"name": "m1", "num_blocks": 4096, "block_size": 4096}, &name)
		var nsid uint32
		d.call("nvmf_subsystem_add_ns", map[string]any{"nqn": defaultNQN,
			"namespace": map[string]any{"nsid": 2, "bdev_name": "m1"}}, &nsid)
		// The host learns of it through the Namespace Attribute Changed event and
		// the Changed Namespace List log, and scans it.
		h.run(`for i in $(seq 1 200); do [ "$(ls /sys/block | grep -c '^nvme[0-9]*n[0-9]*$')" -ge 2 ] && exit 0; sleep 0.1; done; exit 1`)
		if out := h.run("nvme list"); !strings.Contains(out, "16.78  MB") {
			t.Errorf("nvme list does not show the 16 MiB namespace:\n%s", out)
		}
		var ok bool
		d.call("nvmf_subsystem_remove_ns", map[string]any{"nqn": defaultNQN, "nsid": 2}, &ok)
		h.run(`for i in $(seq 1 200); do [ "$(ls /sys/block | grep -c '^nvme[0-9]*n[0-9]*$')" -eq 1 ] && exit 0; sleep 0.1; done; exit 1`)
		d.call("bdev_malloc_delete", map[string]any{"name": "m1"}, &ok)
	})

	t.Run("disconnect", func(t *testing.T) {
		h.t = t
		h.disconnect()
	})

	t.Run("header and data digests", func(t *testing.T) {
		h.t = t
		h.connect("--hdr-digest --data-digest")
		for _, q := range h.qpairs() {
			if !q.HeaderDigest || !q.DataDigest {
				t.Fatalf("queue %d negotiated hdgst=%v ddgst=%v", q.QID, q.HeaderDigest, q.DataDigest)
			}
		}
		dev := h.dev()
		h.guestio("write -dev " + dev + " -bs 131072 -count 16 -offset 201326592 -seed 5")
		h.run("echo 3 > /proc/sys/vm/drop_caches")
		h.guestio("verify -dev " + dev + " -bs 131072 -count 16 -offset 201326592 -seed 5")
		h.guestio("verify -dev " + dev + " -bs 4096 -count 256 -offset 0 -seed 1")
		h.disconnect()
	})

	t.Run("sq flow control disabled uses C2H success", func(t *testing.T) {
		h.t = t
		var st0 nvmf.Stats
		d.call("nvmf_get_stats", nil, &st0)
		h.connect("--disable-sqflow")
		h.guestio("verify -dev " + h.dev() + " -bs 131072 -count 64 -offset 16777216 -seed 2")
		var st1 nvmf.Stats
		d.call("nvmf_get_stats", nil, &st1)
		if st1.C2HSuccess < st0.C2HSuccess+64 {
			t.Fatalf("reads with C2H SUCCESS: %d → %d, want +64", st0.C2HSuccess, st1.C2HSuccess)
		}
		h.disconnect()
	})

	t.Run("host reconnects after daemon restart", func(t *testing.T) {
		h.t = t
		h.connect("--reconnect-delay 1 --ctrl-loss-tmo 120")
		dev := h.dev()
		h.guestio("write -dev " + dev + " -bs 4096 -count 64 -offset 268435456 -seed 6")
		d.stop()
		time.Sleep(2 * time.Second)
		d.start()
		h.run(fmt.Sprintf(`for i in $(seq 1 600); do
			for c in /sys/class/nvme/nvme*; do
				[ "$(cat $c/subsysnqn)" = %q ] && [ "$(cat $c/state)" = live ] && exit 0
			done
			sleep 0.1
		done; exit 1`, defaultNQN))
		h.guestio("verify -dev " + dev + " -bs 4096 -count 64 -offset 268435456 -seed 6")
		h.guestio("verify -dev " + dev + " -bs 131072 -count 64 -offset 16777216 -seed 2")
		h.disconnect()
	})
}
