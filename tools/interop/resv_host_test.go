package interop

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"sluice/engine/group"
	"sluice/engine/nvmf/host"
	"sluice/engine/proto/nvme"
)

// Helpers shared by the reservation suites (resv_*_test.go, group_test.go): NVMe host
// identities driven by our Go initiator, and the daemon's reservation RPCs.

// resvHost is one NVMe host identity (host NQN and 128-bit host ID) with an admin and
// one I/O queue on a daemon's default subsystem. Reservations belong to the host ID, so
// two resvHosts are two registrants.
type resvHost struct {
	tb   testing.TB
	name string
	opts host.Options
	ctrl *host.Controller
	q    *host.IOQueue
}

// newResvHost makes identity n (a small number that names it in the host ID) without
// connecting it.
func newResvHost(tb testing.TB, name string, n byte) *resvHost {
	id := [16]byte{0x5e, 0x55, n, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, n}
	u := fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
	// A generous command timeout: a reservation command through a group that is
	// electing a leader is answered within the manager's 30 s bound, and a command the
	// host gives up on kills its queue.
	return &resvHost{tb: tb, name: name, opts: host.Options{HostNQN: "nqn.2014-08.org.nvmexpress:uuid:" + u,
		HostID: id, Timeout: 90 * time.Second}}
}

// hostID is the identity's host ID as reservation_get and nvme-cli print it.
func (h *resvHost) hostID() string { return hex.EncodeToString(h.opts.HostID[:]) }

// connect (re)connects to the default subsystem at addr, retrying while the daemon
// starts, and opens one I/O queue.
func (h *resvHost) connect(addr string) {
	h.tb.Helper()
	h.close()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := host.Connect(ctx, addr, defaultNQN, h.opts)
		if err == nil {
			var q *host.IOQueue
			if q, err = c.NewIOQueue(ctx); err == nil {
				cancel()
				h.ctrl, h.q = c, q
				return
			}
			c.Close()
		}
		cancel()
		if time.Now().After(deadline) {
			h.tb.Fatalf("host %s: connect %s: %v", h.name, addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (h *resvHost) close() {
	if h.ctrl != nil {
		h.ctrl.Close()
		h.ctrl, h.q = nil, nil
	}
}

func (h *resvHost) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*h.opts.Timeout)
}

// register sends Register (RREGA register, NRKEY key) with CPTPL cptpl and returns the
// completion status; a transport failure fails the test.
func (h *resvHost) register(nsid uint32, key uint64, cptpl uint8) nvme.Status {
	h.tb.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	st, err := h.q.ResvRegister(ctx, nsid, nvme.ResvRegister{RREGA: nvme.RREGARegister, CPTPL: cptpl},
		nvme.ResvRegisterData{NRKEY: key})
	if err != nil {
		h.tb.Fatalf("host %s: %v", h.name, err)
	}
	return st
}

// acquire sends Acquire (RACQA acquire) of type rtype with key.
func (h *resvHost) acquire(nsid uint32, key uint64, rtype uint8) nvme.Status {
	h.tb.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	st, err := h.q.ResvAcquire(ctx, nsid, nvme.ResvAcquire{RACQA: nvme.RACQAAcquire, RTYPE: rtype},
		nvme.ResvAcquireData{CRKEY: key})
	if err != nil {
		h.tb.Fatalf("host %s: %v", h.name, err)
	}
	return st
}

// release sends Release (RRELA release) of type rtype with key.
func (h *resvHost) release(nsid uint32, key uint64, rtype uint8) nvme.Status {
	h.tb.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	st, err := h.q.ResvRelease(ctx, nsid, nvme.ResvRelease{RRELA: nvme.RRELARelease, RTYPE: rtype},
		nvme.ResvReleaseData{CRKEY: key})
	if err != nil {
		h.tb.Fatalf("host %s: %v", h.name, err)
	}
	return st
}

// report reads the namespace's Reservation Report (EDS); a failing status fails the test.
func (h *resvHost) report(nsid uint32) (nvme.ResvStatus, []nvme.ResvRegistrantExt) {
	h.tb.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	hd, regs, st, err := h.q.ResvReport(ctx, nsid)
	if err != nil || !st.Success() {
		h.tb.Fatalf("host %s: reservation report: %v %v", h.name, st, err)
	}
	return hd, regs
}

// write4K writes one 4 KiB block at LBA 0 and returns the status.
func (h *resvHost) write4K(nsid uint32, blockSize int) nvme.Status {
	h.tb.Helper()
	return h.rw(nvme.NVMWrite, nsid, blockSize)
}

// read4K reads one 4 KiB block at LBA 0 and returns the status.
func (h *resvHost) read4K(nsid uint32, blockSize int) nvme.Status {
	h.tb.Helper()
	return h.rw(nvme.NVMRead, nsid, blockSize)
}

func (h *resvHost) rw(op nvme.NVMOpcode, nsid uint32, blockSize int) nvme.Status {
	h.tb.Helper()
	var s nvme.SQE
	s.SetOpcode(uint8(op))
	s.SetNSID(nsid)
	s.SetNLB(uint16(4096/blockSize - 1))
	ctx, cancel := h.ctx()
	defer cancel()
	cqe, err := h.q.Exec(ctx, &s, make([]byte, 4096))
	if err != nil {
		h.tb.Fatalf("host %s: %v: %v", h.name, op, err)
	}
	return cqe.Status()
}

// registrant finds h's entry in a report.
func (h *resvHost) registrant(regs []nvme.ResvRegistrantExt) (nvme.ResvRegistrantExt, bool) {
	for _, r := range regs {
		if r.HOSTID == h.opts.HostID {
			return r, true
		}
	}
	return nvme.ResvRegistrantExt{}, false
}

// wantStatus fails tb unless got is want (status code type and code; DNR is checked
// where it matters, apart).
func wantStatus(tb testing.TB, what string, got, want nvme.Status) {
	tb.Helper()
	if got.Code() != want.Code() {
		tb.Fatalf("%s: status %v (%#x), want %v", what, got, uint16(got), want)
	}
}

// nvmfAddr is the daemon's NVMe/TCP listener for the default subsystem.
func (d *daemon) nvmfAddr(listen string) string {
	return net.JoinHostPort(listen, strconv.Itoa(d.nvmfPort))
}

// defaultNGUID is the default volume's NGUID, read from the daemon.
func (d *daemon) defaultNGUID() string {
	d.t.Helper()
	return d.bdevNGUID("vol0")
}

// bdevNGUID is a bdev's NGUID (its UUID's bytes) as the group RPCs take it.
func (d *daemon) bdevNGUID(name string) string {
	d.t.Helper()
	var bs []struct {
		UUID string `json:"uuid"`
	}
	d.call("bdev_get_bdevs", map[string]string{"name": name}, &bs)
	if len(bs) != 1 {
		d.t.Fatalf("bdev_get_bdevs %s: %d bdevs", name, len(bs))
	}
	nguid, err := group.ParseNGUID(bs[0].UUID)
	if err != nil {
		d.t.Fatal(err)
	}
	return hex.EncodeToString(nguid[:])
}

// reservation is reservation_get for nguid.
func (d *daemon) reservation(nguid string) group.ReservationInfo {
	d.t.Helper()
	var info group.ReservationInfo
	d.call("reservation_get", map[string]string{"nguid": nguid}, &info)
	return info
}

// groupStatus is group_get_status.
func (d *daemon) groupStatus() group.Status {
	d.t.Helper()
	var s group.Status
	d.call("group_get_status", nil, &s)
	return s
}

// owner is volume_get_owner for nguid.
func (d *daemon) owner(nguid string) uint64 {
	d.t.Helper()
	var o group.OwnerInfo
	d.call("volume_get_owner", map[string]string{"nguid": nguid}, &o)
	return o.Owner
}

// registered reports whether info lists the host ID with key.
func registered(info group.ReservationInfo, hostID string, key uint64) bool {
	for _, r := range info.Registrants {
		if r.HostID == hostID && r.Key == key {
			return true
		}
	}
	return false
}

// eventually polls ok every 100 ms until it holds, failing tb after limit.
func eventually(tb testing.TB, what string, limit time.Duration, ok func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > limit {
			tb.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}
