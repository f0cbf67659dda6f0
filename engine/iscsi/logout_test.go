package iscsi

import (
	"testing"
	"time"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// TestLogoutWaitsForTasks: a Logout Request (close the session) that arrives while a
// write is still running is answered after that write (RFC 7143 §11.14: the target
// completes the connection's outstanding commands first): the write's SCSI Response,
// then the Logout Response, then the close; the data is on the LU. The same when the
// write still waits for the Data-Out its R2T asked for and the initiator sends it after
// the Logout Request.
func TestLogoutWaitsForTasks(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := newEnv(t, envOpts{module: "delay", writeDelay: delay})
	d := pattern(8192, 81)
	for _, tc := range []struct {
		name     string
		awaiting bool // the write waits for its Data-Out when the logout comes
	}{{"write in the bdev", false}, {"write awaiting Data-Out", true}} {
		t.Run(tc.name, func(t *testing.T) {
			in := connect(t, e.addr, loginOpts{})
			in.timeout = 3 * time.Second
			lba := uint64(500)
			if tc.awaiting {
				lba = 600
			}
			s := cmdSpec{cdb: write16(lba, 16), write: true, edtl: 8192, out: d, noImmediate: tc.awaiting}
			itt, _ := in.startCmd(&s)
			var r2t proto.R2T
			if tc.awaiting {
				p := in.recvOp(proto.OpR2T)
				r2t, _ = proto.DecodeR2T(&p.bhs)
			} else {
				waitFor(t, 5*time.Second, "the write executing", func() bool {
					n := 0
					e.tgt.onConns(func(c *conn) { n += c.busyTasks() })
					return n == 1
				})
			}
			lo := in.sendLogout(proto.LogoutCloseSession)
			if tc.awaiting {
				in.dataOut(itt, r2t.TTT, r2t.LUN, d, 0, 8192)
			}
			p, err := in.tryRecv(delay + 3*time.Second)
			if err != nil {
				t.Fatalf("no SCSI Response for the write running at logout: %v", err)
			}
			if p.op() != proto.OpSCSIResponse || p.bhs.ITT() != itt {
				t.Fatalf("got %v, want the write's SCSI Response first", p)
			}
			if rsp, _ := proto.DecodeSCSIResponse(&p.bhs); rsp.Status != uint8(pscsi.StatusGood) {
				t.Fatalf("write status %#x", rsp.Status)
			}
			p, err = in.tryRecv(3 * time.Second)
			if err != nil {
				t.Fatalf("no Logout Response after the write's: %v", err)
			}
			if p.op() != proto.OpLogoutResponse || p.bhs.ITT() != lo {
				t.Fatalf("got %v, want the Logout Response", p)
			}
			if r, _ := proto.DecodeLogoutResponse(&p.bhs); r.Response != proto.LogoutSuccess {
				t.Fatalf("Logout Response %v", r.Response)
			}
			in.expectEOF("after the Logout Response")
			connect(t, e.addr, loginOpts{}).readBack(lba, d, "write finished at logout")
		})
	}
}

// TestLogoutIdle: a logout with nothing running is answered at once and the session
// ends; a logout of a CID the session does not have is answered "CID not found" and the
// connection goes on.
func TestLogoutIdle(t *testing.T) {
	e := newEnv(t, envOpts{})
	in := connect(t, e.addr, loginOpts{})
	itt := in.nextITT()
	r := proto.LogoutRequest{Immediate: true, Reason: proto.LogoutCloseConnection, ITT: itt, CID: 77,
		CmdSN: in.cmdSN, ExpStatSN: in.expStatSN}
	var b proto.BHS
	r.Put(&b)
	in.sendPDU(&b, nil)
	p := in.recvOp(proto.OpLogoutResponse)
	if rsp, _ := proto.DecodeLogoutResponse(&p.bhs); rsp.ITT != itt || rsp.Response != proto.LogoutCIDNotFound {
		t.Fatalf("logout of CID 77: %+v", rsp)
	}
	in.exec(cmdSpec{cdb: tur()}).good(t, "command after a refused logout")
	in.logoutOK()
	waitFor(t, 5*time.Second, "the session ended", func() bool { return e.tgt.Stats().Sessions == 0 })
}

// TestLogoutDuringMultiBurstWrite: a Logout Request that arrives while a write has had
// its first R2T answered but still needs more data must still be answered: either the
// target asks for the rest and completes the write (SCSI Response, then Logout
// Response), or it terminates the write (RFC 7143 §11.14: "the target MUST terminate
// all pending commands") and answers the logout. Waiting for data it never asks for
// leaves the initiator waiting for the Logout Response forever.
func TestLogoutDuringMultiBurstWrite(t *testing.T) {
	e := newEnv(t, envOpts{opts: Options{MaxBurstLength: 65536}})
	in := connect(t, e.addr, loginOpts{mbl: 65536, fbl: 16384, immData: boolp(false)})
	in.timeout = 3 * time.Second
	d := pattern(128<<10, 82)
	s := cmdSpec{cdb: write16(700, 256), write: true, edtl: uint32(len(d)), out: d}
	itt, _ := in.startCmd(&s)
	p := in.recvOp(proto.OpR2T)
	r2t, _ := proto.DecodeR2T(&p.bhs)
	if r2t.BufferOffset != 0 || r2t.DesiredDataTransferLength != 65536 {
		t.Fatalf("first R2T %+v", r2t)
	}
	lo := in.sendLogout(proto.LogoutCloseSession)
	in.dataOut(itt, r2t.TTT, r2t.LUN, d, 0, 65536)
	for {
		p, err := in.tryRecv(3 * time.Second)
		if err != nil {
			t.Fatalf("no Logout Response: the write that needs a second R2T was neither "+
				"solicited nor terminated after the Logout Request: %v", err)
		}
		switch p.op() {
		case proto.OpR2T:
			r, _ := proto.DecodeR2T(&p.bhs)
			in.dataOut(itt, r.TTT, r.LUN, d, r.BufferOffset, r.BufferOffset+r.DesiredDataTransferLength)
			continue
		case proto.OpSCSIResponse:
			if p.bhs.ITT() != itt {
				t.Fatalf("unexpected %v", p)
			}
			continue
		case proto.OpLogoutResponse:
			if p.bhs.ITT() != lo {
				t.Fatalf("unexpected %v", p)
			}
		default:
			t.Fatalf("unexpected %v", p)
		}
		break
	}
	in.expectEOF("after the Logout Response")
}
