package iscsi

import (
	"testing"

	proto "sluice/engine/proto/iscsi"
)

// TestDataDigestError: with CRC32C data digests a PDU whose data digest is wrong is
// answered with a Reject (reason 0x02, data digest error) carrying its header, and the
// connection is closed (ErrorRecoveryLevel 0 cannot ask for the data again); the
// command it belonged to writes nothing. The same for a SCSI Command's immediate data,
// a Data-Out and a NOP-Out's ping data.
func TestDataDigestError(t *testing.T) {
	e := newEnv(t, envOpts{})
	d := pattern(8192, 51)
	corruptLast := func(b []byte) []byte { b[len(b)-1] ^= 0x5a; return b }
	for i, tc := range []struct {
		name string
		op   proto.Opcode
		send func(in *ini, lba uint64)
	}{
		{"immediate data", proto.OpSCSICommand, func(in *ini, lba uint64) {
			cmd := proto.SCSICommand{Final: true, Write: true, Attr: proto.TaskSimple, DataSegmentLength: 8192,
				ITT: in.nextITT(), ExpectedDataTransferLength: 8192, CmdSN: in.cmdSN, ExpStatSN: in.expStatSN,
				CDB: write16(lba, 16)}
			var b proto.BHS
			cmd.Put(&b)
			in.send(corruptLast(in.frame(&b, d)))
		}},
		{"Data-Out", proto.OpDataOut, func(in *ini, lba uint64) {
			s := cmdSpec{cdb: write16(lba, 16), write: true, edtl: 8192, out: d, noImmediate: true}
			itt, _ := in.startCmd(&s)
			p := in.recvOp(proto.OpR2T)
			r, _ := proto.DecodeR2T(&p.bhs)
			do := proto.DataOut{Final: true, DataSegmentLength: 8192, LUN: r.LUN, ITT: itt, TTT: r.TTT,
				ExpStatSN: in.expStatSN}
			var b proto.BHS
			do.Put(&b)
			in.send(corruptLast(in.frame(&b, d)))
		}},
		{"NOP-Out ping data", proto.OpNOPOut, func(in *ini, _ uint64) {
			n := proto.NOPOut{Immediate: true, DataSegmentLength: 100, ITT: in.nextITT(), TTT: proto.ReservedTag,
				CmdSN: in.cmdSN, ExpStatSN: in.expStatSN}
			var b proto.BHS
			n.Put(&b)
			in.send(corruptLast(in.frame(&b, d[:100])))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := connect(t, e.addr, loginOpts{hd: true, dd: true})
			if !in.hd || !in.dd {
				t.Fatalf("digests not negotiated: %v", in.p.keys)
			}
			lba := uint64(100 * (i + 1))
			in.ping([]byte("digests work"))
			tc.send(in, lba)
			in.expectReject(proto.RejectDataDigest, tc.op)
			in.expectEOF("after a data digest error")
			if n := e.tgt.Stats().DataDigestErrors; n != uint64(i+1) {
				t.Fatalf("%d data digest errors counted, want %d", n, i+1)
			}
			c := connect(t, e.addr, loginOpts{hd: true, dd: true})
			c.readBack(lba, make([]byte, 8192), "write with a bad digest")
		})
	}
}

// TestHeaderDigestError: a PDU whose header digest is wrong cannot be trusted to say
// where the next one starts: the target closes the connection without acting on it.
func TestHeaderDigestError(t *testing.T) {
	e := newEnv(t, envOpts{})
	in := connect(t, e.addr, loginOpts{hd: true})
	if !in.hd || in.dd {
		t.Fatalf("digests negotiated: %v", in.p.keys)
	}
	in.ping([]byte("header digests work"))
	n := proto.NOPOut{Immediate: true, ITT: in.nextITT(), TTT: proto.ReservedTag, CmdSN: in.cmdSN,
		ExpStatSN: in.expStatSN}
	var b proto.BHS
	n.Put(&b)
	w := in.frame(&b, nil)
	w[proto.BHSLen] ^= 1
	in.send(w)
	in.expectEOF("after a header digest error")
	if n := e.tgt.Stats().HeaderDigestErrors; n != 1 {
		t.Fatalf("%d header digest errors counted, want 1", n)
	}
	// The target serves others as before.
	connect(t, e.addr, loginOpts{hd: true, dd: true}).ping([]byte("x"))
}
