package interop

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"sluice/tools/guest"
)

// NVMe reservations from the Linux kernel host and nvme-cli (2.3, libnvme 1.3), with two
// host identities in one guest.
//
// nvme-cli refuses a second `nvme connect` to an address it is connected to, whatever
// the host NQN ("already connected"), so the second identity is connected the way
// nvme-cli itself does it underneath: its connect string written to /dev/nvme-fabrics.
// The kernel then has two controllers (nvme0, nvme1) of one subsystem, each with its own
// host NQN and host ID. With native multipath both are paths under one nvmeXnY head
// device, so each identity is addressed through its controller's character device with
// -n NSID: nvme-cli sends I/O commands there with NVME_IOCTL_IO_CMD, on that
// controller's queues (the kernel logs that this ioctl is deprecated on the character
// device, and serves it).

// The second identity, B; A is the guest's default (guest.HostNQN, guest.HostID).
const (
	linuxHostIDB  = "b0b0b0b0-0000-4000-8000-0000000000b2"
	linuxHostNQNB = "nqn.2014-08.org.nvmexpress:uuid:" + linuxHostIDB
)

// nvme-cli 2.3's answers (nvme.c), matched whole: "Reservation  success" has two spaces
// in nvme-cli itself. A failing status prints nvme_status_to_string and the 16-bit
// status with DNR (0x4000) and the SCT/SC; Reservation Conflict is SCT 0, SC 83h.
const (
	cliRegisterOK = "NVME Reservation  success"
	cliAcquireOK  = "NVME Reservation Acquire success"
	cliReleaseOK  = "NVME Reservation Release success"
	cliConflict   = "NVMe status: Reservation Conflict: The command was aborted due to a conflict with a reservation held on the accessed namespace(0x4083)"
	cliReadOK     = "read: Success"
	cliWriteOK    = "write: Success"
	cliPTPLOn     = "get-feature:0x83 (Reservation Persistence), Current value:0x00000001"
	cliPTPLOnH    = "Persist Through Power Loss (PTPL): True"
)

// cliReport is `nvme resv-report --eds -o json`.
type cliReport struct {
	Gen       uint32 `json:"gen"`
	RType     int    `json:"rtype"`
	RegCtl    int    `json:"regctl"`
	PTPLS     int    `json:"ptpls"`
	RegCtlExt []struct {
		CntlID int    `json:"cntlid"`
		RCSTS  int    `json:"rcsts"`
		RKey   uint64 `json:"rkey"`
		HostID string `json:"hostid"`
	} `json:"regctlext"`
}

// entry returns the registrant with host ID hostid (nvme-cli prints it as 32 hex
// digits).
func (r cliReport) entry(hostid string) (rcsts int, rkey uint64, ok bool) {
	want := strings.ReplaceAll(hostid, "-", "")
	for _, e := range r.RegCtlExt {
		if e.HostID == want {
			return e.RCSTS, e.RKey, true
		}
	}
	return 0, 0, false
}

// cliNotice is the first 16 bytes of the Reservation Notification log page (80h):
// Log Page Count u64 @0, Reservation Notification Log Page Type u8 @8, Number of
// Available Log Pages u8 @9, NSID u32 @12.
type cliNotice struct {
	Count uint64
	Type  uint8
	Avail uint8
	NSID  uint32
}

// Reservation Notification log page types (NVM "Reservation Notification Log Page").
const (
	noticeEmpty                 = 0
	noticeRegistrationPreempted = 1
	noticeReservationPreempted  = 3
)

// resvGuest drives two identities of one guest.
type resvGuest struct {
	*linuxHost
	ctrlA, ctrlB string // /dev/nvmeN of each identity
}

// cli runs one nvme-cli command and returns its output and exit status.
func (g *resvGuest) cli(cmd string) (string, int) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, code, err := g.vm.Run(ctx, cmd)
	if err != nil {
		g.t.Fatalf("guest: %s: %v", cmd, err)
	}
	return strings.TrimSpace(out), code
}

// expect runs cmd and fails unless it exits with status code and prints want.
func (g *resvGuest) expect(cmd string, code int, want string) string {
	g.t.Helper()
	out, c := g.cli(cmd)
	if c != code || !strings.Contains(out, want) {
		g.t.Fatalf("%s: exit %d, output:\n%s\nwant exit %d and %q", cmd, c, out, code, want)
	}
	return out
}

func (g *resvGuest) report(ctrl string) cliReport {
	g.t.Helper()
	out := g.expect("nvme resv-report /dev/"+ctrl+" -n 1 --eds -o json", 0, "{")
	var r cliReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		g.t.Fatalf("resv-report json: %v\n%s", err, out)
	}
	return r
}

// notice reads (and so consumes) the controller's oldest reservation notification with
// `nvme get-log --log-id=0x80`, parsing nvme-cli's hex dump.
func (g *resvGuest) notice(ctrl string) cliNotice {
	g.t.Helper()
	out := g.expect("nvme get-log /dev/"+ctrl+" --log-id=0x80 --log-len=64", 0, "log-id:128")
	var raw []byte
	for _, line := range strings.Split(out, "\n") {
		// "0000: 01 00 ... 00 "................"": the offset, 16 bytes, the text.
		f := strings.Fields(line)
		if len(f) < 17 || (f[0] != "0000:" && f[0] != "0010:") {
			continue
		}
		b, err := hex.DecodeString(strings.Join(f[1:17], ""))
		if err != nil {
			g.t.Fatalf("get-log 0x80: %v in %q", err, line)
		}
		raw = append(raw, b...)
	}
	if len(raw) < 16 {
		g.t.Fatalf("get-log 0x80: cannot read the dump:\n%s", out)
	}
	return cliNotice{Count: binary.LittleEndian.Uint64(raw[0:]), Type: raw[8], Avail: raw[9],
		NSID: binary.LittleEndian.Uint32(raw[12:])}
}

// TestLinuxNVMeReservations: two host identities of the Linux NVMe/TCP host on the
// default namespace, driven with nvme-cli: register from both, write exclusive from one
// (the other's write gets Reservation Conflict, its read succeeds), the extended report
// shows both registrants and the holder, a preempt with the Registration Preempted
// notice in the preempted controller's log page 80h, release, a register with CPTPL=11b
// that turns PTPL on (report and Get Features 83h), clear with its Reservation
// Preempted notice.
func TestLinuxNVMeReservations(t *testing.T) {
	d := newDaemon(t)
	vm := guest.Start(t, guest.Options{})
	g := &resvGuest{linuxHost: &linuxHost{t: t, vm: vm, d: d}}
	nguid := d.defaultNGUID()

	t.Run("connect two identities", func(t *testing.T) {
		g.t = t
		g.connect("")
		if out, code := g.cli(fmt.Sprintf("nvme connect -t tcp -a 10.0.2.2 -s %d -n %s --hostnqn=%s --hostid=%s",
			d.nvmfPort, defaultNQN, linuxHostNQNB, linuxHostIDB)); code == 0 {
			t.Logf("nvme-cli connected the second identity itself (%s); the /dev/nvme-fabrics path is not needed here", out)
		} else {
			g.run(fmt.Sprintf(`exec 3<>/dev/nvme-fabrics
echo "transport=tcp,traddr=10.0.2.2,trsvcid=%d,nqn=%s,hostnqn=%s,hostid=%s" >&3
read -r answer <&3
echo "$answer"`, d.nvmfPort, defaultNQN, linuxHostNQNB, linuxHostIDB))
		}
		find := func(nqn string) string {
			return strings.TrimSpace(g.run(fmt.Sprintf(`for i in $(seq 1 100); do
	for c in /sys/class/nvme/nvme*; do
		[ "$(cat $c/subsysnqn)" = %q ] && [ "$(cat $c/hostnqn)" = %q ] && [ "$(cat $c/state)" = live ] && { basename $c; exit 0; }
	done
	sleep 0.1
done; exit 1`, defaultNQN, nqn)))
		}
		g.ctrlA, g.ctrlB = find(guest.HostNQN), find(linuxHostNQNB)
		if g.ctrlA == g.ctrlB {
			t.Fatalf("both identities on %s", g.ctrlA)
		}
		var cs []struct {
			HostNQN string `json:"hostnqn"`
		}
		d.call("nvmf_subsystem_get_controllers", map[string]string{"nqn": defaultNQN}, &cs)
		if len(cs) != 2 {
			t.Fatalf("target sees %d controllers, want 2: %+v", len(cs), cs)
		}
	})

	t.Run("register both and acquire write exclusive", func(t *testing.T) {
		g.t = t
		g.expect("nvme resv-register /dev/"+g.ctrlA+" -n 1 --nrkey=0xa1 --rrega=0", 0, cliRegisterOK)
		g.expect("nvme resv-register /dev/"+g.ctrlB+" -n 1 --nrkey=0xb2 --rrega=0", 0, cliRegisterOK)
		g.expect("nvme resv-acquire /dev/"+g.ctrlA+" -n 1 --crkey=0xa1 --rtype=1 --racqa=0", 0, cliAcquireOK)
	})

	t.Run("the other identity's write conflicts and its read succeeds", func(t *testing.T) {
		g.t = t
		g.run("dd if=/dev/urandom of=/tmp/blk bs=4096 count=1 2>/dev/null")
		io := " -n 1 -s 0 -c 7 -z 4096 -d /tmp/blk"
		g.expect("nvme write /dev/"+g.ctrlB+io, 1, cliConflict)
		g.expect("nvme read /dev/"+g.ctrlB+" -n 1 -s 0 -c 7 -z 4096 -d /tmp/out", 0, cliReadOK)
		g.expect("nvme write /dev/"+g.ctrlA+io, 0, cliWriteOK)
	})

	t.Run("extended report shows both registrants and the holder", func(t *testing.T) {
		g.t = t
		r := g.report(g.ctrlB)
		rcA, keyA, okA := r.entry(guest.HostID)
		rcB, keyB, okB := r.entry(linuxHostIDB)
		if r.RType != 1 || r.RegCtl != 2 || r.PTPLS != 0 || !okA || !okB || rcA != 1 || keyA != 0xa1 ||
			rcB != 0 || keyB != 0xb2 {
			t.Fatalf("report %+v; want write exclusive held by A (key a1), B registered (key b2)", r)
		}
		for _, e := range r.RegCtlExt {
			if e.CntlID != 0xFFFF {
				t.Errorf("registrant cntlid %#x, want FFFFh (dynamic controllers)", e.CntlID)
			}
		}
		if info := d.reservation(nguid); info.Holder == nil ||
			info.Holder.HostID != strings.ReplaceAll(guest.HostID, "-", "") || info.Generation != r.Gen {
			t.Fatalf("reservation_get %+v disagrees with the host's report %+v", info, r)
		}
	})

	t.Run("preempt and the notification log", func(t *testing.T) {
		g.t = t
		before := g.report(g.ctrlB).Gen
		g.expect("nvme resv-acquire /dev/"+g.ctrlB+" -n 1 --crkey=0xb2 --prkey=0xa1 --rtype=1 --racqa=1", 0, cliAcquireOK)
		r := g.report(g.ctrlA)
		if rc, key, ok := r.entry(linuxHostIDB); r.RType != 1 || r.RegCtl != 1 || !ok || rc != 1 || key != 0xb2 || r.Gen <= before {
			t.Fatalf("after B preempted A: report %+v (generation was %d)", r, before)
		}
		if n := g.notice(g.ctrlA); n.Type != noticeRegistrationPreempted || n.NSID != 1 || n.Count == 0 {
			t.Fatalf("A's log page 80h: %+v; want Registration Preempted on NSID 1", n)
		}
		if n := g.notice(g.ctrlA); n.Type != noticeEmpty {
			t.Errorf("A's log page 80h read twice: %+v; the first read consumes the page", n)
		}
		if out := g.expect("nvme resv-notif-log /dev/"+g.ctrlB, 0, "Log Page Count"); !strings.Contains(out, ": 0 (Reserved)") {
			t.Errorf("the preempting host B was notified:\n%s", out)
		}
		g.expect("nvme write /dev/"+g.ctrlA+" -n 1 -s 0 -c 7 -z 4096 -d /tmp/blk", 1, cliConflict)
		g.expect("nvme resv-register /dev/"+g.ctrlA+" -n 1 --nrkey=0xa1 --rrega=0", 0, cliRegisterOK)
		g.expect("nvme resv-acquire /dev/"+g.ctrlA+" -n 1 --crkey=0xa1 --rtype=2 --racqa=0", 1, cliConflict)
	})

	t.Run("release", func(t *testing.T) {
		g.t = t
		g.expect("nvme resv-release /dev/"+g.ctrlB+" -n 1 --crkey=0xb2 --rtype=1 --rrela=0", 0, cliReleaseOK)
		if r := g.report(g.ctrlA); r.RType != 0 || r.RegCtl != 2 {
			t.Fatalf("after release: report %+v; want no reservation, both registered", r)
		}
		g.expect("nvme write /dev/"+g.ctrlA+" -n 1 -s 0 -c 7 -z 4096 -d /tmp/blk", 0, cliWriteOK)
	})

	t.Run("register with cptpl=3 turns PTPL on", func(t *testing.T) {
		g.t = t
		g.expect("nvme resv-register /dev/"+g.ctrlB+" -n 1 --crkey=0xb2 --nrkey=0xb2 --rrega=0 --cptpl=3", 0, cliRegisterOK)
		if r := g.report(g.ctrlA); r.PTPLS != 1 || r.RegCtl != 2 {
			t.Fatalf("after CPTPL=11b: report %+v; want ptpls 1", r)
		}
		g.expect("nvme get-feature /dev/"+g.ctrlA+" -f 0x83 -n 1", 0, cliPTPLOn)
		g.expect("nvme get-feature /dev/"+g.ctrlB+" -f 0x83 -n 1 -H", 0, cliPTPLOnH)
		if info := d.reservation(nguid); !info.PTPL {
			t.Fatalf("reservation_get: %+v; want PTPL on", info)
		}
	})

	t.Run("clear", func(t *testing.T) {
		g.t = t
		before := g.report(g.ctrlB).Gen
		g.expect("nvme resv-release /dev/"+g.ctrlB+" -n 1 --crkey=0xb2 --rrela=1", 0, cliReleaseOK)
		if r := g.report(g.ctrlB); r.RegCtl != 0 || r.RType != 0 || len(r.RegCtlExt) != 0 || r.Gen <= before {
			t.Fatalf("after clear: report %+v (generation was %d); want no registrants", r, before)
		}
		if n := g.notice(g.ctrlA); n.Type != noticeReservationPreempted || n.NSID != 1 {
			t.Fatalf("A's log page 80h after B's clear: %+v; want Reservation Preempted", n)
		}
		g.expect("nvme write /dev/"+g.ctrlA+" -n 1 -s 0 -c 7 -z 4096 -d /tmp/blk", 0, cliWriteOK)
	})

	t.Run("disconnect", func(t *testing.T) {
		g.t = t
		g.expect("nvme disconnect -n "+defaultNQN, 0, "disconnected 2 controller(s)")
		waitFor(t, "target to drop both controllers", 20*time.Second, func() bool {
			var cs []struct{}
			d.call("nvmf_subsystem_get_controllers", map[string]string{"nqn": defaultNQN}, &cs)
			return len(cs) == 0
		})
	})
}
