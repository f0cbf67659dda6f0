package iscsi

import "testing"

// The data path decodes and encodes every PDU header with these calls; a 4 KiB read
// or write must allocate nothing (DESIGN.md "Zero garbage on the hot path").

func assertNoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(100, f); n != 0 {
		t.Errorf("%s: %v allocs per run, want 0", name, n)
	}
}

func TestAllocsDataPath(t *testing.T) {
	var b BHS
	var sink uint32
	var serr error
	p := LayoutParams{HeaderDigest: true, DataDigest: true, MaxRecvDataSegmentLength: 65536}
	assertNoAllocs(t, "scsi command + layout + ahs", func() {
		c := SCSICommand{Final: true, Write: true, Attr: TaskSimple, TotalAHSLength: 2,
			DataSegmentLength: 4096, ITT: 1, ExpectedDataTransferLength: 4096, CmdSN: 1}
		c.Put(&b)
		l, err := b.Layout(p)
		serr = err
		d, _ := DecodeSCSICommand(&b)
		a, err := ParseCommandAHS(testAHS[:])
		serr = err
		sink += l.Len() + d.ExpectedDataTransferLength + a.BidiReadLength
	})
	assertNoAllocs(t, "data-in/out, r2t, response", func() {
		di := DataIn{Final: true, HasStatus: true, DataSegmentLength: 4096, ITT: 1}
		di.SetResidual(8192, 4096)
		di.Put(&b)
		b.PutSequence(1, 2, 3)
		di, _ = DecodeDataIn(&b)
		do := DataOut{Final: true, DataSegmentLength: 4096, ITT: 1, TTT: 2}
		do.Put(&b)
		do, _ = DecodeDataOut(&b)
		r := R2T{ITT: 1, TTT: 2, DesiredDataTransferLength: 4096}
		r.Put(&b)
		r, _ = DecodeR2T(&b)
		s := SCSIResponse{Status: 2, DataSegmentLength: 20}
		s.SetResidual(4096, 0)
		s.Put(&b)
		s, _ = DecodeSCSIResponse(&b)
		sink += di.ResidualCount + do.TTT + r.DesiredDataTransferLength + s.ResidualCount
	})
	assertNoAllocs(t, "nop", func() {
		o := NOPOut{ITT: 1, TTT: ReservedTag}
		o.Put(&b)
		o, _ = DecodeNOPOut(&b)
		i := NOPIn{ITT: o.ITT, TTT: ReservedTag}
		i.Put(&b)
		i, _ = DecodeNOPIn(&b)
		sink += i.ITT
	})
	assertNoAllocs(t, "layout error", func() {
		b[0] = byte(OpR2T)
		_, serr = b.Layout(p)
	})
	_, _ = sink, serr
}

func TestAllocsControlPDUs(t *testing.T) {
	var b BHS
	var sink uint32
	assertNoAllocs(t, "control", func() {
		tm := TMFRequest{Function: TMFAbortTask, ITT: 1}
		tm.Put(&b)
		tm, _ = DecodeTMFRequest(&b)
		tr := TMFResponse{ITT: tm.ITT}
		tr.Put(&b)
		tr, _ = DecodeTMFResponse(&b)
		lo := LogoutRequest{ITT: 1}
		lo.Put(&b)
		lo, _ = DecodeLogoutRequest(&b)
		lr := LogoutResponse{ITT: 1}
		lr.Put(&b)
		lr, _ = DecodeLogoutResponse(&b)
		sn := SNACKRequest{ITT: 1}
		sn.Put(&b)
		sn, _ = DecodeSNACKRequest(&b)
		am := AsyncMessage{Event: AsyncRequestLogout}
		am.Put(&b)
		am, _ = DecodeAsyncMessage(&b)
		rj := Reject{Reason: RejectProtocolError, DataSegmentLength: 48}
		rj.Put(&b)
		rj, _ = DecodeReject(&b)
		tx := TextRequest{Final: true, ITT: 1}
		tx.Put(&b)
		tx, _ = DecodeTextRequest(&b)
		ts := TextResponse{Final: true, ITT: 1}
		ts.Put(&b)
		ts, _ = DecodeTextResponse(&b)
		li := LoginRequest{ITT: 1}
		li.Put(&b)
		li, _ = DecodeLoginRequest(&b)
		ls := LoginResponse{ITT: 1}
		ls.Put(&b)
		ls, _ = DecodeLoginResponse(&b)
		sink += tr.ITT + lo.ITT + lr.ITT + sn.ITT + am.StatSN + rj.DataSegmentLength +
			tx.ITT + ts.ITT + li.ITT + ls.ITT
	})
	_ = sink
}

func TestAllocsDigestsSense(t *testing.T) {
	var b BHS
	data := make([]byte, 4097)
	ahs := testAHS[:]
	seg := make([]byte, 0, 64)
	sense := make([]byte, 18)
	var sink uint32
	var serr error
	assertNoAllocs(t, "digests", func() {
		hd := HeaderDigest(&b, ahs)
		serr = CheckHeaderDigest(&b, ahs, hd)
		serr = CheckHeaderDigest(&b, ahs, hd+1)
		crc := CRC32CUpdate(CRC32CUpdate(0, data[:100]), data[100:])
		crc = DataDigestPad(crc, uint32(len(data)))
		serr = CheckDataDigest(crc, DataDigest(data))
		var d [4]byte
		PutDigest(d[:], crc)
		sink += Digest(d[:]) + PadLen(7)
	})
	assertNoAllocs(t, "sense", func() {
		seg = AppendSenseData(seg[:0], sense)
		s, r, err := SplitSenseData(seg)
		serr = err
		sink += uint32(len(s) + len(r))
	})
	assertNoAllocs(t, "serial numbers", func() {
		if CmdSNInWindow(sink, sink, sink+1) {
			sink++
		}
	})
	_, _ = sink, serr
}

// testAHS is an Extended CDB AHS (a 20-byte CDB) and a bidirectional read length AHS.
var testAHS = [16]byte{0, 5, 1, 0, 0x10, 0x11, 0x12, 0x13, 0, 5, 2, 0, 0, 0, 0x10, 0}
