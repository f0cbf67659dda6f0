package iscsi

import (
	"bytes"
	"net"
	"syscall"
	"testing"
	"time"

	proto "sluice/engine/proto/iscsi"
)

// dialSmallWindow connects with a small receive buffer, so that what the target sends
// and the initiator does not read piles up in the target quickly.
func dialSmallWindow(t testing.TB, addr string) *ini {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	in := dial(t, addr) // a plain initiator, whose socket is swapped for the small one
	in.c.Close()
	in.c = c.(*net.TCPConn)
	t.Cleanup(func() { hangUp(in.c) })
	return in
}

// TestNOPBackpressure: an initiator that sends 100 pings without reading the answers
// fills the target's control slots; the target then stops reading (TCP pushes back on
// the initiator) instead of queueing without bound or dropping the connection, and once
// the initiator reads, every one of the 100 NOP-Ins arrives, in order, with its data.
func TestNOPBackpressure(t *testing.T) {
	const n, size = 100, 128 << 10
	e := newEnv(t, envOpts{opts: Options{MaxRecvDataSegmentLength: 256 << 10}})
	in := dialSmallWindow(t, e.addr)
	in.mustLogin(loginOpts{maxRecvDSL: 256 << 10})
	var stream []byte
	for i := range n {
		nop := proto.NOPOut{Immediate: true, DataSegmentLength: size, ITT: uint32(1000 + i), TTT: proto.ReservedTag,
			CmdSN: in.cmdSN, ExpStatSN: in.expStatSN}
		var b proto.BHS
		nop.Put(&b)
		stream = append(stream, in.frame(&b, pattern(size, uint32(i)))...)
	}
	wrote := make(chan error, 1)
	go func() {
		in.c.SetWriteDeadline(time.Now().Add(60 * time.Second))
		_, err := in.c.Write(stream)
		wrote <- err
	}()
	// answered is how many pings the target has answered (each answer takes a StatSN).
	held := func() (h bool, answered uint32) {
		e.tgt.onConns(func(c *conn) {
			if c.held && c.ctlq.free == 0 {
				h, answered = true, c.statSN-in.expStatSN
			}
		})
		return h, answered
	}
	waitFor(t, 20*time.Second, "the target to hold input with every control slot in flight", func() bool {
		h, _ := held()
		return h
	})
	_, before := held()
	time.Sleep(300 * time.Millisecond)
	h, after := held()
	if !h || after != before || after >= n {
		t.Fatalf("held %v, %d pings answered then %d of %d: the target went on taking pings with no "+
			"control slot free", h, before, after, n)
	}
	if cs := e.tgt.Connections(); len(cs) != 1 || cs[0].State != "full_feature" {
		t.Fatalf("connections while held: %+v", cs)
	}
	for i := range n {
		p := in.recv()
		if p.op() != proto.OpNOPIn || p.bhs.ITT() != uint32(1000+i) {
			t.Fatalf("answer %d: got %v, want the NOP-In for itt %d", i, &p, 1000+i)
		}
		if !bytes.Equal(p.data, pattern(size, uint32(i))) {
			t.Fatalf("answer %d: echo differs", i)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatalf("writing the pings: %v", err)
	}
	in.ping([]byte("after the flood"))
}
