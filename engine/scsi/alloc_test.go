package scsi

import (
	"bytes"
	"testing"

	"sluice/engine/proto/scsi"
)

// TestDataPathAllocatesNothing: a 4 KiB READ(16) or WRITE(16) through Execute, from the
// CDB to Done, including the bdev submit and completion and the reactor steps between,
// allocates nothing on the Go heap: on a malloc bdev (inline completion), on a delay
// bdev (completion from a poller), with a reservation held (the conflict check scans
// the registrants), and routed through a LUNMap.
func TestDataPathAllocatesNothing(t *testing.T) {
	for _, c := range []struct {
		name   string
		o      hOpts
		viaMap bool
	}{
		{"malloc", hOpts{}, false},
		{"delay", hOpts{module: "delay", delayPolls: 2}, false},
		{"malloc+reservation", hOpts{resv: true}, false},
		{"malloc+lunmap", hOpts{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.o)
			nx := h.nexus(init1)
			if c.o.resv {
				h.register(nx, 7)
				wantGood(t, h.exec(nx, prout(scsi.PROutReserve, scsi.PRTypeWriteExclusiveRegistrantsOnly,
					scsi.PROutParams{ReservationKey: 7})))
				if h.lu.vol.View() == nil {
					t.Fatal("no reservation to check against")
				}
			}
			exec := h.chs[0].Execute
			if c.viaMap {
				m := NewLUNMap("", "", "")
				if err := m.Add(h.lu); err != nil {
					t.Fatal(err)
				}
				mc := m.Channel(h.rs[0], h.cores[0])
				defer mc.Put()
				s := m.Session(init1)
				if s.Nexus(0) != nx { // the same I_T nexus: the same Nexus, UA consumed
					t.Fatal("the session made a second nexus for the same identity")
				}
				exec = func(t *Task) { mc.Execute(s, t) }
			}
			data := pattern(4096, 11)
			done := false
			w := &Task{Nexus: nx, Data: data, ExpectedLen: 4096, Done: func(*Task) { done = true }}
			w.SetCDB(write16(64, 8))
			r := &Task{Nexus: nx, Data: make([]byte, 4096), ExpectedLen: 4096, Done: func(*Task) { done = true }}
			r.SetCDB(read16(64, 8))
			run := func(tk *Task) func() {
				return func() {
					done = false
					exec(tk)
					for !done {
						h.rs[0].PollOnce()
					}
					if tk.Status != scsi.StatusGood {
						t.Fatalf("status %v", tk.Status)
					}
				}
			}
			write, read := run(w), run(r)
			if c.name == "malloc" {
				// The iSCSI target resets a task slot by assignment between
				// commands: that must cost nothing either.
				reset := func(tk *Task, cdb []byte, data []byte) func() {
					exec := run(tk)
					return func() {
						done := tk.Done
						*tk = Task{Nexus: nx, Data: data, ExpectedLen: 4096, Done: done}
						tk.SetCDB(cdb)
						exec()
					}
				}
				write, read = reset(w, write16(64, 8), data), reset(r, read16(64, 8), r.Data)
			}
			write() // warm up: binds the bdev callbacks, opens the map's channel
			read()
			if !bytes.Equal(r.Data, data) {
				t.Fatal("read back differs")
			}
			if n := testing.AllocsPerRun(500, write); n != 0 {
				t.Errorf("WRITE(16) 4 KiB: %v allocations", n)
			}
			if n := testing.AllocsPerRun(500, read); n != 0 {
				t.Errorf("READ(16) 4 KiB: %v allocations", n)
			}
		})
	}
}
