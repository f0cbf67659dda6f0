package iscsi

import (
	"bytes"
	"testing"

	pscsi "sluice/engine/proto/scsi"
)

// TestDataInSegmentation is a property test of the Data-In a READ produces, over
// random initiator-declared MaxRecvDataSegmentLength (odd values included), negotiated
// MaxBurstLength, transfer lengths and EDTLs (equal, larger, smaller, zero):
//
//   - the data is what was written, min(EDTL, transfer length) bytes of it;
//   - BufferOffsets are contiguous from 0 and DataSN runs 0..n-1;
//   - every segment is non-empty and at most the initiator's MaxRecvDataSegmentLength;
//   - F is set exactly at each MaxBurstLength boundary and on the last PDU, and no PDU
//     crosses a boundary (each Data-In sequence is at most MaxBurstLength);
//   - S is set on the last PDU only, the status GOOD, with the residual (U, O and the
//     count) of EDTL against the transfer length, and no SCSI Response follows;
//   - a READ moving no data, or failing, is answered by a SCSI Response alone.
func TestDataInSegmentation(t *testing.T) {
	const region = 4096 // blocks written with the pattern: 2 MiB
	e := newEnv(t, envOpts{opts: Options{MaxBurstLength: 1 << 20, FirstBurstLength: 65536}})
	rnd := testRand(t)
	data := pattern(region*testBlock, 11)
	w := connect(t, e.addr, loginOpts{mbl: 1 << 20})
	for off := 0; off < len(data); off += 1 << 20 {
		w.writeBlocks(uint64(off/testBlock), data[off:off+1<<20]).good(t, "write")
	}
	w.logoutOK()

	sessions, reads := 12, 10
	if testing.Short() {
		sessions = 4
	}
	for s := range sessions {
		mrdsl := uint32(512 + rnd.IntN(128<<10))
		mbl := uint32(512 + rnd.IntN(1<<20))
		switch s {
		case 0: // the smallest values both
			mrdsl, mbl = 512, 512
		case 1: // segment larger than the burst: the burst cuts every PDU
			mrdsl, mbl = 65536, 1536
		case 2: // bursts not a multiple of the segment
			mrdsl, mbl = 1000, 4500
		}
		in := dial(t, e.addr)
		in.mustLogin(loginOpts{maxRecvDSL: mrdsl, mbl: mbl, fbl: min(65536, mbl)})
		if in.p.mbl != mbl {
			t.Fatalf("MaxBurstLength %d negotiated, want the initiator's %d", in.p.mbl, mbl)
		}
		// The first command of the nexus meets the POWER ON unit attention: CHECK
		// CONDITION, no Data-In, the whole EDTL as underflow.
		buf := make([]byte, 1<<20+8192)
		r := in.exec(cmdSpec{cdb: read16(0, 8), read: true, edtl: 4096, in: buf})
		if r.status != uint8(pscsi.StatusCheckCondition) || r.collapsed || len(in.dins) != 0 ||
			r.sense.Key != pscsi.SenseKeyUnitAttention || !r.under || r.resid != 4096 {
			t.Fatalf("READ meeting a unit attention: %+v, %d Data-In", r, len(in.dins))
		}
		for k := range reads {
			blocks := uint32(rnd.IntN(1025))
			if k == 0 {
				blocks = 0
			}
			lba := uint64(rnd.IntN(region - int(blocks) + 1))
			xfer := blocks * testBlock
			edtl := xfer
			switch rnd.IntN(4) {
			case 1:
				edtl = xfer + uint32(1+rnd.IntN(5000))
			case 2:
				if xfer > 0 {
					edtl = uint32(rnd.IntN(int(xfer)))
				}
			}
			clear(buf)
			r := in.exec(cmdSpec{cdb: read16(lba, blocks), read: true, edtl: edtl, in: buf})
			checkDataIn(t, in, r, dataInCase{mrdsl: mrdsl, mbl: mbl, edtl: edtl, xfer: xfer,
				want: data[lba*testBlock : lba*testBlock+uint64(min(edtl, xfer))], got: buf})
		}
		// A READ past the end fails: no Data-In, sense in the SCSI Response.
		r = in.exec(cmdSpec{cdb: read16(testBlocks-1, 2), read: true, edtl: 1024, in: buf})
		if r.status != uint8(pscsi.StatusCheckCondition) || r.collapsed || len(in.dins) != 0 ||
			r.sense.Key != pscsi.SenseKeyIllegalRequest {
			t.Fatalf("READ past the end: %+v, %d Data-In", r, len(in.dins))
		}
		// Nothing more for the last command (no SCSI Response after a collapsed status).
		in.ping([]byte("end"))
	}
}

type dataInCase struct {
	mrdsl, mbl, edtl, xfer uint32
	want, got              []byte
}

func checkDataIn(t *testing.T, in *ini, r result, c dataInCase) {
	t.Helper()
	moved := min(c.edtl, c.xfer)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("MaxRecvDSL %d, MaxBurst %d, EDTL %d, transfer %d: "+format,
			append([]any{c.mrdsl, c.mbl, c.edtl, c.xfer}, args...)...)
	}
	if r.status != uint8(pscsi.StatusGood) {
		fail("status %#x sense %v %v", r.status, r.sense.Key, r.sense.Code)
	}
	switch {
	case c.edtl > c.xfer && !(r.under && !r.over && r.resid == c.edtl-c.xfer):
		fail("residual U=%v O=%v %d, want underflow %d", r.under, r.over, r.resid, c.edtl-c.xfer)
	case c.edtl < c.xfer && !(r.over && !r.under && r.resid == c.xfer-c.edtl):
		fail("residual U=%v O=%v %d, want overflow %d", r.under, r.over, r.resid, c.xfer-c.edtl)
	case c.edtl == c.xfer && (r.over || r.under || r.resid != 0):
		fail("residual U=%v O=%v %d, want none", r.under, r.over, r.resid)
	}
	if moved == 0 {
		if len(in.dins) != 0 || r.collapsed {
			fail("%d Data-In PDUs for no data", len(in.dins))
		}
		return
	}
	if !r.collapsed {
		fail("GOOD status in a SCSI Response instead of the last Data-In")
	}
	if r.dataIn != moved {
		fail("%d Data-In bytes, want %d", r.dataIn, moved)
	}
	off := uint32(0)
	for i, d := range in.dins {
		end := d.BufferOffset + d.DataSegmentLength
		last := i == len(in.dins)-1
		switch {
		case d.DataSN != uint32(i):
			fail("PDU %d has DataSN %d", i, d.DataSN)
		case d.BufferOffset != off:
			fail("PDU %d at offset %d, want %d", i, d.BufferOffset, off)
		case d.DataSegmentLength == 0 || d.DataSegmentLength > c.mrdsl:
			fail("PDU %d of %d bytes, limit %d", i, d.DataSegmentLength, c.mrdsl)
		case d.BufferOffset/c.mbl != (end-1)/c.mbl:
			fail("PDU %d [%d, %d) crosses a MaxBurstLength boundary", i, d.BufferOffset, end)
		case d.Final != (last || end%c.mbl == 0):
			fail("PDU %d [%d, %d) F=%v (last %v)", i, d.BufferOffset, end, d.Final, last)
		case d.HasStatus != last:
			fail("PDU %d S=%v (last %v)", i, d.HasStatus, last)
		case !last && (d.Overflow || d.Underflow || d.ResidualCount != 0):
			fail("PDU %d without S carries a residual", i)
		}
		off = end
	}
	if !bytes.Equal(c.got[:moved], c.want) {
		fail("data differs from what was written")
	}
}
