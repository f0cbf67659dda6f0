package scsi

import (
	"bytes"
	"testing"

	"sluice/engine/proto/scsi"
)

// SANITIZE: the operation, the LU's state while it runs and after it fails, and its
// independence from the command that started it.

// sanitizeReq builds a SANITIZE; params is the parameter list (OVERWRITE).
func sanitizeReq(sa uint16, immed, ause bool, params []byte) req {
	c := scsi.CDB{Opcode: scsi.OpSanitize, ServiceAction: sa, Immed: immed, AUSE: ause,
		ParameterListLength: uint32(len(params))}
	r := req{cdb: cdb(c)}
	if len(params) > 0 {
		r.out = params
	}
	return r
}

// overwrite is the OVERWRITE parameter list of pattern p, count passes.
func overwrite(p []byte, count uint8, invert bool) []byte {
	o := scsi.SanitizeOverwrite{Count: count, Invert: invert, Pattern: p}
	return o.Append(nil)
}

// sanitized waits until the LU's operation has ended.
func (h *harness) sanitized() {
	h.t.Helper()
	h.until("the sanitize operation", func() bool { return h.lu.sanState.Load() != sanRunning })
	h.pollN(4)
}

// wantNotReadySanitize checks NOT READY, SANITIZE IN PROGRESS with a progress indication
// (SBC-3 §4.11; libiscsi EXPECT_SANITIZE).
func wantNotReadySanitize(t *testing.T, tk *Task) {
	t.Helper()
	s := wantSense(t, tk, scsi.SenseKeyNotReady, scsi.ASCLUNotReadySanitizeInProgress)
	if !s.Specific.Valid() {
		t.Fatal("no progress indication")
	}
}

// TestSanitizeOverwrite: every block ends as the pattern, repeated from each block's
// first byte; with INVERT and an even count the first pass is inverted and the last is
// the pattern; the operation ends with a flush.
func TestSanitizeOverwrite(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec", volatile: true})
	nx := h.nexus(init1)
	h.writeBlocks(nx, 0, pattern(8*testBS, 1))
	_, _, flushes, _, _ := h.rec.counts()
	block := bytes.Repeat([]byte{0xAA}, testBS)
	wantGood(t, h.exec(nx, sanitizeReq(scsi.SASanitizeOverwrite, false, false, overwrite(block, 1, false))))
	if h.lu.sanState.Load() != sanIdle {
		t.Fatal("IMMED=0 answered before the operation ended")
	}
	if _, _, f, _, _ := h.rec.counts(); f != flushes+1 {
		t.Fatalf("%d flushes, want one more than %d", f, flushes)
	}
	if !bytes.Equal(h.rec.mem, bytes.Repeat([]byte{0xAA}, len(h.rec.mem))) {
		t.Fatal("not every block is the pattern")
	}
	// A 3-byte pattern, two passes, INVERT: the first pass writes ^pattern, the second
	// the pattern itself.
	writes, _, _, _, _ := h.rec.counts()
	wantGood(t, h.exec(nx, sanitizeReq(scsi.SASanitizeOverwrite, false, false,
		overwrite([]byte{1, 2, 3}, 2, true))))
	if w, _, _, _, _ := h.rec.counts(); w-writes != 2*((testBlocks*testBS+sanChunkBytes-1)/sanChunkBytes) {
		t.Fatalf("%d writes for two passes", w-writes)
	}
	want := make([]byte, 2*testBS)
	(&scsi.SanitizeOverwrite{Pattern: []byte{1, 2, 3}}).FillPattern(want, testBS, false)
	h.wantBlocks(nx, testBlocks-2, want)
	if want[testBS] != 1 || want[testBS-1] != 2 { // 511 mod 3 = 1
		t.Fatal("pattern does not restart at the block")
	}
	// The LU answers normally afterwards.
	wantGood(t, h.exec(nx, tur()))
}

// TestSanitizeChecks: the parameter list and the service action (libiscsi
// Sanitize.Overwrite, .BlockErase, .CryptoErase, .ExitFailureMode).
func TestSanitizeChecks(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	block := make([]byte, testBS)
	for _, c := range []struct {
		name string
		r    req
		code scsi.SenseCode
	}{
		{"overwrite without list", sanitizeReq(scsi.SASanitizeOverwrite, false, false, nil), invalidField},
		{"overwrite list of 4", sanitizeReq(scsi.SASanitizeOverwrite, false, false, []byte{1, 0, 0, 0}),
			invalidField},
		{"overwrite count 0", sanitizeReq(scsi.SASanitizeOverwrite, false, false, overwrite(block, 0, false)),
			scsi.ASCInvalidFieldInParameterList},
		{"overwrite pattern length 0", sanitizeReq(scsi.SASanitizeOverwrite, false, false,
			append([]byte{1, 0, 0, 0}, block...)), scsi.ASCInvalidFieldInParameterList},
		{"overwrite list short of its length", req{cdb: cdb(scsi.CDB{Opcode: scsi.OpSanitize,
			ServiceAction: scsi.SASanitizeOverwrite, ParameterListLength: testBS + 4}),
			out: overwrite(block, 1, false)[:8]}, invalidIU},
		{"block erase with a list", sanitizeReq(scsi.SASanitizeBlockErase, false, false, make([]byte, 8)),
			invalidField},
		{"crypto erase", sanitizeReq(scsi.SASanitizeCryptoErase, false, false, nil), invalidField},
		{"exit failure mode with a list", sanitizeReq(scsi.SASanitizeExitFailureMode, false, false,
			make([]byte, 8)), invalidField},
	} {
		tk := h.exec(nx, c.r)
		wantSense(t, tk, scsi.SenseKeyIllegalRequest, c.code)
		if h.lu.sanState.Load() != sanIdle {
			t.Fatalf("%s: a refused SANITIZE changed the LU", c.name)
		}
	}
	// Nothing to exit: EXIT FAILURE MODE succeeds and changes nothing.
	wantGood(t, h.exec(nx, sanitizeReq(scsi.SASanitizeExitFailureMode, false, false, nil)))
}

// TestSanitizeBlockErase: every block deallocated (zeros read back), GET LBA STATUS
// reports the whole LU deallocated until a write, and the LU advertises the method
// (REPORT SUPPORTED OPERATION CODES, WABEREQ) but not CRYPTOGRAPHIC ERASE.
func TestSanitizeBlockErase(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec"})
	nx := h.nexus(init1)
	h.writeBlocks(nx, 0, pattern(8*testBS, 1))
	h.writeBlocks(nx, testBlocks-8, pattern(8*testBS, 2))
	wantGood(t, h.exec(nx, sanitizeReq(scsi.SASanitizeBlockErase, false, false, nil)))
	if _, _, _, unmaps, _ := h.rec.counts(); unmaps == 0 {
		t.Fatal("no unmap reached the bdev")
	}
	h.wantBlocks(nx, 0, make([]byte, 8*testBS))
	h.wantBlocks(nx, testBlocks-8, make([]byte, 8*testBS))
	lbaStatus := func(lba uint64) (uint64, uint32, uint8) {
		tk := h.exec(nx, sai16(scsi.SAGetLBAStatus, lba))
		wantGood(t, tk)
		return be.Uint64(tk.Data[8:]), be.Uint32(tk.Data[16:]), tk.Data[20]
	}
	if lba, n, st := lbaStatus(0); lba != 0 || n != testBlocks || st != scsi.LBADeallocated {
		t.Fatalf("after BLOCK ERASE: %d+%d status %d", lba, n, st)
	}
	h.writeBlocks(nx, 5, pattern(testBS, 3))
	if _, _, st := lbaStatus(0); st != scsi.LBAMapped {
		t.Fatal("a written LU still reported deallocated")
	}
	b1 := h.exec(nx, vpd(scsi.VPDBlockDeviceCharacteristics))
	if b1.Data[7]>>6 != 1 {
		t.Fatalf("WABEREQ %d", b1.Data[7]>>6)
	}
	for _, c := range []struct {
		sa      uint16
		support byte
	}{
		{scsi.SASanitizeOverwrite, scsi.SupportStandard},
		{scsi.SASanitizeBlockErase, scsi.SupportStandard},
		{scsi.SASanitizeCryptoErase, scsi.SupportNotSupported},
		{scsi.SASanitizeExitFailureMode, scsi.SupportStandard},
	} {
		tk := h.exec(nx, req{cdb: rsocCDB(scsi.RSOCOneCommandSA, scsi.OpSanitize, c.sa), in: 64})
		if tk.Data[1]&7 != c.support {
			t.Errorf("sanitize %02x: support %d", c.sa, tk.Data[1]&7)
		}
	}
}

// TestSanitizeInProgress: while the operation runs, every command but INQUIRY, REPORT
// LUNS and REQUEST SENSE is NOT READY, SANITIZE IN PROGRESS with the progress, on every
// reactor; REQUEST SENSE reports the same as data (libiscsi Sanitize.Reset's checks).
func TestSanitizeInProgress(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec", reactors: 2})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	h.rec.hold = true
	ow := overwrite([]byte{0x5A}, 1, false)
	wantGood(t, h.exec(sd1, sanitizeReq(scsi.SASanitizeOverwrite, true, false, ow)))
	if h.lu.sanState.Load() != sanRunning {
		t.Fatal("IMMED=1: no operation running after GOOD")
	}
	for _, r := range []req{
		tur(),
		{cdb: cdb(scsi.CDB{Opcode: scsi.OpStartStopUnit, Immed: true, LoEj: true}), ch: 1},
		{cdb: read16(0, 1), in: testBS},
		{cdb: write16(0, 1), out: make([]byte, testBS), ch: 1},
		sanitizeReq(scsi.SASanitizeOverwrite, false, false, ow),
		sanitizeReq(scsi.SASanitizeExitFailureMode, false, false, nil),
	} {
		wantNotReadySanitize(t, h.exec(sd2, r))
	}
	wantGood(t, h.exec(sd2, req{cdb: inquiryCDB(false, 0, 96), in: 96, ch: 1}))
	wantGood(t, h.exec(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReportLUNs, AllocationLength: 16}), in: 16}))
	rs := h.exec(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpRequestSense, AllocationLength: 18}), in: 18})
	wantGood(t, rs)
	if s, err := scsi.DecodeSense(rs.Data[:rs.Produced]); err != nil || s.Key != scsi.SenseKeyNotReady ||
		s.Code != scsi.ASCLUNotReadySanitizeInProgress || !s.Specific.Valid() {
		t.Fatalf("request sense %x", rs.Data[:rs.Produced])
	}
	h.rec.release()
	h.sanitized()
	wantGood(t, h.exec(sd2, tur()))
	if !bytes.Equal(h.rec.mem, bytes.Repeat([]byte{0x5A}, len(h.rec.mem))) {
		t.Fatal("not every block is the pattern")
	}
	if len(h.lu.heldLocks) != 0 || len(h.chs[0].locks) != 0 || len(h.chs[1].locks) != 0 {
		t.Fatal("the sanitize range lock was left behind")
	}
}

// TestSanitizeOutlivesItsCommand: ABORT TASK, LOGICAL UNIT RESET and the release of the
// command's channel (the connection gone) end a waiting SANITIZE at once; the operation
// continues to the end each time (libiscsi Sanitize.Reset).
func TestSanitizeOutlivesItsCommand(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec", reactors: 2})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	ow := func(b byte) req {
		return sanitizeReq(scsi.SASanitizeOverwrite, false, false, overwrite([]byte{b}, 1, false))
	}
	end := func(b byte) {
		t.Helper()
		wantNotReadySanitize(t, h.exec(sd2, tur()))
		h.rec.release()
		h.sanitized()
		wantGood(t, h.exec(sd2, tur()))
		if !bytes.Equal(h.rec.mem, bytes.Repeat([]byte{b}, len(h.rec.mem))) {
			t.Fatalf("the operation did not complete the overwrite with %#x", b)
		}
	}

	h.rec.hold = true
	tk := h.start(sd1, ow(1))
	h.pollN(4)
	if tk.x.state != taskStateSanitize || h.doneCount(tk) != 0 {
		t.Fatalf("SANITIZE IMMED=0 in state %v", tk.x.state)
	}
	if !h.chs[0].Abort(tk) || h.doneCount(tk) != 1 || tk.Aborted != AbortedByNexus {
		t.Fatal("ABORT TASK did not end the waiting SANITIZE at once")
	}
	end(1)

	h.rec.hold = true
	tk = h.start(sd1, ow(2))
	h.pollN(4)
	done := false
	h.lu.Reset(h.rs[0], sd2, func() { done = true })
	h.until("reset", func() bool { return done })
	if h.doneCount(tk) != 1 || tk.Aborted != AbortedByOther {
		t.Fatalf("after the reset: done %d, %v", h.doneCount(tk), tk.Aborted)
	}
	for _, nx := range []*Nexus{sd1, sd2} {
		wantSense(t, h.exec(nx, tur()), scsi.SenseKeyUnitAttention, scsi.ASCPowerOnResetOrBusDeviceReset)
	}
	end(2)

	h.rec.hold = true
	tk = h.start(sd1, req{cdb: ow(3).cdb, out: ow(3).out, ch: 1})
	h.pollN(4)
	h.chs[1].Put()
	if h.doneCount(tk) != 1 {
		t.Fatal("releasing the channel left its SANITIZE waiting")
	}
	wantSense(t, tk, scsi.SenseKeyAbortedCommand, scsi.ASCNoAdditionalSense)
	end(3)
}

// TestSanitizeWaitsForWrites: the operation writes nothing while a write of another
// reactor is in the bdev, so none lands over the sanitized blocks.
func TestSanitizeWaitsForWrites(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec", reactors: 2})
	nx := h.nexus(init1)
	h.rec.hold = true
	w := h.start(nx, req{cdb: write16(100, 8), out: pattern(8*testBS, 9), ch: 1})
	s := h.start(nx, sanitizeReq(scsi.SASanitizeOverwrite, false, false, overwrite([]byte{0xC3}, 1, false)))
	h.pollN(20)
	if writes, _, _, _, _ := h.rec.counts(); writes != 1 {
		t.Fatalf("%d writes reached the bdev with a write in flight, want only that one", writes)
	}
	h.rec.release()
	h.until("both", func() bool { return h.doneCount(w) == 1 && h.doneCount(s) == 1 })
	wantGood(t, w)
	wantGood(t, s)
	h.wantBlocks(nx, 96, bytes.Repeat([]byte{0xC3}, 16*testBS))
}

// TestSanitizeFailureMode: a failed operation leaves the LU answering MEDIUM ERROR,
// SANITIZE COMMAND FAILED; with AUSE=0 only a successful sanitize leaves that mode (EXIT
// FAILURE MODE and AUSE=1 are INVALID FIELD IN CDB), with AUSE=1 EXIT FAILURE MODE does.
func TestSanitizeFailureMode(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec"})
	nx := h.nexus(init1)
	ow := overwrite([]byte{7}, 1, false)
	failed := func(tk *Task) {
		t.Helper()
		wantSense(t, tk, scsi.SenseKeyMediumError, scsi.ASCSanitizeCommandFailed)
	}
	h.rec.failWrites = true
	failed(h.exec(nx, sanitizeReq(scsi.SASanitizeOverwrite, false, false, ow)))
	failed(h.exec(nx, tur()))
	failed(h.exec(nx, req{cdb: read16(0, 1), in: testBS}))
	wantGood(t, h.exec(nx, req{cdb: inquiryCDB(false, 0, 96), in: 96}))
	rs := h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpRequestSense, AllocationLength: 18}), in: 18})
	if s, _ := scsi.DecodeSense(rs.Data[:rs.Produced]); s.Code != scsi.ASCSanitizeCommandFailed {
		t.Fatalf("request sense %x", rs.Data[:rs.Produced])
	}
	wantSense(t, h.exec(nx, sanitizeReq(scsi.SASanitizeExitFailureMode, false, false, nil)),
		scsi.SenseKeyIllegalRequest, invalidField)
	wantSense(t, h.exec(nx, sanitizeReq(scsi.SASanitizeOverwrite, false, true, ow)),
		scsi.SenseKeyIllegalRequest, invalidField)
	h.rec.failWrites = false
	wantGood(t, h.exec(nx, sanitizeReq(scsi.SASanitizeOverwrite, true, false, ow)))
	h.sanitized()
	wantGood(t, h.exec(nx, tur()))

	h.rec.failWrites = true
	wantGood(t, h.exec(nx, sanitizeReq(scsi.SASanitizeOverwrite, true, true, ow))) // IMMED
	h.sanitized()
	failed(h.exec(nx, tur()))
	h.rec.failWrites = false
	wantGood(t, h.exec(nx, sanitizeReq(scsi.SASanitizeExitFailureMode, false, false, nil)))
	wantGood(t, h.exec(nx, tur()))
}

// TestSanitizeRefusals: a write-protected LU refuses it (libiscsi Sanitize.Readonly),
// and so does a volume another nexus reserved (Sanitize.Reservations).
func TestSanitizeRefusals(t *testing.T) {
	ow := sanitizeReq(scsi.SASanitizeOverwrite, false, false, overwrite([]byte{1}, 1, false))
	h := newHarness(t, hOpts{readOnly: true})
	nx := h.nexus(init1)
	wantSense(t, h.exec(nx, ow), scsi.SenseKeyDataProtect, scsi.ASCWriteProtected)
	wantSense(t, h.exec(nx, sanitizeReq(scsi.SASanitizeBlockErase, false, false, nil)),
		scsi.SenseKeyDataProtect, scsi.ASCWriteProtected)

	h = newHarness(t, hOpts{resv: true})
	sd1, sd2 := h.nexus(init1), h.nexus(init2)
	wantGood(t, h.exec(sd2, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpReserve6})}))
	wantStatus(t, h.exec(sd1, ow), scsi.StatusReservationConflict)
	if h.lu.sanState.Load() != sanIdle {
		t.Fatal("a conflicting SANITIZE started")
	}
}
