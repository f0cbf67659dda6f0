package scsi

import (
	"bytes"
	"testing"

	"sluice/engine/proto/scsi"
)

// mapTask runs one command through a MapChannel to LUN lun.
func (h *harness) mapTask(mc *MapChannel, s *Session, lun uint16, r req) *Task {
	h.t.Helper()
	t := &Task{LUN: scsi.EncodeLUN(lun)}
	t.SetCDB(r.cdb)
	if r.out != nil {
		t.Data, t.ExpectedLen = r.out, uint32(len(r.out))
	} else {
		t.Data, t.ExpectedLen = make([]byte, r.in), uint32(r.in)
	}
	n := 0
	t.Done = func(*Task) { n++ }
	mc.Execute(s, t)
	h.until("map task", func() bool { return n > 0 })
	h.pollN(2)
	if n != 1 {
		h.t.Fatalf("Done ran %d times", n)
	}
	return t
}

// mapHarness maps the harness's LU at LUN 1 of a new LUNMap, with a map channel on the
// first reactor and a session for init1.
func mapHarness(t *testing.T) (*harness, *LUNMap, *MapChannel, *Session) {
	h := newHarness(t, hOpts{})
	h.lu.lun = 1
	m := NewLUNMap("", "", "")
	if err := m.Add(h.lu); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(h.lu); err == nil {
		t.Fatal("an LU mapped twice")
	}
	mc := m.Channel(h.rs[0], h.cores[0])
	t.Cleanup(mc.Put)
	return h, m, mc, m.Session(init1)
}

// TestLUNMapAbsentLUN: an LU at LUN 1 only. REPORT LUNS works through LUN 0, which has
// no LU (SPC-4 §6.33); INQUIRY there answers PQ 011b/PDT 1Fh; other commands there get
// LOGICAL UNIT NOT SUPPORTED; LUN 1 serves I/O through the session's nexus.
func TestLUNMapAbsentLUN(t *testing.T) {
	h, m, mc, s := mapHarness(t)
	rl := h.mapTask(mc, s, 0, in(scsi.CDB{Opcode: scsi.OpReportLUNs, AllocationLength: 64}, 64))
	wantGood(t, rl)
	if rl.Produced != 16 || be.Uint32(rl.Data) != 8 || !bytes.Equal(rl.Data[8:16], []byte{0, 1, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("report luns %x", rl.Data[:rl.Produced])
	}
	inq := h.mapTask(mc, s, 0, req{cdb: inquiryCDB(false, 0, 96), in: 96})
	wantGood(t, inq)
	if inq.Data[0] != 0x7F || string(inq.Data[8:16]) != "SLUICE  " {
		t.Fatalf("inquiry of an absent LUN %x", inq.Data[:8])
	}
	wantSense(t, h.mapTask(mc, s, 0, tur()), scsi.SenseKeyIllegalRequest, scsi.ASCLUNotSupported)
	wantSense(t, h.mapTask(mc, s, 0, req{cdb: inquiryCDB(true, 0x80, 96), in: 96}),
		scsi.SenseKeyIllegalRequest, scsi.ASCLUNotSupported)
	rs := h.mapTask(mc, s, 0, in(scsi.CDB{Opcode: scsi.OpRequestSense, AllocationLength: 18}, 18))
	wantGood(t, rs)
	if se, _ := scsi.DecodeSense(rs.Data[:rs.Produced]); se.Code != scsi.ASCLUNotSupported {
		t.Fatalf("request sense of an absent LUN %x", rs.Data[:rs.Produced])
	}
	bad := &Task{LUN: [8]byte{0xC0, 1}} // extended addressing: not a LUN of this target
	bad.SetCDB(tur().cdb)
	bad.Done = func(*Task) {}
	mc.Execute(s, bad)
	if bad.Status != scsi.StatusCheckCondition {
		t.Fatal("an unsupported LUN format was served")
	}

	// LUN 1: the POWER ON unit attention, then I/O.
	wantSense(t, h.mapTask(mc, s, 1, tur()), scsi.SenseKeyUnitAttention, scsi.ASCPowerOnResetOrBusDeviceReset)
	data := pattern(8*testBS, 1)
	wantGood(t, h.mapTask(mc, s, 1, req{cdb: write16(5, 8), out: data}))
	if r := h.mapTask(mc, s, 1, req{cdb: read16(5, 8), in: len(data)}); !bytes.Equal(r.Data, data) {
		t.Fatal("read back through the map differs")
	}
	pt := &Task{LUN: scsi.EncodeLUN(1)}
	pt.SetCDB(write16(0, 8))
	if dir, n := m.Prepare(pt); dir != scsi.DirOut || n != 8*testBS {
		t.Fatalf("prepare: %v %d", dir, n)
	}
}

// TestLUNMapChanges: adding an LU tells the other LUs' nexuses (REPORTED LUNS DATA HAS
// CHANGED, answered by REPORT LUNS); a removed LU is gone for the map channel and the
// session.
func TestLUNMapChanges(t *testing.T) {
	h, m, mc, s := mapHarness(t)
	lu := h.lu
	s.Nexus(1).take() // POWER ON
	h2 := newHarness(t, hOpts{})
	h2.lu.lun = 3
	if err := m.Add(h2.lu); err != nil {
		t.Fatal(err)
	}
	wantSense(t, h.mapTask(mc, s, 1, tur()), scsi.SenseKeyUnitAttention, scsi.ASCReportedLUNsDataChanged)
	s.Nexus(1).raise(scsi.ASCReportedLUNsDataChanged)
	wantGood(t, h.mapTask(mc, s, 1, in(scsi.CDB{Opcode: scsi.OpReportLUNs, AllocationLength: 64}, 64)))
	wantGood(t, h.mapTask(mc, s, 1, tur()))
	if got := m.LUNs(); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("luns %v", got)
	}
	if info := m.Info(); len(info) != 2 || info[0].NAA[:6] != "naa.60" {
		t.Fatalf("info %+v", info)
	}
	if m.Remove(1) != lu || m.Remove(1) != nil {
		t.Fatal("remove")
	}
	wantSense(t, h.mapTask(mc, s, 1, tur()), scsi.SenseKeyIllegalRequest, scsi.ASCLUNotSupported)
	if s.Nexus(1) != nil || s.Nexus(3) == nil {
		t.Fatal("session table did not follow the map")
	}
	s.Lost()
}
