package iscsi

import (
	"bytes"
	"testing"
	"time"

	proto "sluice/engine/proto/iscsi"
)

// TestNOPOutPing: an initiator's ping is echoed with its data and tag; a non-immediate
// one takes a CmdSN (the window moves on by one); one with the reserved ITT gets no
// answer.
func TestNOPOutPing(t *testing.T) {
	e := newEnv(t, envOpts{})
	in := connect(t, e.addr, loginOpts{})
	in.ping([]byte("hello, target"))
	in.ping(nil)
	in.ping(pattern(5000, 91)) // padded, above the 4-byte multiple

	exp, max := in.expCmdSN, in.maxCmdSN
	itt := in.nextITT()
	in.sendNOP(itt, false, []byte("numbered"))
	p := in.recvOp(proto.OpNOPIn)
	n, _ := proto.DecodeNOPIn(&p.bhs)
	if n.ITT != itt || string(p.data) != "numbered" || n.ExpCmdSN != exp+1 || n.MaxCmdSN != max+1 {
		t.Fatalf("NOP-In for a non-immediate ping: %+v data %q; want window [%#x, %#x]", n, p.data, exp+1, max+1)
	}

	in.sendNOP(proto.ReservedTag, true, nil)
	in.expectNothing(200*time.Millisecond, "a NOP-Out that wants no answer")
	in.ping([]byte("still alive"))
}

// TestNOPInEchoWithinInitiatorLimit: the echo of a ping is data the target sends, so it
// must fit the initiator's MaxRecvDataSegmentLength (RFC 7143 §11.18.5: "The length of
// the reflected data is limited to MaxRecvDataSegmentLength"; §13.12: no PDU may carry
// more than its receiver declared) even when the ping itself, within the target's
// limit, was longer.
func TestNOPInEchoWithinInitiatorLimit(t *testing.T) {
	e := newEnv(t, envOpts{})
	in := connect(t, e.addr, loginOpts{maxRecvDSL: 4096})
	if in.p.maxXmitDSL < 8192 {
		t.Fatalf("target's MaxRecvDataSegmentLength %d", in.p.maxXmitDSL)
	}
	ping := pattern(8192, 92)
	itt := in.nextITT()
	in.sendNOP(itt, true, ping)
	p := in.recvOp(proto.OpNOPIn)
	if p.bhs.ITT() != itt {
		t.Fatalf("NOP-In itt %#x, want %#x", p.bhs.ITT(), itt)
	}
	if len(p.data) > 4096 {
		t.Fatalf("NOP-In carries %d bytes of echo; the initiator declared MaxRecvDataSegmentLength=4096", len(p.data))
	}
	if !bytes.Equal(p.data, ping[:len(p.data)]) {
		t.Fatal("echo is not the ping data")
	}
}

// TestTargetPing: an initiator quiet for the NOP-In interval is pinged (ITT reserved,
// a TTT to answer with, StatSN not advanced); answering keeps the connection, and a ping
// left unanswered for the NOP timeout ends it.
func TestTargetPing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{opts: Options{NopInIntervalSec: 1, NopTimeoutSec: 1}})
	// The target's quiet clock starts at the last login PDU it receives, which is
	// after this instant: every bound below is measured from an instant the target's
	// own clock cannot precede, so a loaded machine delays the events but never makes
	// them look early.
	quiet := time.Now()
	in := connect(t, e.addr, loginOpts{})
	waitPing := func() proto.NOPIn {
		t.Helper()
		p, err := in.tryRecv(4 * time.Second)
		if err != nil {
			t.Fatalf("no NOP-In ping from the target: %v", err)
		}
		n, _ := proto.DecodeNOPIn(&p.bhs)
		if p.op() != proto.OpNOPIn || n.ITT != proto.ReservedTag || n.TTT == proto.ReservedTag {
			t.Fatalf("got %v, want a target ping", p)
		}
		if n.StatSN != in.expStatSN {
			t.Fatalf("ping StatSN %d, want the next one, %d, not advanced", n.StatSN, in.expStatSN)
		}
		return n
	}
	n := waitPing()
	if el := time.Since(quiet); el < time.Second {
		t.Fatalf("pinged after %v of quiet, interval 1s", el)
	}
	answered := time.Now()
	in.pong(n)
	// Answered: the connection stays; the next ping comes an interval later.
	n2 := waitPing()
	if time.Since(answered) < time.Second || n2.TTT == n.TTT {
		t.Fatalf("second ping after %v with TTT %#x (first %#x)", time.Since(answered), n2.TTT, n.TTT)
	}
	// Unanswered: dropped after the timeout, counted from the second ping, which
	// left the target no earlier than an interval after it took the answer.
	in.expectEOF("ping unanswered for the NOP timeout")
	if el := time.Since(answered); el < 2*time.Second {
		t.Fatalf("dropped %v after the answer: before the 1s interval plus the 1s timeout", el)
	}
	if n := e.tgt.Stats().NopTimeouts; n != 1 {
		t.Fatalf("%d NOP timeouts counted, want 1", n)
	}
}
