package scsi

import (
	"bytes"
	"testing"

	"sluice/engine/proto/scsi"
)

func TestReadWriteRoundTrip(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	for _, c := range []struct{ w, r scsi.Opcode }{
		{scsi.OpWrite6, scsi.OpRead6}, {scsi.OpWrite10, scsi.OpRead10},
		{scsi.OpWrite12, scsi.OpRead12}, {scsi.OpWrite16, scsi.OpRead16},
		{scsi.OpWriteAndVerify10, scsi.OpRead10}, {scsi.OpWriteAndVerify16, scsi.OpRead16},
	} {
		data := pattern(8*testBS, byte(c.w))
		w := h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: c.w, LBA: 100, TransferLength: 8}), out: data})
		wantGood(t, w)
		if w.Produced != uint64(len(data)) {
			t.Fatalf("%v: produced %d", c.w, w.Produced)
		}
		r := h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: c.r, LBA: 100, TransferLength: 8}), in: len(data)})
		wantGood(t, r)
		if r.Produced != uint64(len(data)) || !bytes.Equal(r.Data, data) {
			t.Fatalf("%v then %v: read back differs", c.w, c.r)
		}
	}
}

// TestReadResiduals: libiscsi Read10Residuals. Produced is the whole transfer; Data
// holds what fits; the status is GOOD either way.
func TestReadResiduals(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	data := pattern(2*testBS, 3)
	h.writeBlocks(nx, 0, data)
	for _, c := range []struct {
		blocks   uint32
		edtl     int
		produced uint64
	}{
		{1, 0, testBS},          // overflow 512
		{1, 10000, testBS},      // underflow 9488
		{1, 200, testBS},        // overflow 312
		{2, testBS, 2 * testBS}, // overflow 512
	} {
		r := h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpRead10, TransferLength: c.blocks}), in: c.edtl})
		wantGood(t, r)
		if r.Produced != c.produced {
			t.Fatalf("%d blocks, EDTL %d: produced %d, want %d", c.blocks, c.edtl, r.Produced, c.produced)
		}
		if n := min(len(r.Data), int(c.produced)); !bytes.Equal(r.Data[:n], data[:n]) {
			t.Fatalf("%d blocks, EDTL %d: data differs", c.blocks, c.edtl)
		}
	}
}

// TestWriteResiduals: libiscsi 1.19 Write10Residuals and WriteVerify10Residuals. An
// EDTL of whole blocks below the transfer writes those blocks and no more, GOOD; one
// that ends inside a block writes nothing, INVALID FIELD IN INFORMATION UNIT; a longer
// one writes the transfer. Produced is the transfer length every time (the transport's
// residual).
func TestWriteResiduals(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	a := bytes.Repeat([]byte{'a'}, 2*testBS)
	for _, op := range []scsi.Opcode{scsi.OpWrite10, scsi.OpWriteAndVerify10, scsi.OpWrite16} {
		for _, c := range []struct {
			blocks  uint32
			sent    int
			ok      bool
			written int // blocks of 'b' expected
		}{
			{1, 0, true, 0},          // EDTL 0: overflow, nothing to write
			{1, 2 * testBS, true, 1}, // underflow: the transfer is written
			{2, testBS, true, 1},     // overflow: the first block only
			{2, 0, true, 0},
			{1, 10000, true, 1},
			{1, 200, false, 0}, // ends inside a block
			{2, testBS + 200, false, 0},
		} {
			h.writeBlocks(nx, 0, a)
			b := bytes.Repeat([]byte{'b'}, c.sent)
			w := h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: op, TransferLength: c.blocks}),
				out: b, edtl: max(c.sent, -1)})
			if w.Produced != uint64(c.blocks)*testBS {
				t.Fatalf("%v %d blocks, %d sent: produced %d", op, c.blocks, c.sent, w.Produced)
			}
			if c.ok {
				wantGood(t, w)
			} else {
				wantSense(t, w, scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInInformationUnit)
			}
			want := append([]byte(nil), a...)
			copy(want, b[:c.written*testBS])
			h.wantBlocks(nx, 0, want)
		}
	}
}

// TestWriteCacheDurability: WCE decides durability as NVMe's volatile write cache does:
// with WCE=1 only FUA writes are FUA and SYNCHRONIZE CACHE flushes; with WCE=0 every
// write (and WRITE AND VERIFY always) reaches the bdev with FUA.
func TestWriteCacheDurability(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec", volatile: true})
	nx := h.nexus(init1)
	if !h.lu.wce.Load() {
		t.Fatal("WCE off on a bdev with a volatile cache")
	}
	data := pattern(testBS, 1)
	wantGood(t, h.exec(nx, req{cdb: write16(0, 1), out: data}))
	wantGood(t, h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpWrite16, FUA: true, TransferLength: 1}), out: data}))
	wantGood(t, h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpWriteAndVerify10, TransferLength: 1}), out: data}))
	wantGood(t, h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpSynchronizeCache16})}))
	if w, fua, flushes, _, _ := h.rec.counts(); w != 3 || fua != 2 || flushes != 1 {
		t.Fatalf("WCE=1: %d writes, %d FUA, %d flushes", w, fua, flushes)
	}
	wantGood(t, h.exec(nx, modeSelectPage(scsi.ModePageCaching, scsi.CachingPage{}.Bytes())))
	if h.lu.wce.Load() {
		t.Fatal("MODE SELECT did not clear WCE")
	}
	wantGood(t, h.exec(nx, req{cdb: write16(0, 1), out: data}))
	if w, fua, _, _, _ := h.rec.counts(); w != 4 || fua != 3 {
		t.Fatalf("WCE=0: %d writes, %d FUA", w, fua)
	}
	// MODE SENSE shows the change.
	ms := h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpModeSense6, DBD: true,
		PageCode: scsi.ModePageCaching, AllocationLength: 64}), in: 64})
	wantGood(t, ms)
	if ms.Data[4] != scsi.ModePageCaching || ms.Data[6]&0x04 != 0 {
		t.Fatalf("caching page %x", ms.Data[:ms.Produced])
	}
}

// modeSelectPage builds a MODE SELECT(6) of one page.
func modeSelectPage(code uint8, params []byte) req {
	l := scsi.ModeSelectList{Pages: []scsi.ModeSelectPage{{Code: code, Params: params}}}
	b := l.Append(nil)
	return req{cdb: cdb(scsi.CDB{Opcode: scsi.OpModeSelect6, PF: true,
		ParameterListLength: uint32(len(b))}), out: b}
}

// controlPage returns the LU's Control page parameters with D_SENSE and SWP set.
func controlPage(dsense, swp bool) []byte {
	return scsi.ControlPage{QAM: 1, TAS: true, BusyTimeout: 600, DSense: dsense, SWP: swp}.Bytes()
}

func TestUnmapReadsZeros(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	data := pattern(32*testBS, 9)
	h.writeBlocks(nx, 0, data)
	list := scsi.AppendUnmap(nil, []scsi.UnmapDescriptor{{LBA: 2, Blocks: 3}, {LBA: 20, Blocks: 0},
		{LBA: 10, Blocks: 4}})
	wantGood(t, h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpUnmap,
		ParameterListLength: uint32(len(list))}), out: list}))
	want := append([]byte(nil), data...)
	clear(want[2*testBS : 5*testBS])
	clear(want[10*testBS : 14*testBS])
	h.wantBlocks(nx, 0, want)
}

func TestWriteSame(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec"})
	nx := h.nexus(init1)
	block := pattern(testBS, 0x40)
	ws := func(op scsi.Opcode, lba uint64, n uint32, unmap, ndob bool, data []byte) *Task {
		return h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: op, LBA: lba, TransferLength: n,
			Unmap: unmap, NDOB: ndob}), out: data})
	}
	// A pattern over more than one chunk buffer: chunked writes.
	const n = wsChunkBytes/testBS*2 + 37
	wantGood(t, ws(scsi.OpWriteSame16, 10, n, false, false, block))
	h.wantBlocks(nx, 10, bytes.Repeat(block, n))
	writes, _, _, _, _ := h.rec.counts()
	if writes != 3 {
		t.Fatalf("%d chunk writes, want 3", writes)
	}
	// UNMAP with a non-zero block writes the block: deallocating would lose it.
	wantGood(t, ws(scsi.OpWriteSame10, 0, 4, true, false, block))
	h.wantBlocks(nx, 0, bytes.Repeat(block, 4))
	// UNMAP with a zero block deallocates (LBPRZ: the same contents).
	zero := make([]byte, testBS)
	wantGood(t, ws(scsi.OpWriteSame10, 10, 100, true, false, zero))
	if _, _, _, unmaps, _ := h.rec.counts(); unmaps != 1 {
		t.Fatalf("%d unmaps, want 1", unmaps)
	}
	h.wantBlocks(nx, 10, make([]byte, 100*testBS))
	// A zero block without UNMAP is write zeroes; NDOB too, with no data-out at all.
	wantGood(t, ws(scsi.OpWriteSame16, 0, 4, false, false, zero))
	wantGood(t, ws(scsi.OpWriteSame16, 200, 50, false, true, nil))
	if _, _, _, _, zeroes := h.rec.counts(); zeroes != 2 {
		t.Fatalf("%d write zeroes, want 2", zeroes)
	}
	h.wantBlocks(nx, 0, make([]byte, 4*testBS))
	// NUMBER OF LOGICAL BLOCKS 0: to the end of the LU.
	wantGood(t, ws(scsi.OpWriteSame16, testBlocks-3, 0, false, false, block))
	h.wantBlocks(nx, testBlocks-3, bytes.Repeat(block, 3))
	wantSense(t, ws(scsi.OpWriteSame16, testBlocks+1, 0, false, false, block),
		scsi.SenseKeyIllegalRequest, scsi.ASCLBAOutOfRange)
}

func TestVerify(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	data := pattern(8*testBS, 5)
	h.writeBlocks(nx, 0, data)
	verify := func(bytchk uint8, n uint32, out []byte) *Task {
		return h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpVerify16, ByteCheck: bytchk,
			TransferLength: n}), out: out})
	}
	wantGood(t, verify(1, 8, data))
	bad := append([]byte(nil), data...)
	bad[3*testBS+17] ^= 'X'
	s := wantSense(t, verify(1, 8, bad), scsi.SenseKeyMiscompare, scsi.ASCMiscompareDuringVerify)
	if !s.InfoValid || s.Info != 3*testBS+17 {
		t.Fatalf("miscompare at %v %d, want %d", s.InfoValid, s.Info, 3*testBS+17)
	}
	// BYTCHK=11b: every block against the one sent.
	block := pattern(testBS, 77)
	h.writeBlocks(nx, 0, bytes.Repeat(block, 4))
	wantGood(t, verify(3, 4, block))
	other := append([]byte(nil), block...)
	other[5]++
	h.writeBlocks(nx, 2, other)
	s = wantSense(t, verify(3, 4, block), scsi.SenseKeyMiscompare, scsi.ASCMiscompareDuringVerify)
	if s.Info != 2*testBS+5 {
		t.Fatalf("miscompare at %d", s.Info)
	}
	// BYTCHK=1 with less data than the blocks.
	wantSense(t, verify(1, 8, data[:testBS]), scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInInformationUnit)
}

func cawCDB(lba uint64, n uint32) []byte {
	return cdb(scsi.CDB{Opcode: scsi.OpCompareAndWrite, LBA: lba, TransferLength: n})
}

func TestCompareAndWrite(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	const n = 4
	a := bytes.Repeat([]byte{'A'}, n*testBS)
	b := bytes.Repeat([]byte{'B'}, n*testBS)
	h.writeBlocks(nx, 7, a)
	wantGood(t, h.exec(nx, req{cdb: cawCDB(7, n), out: append(append([]byte(nil), a...), b...)}))
	h.wantBlocks(nx, 7, b)
	// Miscompare: one byte in the last block (libiscsi CompareAndWrite.Miscompare).
	verify := append([]byte(nil), b...)
	verify[n*testBS-27] = 'C'
	c := bytes.Repeat([]byte{'D'}, n*testBS)
	task := h.exec(nx, req{cdb: cawCDB(7, n), out: append(verify, c...)})
	s := wantSense(t, task, scsi.SenseKeyMiscompare, scsi.ASCMiscompareDuringVerify)
	if !s.InfoValid || s.Info != n*testBS-27 {
		t.Fatalf("miscompare offset %d", s.Info)
	}
	h.wantBlocks(nx, 7, b) // nothing written
	// The same in descriptor format once D_SENSE is set.
	wantGood(t, h.exec(nx, modeSelectPage(scsi.ModePageControl, controlPage(true, false))))
	task = h.exec(nx, req{cdb: cawCDB(7, n), out: append(verify, c...)})
	if task.Sense[0] != 0x72 {
		t.Fatalf("sense format %#x with D_SENSE", task.Sense[0])
	}
	if s := senseOf(task); s.Key != scsi.SenseKeyMiscompare || s.Info != n*testBS-27 {
		t.Fatalf("descriptor sense %+v", s)
	}
}

// TestCompareAndWriteZeroBlocks: NUMBER OF LOGICAL BLOCKS 0 with no data-out transfers
// nothing and is GOOD; with data-out the field cannot be what was meant (libiscsi
// CompareAndWrite.Simple sends 256 blocks, which the byte carries as 0): INVALID FIELD
// IN CDB @13, nothing written.
func TestCompareAndWriteZeroBlocks(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	a := bytes.Repeat([]byte{'A'}, 256*testBS)
	h.writeBlocks(nx, 0, a)
	wantGood(t, h.exec(nx, req{cdb: cawCDB(0, 0)}))
	data := append(append([]byte(nil), a...), bytes.Repeat([]byte{'B'}, 256*testBS)...)
	tk := h.exec(nx, req{cdb: cawCDB(0, 256), out: data}) // 256 wraps to 0
	s := wantSense(t, tk, scsi.SenseKeyIllegalRequest, invalidField)
	if _, off, _, _ := s.Specific.Field(); off != 13 {
		t.Fatalf("field pointer @%d", off)
	}
	h.wantBlocks(nx, 0, a)
}

// TestWriteAtomic: WRITE ATOMIC(16) writes like WRITE(16) within the Block Limits
// atomic fields, and refuses what they exclude (libiscsi WriteAtomic16.*).
func TestWriteAtomic(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec", volatile: true})
	nx := h.nexus(init1)
	wa := func(c scsi.CDB) scsi.CDB { c.Opcode = scsi.OpWriteAtomic16; return c }
	data := pattern(256*testBS, 5)
	wantGood(t, h.exec(nx, req{cdb: cdb(wa(scsi.CDB{LBA: 3, TransferLength: 256})), out: data}))
	h.wantBlocks(nx, 3, data)
	_, fua, _, _, _ := h.rec.counts()
	wantGood(t, h.exec(nx, req{cdb: cdb(wa(scsi.CDB{LBA: testBlocks - 1, FUA: true, DPO: true,
		TransferLength: 1})), out: data[:testBS]}))
	if _, f, _, _, _ := h.rec.counts(); f != fua+1 {
		t.Fatal("FUA did not reach the bdev")
	}
	wantGood(t, h.exec(nx, none(wa(scsi.CDB{LBA: testBlocks}))))
	for _, c := range []struct {
		name string
		r    req
		code scsi.SenseCode
	}{
		{"beyond the end", req{cdb: cdb(wa(scsi.CDB{LBA: testBlocks - 1, TransferLength: 2})),
			out: data[:2*testBS]}, lbaRange},
		{"0 blocks past the end", none(wa(scsi.CDB{LBA: testBlocks + 8})), lbaRange},
		{"above the atomic limit", req{cdb: cdb(wa(scsi.CDB{TransferLength: 2049})),
			out: make([]byte, 2049*testBS)}, invalidField},
		{"atomic boundary", req{cdb: cdb(wa(scsi.CDB{TransferLength: 1, AtomicBoundary: 1})),
			out: data[:testBS]}, invalidField},
		{"wrprotect", req{cdb: cdb(wa(scsi.CDB{TransferLength: 1, Protect: 1})), out: data[:testBS]},
			invalidField},
		// Never written in part: an EDTL short of the transfer writes nothing.
		{"short data-out", req{cdb: cdb(wa(scsi.CDB{TransferLength: 2})), out: data[:testBS]}, invalidIU},
	} {
		wantSense(t, h.exec(nx, c.r), scsi.SenseKeyIllegalRequest, c.code)
	}
	h.wantBlocks(nx, 0, append(make([]byte, 3*testBS), data[:testBS]...))

	// An LU whose limits offer no atomic write does not know the command.
	h = newHarness(t, hOpts{limits: scsi.BlockLimits{MaxTransferLength: 256}})
	nx = h.nexus(init1)
	wantSense(t, h.exec(nx, req{cdb: cdb(wa(scsi.CDB{TransferLength: 1})), out: data[:testBS]}),
		scsi.SenseKeyIllegalRequest, scsi.ASCInvalidCommandOperationCode)
	tk := h.exec(nx, req{cdb: rsocCDB(scsi.RSOCOneCommand, scsi.OpWriteAtomic16, 0), in: 64})
	if tk.Data[1]&7 != scsi.SupportNotSupported {
		t.Fatal("REPORT SUPPORTED OPERATION CODES lists WRITE ATOMIC without atomic limits")
	}
}

// TestWriteAtomicIsolation: a WRITE ATOMIC waits for the overlapping write in flight on
// another reactor and holds back one that arrives while it runs, so its blocks are
// never a mix of it and another write.
func TestWriteAtomicIsolation(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec", reactors: 2})
	nx := h.nexus(init1)
	x := bytes.Repeat([]byte{'X'}, 8*testBS)
	y := bytes.Repeat([]byte{'Y'}, 8*testBS)
	z := bytes.Repeat([]byte{'Z'}, 8*testBS)
	h.rec.hold = true
	w1 := h.start(nx, req{cdb: write16(0, 8), out: x, ch: 1})
	a := h.start(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpWriteAtomic16, TransferLength: 8}), out: y})
	h.pollN(10)
	if a.x.state != taskStateLocking {
		t.Fatalf("atomic write in state %v with an overlapping write in the bdev", a.x.state)
	}
	h.rec.completeHeld(true)
	h.until("the atomic write's write", func() bool { return a.x.state == taskStateAtomicWrite })
	wantGood(t, w1)
	// Its lock is held until the bdev gives its write back: an overlapping write waits.
	w2 := h.start(nx, req{cdb: write16(4, 8), out: z, ch: 1})
	h.pollN(4)
	if w2.x.state != taskStateBlocked || h.doneCount(a) != 0 {
		t.Fatalf("overlapping write in state %v while the atomic write runs", w2.x.state)
	}
	h.rec.release()
	h.until("all", func() bool { return h.doneCount(a) == 1 && h.doneCount(w2) == 1 })
	wantGood(t, a)
	wantGood(t, w2)
	h.wantBlocks(nx, 0, append(append([]byte(nil), y[:4*testBS]...), z...))
}

// TestOrWrite: libiscsi OrWrite.Verify: OR 0xa5 into zeros, then 0x5a into that.
func TestOrWrite(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	for _, n := range []int{1, 7, 256} {
		h.writeBlocks(nx, 0, make([]byte, n*testBS))
		or := func(v byte) {
			wantGood(t, h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpOrWrite16,
				TransferLength: uint32(n)}), out: bytes.Repeat([]byte{v}, n*testBS)}))
		}
		or(0xA5)
		h.wantBlocks(nx, 0, bytes.Repeat([]byte{0xA5}, n*testBS))
		or(0x5A)
		h.wantBlocks(nx, 0, bytes.Repeat([]byte{0xFF}, n*testBS))
	}
}

// TestCompareAndWriteAtomic: on two reactors with writes held in a delay bdev, a
// COMPARE AND WRITE waits for the overlapping write in flight on the other reactor,
// holds back an overlapping write that arrives while it runs, lets a disjoint one
// through, and two overlapping COMPARE AND WRITEs run one after the other.
func TestCompareAndWriteAtomic(t *testing.T) {
	h := newHarness(t, hOpts{module: "delay", delayPolls: 4, reactors: 2})
	nx := h.nexus(init1)
	x := bytes.Repeat([]byte{'X'}, 8*testBS)
	y := bytes.Repeat([]byte{'Y'}, 8*testBS)
	z := bytes.Repeat([]byte{'Z'}, 8*testBS)
	// A write in flight on reactor 1 when the COMPARE AND WRITE starts on reactor 0.
	w1 := h.start(nx, req{cdb: write16(0, 8), out: x, ch: 1})
	caw := h.start(nx, req{cdb: cawCDB(0, 8), out: append(append([]byte(nil), x...), y...)})
	h.pollN(2)
	if caw.x.state != taskStateLocking || h.doneCount(w1) != 0 {
		t.Fatalf("compare and write in state %v with the overlapping write done=%d",
			caw.x.state, h.doneCount(w1))
	}
	h.until("the first write", func() bool { return h.doneCount(w1) == 1 })
	wantGood(t, w1)
	h.until("the compare and write's read", func() bool { return caw.x.state != taskStateLocking })
	// Now it holds the range: an overlapping write waits, a disjoint one runs.
	w2 := h.start(nx, req{cdb: write16(4, 8), out: z[:8*testBS], ch: 1})
	w3 := h.start(nx, req{cdb: write16(100, 8), out: z, ch: 1})
	yx := append(append([]byte(nil), y[:2*testBS]...), x[:2*testBS]...)
	caw2 := h.start(nx, req{cdb: cawCDB(2, 2), out: yx, ch: 1})
	h.pollN(1)
	if w2.x.state != taskStateBlocked || caw2.x.state != taskStateLocking {
		t.Fatalf("overlapping write in state %v, second compare and write in %v", w2.x.state, caw2.x.state)
	}
	h.until("all", func() bool {
		return h.doneCount(caw) == 1 && h.doneCount(w2) == 1 && h.doneCount(w3) == 1 && h.doneCount(caw2) == 1
	})
	wantGood(t, caw)
	wantGood(t, w2)
	wantGood(t, w3)
	// caw2 started when caw released its range, so it compared against caw's Y and
	// wrote X; w2 (disjoint from caw2) landed after caw.
	wantGood(t, caw2)
	got := h.readBlocks(nx, 0, 12)
	want := append(append(append([]byte(nil), y[:2*testBS]...), x[:2*testBS]...), z[:8*testBS]...)
	if !bytes.Equal(got, want) {
		t.Fatal("blocks are not what serialised writes leave")
	}
	if !bytes.Equal(got[4*testBS:], z[:8*testBS]) {
		t.Fatal("the held-back write did not land after the compare and write")
	}
	if len(h.lu.heldLocks) != 0 || len(h.lu.waitLocks) != 0 || len(h.chs[0].locks) != 0 ||
		len(h.chs[1].locks) != 0 || len(h.chs[1].blocked) != 0 {
		t.Fatal("range locks left behind")
	}
}

func TestWriteProtect(t *testing.T) {
	h := newHarness(t, hOpts{readOnly: true})
	nx := h.nexus(init1)
	wantSense(t, h.exec(nx, req{cdb: write16(0, 1), out: make([]byte, testBS)}),
		scsi.SenseKeyDataProtect, scsi.ASCWriteProtected)
	ms := h.exec(nx, req{cdb: cdb(scsi.CDB{Opcode: scsi.OpModeSense6, PageCode: scsi.ModePageAll,
		AllocationLength: 255}), in: 255})
	if ms.Data[2]&0x80 == 0 {
		t.Fatal("WP clear on a read-only LU")
	}
	wantGood(t, h.exec(nx, req{cdb: read16(0, 1), in: testBS}))

	// SWP through the Control page (libiscsi ModeSense6.ControlSWP).
	h = newHarness(t, hOpts{})
	nx = h.nexus(init1)
	wantGood(t, h.exec(nx, modeSelectPage(scsi.ModePageControl, controlPage(false, true))))
	for _, r := range []req{
		{cdb: write16(0, 1), out: make([]byte, testBS)},
		{cdb: cdb(scsi.CDB{Opcode: scsi.OpWriteSame16, TransferLength: 1}), out: make([]byte, testBS)},
		{cdb: cawCDB(0, 1), out: make([]byte, 2*testBS)},
		{cdb: cdb(scsi.CDB{Opcode: scsi.OpOrWrite16, TransferLength: 1}), out: make([]byte, testBS)},
		{cdb: cdb(scsi.CDB{Opcode: scsi.OpUnmap, ParameterListLength: 8}), out: scsi.AppendUnmap(nil, nil)},
	} {
		wantSense(t, h.exec(nx, r), scsi.SenseKeyDataProtect, scsi.ASCWriteProtected)
	}
	wantGood(t, h.exec(nx, modeSelectPage(scsi.ModePageControl, controlPage(false, false))))
	wantGood(t, h.exec(nx, req{cdb: write16(0, 1), out: make([]byte, testBS)}))
}

// TestModeSelectRefusals: bits outside the changeable mask, a wrong page length.
func TestModeSelectRefusals(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	p := controlPage(false, false)
	p[0] |= 0xE0 // TST
	wantSense(t, h.exec(nx, modeSelectPage(scsi.ModePageControl, p)),
		scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInParameterList)
	wantSense(t, h.exec(nx, modeSelectPage(scsi.ModePageControl, p[:4])),
		scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInParameterList)
	wantSense(t, h.exec(nx, modeSelectPage(0x19, p)),
		scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInParameterList)
}
