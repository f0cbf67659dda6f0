package interop

import (
	"testing"
	"time"

	"sluice/engine/proto/nvme"
)

// The default volume's namespace and block size (default_config.json).
const (
	defaultNSID  = 1
	defaultBlock = 512
)

// TestStandaloneReservationsAcrossRestarts: `make run` with no group is a standalone
// node (a group of one, its own leader with no backup) that admits persistent
// reservation commands and keeps their state in its data directory. A registration and
// a reservation taken with PTPL on come back after a graceful restart and after kill -9
// (the reservation still fences the other host's writes); once PTPL is turned off, the
// same registrations are gone after either kind of restart, as after a power loss.
func TestStandaloneReservationsAcrossRestarts(t *testing.T) {
	d := newDaemon(t)
	addr := d.nvmfAddr("127.0.0.1")
	nguid := d.defaultNGUID()
	a, b := newResvHost(t, "A", 1), newResvHost(t, "B", 2)
	reconnect := func() { a.connect(addr); b.connect(addr) }
	reconnect()
	defer a.close()
	defer b.close()

	if s := d.groupStatus(); !s.Standalone || s.Leader != s.NodeID || s.Group != "" {
		t.Fatalf("no group configured, yet group_get_status says %+v", s)
	}
	wantStatus(t, "A register with CPTPL=11b", a.register(defaultNSID, 0xA1, nvme.CPTPLSet), nvme.StatusSuccess)
	wantStatus(t, "B register", b.register(defaultNSID, 0xB2, nvme.CPTPLNoChange), nvme.StatusSuccess)
	wantStatus(t, "A acquire write exclusive", a.acquire(defaultNSID, 0xA1, nvme.RTypeWriteExclusive), nvme.StatusSuccess)
	wantStatus(t, "B write under A's reservation", b.write4K(defaultNSID, defaultBlock), nvme.StatusReservationConflict)

	// persisted checks the state a PTPL namespace must keep through any restart.
	persisted := func(how string) {
		t.Helper()
		h, regs := b.report(defaultNSID)
		ra, okA := a.registrant(regs)
		rb, okB := b.registrant(regs)
		if h.PTPLS != 1 || h.RTYPE != nvme.RTypeWriteExclusive || h.REGCTL != 2 || !okA || !okB ||
			ra.RKEY != 0xA1 || rb.RKEY != 0xB2 || ra.RCSTS&nvme.ResvRCSTSHolder == 0 || rb.RCSTS != 0 {
			t.Fatalf("after %s: report %+v registrants %+v; want PTPL on, A (holder, key A1) and B (key B2)",
				how, h, regs)
		}
		wantStatus(t, "B write after "+how, b.write4K(defaultNSID, defaultBlock), nvme.StatusReservationConflict)
		wantStatus(t, "B read after "+how, b.read4K(defaultNSID, defaultBlock), nvme.StatusSuccess)
		wantStatus(t, "A write after "+how, a.write4K(defaultNSID, defaultBlock), nvme.StatusSuccess)
		if info := d.reservation(nguid); !info.PTPL || info.Holder == nil || info.Holder.HostID != a.hostID() ||
			!registered(info, b.hostID(), 0xB2) {
			t.Fatalf("after %s: reservation_get %+v", how, info)
		}
	}
	persisted("registering")

	d.stop()
	d.start()
	reconnect()
	persisted("a graceful restart")

	d.kill()
	d.start()
	reconnect()
	persisted("kill -9 and a start")

	// PTPL off: the next power loss drops everything. Turning it off is itself a
	// command on a namespace with persistence on, so it asks to persist, and a
	// standalone node admits it.
	wantStatus(t, "A register with CPTPL=10b", a.register(defaultNSID, 0xA1, nvme.CPTPLClear), nvme.StatusSuccess)
	if h, _ := a.report(defaultNSID); h.PTPLS != 0 || h.REGCTL != 2 {
		t.Fatalf("after CPTPL=10b: report %+v", h)
	}
	// dropped checks the state a namespace without PTPL has after any restart.
	dropped := func(how string) {
		t.Helper()
		if h, regs := a.report(defaultNSID); h.REGCTL != 0 || h.RTYPE != 0 || h.PTPLS != 0 || len(regs) != 0 {
			t.Fatalf("after %s without PTPL: report %+v registrants %+v; want none", how, h, regs)
		}
		wantStatus(t, "B write after "+how, b.write4K(defaultNSID, defaultBlock), nvme.StatusSuccess)
		if info := d.reservation(nguid); len(info.Registrants) != 0 || info.Holder != nil {
			t.Fatalf("after %s without PTPL: reservation_get %+v", how, info)
		}
	}
	d.stop()
	d.start()
	reconnect()
	dropped("a graceful restart")

	wantStatus(t, "A register", a.register(defaultNSID, 0xA1, nvme.CPTPLNoChange), nvme.StatusSuccess)
	wantStatus(t, "A acquire", a.acquire(defaultNSID, 0xA1, nvme.RTypeWriteExclusive), nvme.StatusSuccess)
	d.kill()
	d.start()
	reconnect()
	dropped("kill -9 and a start")
}

// TestStandaloneClaimsOwnership: the daemon names itself the owner of the volumes it
// exports that have none: the default volume right after start, a namespace added by
// RPC and a volume whose owner the operator cleared, each within the claim period. (That
// an owner the operator set is left alone needs a second member: group_test.go.)
func TestStandaloneClaimsOwnership(t *testing.T) {
	d := newDaemon(t)
	self := d.groupStatus().NodeID
	vol0 := d.defaultNGUID()
	eventually(t, "the default volume's owner", time.Minute, func() bool { return d.owner(vol0) == self })

	var ok bool
	d.call("volume_set_owner", map[string]any{"nguid": vol0, "node_id": 0}, &ok)
	addVolatileNamespace(t, d)
	m1 := d.bdevNGUID("m1")
	took := eventually(t, "both volumes claimed", 6*ownerClaimPeriod, func() bool {
		return d.owner(vol0) == self && d.owner(m1) == self
	})
	t.Logf("claimed after %v", took.Round(100*time.Millisecond))
	if info := d.reservation(m1); info.Owner != self {
		t.Errorf("reservation_get owner %d, want %d", info.Owner, self)
	}

	if err := tryCall(d, "volume_set_owner", map[string]any{"nguid": m1, "node_id": self + 1}); err == nil {
		t.Error("volume_set_owner accepted a node outside the group")
	}
}

// ownerClaimPeriod is the daemon's claim period (tools/sluiced ownerClaimPeriod).
const ownerClaimPeriod = 10 * time.Second
