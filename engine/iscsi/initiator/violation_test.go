package initiator

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// TestScriptValid: the valid script completes the read (phase collapse), the write
// (two R2Ts answered with Data-Out), the ping, and answers the target's ping; then the
// stream ends and the session reports the lost connection.
func TestScriptValid(t *testing.T) {
	for _, dg := range []bool{false, true} {
		s, c := scriptSession(validScript(dg, dg), dg, dg)
		err := s.steps(100)
		if !errors.Is(err, ErrDisconnected) {
			t.Fatalf("digests %v: the script ends with %v, want the connection lost", dg, err)
		}
		cs := make([]Completion, 4)
		n := s.drain(cs)
		if n != 2 || !cs[0].Good() || !cs[0].Collapsed || cs[0].DataIn != readLen || !cs[1].Good() || cs[1].R2Ts != 2 {
			t.Fatalf("digests %v: completions %+v", dg, cs[:n])
		}
		if !s.ctl.done || s.ctl.err != nil || s.stats.TargetPings != 1 {
			t.Fatalf("digests %v: ping %+v, target pings %d", dg, s.ctl, s.stats.TargetPings)
		}
		if s.expStatSN != scriptStatSN+3 {
			t.Fatalf("ExpStatSN %d", s.expStatSN)
		}
		// What went out: two Data-Out sequences and the NOP-Out answering TTT 55.
		w := c.w.Bytes()
		outs, pongs := 0, 0
		for len(w) >= proto.BHSLen {
			b := (*proto.BHS)(w[:proto.BHSLen])
			l := proto.BHSLen + int(b.DataSegmentLength()) + int(proto.PadLen(b.DataSegmentLength()))
			if dg {
				l += 4
				if b.DataSegmentLength() > 0 {
					l += 4
				}
			}
			switch b.Opcode() {
			case proto.OpDataOut:
				d, _ := proto.DecodeDataOut(b)
				if d.ITT != writeITT || d.TTT != 7+uint32(outs) || !d.Final || d.BufferOffset != uint32(4096*outs) {
					t.Fatalf("Data-Out %+v", d)
				}
				outs++
			case proto.OpNOPOut:
				n, _ := proto.DecodeNOPOut(b)
				if n.TTT != 55 || n.ITT != proto.ReservedTag || !n.Immediate {
					t.Fatalf("NOP-Out %+v", n)
				}
				pongs++
			}
			w = w[l:]
		}
		if outs != 2 || pongs != 1 {
			t.Fatalf("%d Data-Out, %d NOP-Out", outs, pongs)
		}
	}
}

// TestViolations: each case breaks one rule in an otherwise valid script; the session
// must fail with a *ProtocolError naming it, and its connection must be closed.
func TestViolations(t *testing.T) {
	half := make([]byte, readLen/2)
	// short is a read's status in a Data-In of half its EDTL, with the underflow.
	short := func(statSN uint32) proto.DataIn {
		d := withStatus(dataIn(readITT, 0, 0, len(half), true), statSN)
		d.Underflow, d.ResidualCount = true, readLen/2
		return d
	}
	d0 := put(ptr(dataIn(readITT, 0, 0, len(half), false)), half, false, false)
	d0F := put(ptr(dataIn(readITT, 0, 0, len(half), true)), half, false, false)
	sense := proto.AppendSenseData(nil, []byte{0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0})
	for _, tc := range []struct {
		name, want string
		script     []byte
		hd, dd     bool
	}{
		{"Data-In for an unknown task", "not outstanding",
			put(ptr(dataIn(0x20000, 0, 0, 512, false)), make([]byte, 512), false, false), false, false},
		{"Data-In DataSN gap", "DataSN",
			put(ptr(dataIn(readITT, 1, 0, 512, false)), make([]byte, 512), false, false), false, false},
		{"Data-In offset gap", "BufferOffset",
			put(ptr(dataIn(readITT, 0, 512, 512, false)), make([]byte, 512), false, false), false, false},
		{"Data-In beyond EDTL", "beyond the Expected",
			put(ptr(dataIn(readITT, 0, 0, readLen+512, true)), make([]byte, readLen+512), false, false), false, false},
		{"Data-In S without F", "S but not F",
			put(ptr(func() proto.DataIn {
				d := short(scriptStatSN)
				d.Final = false
				return d
			}()), half, false, false), false, false},
		{"Data-In underflow without S", "residual bits without S",
			put(ptr(func() proto.DataIn { d := dataIn(readITT, 0, 0, 512, false); d.Underflow = true; return d }()),
				make([]byte, 512), false, false), false, false},
		{"Data-In CHECK CONDITION", "CHECK CONDITION in a Data-In",
			put(ptr(func() proto.DataIn {
				d := short(scriptStatSN)
				d.Status = uint8(pscsi.StatusCheckCondition)
				return d
			}()), half, false, false), false, false},
		{"Data-In status StatSN", "StatSN",
			put(ptr(short(scriptStatSN+5)), half, false, false), false, false},
		{"Data-In for a write", "without read data",
			put(ptr(dataIn(writeITT, 0, 0, 512, false)), make([]byte, 512), false, false), false, false},
		{"Data-In sequence above MaxBurstLength", "MaxBurstLength",
			concat(d0, put(ptr(dataIn(readITT, 1, readLen/2, 512, false)), make([]byte, 512), false, false)),
			false, false},
		{"GOOD read short of EDTL without underflow", "GOOD read delivered",
			concat(d0F, put(ptr(func() proto.SCSIResponse {
				r := response(readITT, scriptStatSN)
				r.ExpDataSN = 1
				return r
			}()), nil, false, false)), false, false},
		{"SCSI Response with a Data-In sequence open", "sequence is open",
			concat(d0, put(ptr(func() proto.SCSIResponse {
				r := response(readITT, scriptStatSN)
				r.Underflow, r.ResidualCount = true, readLen/2
				return r
			}()), nil, false, false)), false, false},
		{"overflow and underflow", "both residual",
			put(ptr(func() proto.SCSIResponse {
				r := response(readITT, scriptStatSN)
				r.Overflow, r.Underflow, r.ResidualCount = true, true, 1
				return r
			}()), nil, false, false), false, false},
		{"CHECK CONDITION without sense", "without sense",
			put(ptr(func() proto.SCSIResponse {
				r := response(readITT, scriptStatSN)
				r.Status, r.Underflow, r.ResidualCount = uint8(pscsi.StatusCheckCondition), true, readLen
				return r
			}()), nil, false, false), false, false},
		{"ExpDataSN of a read", "ExpDataSN",
			put(ptr(func() proto.SCSIResponse {
				r := response(readITT, scriptStatSN)
				r.Status, r.Underflow, r.ResidualCount, r.ExpDataSN = 2, true, readLen, 3
				r.DataSegmentLength = uint32(len(sense))
				return r
			}()), sense, false, false), false, false},
		{"GOOD write before its data was asked for", "GOOD write before",
			put(ptr(response(writeITT, scriptStatSN)), nil, false, false), false, false},
		{"R2T for a read", "without write data",
			put(ptr(func() proto.R2T { r := r2t(0, 0, 4096); r.ITT = readITT; return r }()), nil, false, false), false, false},
		{"R2TSN gap", "R2TSN", put(ptr(r2t(1, 0, 4096)), nil, false, false), false, false},
		{"R2T out of order", "R2T BufferOffset", put(ptr(r2t(0, 4096, 4096)), nil, false, false), false, false},
		{"R2T beyond EDTL", "beyond the Expected", put(ptr(r2t(0, 0, writeLen+512)), nil, false, false), false, false},
		{"R2T above MaxBurstLength", "MaxBurstLength",
			put(ptr(func() proto.R2T { r := r2t(0, 0, scriptMBL+512); return r }()), nil, false, false), false, false},
		{"R2T reserved TTT", "reserved Target Transfer Tag",
			put(ptr(func() proto.R2T { r := r2t(0, 0, 4096); r.TTT = proto.ReservedTag; return r }()), nil, false, false),
			false, false},
		{"R2T StatSN", "not the next StatSN",
			put(ptr(func() proto.R2T { r := r2t(0, 0, 4096); r.StatSN = scriptStatSN + 1; return r }()), nil, false, false),
			false, false},
		{"ExpCmdSN moves back", "ExpCmdSN moved back",
			put(&proto.NOPIn{ITT: proto.ReservedTag, TTT: proto.ReservedTag, StatSN: scriptStatSN, ExpCmdSN: 0,
				MaxCmdSN: scriptMaxCmd}, nil, false, false), false, false},
		{"ExpCmdSN beyond the commands sent", "beyond the commands sent",
			put(&proto.NOPIn{ITT: proto.ReservedTag, TTT: proto.ReservedTag, StatSN: scriptStatSN, ExpCmdSN: 9,
				MaxCmdSN: scriptMaxCmd}, nil, false, false), false, false},
		{"MaxCmdSN below ExpCmdSN - 1", "MaxCmdSN below ExpCmdSN",
			put(&proto.NOPIn{ITT: proto.ReservedTag, TTT: proto.ReservedTag, StatSN: scriptStatSN, ExpCmdSN: 3,
				MaxCmdSN: 1}, nil, false, false), false, false},
		{"NOP-In echo differs", "echo",
			put(&proto.NOPIn{DataSegmentLength: 4, ITT: 0x80000001, TTT: proto.ReservedTag, StatSN: scriptStatSN,
				ExpCmdSN: 3, MaxCmdSN: scriptMaxCmd}, []byte("pong"), false, false), false, false},
		{"NOP-In for no ping", "no request outstanding",
			put(&proto.NOPIn{ITT: 0x80000009, TTT: proto.ReservedTag, StatSN: scriptStatSN, ExpCmdSN: 3,
				MaxCmdSN: scriptMaxCmd}, nil, false, false), false, false},
		{"Reject ITT", "Reject ITT",
			func() []byte {
				b := put(&proto.Reject{Reason: proto.RejectProtocolError, DataSegmentLength: 48, StatSN: scriptStatSN,
					ExpCmdSN: 3, MaxCmdSN: scriptMaxCmd}, make([]byte, 48), false, false)
				b[16] = 0
				return b
			}(), false, false},
		{"Text Response for no request", "no request outstanding",
			put(&proto.TextResponse{Final: true, ITT: 0x80000009, TTT: proto.ReservedTag, StatSN: scriptStatSN,
				ExpCmdSN: 3, MaxCmdSN: scriptMaxCmd}, nil, false, false), false, false},
		{"Login Response in full feature phase", "unexpected PDU",
			put(&proto.LoginResponse{ITT: 1}, nil, false, false), false, false},
		{"initiator opcode", "malformed PDU header",
			put(&proto.SCSICommand{ITT: 1}, nil, false, false), false, false},
		{"AHS", "TotalAHSLength",
			func() []byte { b := put(ptr(response(readITT, scriptStatSN)), nil, false, false); b[4] = 1; return b }(),
			false, false},
		{"DataSegmentLength above MaxRecvDataSegmentLength", "malformed PDU header",
			func() []byte {
				b := put(ptr(dataIn(readITT, 0, 0, 0, false)), nil, false, false)
				b[5] = 0x10 // 1 MiB
				return b
			}(), false, false},
		{"header digest", "header digest",
			func() []byte {
				b := put(ptr(dataIn(readITT, 0, 0, 512, false)), make([]byte, 512), true, true)
				b[48]++
				return b
			}(),
			true, true},
		{"data digest", "data digest",
			func() []byte {
				b := put(ptr(dataIn(readITT, 0, 0, 512, false)), make([]byte, 512), true, true)
				b[len(b)-1]++
				return b
			}(), true, true},
		{"Asynchronous Message ITT", "Asynchronous Message ITT",
			func() []byte {
				b := put(&proto.AsyncMessage{Event: proto.AsyncRequestLogout, StatSN: scriptStatSN, ExpCmdSN: 3,
					MaxCmdSN: scriptMaxCmd}, nil, false, false)
				b[16] = 0
				return b
			}(), false, false},
		{"SCSI Response byte 1 bit 7", "bit 7",
			func() []byte { b := put(ptr(response(writeITT, scriptStatSN)), nil, false, false); b[1] = 0; return b }(),
			false, false},
		{"Data-In after its status", "not outstanding",
			concat(put(ptr(short(scriptStatSN)), half, false, false),
				put(ptr(dataIn(readITT, 1, readLen, 0, false)), nil, false, false)), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := scriptSession(tc.script, tc.hd, tc.dd)
			err := s.steps(10)
			var pe *ProtocolError
			if !errors.As(err, &pe) || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a protocol violation about %q", err, tc.want)
			}
			if !s.closed.Load() || s.Err() != err {
				t.Fatalf("session not closed after the violation (err %v)", s.Err())
			}
			s.drain(make([]Completion, 4))
			if _, err := s.Reap(make([]Completion, 1)); !errors.Is(err, ErrProtocol) {
				t.Fatalf("reap after the violation: %v", err)
			}
		})
	}
}

func concat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// TestTMFCoversTasks: ABORT TASK and LOGICAL UNIT RESET end the commands they cover
// when the response comes; a PDU for one of them afterwards is a violation.
func TestTMFCoversTasks(t *testing.T) {
	resp := func(code proto.TMFResponseCode) []byte {
		return put(&proto.TMFResponse{Response: code, ITT: 0x80000001, StatSN: scriptStatSN, ExpCmdSN: 3,
			MaxCmdSN: scriptMaxCmd}, nil, false, false)
	}
	for _, tc := range []struct {
		name    string
		fn      proto.TMFunction
		ref     uint32
		code    proto.TMFResponseCode
		aborted int
	}{
		{"abort the read", proto.TMFAbortTask, readITT, proto.TMFComplete, 1},
		{"abort, task does not exist", proto.TMFAbortTask, readITT, proto.TMFTaskNotExist, 1},
		{"LUN reset", proto.TMFLogicalUnitReset, proto.ReservedTag, proto.TMFComplete, 2},
		{"LUN reset not supported", proto.TMFLogicalUnitReset, proto.ReservedTag, proto.TMFNotSupported, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			late := put(ptr(dataIn(readITT, 0, 0, 512, false)), make([]byte, 512), false, false)
			s, _ := scriptSession(concat(resp(tc.code), late), false, false)
			s.ctl = ctlReq{active: true, op: proto.OpTMFResponse, itt: 0x80000001, tmf: tc.fn, tmfRef: tc.ref,
				tmfLUN: lunField(0)}
			if err := s.steps(1); err != nil {
				t.Fatal(err)
			}
			if s.ctl.tmfResp != tc.code || int(s.stats.AbortedTasks) != tc.aborted || s.done.size != tc.aborted {
				t.Fatalf("response %v, %d aborted", s.ctl.tmfResp, s.stats.AbortedTasks)
			}
			err := s.steps(1)
			if tc.aborted > 0 && !errors.Is(err, ErrProtocol) {
				t.Fatalf("Data-In for the aborted read after the TMF Response: %v", err)
			}
			if tc.aborted == 0 && err != nil {
				t.Fatalf("Data-In for the read after a TMF that ended nothing: %v", err)
			}
		})
	}
}
