package iscsi

import (
	"bytes"
	"testing"
	"time"

	proto "sluice/engine/proto/iscsi"
)

// readBack reads len(want) bytes at lba and compares.
func (in *ini) readBack(lba uint64, want []byte, what string) {
	in.t.Helper()
	got := make([]byte, len(want))
	in.readBlocks(lba, got).good(in.t, what+": read back")
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		in.t.Fatalf("%s: data differs from byte %d on", what, i)
	}
}

// runWrite sends a write and answers its R2Ts in order, checking them: R2TSN from 0,
// DesiredDataTransferLength at most MaxBurstLength, offsets never overlapping what was
// sent before, never more outstanding than maxOutstanding. It returns the R2Ts and
// the most outstanding at once.
func (in *ini) runWrite(s cmdSpec, firstR2T uint32, maxOutstanding int) (rs []proto.R2T, most int) {
	in.t.Helper()
	itt, _ := in.startCmd(&s)
	var queue []proto.R2T
	covered := firstR2T // everything below came as immediate or unsolicited data
	probed := false
	for {
		if len(queue) == maxOutstanding && !probed && covered < s.edtl {
			// The window of R2Ts is full: nothing more may come before an answer.
			probed = true
			if p, err := in.tryRecv(100 * time.Millisecond); err == nil {
				in.t.Fatalf("%v with %d R2Ts outstanding, MaxOutstandingR2T %d", p, len(queue), maxOutstanding)
			}
		}
		// Take every R2T the target sends before answering: how many it has
		// outstanding is what MaxOutstandingR2T bounds.
		wait := in.timeout
		switch {
		case len(queue) == maxOutstanding || len(queue) > 0 && covered == s.edtl:
			wait = 0 // nothing more can come before an answer
		case len(queue) > 0:
			wait = 200 * time.Millisecond
		}
		var p pdu
		var err error
		if wait > 0 {
			p, err = in.tryRecv(wait)
			if err != nil && len(queue) == 0 {
				in.t.Fatalf("no R2T and no response: %v", err)
			}
		}
		if wait > 0 && err == nil {
			switch p.op() {
			case proto.OpR2T:
				r, _ := proto.DecodeR2T(&p.bhs)
				if r.ITT != itt || r.R2TSN != uint32(len(rs)) {
					in.t.Fatalf("R2T itt %#x R2TSN %d, want itt %#x R2TSN %d", r.ITT, r.R2TSN, itt, len(rs))
				}
				if r.DesiredDataTransferLength == 0 || r.DesiredDataTransferLength > in.p.mbl {
					in.t.Fatalf("R2T asks for %d bytes, MaxBurstLength %d", r.DesiredDataTransferLength, in.p.mbl)
				}
				if r.BufferOffset != covered {
					in.t.Fatalf("R2T %d at offset %d, want %d (in order, no gap, no overlap)", r.R2TSN, r.BufferOffset, covered)
				}
				covered += r.DesiredDataTransferLength
				rs = append(rs, r)
				queue = append(queue, r)
				most = max(most, len(queue))
				if len(queue) > maxOutstanding {
					in.t.Fatalf("%d R2Ts outstanding, MaxOutstandingR2T %d", len(queue), maxOutstanding)
				}
				continue
			case proto.OpSCSIResponse:
				rsp, _ := proto.DecodeSCSIResponse(&p.bhs)
				if rsp.ITT != itt || rsp.Status != 0 || len(queue) != 0 {
					in.t.Fatalf("SCSI Response itt %#x status %#x (sense %x) with %d R2Ts unanswered",
						rsp.ITT, rsp.Status, p.data, len(queue))
				}
				if covered != s.edtl {
					in.t.Fatalf("write done after %d of %d bytes were asked for", covered, s.edtl)
				}
				return rs, most
			default:
				in.t.Fatalf("write: unexpected %v", p)
			}
		}
		r := queue[0]
		queue = queue[1:]
		in.dataOut(itt, r.TTT, r.LUN, s.out, r.BufferOffset, r.BufferOffset+r.DesiredDataTransferLength)
	}
}

// TestWriteImmediateData: with ImmediateData=Yes and InitialR2T=Yes a write carries up
// to FirstBurstLength (and the target's MaxRecvDataSegmentLength) in the command; the
// target asks for the rest from where the immediate data ended; the data lands where
// it belongs.
func TestWriteImmediateData(t *testing.T) {
	e := newEnv(t, envOpts{opts: Options{MaxRecvDataSegmentLength: 16384}})
	in := connect(t, e.addr, loginOpts{fbl: 65536})
	if !in.p.immData || !in.p.initR2T || in.p.maxXmitDSL != 16384 || in.p.fbl != 65536 {
		t.Fatalf("negotiated %+v", in.p)
	}
	small := pattern(4096, 21)
	if r := in.writeBlocks(100, small); r.r2ts != 0 {
		t.Fatalf("4 KiB write with immediate data took %d R2Ts", r.r2ts)
	} else {
		r.good(t, "4 KiB immediate write")
	}
	in.readBack(100, small, "immediate write")

	// 16 KiB immediate (the target's segment limit), the rest solicited from 16384.
	big := pattern(200<<10, 22)
	rs, _ := in.runWrite(cmdSpec{cdb: write16(200, uint32(len(big)/testBlock)), write: true,
		edtl: uint32(len(big)), out: big}, 16384, 1)
	if len(rs) == 0 {
		t.Fatal("no R2T for data beyond the immediate data")
	}
	in.readBack(200, big, "immediate + solicited write")

	// No immediate data: everything solicited.
	in.runWrite(cmdSpec{cdb: write16(1000, 64), write: true, edtl: 32768, out: big, noImmediate: true}, 0, 1)
	in.readBack(1000, big[:32768], "solicited write")
}

// TestWriteUnsolicitedData: with InitialR2T=No the initiator sends Data-Out without
// waiting, up to FirstBurstLength counting the immediate data; the target solicits
// only what lies beyond it.
func TestWriteUnsolicitedData(t *testing.T) {
	e := newEnv(t, envOpts{opts: Options{InitialR2T: boolp(false), MaxRecvDataSegmentLength: 16384,
		FirstBurstLength: 65536}})
	for _, imm := range []bool{false, true} {
		in := connect(t, e.addr, loginOpts{initR2T: boolp(false), immData: boolp(imm), fbl: 65536})
		if in.p.initR2T || in.p.immData != imm {
			t.Fatalf("negotiated InitialR2T %v ImmediateData %v", in.p.initR2T, in.p.immData)
		}
		lba := uint64(0)
		if imm {
			lba = 4096
		}
		// Within the first burst: no R2T at all.
		d := pattern(40<<10, 31)
		if r := in.writeBlocks(lba, d); r.r2ts != 0 {
			t.Fatalf("immediate=%v: 40 KiB unsolicited write took %d R2Ts", imm, r.r2ts)
		} else {
			r.good(t, "unsolicited write")
		}
		in.readBack(lba, d, "unsolicited write")
		// Beyond it: R2Ts from 65536 on.
		big := pattern(300<<10, 32)
		rs, _ := in.runWrite(cmdSpec{cdb: write16(lba+100, uint32(len(big)/testBlock)), write: true,
			edtl: uint32(len(big)), out: big}, 65536, 1)
		if len(rs) == 0 {
			t.Fatal("no R2T beyond FirstBurstLength")
		}
		in.readBack(lba+100, big, "unsolicited + solicited write")
	}
}

// TestWriteMultipleR2T: with MaxOutstandingR2T=4 the target keeps four R2Ts of at most
// MaxBurstLength in flight (never more), each answered sequence lets it send the next,
// and the data is placed where each R2T said. The initiator's smaller offer wins.
func TestWriteMultipleR2T(t *testing.T) {
	e := newEnv(t, envOpts{opts: Options{MaxOutstandingR2T: 4, MaxBurstLength: 65536}})
	for _, tc := range []struct{ offer, want uint32 }{{4, 4}, {8, 4}, {2, 2}} {
		in := connect(t, e.addr, loginOpts{maxR2T: tc.offer, mbl: 262144, fbl: 16384, immData: boolp(false)})
		if in.p.maxR2T != tc.want || in.p.mbl != 65536 {
			t.Fatalf("offer %d: MaxOutstandingR2T %d MaxBurstLength %d negotiated", tc.offer, in.p.maxR2T, in.p.mbl)
		}
		d := pattern(1<<20-32768, tc.offer) // within the LU's 1 MiB MAXIMUM TRANSFER LENGTH
		rs, most := in.runWrite(cmdSpec{cdb: write16(2048, uint32(len(d)/testBlock)), write: true,
			edtl: uint32(len(d)), out: d}, 0, int(tc.want))
		if len(rs) != 16 || most != int(tc.want) {
			t.Fatalf("offer %d: %d R2Ts, %d outstanding at most; want 16 and %d", tc.offer, len(rs), most, tc.want)
		}
		in.readBack(2048, d, "multi-R2T write")
	}
}

// TestDataOutErrors: a Data-Out with the wrong DataSN is rejected and dropped, the
// connection goes on and the right one completes the write; a Data-Out with an
// unknown ITT, or the TTT of no R2T, is rejected and the connection goes on; one at
// the wrong offset is rejected and ends the connection (ErrorRecoveryLevel 0).
func TestDataOutErrors(t *testing.T) {
	e := newEnv(t, envOpts{})
	d := pattern(8192, 41)
	start := func(in *ini, lba uint64) (uint32, proto.R2T) {
		s := cmdSpec{cdb: write16(lba, 16), write: true, edtl: 8192, out: d, noImmediate: true}
		itt, _ := in.startCmd(&s)
		p := in.recvOp(proto.OpR2T)
		r, _ := proto.DecodeR2T(&p.bhs)
		if r.ITT != itt || r.BufferOffset != 0 || r.DesiredDataTransferLength != 8192 {
			t.Fatalf("R2T %+v", r)
		}
		return itt, r
	}
	send := func(in *ini, do proto.DataOut, data []byte) {
		do.DataSegmentLength, do.ExpStatSN = uint32(len(data)), in.expStatSN
		var b proto.BHS
		do.Put(&b)
		in.sendPDU(&b, data)
	}

	in := connect(t, e.addr, loginOpts{})
	// Wrong DataSN: rejected, dropped, connection kept.
	itt, r := start(in, 10)
	send(in, proto.DataOut{Final: true, ITT: itt, TTT: r.TTT, LUN: r.LUN, DataSN: 1}, pattern(8192, 99))
	in.expectReject(proto.RejectProtocolError, proto.OpDataOut)
	// The TTT of no R2T: rejected.
	send(in, proto.DataOut{Final: true, ITT: itt, TTT: r.TTT + 1000, LUN: r.LUN}, pattern(8192, 98))
	in.expectReject(proto.RejectInvalidPDUField, proto.OpDataOut)
	// An unknown ITT: rejected.
	send(in, proto.DataOut{Final: true, ITT: 0x7777777, TTT: r.TTT, LUN: r.LUN}, pattern(512, 97))
	in.expectReject(proto.RejectInvalidPDUField, proto.OpDataOut)
	in.ping([]byte("alive"))
	// The right Data-Out completes the write with the right data.
	send(in, proto.DataOut{Final: true, ITT: itt, TTT: r.TTT, LUN: r.LUN}, d)
	p := in.recvOp(proto.OpSCSIResponse)
	if rsp, _ := proto.DecodeSCSIResponse(&p.bhs); rsp.ITT != itt || rsp.Status != 0 {
		t.Fatalf("write after the rejected Data-Out: %+v", rsp)
	}
	in.readBack(10, d, "write after a DataSN error")

	// Wrong offset: rejected, then the connection closes.
	in = connect(t, e.addr, loginOpts{})
	itt, r = start(in, 30)
	send(in, proto.DataOut{Final: true, ITT: itt, TTT: r.TTT, LUN: r.LUN, BufferOffset: 512}, d[:7680])
	in.expectReject(proto.RejectProtocolError, proto.OpDataOut)
	in.expectEOF("after a Data-Out at the wrong offset")
	// Nothing of it was written.
	in = connect(t, e.addr, loginOpts{})
	in.readBack(30, make([]byte, 8192), "aborted write")
}
