package scsi

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"sluice/engine/proto/scsi"
)

// FuzzExecute feeds arbitrary CDBs and data to a LUNMap with one LU (with reservations)
// at LUN 0 and checks that Execute never panics, that Done runs exactly once with a
// status a device server may send (with decodable sense for CHECK CONDITION), and that
// nothing is left in flight or locked. lun picks LUN 0 (the LU) or an absent LUN; in is
// the data-in buffer size when data is empty.
func FuzzExecute(f *testing.F) {
	for _, s := range executeSeeds() {
		f.Add(s.cdb, s.data, s.in, s.lun)
	}
	h := newHarness(f, hOpts{resv: true, blocks: 1024})
	m := NewLUNMap("", "", "")
	if err := m.Add(h.lu); err != nil {
		f.Fatal(err)
	}
	mc := m.Channel(h.rs[0], h.cores[0])
	f.Cleanup(mc.Put)
	s := m.Session(init1)
	f.Fuzz(func(t *testing.T, cdb, data []byte, in uint16, lun uint8) {
		h.t = t // the harness reports through the running input's T
		task := &Task{LUN: scsi.EncodeLUN(uint16(lun % 2))}
		task.SetCDB(cdb)
		if len(cdb) == 0 {
			task.ExtCDB = []byte{}
		}
		if len(data) > 0 {
			task.Data = bytes.Clone(data)
		} else {
			task.Data = make([]byte, in)
		}
		task.ExpectedLen = uint32(len(task.Data))
		n := 0
		task.Done = func(*Task) { n++ }
		mc.Execute(s, task)
		h.until("fuzzed task", func() bool { return n > 0 })
		// A SANITIZE with IMMED=1 answers before its operation ends: let it end, so
		// that the next input finds the LU ready and nothing locked.
		h.until("sanitize operation", func() bool { return h.lu.sanState.Load() != sanRunning })
		h.pollN(3)
		if n != 1 {
			t.Fatalf("Done ran %d times", n)
		}
		checkOutcome(t, task)
		ch := mc.chans[h.lu]
		if ch != nil && (ch.Inflight() != 0 || len(ch.locks) != 0 || len(ch.blocked) != 0) {
			t.Fatalf("left behind: %d in flight, %d locks, %d blocked", ch.Inflight(), len(ch.locks), len(ch.blocked))
		}
	})
}

func checkOutcome(t *testing.T, task *Task) {
	switch task.Status {
	case scsi.StatusGood, scsi.StatusBusy, scsi.StatusReservationConflict:
		if task.SenseLen != 0 {
			t.Fatalf("status %v with sense", task.Status)
		}
	case scsi.StatusCheckCondition:
		s, err := scsi.DecodeSense(task.Sense[:task.SenseLen])
		if err != nil || s.Key == scsi.SenseKeyNoSense {
			t.Fatalf("check condition with sense %x: %v", task.Sense[:task.SenseLen], err)
		}
	default:
		t.Fatalf("status %v", task.Status)
	}
	if task.Aborted != NotAborted {
		t.Fatalf("aborted: %v", task.Aborted)
	}
}

type executeSeed struct {
	name string
	cdb  []byte
	data []byte
	in   uint16
	lun  uint8
}

// executeSeeds are commands as initiators send them: one of each command the LU
// serves, with and without data, and a few to the absent LUN.
func executeSeeds() []executeSeed {
	block := bytes.Repeat([]byte{0xA5}, testBS)
	c := func(x scsi.CDB) []byte { return x.Append(nil) }
	pr := func(sa scsi.PROutAction, typ scsi.PRType, p scsi.PROutParams) (string, []byte, []byte) {
		b := p.Append(sa, nil)
		return "prout-" + strconv.Itoa(int(sa)), c(scsi.CDB{Opcode: scsi.OpPersistentReserveOut,
			ServiceAction: uint16(sa), PRType: typ, ParameterListLength: uint32(len(b))}), b
	}
	unmap := scsi.AppendUnmap(nil, []scsi.UnmapDescriptor{{LBA: 1, Blocks: 8}})
	ms := modeSelectPage(scsi.ModePageControl, controlPage(true, false))
	seeds := []executeSeed{
		{"tur", c(scsi.CDB{Opcode: scsi.OpTestUnitReady}), nil, 0, 0},
		{"inquiry", inquiryCDB(false, 0, 96), nil, 96, 0},
		{"inquiry-vpd83", inquiryCDB(true, 0x83, 255), nil, 255, 0},
		{"inquiry-absent", inquiryCDB(false, 0, 96), nil, 96, 1},
		{"report-luns-absent", c(scsi.CDB{Opcode: scsi.OpReportLUNs, AllocationLength: 64}), nil, 64, 1},
		{"request-sense", c(scsi.CDB{Opcode: scsi.OpRequestSense, AllocationLength: 252}), nil, 252, 0},
		{"read16", read16(0, 8), nil, 4096, 0},
		{"read10-short", c(scsi.CDB{Opcode: scsi.OpRead10, TransferLength: 2}), nil, 200, 0},
		{"write16", write16(8, 1), block, 0, 0},
		{"write10-dpo-fua", c(scsi.CDB{Opcode: scsi.OpWrite10, DPO: true, FUA: true, TransferLength: 1}), block, 0, 0},
		{"verify-bytchk", c(scsi.CDB{Opcode: scsi.OpVerify16, ByteCheck: 1, TransferLength: 1}), block, 0, 0},
		{"caw", cawCDB(8, 1), append(bytes.Clone(block), block...), 0, 0},
		{"orwrite", c(scsi.CDB{Opcode: scsi.OpOrWrite16, LBA: 3, TransferLength: 1}), block, 0, 0},
		{"write-same", c(scsi.CDB{Opcode: scsi.OpWriteSame16, LBA: 100, TransferLength: 600}), block, 0, 0},
		{"write-same-unmap", c(scsi.CDB{Opcode: scsi.OpWriteSame10, Unmap: true, TransferLength: 9}),
			make([]byte, testBS), 0, 0},
		{"unmap", c(scsi.CDB{Opcode: scsi.OpUnmap, ParameterListLength: uint32(len(unmap))}), unmap, 0, 0},
		{"sync-cache", c(scsi.CDB{Opcode: scsi.OpSynchronizeCache16}), nil, 0, 0},
		{"mode-sense", c(scsi.CDB{Opcode: scsi.OpModeSense10, PageCode: 0x3F, AllocationLength: 512}), nil, 512, 0},
		{"mode-select", ms.cdb, ms.out, 0, 0},
		{"read-capacity16", sai16(scsi.SAReadCapacity16, 0).cdb, nil, 32, 0},
		{"rsoc", rsocCDB(scsi.RSOCAll, 0, 0), nil, 2048, 0},
		{"reserve6", c(scsi.CDB{Opcode: scsi.OpReserve6}), nil, 0, 0},
		{"release6", c(scsi.CDB{Opcode: scsi.OpRelease6}), nil, 0, 0},
		{"prin-full-status", prin(scsi.PRInReadFullStatus).cdb, nil, 1024, 0},
		{"write-atomic", c(scsi.CDB{Opcode: scsi.OpWriteAtomic16, LBA: 16, TransferLength: 1}), block, 0, 0},
		{"read-defect-data12", c(scsi.CDB{Opcode: scsi.OpReadDefectData12, ReqGList: true,
			AllocationLength: 64}), nil, 64, 0},
		{"sanitize-overwrite-immed", c(scsi.CDB{Opcode: scsi.OpSanitize, Immed: true,
			ServiceAction: scsi.SASanitizeOverwrite, ParameterListLength: 8}),
			overwrite([]byte{1, 2, 3, 4}, 1, false), 0, 0},
		{"sanitize-block-erase", c(scsi.CDB{Opcode: scsi.OpSanitize,
			ServiceAction: scsi.SASanitizeBlockErase}), nil, 0, 0},
		{"sanitize-exit-failure-mode", c(scsi.CDB{Opcode: scsi.OpSanitize,
			ServiceAction: scsi.SASanitizeExitFailureMode}), nil, 0, 0},
		{"receive-copy-results", c(scsi.CDB{Opcode: scsi.OpReceiveCopyResults,
			ServiceAction: scsi.SACopyOperatingParams, AllocationLength: 1024}), nil, 1024, 0},
	}
	// An EXTENDED COPY naming an LU by an NAA designator (no LU of the fuzzed map has
	// this one: the copy manager answers UNREACHABLE COPY TARGET).
	xl := scsi.XCopyList{ListID: 1, Targets: []scsi.XCopyTarget{{Type: scsi.XCopyTgtIdentification,
		CodeSet: 1, DesignatorType: 3, Designator: bytes.Repeat([]byte{0x62}, 16), BlockLength: testBS}},
		Segments: []scsi.XCopySegment{{Type: scsi.XCopySegBlockToBlock, Blocks: 8, DstLBA: 64}}}
	xb := xl.Append(nil)
	seeds = append(seeds, executeSeed{"extended-copy", c(scsi.CDB{Opcode: scsi.OpExtendedCopy,
		ParameterListLength: uint32(len(xb))}), xb, 0, 0})
	for _, p := range []struct {
		sa  scsi.PROutAction
		typ scsi.PRType
		p   scsi.PROutParams
	}{
		{scsi.PROutRegisterAndIgnore, 0, scsi.PROutParams{ServiceActionKey: 1}},
		{scsi.PROutReserve, scsi.PRTypeWriteExclusive, scsi.PROutParams{ReservationKey: 1}},
		{scsi.PROutPreemptAndAbort, scsi.PRTypeExclusiveAccess,
			scsi.PROutParams{ReservationKey: 1, ServiceActionKey: 1}},
		{scsi.PROutClear, 0, scsi.PROutParams{ReservationKey: 1}},
	} {
		name, cdb, data := pr(p.sa, p.typ, p.p)
		seeds = append(seeds, executeSeed{name, cdb, data, 0, 0})
	}
	return seeds
}

// TestGenExecuteSeeds writes executeSeeds to testdata/fuzz/FuzzExecute, the corpus
// `go test` replays. Run: SLUICE_GEN_SEEDS=1 go test -run GenExecuteSeeds ./engine/scsi/
func TestGenExecuteSeeds(t *testing.T) {
	if os.Getenv("SLUICE_GEN_SEEDS") == "" {
		t.Skip("set SLUICE_GEN_SEEDS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzExecute")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range executeSeeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\nuint16(%d)\nbyte('\\x%02x')\n",
			s.cdb, s.data, s.in, s.lun)
		if err := os.WriteFile(filepath.Join(dir, s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
