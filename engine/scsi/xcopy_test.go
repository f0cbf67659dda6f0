package scsi

import (
	"bytes"
	"testing"

	"sluice/engine/bdev"
	"sluice/engine/proto/scsi"
)

// EXTENDED COPY and RECEIVE COPY RESULTS.

// blockPattern is n blocks, each different: its index, then the pattern.
func blockPattern(n int, seed byte) []byte {
	b := pattern(n*testBS, seed)
	for i := 0; i < n; i++ {
		be.PutUint64(b[i*testBS:], uint64(i)<<8|uint64(seed))
	}
	return b
}

// xcopyTarget is the E4h descriptor libiscsi builds for lu: its NAA designator.
func xcopyTarget(lu *LU) scsi.XCopyTarget {
	return scsi.XCopyTarget{Type: scsi.XCopyTgtIdentification, CodeSet: 1, DesignatorType: 3,
		Designator: append([]byte(nil), lu.naa[:]...), BlockLength: lu.blockSize}
}

// xcopyReq builds an EXTENDED COPY of one segment per seg, all within targets.
func xcopyReq(usage, list uint8, targets []scsi.XCopyTarget, segs ...scsi.XCopySegment) req {
	for i := range segs {
		segs[i].Type = scsi.XCopySegBlockToBlock
	}
	l := scsi.XCopyList{ListID: list, ListIDUsage: usage, Targets: targets, Segments: segs}
	b := l.Append(nil)
	return req{cdb: cdb(scsi.CDB{Opcode: scsi.OpExtendedCopy, ParameterListLength: uint32(len(b))}), out: b}
}

func copyStatusReq(list uint8) req {
	return in(scsi.CDB{Opcode: scsi.OpReceiveCopyResults, ServiceAction: scsi.SACopyStatus,
		ListIdentifier: list, AllocationLength: 1024}, 1024)
}

// TestExtendedCopy: libiscsi ExtendedCopy.Simple and ReceiveCopyResults: blocks copied
// within the LU, the copy's status held for LIST ID USAGE 00b, the operating parameters.
func TestExtendedCopy(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	data := blockPattern(2048, 7)
	h.writeBlocks(nx, 0, data[:1024*testBS])
	h.writeBlocks(nx, 1024, data[1024*testBS:])
	tg := []scsi.XCopyTarget{xcopyTarget(h.lu)}
	wantSense(t, h.exec(nx, copyStatusReq(1)), scsi.SenseKeyIllegalRequest, invalidField)
	wantGood(t, h.exec(nx, xcopyReq(scsi.XCopyListIDHold, 1, tg,
		scsi.XCopySegment{Blocks: 2048, SrcLBA: 0, DstLBA: testBlocks - 2048})))
	h.wantBlocks(nx, testBlocks-2048, data[:1024*testBS])
	h.wantBlocks(nx, testBlocks-1024, data[1024*testBS:])
	cs := h.exec(nx, copyStatusReq(1))
	wantGood(t, cs)
	// AVAILABLE DATA 8, completed, one segment, 1 MiB in bytes.
	if !bytes.Equal(cs.Data[:cs.Produced], []byte{0, 0, 0, 8, 1, 0, 1, 0, 0, 0x10, 0, 0}) {
		t.Fatalf("copy status %x", cs.Data[:cs.Produced])
	}
	// Another nexus has no copy of that list identifier; LIST ID USAGE 10b keeps none.
	wantSense(t, h.exec(h.nexus(init2), copyStatusReq(1)), scsi.SenseKeyIllegalRequest, invalidField)
	wantGood(t, h.exec(nx, xcopyReq(scsi.XCopyListIDNoHold, 2, tg, scsi.XCopySegment{Blocks: 1})))
	wantSense(t, h.exec(nx, copyStatusReq(2)), scsi.SenseKeyIllegalRequest, invalidField)
	op := h.exec(nx, in(scsi.CDB{Opcode: scsi.OpReceiveCopyResults,
		ServiceAction: scsi.SACopyOperatingParams, AllocationLength: 1024}, 1024))
	wantGood(t, op)
	if be.Uint16(op.Data[8:]) != 2 || be.Uint16(op.Data[10:]) != 8 || op.Data[43] != 2 {
		t.Fatalf("operating parameters %x", op.Data[:op.Produced])
	}
	// No parameter data: nothing to copy (libiscsi ExtendedCopy.ParamHdr).
	wantGood(t, h.exec(nx, none(scsi.CDB{Opcode: scsi.OpExtendedCopy})))
}

// TestExtendedCopyOverlap: overlapping ranges of one LU copy as memmove does, whichever
// side the destination is on.
func TestExtendedCopyOverlap(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	tg := []scsi.XCopyTarget{xcopyTarget(h.lu)}
	const n = 3000 // more than one chunk
	data := blockPattern(n, 3)
	for _, c := range []struct{ src, dst uint64 }{{0, 500}, {500, 0}} {
		for off := 0; off < n; off += 1000 {
			h.writeBlocks(nx, c.src+uint64(off), data[off*testBS:(off+1000)*testBS])
		}
		wantGood(t, h.exec(nx, xcopyReq(scsi.XCopyListIDNoIdent, 0, tg,
			scsi.XCopySegment{Blocks: n, SrcLBA: c.src, DstLBA: c.dst})))
		for off := 0; off < n; off += 1000 {
			h.wantBlocks(nx, c.dst+uint64(off), data[off*testBS:(off+1000)*testBS])
		}
	}
}

// TestExtendedCopyErrors: libiscsi ExtendedCopy.ValidSegDescr and .DescrType, and the
// LUs' own refusals. Nothing is written.
func TestExtendedCopyErrors(t *testing.T) {
	h := newHarness(t, hOpts{})
	nx := h.nexus(init1)
	tg := []scsi.XCopyTarget{xcopyTarget(h.lu)}
	other := xcopyTarget(h.lu)
	other.Designator[15] ^= 1
	seg := scsi.XCopySegment{Blocks: 8, DstLBA: 100}
	for _, c := range []struct {
		name string
		r    req
		key  scsi.SenseKey
		code scsi.SenseCode
	}{
		{"destination index", xcopyReq(0, 1, tg, scsi.XCopySegment{Blocks: 8, Dst: 1}),
			scsi.SenseKeyCopyAborted, scsi.ASCUnreachableCopyTarget},
		{"unknown lu", xcopyReq(0, 1, []scsi.XCopyTarget{other}, seg),
			scsi.SenseKeyCopyAborted, scsi.ASCUnreachableCopyTarget},
		{"beyond the end", xcopyReq(0, 1, tg, scsi.XCopySegment{Blocks: 8, DstLBA: testBlocks - 1}),
			scsi.SenseKeyCopyAborted, scsi.ASCNoAdditionalSense},
		{"too many targets", xcopyReq(0, 1, append(tg, tg[0], tg[0]), seg),
			scsi.SenseKeyIllegalRequest, scsi.ASCTooManyTargetDescriptors},
		{"short data-out", req{cdb: cdb(scsi.CDB{Opcode: scsi.OpExtendedCopy, ParameterListLength: 100}),
			out: make([]byte, 50)}, scsi.SenseKeyIllegalRequest, invalidIU},
	} {
		wantSense(t, h.exec(nx, c.r), c.key, c.code)
	}
	h.wantBlocks(nx, 100, make([]byte, 8*testBS))
	wrongLength := xcopyTarget(h.lu)
	wrongLength.BlockLength = 4096
	wantSense(t, h.exec(nx, xcopyReq(0, 1, []scsi.XCopyTarget{wrongLength}, seg)),
		scsi.SenseKeyIllegalRequest, scsi.ASCInvalidFieldInParameterList)

	ro := newHarness(t, hOpts{readOnly: true})
	rnx := ro.nexus(init1)
	wantSense(t, ro.exec(rnx, xcopyReq(0, 1, []scsi.XCopyTarget{xcopyTarget(ro.lu)}, seg)),
		scsi.SenseKeyDataProtect, scsi.ASCWriteProtected)
}

// TestExtendedCopyBetweenLUs: a copy from one LU of the target to another, named by
// their NAA designators in one parameter list.
func TestExtendedCopyBetweenLUs(t *testing.T) {
	h := newHarness(t, hOpts{})
	b2, err := bdev.CreateMalloc(h.bdevs, bdev.MallocParams{Name: "vol2", NumBlocks: testBlocks,
		BlockSize: testBS}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lu2, err := NewLU(LUConfig{Bdev: b2, LUN: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lu2.Close()
	m := NewLUNMap("", "", "")
	if err := m.Add(h.lu); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(lu2); err != nil {
		t.Fatal(err)
	}
	ch2, err := lu2.Channel(h.rs[0], h.cores[0])
	if err != nil {
		t.Fatal(err)
	}
	defer ch2.Put()
	nx := h.nexus(init1)
	data := blockPattern(64, 5)
	h.writeBlocks(nx, 10, data)
	wantGood(t, h.exec(nx, xcopyReq(0, 1, []scsi.XCopyTarget{xcopyTarget(h.lu), xcopyTarget(lu2)},
		scsi.XCopySegment{Src: 0, Dst: 1, Blocks: 64, SrcLBA: 10, DstLBA: 20})))
	nx2 := lu2.Nexus(init1)
	nx2.take()
	rd := &Task{Nexus: nx2, Data: make([]byte, 64*testBS), ExpectedLen: 64 * testBS}
	rd.SetCDB(read16(20, 64))
	done := false
	rd.Done = func(*Task) { done = true }
	ch2.Execute(rd)
	h.until("read of the second LU", func() bool { return done })
	wantGood(t, rd)
	if !bytes.Equal(rd.Data, data) {
		t.Fatal("the second LU does not hold the copied blocks")
	}
}

// TestExtendedCopyIsolationAndAbort: a copy's writes wait for a write in flight to its
// destination range (the range lock), and an aborted copy stops after the chunk in the
// bdev.
func TestExtendedCopyIsolationAndAbort(t *testing.T) {
	h := newHarness(t, hOpts{module: "rec", reactors: 2})
	nx := h.nexus(init1)
	tg := []scsi.XCopyTarget{xcopyTarget(h.lu)}
	h.rec.hold = true
	w := h.start(nx, req{cdb: write16(2100, 8), out: make([]byte, 8*testBS), ch: 1})
	x := h.start(nx, xcopyReq(0, 1, tg, scsi.XCopySegment{Blocks: 4096 - 2048, DstLBA: 2048}))
	h.pollN(20)
	if writes, _, _, _, _ := h.rec.counts(); writes != 1 {
		t.Fatalf("%d writes reached the bdev, want only the one in flight", writes)
	}
	// The lock is held: the first chunk's write reaches the bdev (held there), then
	// ABORT TASK waits for it and stops the copy.
	h.rec.completeHeld(true)
	h.until("the copy's first write", func() bool { w, _, _, _, _ := h.rec.counts(); return w == 2 })
	if h.chs[0].Abort(x) {
		t.Fatal("a copy inside the bdev was ended at once")
	}
	h.rec.release()
	h.until("the aborted copy", func() bool { return h.doneCount(x) == 1 })
	if x.Aborted != AbortedByNexus {
		t.Fatalf("copy: %v %v", x.Status, x.Aborted)
	}
	if writes, _, _, _, _ := h.rec.counts(); writes != 2 {
		t.Fatalf("%d writes: the aborted copy went on", writes)
	}
	wantGood(t, w)
	if len(h.lu.heldLocks) != 0 || h.lu.activeCopies != 0 {
		t.Fatal("the copy left its lock or its count behind")
	}
}
