package interop

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/iscsi"
	"sluice/tools/guest"
)

// vol0IQN is the daemon's default target node; LUN 0 is the 1 GiB default volume.
const vol0IQN = "iqn.2026-11.dev.sluice:vol0"

// vol0Sectors is the default volume's size in the 512-byte units of /sys/block/*/size.
const vol0Sectors = 1 << 30 / 512

// iscsiStepTimeout bounds one guest command (a login, a few MiB of I/O): each takes
// well under 10 s here, and the whole test has about three minutes.
const iscsiStepTimeout = 45 * time.Second

// kernelTrouble matches what the Linux initiator and the SCSI layer log when the
// target misbehaves: connection errors (a bad PDU, a digest mismatch, a timed-out
// NOP), failed commands, and error recovery.
var kernelTrouble = regexp.MustCompile(`(?i)conn error|I/O error|critical|Sense Key|timing out command|` +
	`rejecting I/O|abort|reset (target|LUN|host)|iscsi_eh|Buffer I/O|blk_update_request|hung_task`)

// iscsiGuest is a booted guest used as an open-iscsi initiator of the daemon's
// default target node, with helpers for the iscsiadm steps.
type iscsiGuest struct {
	t      *testing.T
	vm     *guest.VM
	d      *daemon
	portal string // HOST:PORT as the guest reaches the daemon
	dumped bool   // evidence already printed with a failure
}

func (g *iscsiGuest) run(script string) string {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), iscsiStepTimeout)
	defer cancel()
	out, err := g.vm.RunOK(ctx, script)
	if err != nil {
		g.dumped = true
		g.t.Fatalf("guest: %v\n%s", err, g.evidence())
	}
	return out
}

// evidence is what the target's owner needs when a step fails: the guest's kernel
// log and iscsid's own log (the daemon's log is printed by newDaemon's cleanup).
func (g *iscsiGuest) evidence() string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _, err := g.vm.Run(ctx, "echo '--- dmesg since the last check'; dmesg | tail -n 60; echo '--- /run/iscsid.log'; "+
		"tail -n 40 /run/iscsid.log; echo '--- iscsiadm -m session -P 3'; iscsiadm -m session -P 3")
	if err != nil {
		return fmt.Sprintf("(no evidence from the guest: %v)", err)
	}
	return out
}

// kernelLog takes the kernel messages since the last call (dmesg -c), logs them, and
// fails on any that shows trouble, unless it matches one of allow.
func (g *iscsiGuest) kernelLog(allow ...string) {
	g.t.Helper()
	out := g.run("dmesg -c")
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if !kernelTrouble.MatchString(l) {
			continue
		}
		ok := false
		for _, a := range allow {
			ok = ok || strings.Contains(l, a)
		}
		if !ok {
			bad = append(bad, l)
		}
	}
	if strings.TrimSpace(out) != "" {
		g.t.Logf("guest kernel:\n%s", strings.TrimRight(out, "\n"))
	}
	if len(bad) > 0 {
		g.t.Errorf("the guest kernel reports trouble with the target:\n%s\n%s",
			strings.Join(bad, "\n"), g.run("tail -n 40 /run/iscsid.log"))
	}
}

// iscsiadm runs iscsiadm on the default target node through the guest's portal.
func (g *iscsiGuest) iscsiadm(args string) string {
	g.t.Helper()
	return g.run(fmt.Sprintf("iscsiadm -m node -T %s -p %s %s", vol0IQN, g.portal, args))
}

func (g *iscsiGuest) login() {
	g.t.Helper()
	if out := g.iscsiadm("--login"); !strings.Contains(out, "successful") {
		g.t.Fatalf("iscsiadm --login:\n%s", out)
	}
}

// logout logs out and waits until the target has dropped the connection, so that the
// next step starts from no session on either side.
func (g *iscsiGuest) logout() {
	g.t.Helper()
	if out := g.iscsiadm("--logout"); !strings.Contains(out, "successful") {
		g.t.Fatalf("iscsiadm --logout:\n%s", out)
	}
	waitFor(g.t, "the target to drop the connection after logout", 20*time.Second, func() bool {
		return len(g.conns()) == 0
	})
}

// disk waits for the LUN's SCSI disk to appear under the (only) session and returns
// its block device name (sda) and SCSI generic device name (sg0). Without udev
// there is no /dev/disk/by-path: sysfs links session, target, LUN and disk.
//
// It also lifts the disk's max_sectors_kb from sd's default 128 to 1024, so that
// one 512 KiB I/O is one SCSI command, larger than the target's MaxBurstLength:
// several R2Ts for a write, several Data-In sequences for a read.
func (g *iscsiGuest) disk() (blk, sg string) {
	g.t.Helper()
	out := g.run(fmt.Sprintf(`for i in $(seq 1 150); do
	for s in /sys/class/iscsi_session/session*; do
		[ "$(cat $s/targetname 2>/dev/null)" = %q ] || continue
		for l in $s/device/target*/*:*:*:0; do
			b=$(ls $l/block 2>/dev/null); g=$(ls $l/scsi_generic 2>/dev/null)
			if [ -n "$b" ] && [ -n "$g" ] && [ -b /dev/$b ] && [ -c /dev/$g ]; then
				echo 1024 >/sys/block/$b/queue/max_sectors_kb && echo "$b $g"; exit
			fi
		done
	done
	sleep 0.1
done
echo "no SCSI disk for LUN 0 after 15 s"; ls -lR /sys/class/iscsi_session/ /sys/class/scsi_disk/; exit 1`, vol0IQN))
	f := strings.Fields(out)
	if len(f) != 2 {
		g.t.Fatalf("finding the disk: %q", out)
	}
	return f[0], f[1]
}

func (g *iscsiGuest) guestio(args string) {
	g.t.Helper()
	if out := g.run("guestio " + args); !strings.HasPrefix(out, "guestio: ok") {
		g.t.Fatalf("guestio %s: %s", args, out)
	}
}

// The patterns the test writes: each is written once and verified after every
// logout, digest change and daemon restart.
type ioPattern struct {
	bs, count, offset, seed int
}

func (p ioPattern) args(dev string) string {
	return fmt.Sprintf("-dev /dev/%s -bs %d -count %d -offset %d -seed %d", dev, p.bs, p.count, p.offset, p.seed)
}

var (
	pat512k  = ioPattern{bs: 524288, count: 8, offset: 128 << 20, seed: 6}
	pat4k    = ioPattern{bs: 4096, count: 512, offset: 1 << 20, seed: 1}       // 2 MiB at 1 MiB
	pat128k  = ioPattern{bs: 131072, count: 64, offset: 16 << 20, seed: 2}     // 8 MiB at 16 MiB
	patDgst  = ioPattern{bs: 131072, count: 32, offset: 40 << 20, seed: 3}     // 4 MiB at 40 MiB
	patKill  = ioPattern{bs: 4096, count: 256, offset: 64<<20 + 512, seed: 4}  // 1 MiB, unaligned to 4 KiB
	patFinal = ioPattern{bs: 131072, count: 8, offset: 1<<30 - 1<<20, seed: 5} // the last MiB
)

// parallel runs guestio MODE for each pattern at once: queue depth len(ps), so
// that the target has several commands (and their R2Ts) in flight.
func (g *iscsiGuest) parallel(mode, dev string, ps ...ioPattern) {
	g.t.Helper()
	var sb strings.Builder
	for i, p := range ps {
		fmt.Fprintf(&sb, "guestio %s %s >/tmp/gio.%d 2>&1 & p%d=$!\n", mode, p.args(dev), i, i)
	}
	sb.WriteString("rc=0\n")
	for i := range ps {
		fmt.Fprintf(&sb, "wait $p%d || rc=1; cat /tmp/gio.%d\n", i, i)
	}
	sb.WriteString("exit $rc\n")
	if out := g.run(sb.String()); strings.Count(out, "guestio: ok ") != len(ps) {
		g.t.Fatalf("parallel guestio %s:\n%s", mode, out)
	}
}

// verify drops the guest's page cache (O_DIRECT bypasses it; this is for anything
// else that read the disk) and verifies the patterns, several at once.
func (g *iscsiGuest) verify(dev string, ps ...ioPattern) {
	g.t.Helper()
	g.run("echo 3 >/proc/sys/vm/drop_caches")
	g.parallel("verify", dev, ps...)
}

func (g *iscsiGuest) conns() []iscsi.ConnectionInfo {
	g.t.Helper()
	var cs []iscsi.ConnectionInfo
	g.d.call("iscsi_get_connections", nil, &cs)
	return cs
}

// conn returns the target's view of the only connection, which must be a
// full-feature connection of the guest to the default node.
func (g *iscsiGuest) conn() iscsi.ConnectionInfo {
	g.t.Helper()
	cs := g.conns()
	if len(cs) != 1 {
		g.t.Fatalf("target has %d connections, want 1: %+v", len(cs), cs)
	}
	c := cs[0]
	if c.Initiator != guest.InitiatorName || c.Target != vol0IQN || c.State != "full_feature" {
		g.t.Fatalf("target's connection: %+v; want initiator %s, target %s, full_feature", c, guest.InitiatorName, vol0IQN)
	}
	return c
}

func (g *iscsiGuest) stats() iscsi.Stats {
	g.t.Helper()
	var st iscsi.Stats
	g.d.call("iscsi_get_stats", nil, &st)
	return st
}

// checkStats fails on any counter that shows the target saw the initiator misbehave
// (or misjudged it): digest errors, protocol errors, rejects, NOP timeouts.
func (g *iscsiGuest) checkStats() {
	g.t.Helper()
	st := g.stats()
	g.t.Logf("target stats: %+v", st)
	if st.HeaderDigestErrors+st.DataDigestErrors+st.ProtocolErrors+st.Rejects+st.NopTimeouts+st.CmdSNDropped != 0 {
		g.t.Errorf("target counted errors with the Linux initiator: %+v", st)
	}
}

// sessionParams is iscsiadm's report of the session: the kernel's negotiated
// parameters, timeouts and attached disk.
func (g *iscsiGuest) sessionParams() string {
	g.t.Helper()
	out := g.run("iscsiadm -m session -P 3")
	g.t.Logf("iscsiadm -m session -P 3:\n%s", out)
	return out
}

func negotiated(out, key string) string {
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(key) + `: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

func (g *iscsiGuest) iostat() bdev.IOStat {
	g.t.Helper()
	var res bdev.IOStatResult
	g.d.call("bdev_get_iostat", map[string]string{"name": "vol0"}, &res)
	return res.Bdevs[0]
}

// TestLinuxISCSIInitiator drives the default volume from the Linux kernel iSCSI
// initiator (iscsi_tcp, sd) and open-iscsi (iscsid, iscsiadm), step by step as an
// operator would: discovery, login, a SCSI disk of the right size, O_DIRECT I/O,
// cache flush, logout and login, header and data digests, and a kill -9 of the
// daemon that the session survives without losing acknowledged writes.
func TestLinuxISCSIInitiator(t *testing.T) {
	start := time.Now()
	d := newDaemon(t)
	// One vCPU: an iSCSI session is one connection here, and the machine has two cores.
	vm := guest.Start(t, guest.Options{})
	g := &iscsiGuest{t: t, vm: vm, d: d, portal: fmt.Sprintf("%s:%d", guest.HostAddr, d.iscsiPort)}
	t.Cleanup(func() {
		if t.Failed() && !g.dumped {
			t.Logf("guest evidence:\n%s", g.evidence())
		}
		t.Logf("TestLinuxISCSIInitiator took %s", time.Since(start).Round(100*time.Millisecond))
	})
	var blk, sg string
	// Each step starts from the state the previous one left (a node record, a
	// session, data written): after a failure the rest would only fail confusingly.
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.Fatalf("stopping after step %q failed", name)
		}
	}

	step("discovery", func(t *testing.T) {
		g.t = t
		g.run("dmesg -c >/dev/null") // the boot is in the console log
		// iscsiadm starts iscsid on demand (iscsid.startup runs iscsid-start).
		out := g.run("iscsiadm -m discovery -t sendtargets -p " + g.portal)
		// "ADDR:PORT,TPGT IQN": the target advertises its portal as it listens,
		// 127.0.0.1, which the guest cannot reach through qemu's NAT.
		entry := regexp.MustCompile(`(?m)^(\S+):(\d+),(\d+) ` + regexp.QuoteMeta(vol0IQN) + `$`)
		m := entry.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("SendTargets lists no %s:\n%s", vol0IQN, out)
		}
		if m[2] != strconv.Itoa(d.iscsiPort) || m[3] != "1" {
			t.Errorf("SendTargets gives portal %s:%s tpgt %s; want port %d, tpgt 1",
				m[1], m[2], m[3], d.iscsiPort)
		}
		// So the node record for the guest's view of the portal is made by hand,
		// and the discovered one (unreachable from here) is dropped.
		g.run(fmt.Sprintf("iscsiadm -m node -o delete -T %s -p %s:%s", vol0IQN, m[1], m[2]))
		g.run(fmt.Sprintf("iscsiadm -m node -o new -T %s -p %s,1", vol0IQN, g.portal))
		g.kernelLog()
	})

	step("login with mutual CHAP", func(t *testing.T) {
		g.t = t
		// The node now requires mutual CHAP: a wrong secret is refused at login, the
		// right one (and the target answering the initiator's challenge) gets in.
		d.call("iscsi_create_auth_group", map[string]any{"tag": 7, "secrets": []map[string]string{{
			"user": "guestuser", "secret": "guest-secret-42", "muser": "sluicetarget", "msecret": "target-secret-42"}}}, nil)
		d.call("iscsi_target_node_set_auth", map[string]any{"name": vol0IQN, "require_chap": true,
			"mutual_chap": true, "chap_group": 7}, nil)
		set := func(k, v string) { g.iscsiadm("-o update -n " + k + " -v " + v) }
		set("node.session.auth.authmethod", "CHAP")
		set("node.session.auth.username", "guestuser")
		set("node.session.auth.password", "wrong-secret-00")
		set("node.session.auth.username_in", "sluicetarget")
		set("node.session.auth.password_in", "target-secret-42")
		ctx, cancel := context.WithTimeout(context.Background(), iscsiStepTimeout)
		out, code, err := g.vm.Run(ctx, fmt.Sprintf("iscsiadm -m node -T %s -p %s --login", vol0IQN, g.portal))
		cancel()
		if err != nil || code == 0 {
			t.Fatalf("login with a wrong CHAP secret: exit %d err %v, want refused:\n%s", code, err, out)
		}
		// iscsiadm exits 24 for an authorization failure (ISCSI_ERR_LOGIN_AUTH_FAILED).
		t.Logf("wrong secret refused: exit %d: %s", code, strings.TrimSpace(out))
		if code != 24 {
			t.Errorf("iscsiadm exit %d for a wrong CHAP secret, want 24 (authentication failure)", code)
		}
		// The target closes the refused connection after its Login Response.
		g.kernelLog("detected conn error (1020)")
		set("node.session.auth.password", "guest-secret-42")
		g.login()
		if conns := g.conns(); len(conns) != 1 {
			t.Fatalf("after the CHAP login the target lists %d connections, want 1", len(conns))
		}
		g.logout()
		// Back to no authentication: the restart step below brings the daemon back
		// on its embedded config, which knows nothing of auth group 7.
		d.call("iscsi_target_node_set_auth", map[string]any{"name": vol0IQN, "disable_chap": true}, nil)
		// A fresh node record forgets the credentials (with username_in still set,
		// open-iscsi keeps asking for CHAP whatever authmethod says).
		g.iscsiadm("-o delete")
		g.run(fmt.Sprintf("iscsiadm -m node -o new -T %s -p %s,1", vol0IQN, g.portal))
	})

	step("login", func(t *testing.T) {
		g.t = t
		g.login()
		blk, sg = g.disk()
		params := g.sessionParams()
		if s := negotiated(params, "iSCSI Session State"); s != "LOGGED_IN" {
			t.Errorf("session state %q", s)
		}
		size := strings.TrimSpace(g.run("cat /sys/block/" + blk + "/size"))
		if size != strconv.Itoa(vol0Sectors) {
			t.Fatalf("/sys/block/%s/size = %s sectors, want %d (1 GiB)", blk, size, vol0Sectors)
		}
		queue := g.run("cd /sys/block/" + blk + "/queue && for f in logical_block_size physical_block_size " +
			"max_sectors_kb max_hw_sectors_kb write_cache; do echo $f=$(cat $f); done")
		t.Logf("LUN 0 is /dev/%s (/dev/%s), %s sectors; queue: %s", blk, sg, size,
			strings.Join(strings.Fields(queue), " "))
		c := g.conn()
		if c.HeaderDigest || c.DataDigest {
			t.Errorf("digests on without being asked for: %+v", c)
		}
		g.kernelLog()
	})

	step("write verify and flush", func(t *testing.T) {
		g.t = t
		g.parallel("write", blk, pat4k, pat128k, patFinal)
		s0 := g.iostat()
		g.guestio("write " + pat512k.args(blk))
		s1 := g.iostat()
		t.Logf("%d writes of 512 KiB reached the volume as %d writes of %d bytes", pat512k.count,
			s1.NumWriteOps-s0.NumWriteOps, s1.BytesWritten-s0.BytesWritten)
		g.verify(blk, pat4k, pat128k, patFinal, pat512k)
		// fsync on the block device makes sd send SYNCHRONIZE CACHE (the disk
		// reports a write cache); it must reach the bdev as a flush.
		s0 = g.iostat()
		g.run("blockdev --flushbufs /dev/" + blk + " && dd if=/dev/zero of=/dev/" + blk + " bs=4096 count=0 conv=notrunc,fsync")
		if s1 = g.iostat(); s1.NumFlushOps <= s0.NumFlushOps {
			t.Errorf("fsync of /dev/%s: bdev flush ops %d → %d; SYNCHRONIZE CACHE did not reach the volume",
				blk, s0.NumFlushOps, s1.NumFlushOps)
		}
		g.kernelLog()
	})

	step("sg3-utils", func(t *testing.T) {
		g.t = t
		out := g.run("sg_inq /dev/" + sg)
		if !strings.Contains(out, "Vendor identification: SLUICE") {
			t.Errorf("sg_inq /dev/%s:\n%s", sg, out)
		}
		// Register a key, read it back, unregister: persistent reservations
		// through the initiator's own SCSI path.
		g.run("sg_persist -o -G -S 0x5ca1ab1e /dev/" + blk)
		if out := g.run("sg_persist -i -k /dev/" + blk); !strings.Contains(out, "0x5ca1ab1e") {
			t.Errorf("registered key not listed:\n%s", out)
		}
		// Reserve (Write Exclusive, type 1), see it, write through it as the holder,
		// release.
		g.run("sg_persist -o -R -K 0x5ca1ab1e -T 1 /dev/" + blk)
		if out := g.run("sg_persist -i -r /dev/" + blk); !strings.Contains(out, "Key=0x5ca1ab1e") ||
			!strings.Contains(out, "Write Exclusive") {
			t.Errorf("reservation not reported:\n%s", out)
		}
		g.run(fmt.Sprintf("guestio write -dev /dev/%s -bs 4096 -count 4 -offset %d -seed 77", blk, 900<<20))
		g.run("sg_persist -o -L -K 0x5ca1ab1e -T 1 /dev/" + blk)
		if out := g.run("sg_persist -i -r /dev/" + blk); !strings.Contains(out, "there is NO reservation held") {
			t.Errorf("reservation still held after release:\n%s", out)
		}
		g.run("sg_persist -o -G -K 0x5ca1ab1e -S 0 /dev/" + blk)
		if out := g.run("sg_persist -i -k /dev/" + blk); !strings.Contains(out, "NO registered reservation keys") {
			t.Errorf("key still registered:\n%s", out)
		}
		g.kernelLog()
	})

	step("logout and login again", func(t *testing.T) {
		g.t = t
		g.logout()
		if out := g.run("ls /sys/class/iscsi_session/ /sys/class/scsi_disk/ | grep -E '^(session|[0-9])' || true"); out != "" {
			t.Fatalf("session or disk still there after logout:\n%s", out)
		}
		g.login()
		blk, sg = g.disk()
		g.verify(blk, pat4k, pat128k, patFinal, pat512k)
		g.kernelLog()
	})

	step("header and data digests", func(t *testing.T) {
		g.t = t
		g.logout()
		g.iscsiadm("-o update -n node.conn[0].iscsi.HeaderDigest -v CRC32C")
		g.iscsiadm("-o update -n node.conn[0].iscsi.DataDigest -v CRC32C")
		g.login()
		blk, sg = g.disk()
		params := g.sessionParams()
		if h, dd := negotiated(params, "HeaderDigest"), negotiated(params, "DataDigest"); h != "CRC32C" || dd != "CRC32C" {
			t.Fatalf("kernel negotiated HeaderDigest %q DataDigest %q, want CRC32C", h, dd)
		}
		if c := g.conn(); !c.HeaderDigest || !c.DataDigest {
			t.Fatalf("target negotiated header_digest=%v data_digest=%v", c.HeaderDigest, c.DataDigest)
		}
		g.guestio("write " + patDgst.args(blk))
		g.verify(blk, pat4k, pat128k, patFinal, pat512k, patDgst)
		g.checkStats()
		g.kernelLog()
	})

	step("kill -9 and restart keep acknowledged writes", func(t *testing.T) {
		g.t = t
		// Acknowledged O_DIRECT writes, no flush; then the daemon dies while
		// the session is idle.
		g.guestio("write " + patKill.args(blk))
		sid := strings.TrimSpace(g.run("ls /sys/class/iscsi_session/"))
		killed := time.Now()
		d.kill()
		time.Sleep(time.Second)
		d.start()
		// The kernel sees the connection close and iscsid reconnects to the
		// restarted daemon: the same session, so the same disk.
		g.run(`for i in $(seq 1 300); do
	iscsiadm -m session -P 1 2>/dev/null | grep -q "iSCSI Session State: LOGGED_IN" &&
		iscsiadm -m session -P 1 | grep -q "iSCSI Connection State: LOGGED IN" && exit 0
	sleep 0.1
done
echo "session did not recover within 30 s"; iscsiadm -m session -P 1; exit 1`)
		t.Logf("session recovered %s after the kill (1 s down, then the daemon's start)",
			time.Since(killed).Round(100*time.Millisecond))
		if now := strings.TrimSpace(g.run("ls /sys/class/iscsi_session/")); now != sid {
			t.Errorf("sessions %q before the restart, %q after", sid, now)
		}
		g.conn()
		g.verify(blk, pat4k, pat128k, patFinal, pat512k, patDgst, patKill)
		// The connection close is the kill itself, not trouble.
		g.kernelLog("detected conn error (1020)")
		if out := g.run("grep -c 'operational after recovery' /run/iscsid.log || true"); strings.TrimSpace(out) == "0" {
			t.Errorf("iscsid logged no recovery:\n%s", g.run("tail -n 20 /run/iscsid.log"))
		}

		// And a fresh session on the restarted daemon sees the same data.
		g.logout()
		g.login()
		blk, sg = g.disk()
		g.verify(blk, pat4k, pat128k, patFinal, pat512k, patDgst, patKill)
		g.logout()
		g.checkStats()
		g.kernelLog()
	})
}
