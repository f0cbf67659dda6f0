package host

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"sluice/engine/proto/nvme"
)

// fuzzConn feeds a byte stream as the controller's side of the connection and
// discards what the host writes.
type fuzzConn struct {
	net.Conn // nil: methods not overridden are never called
	r        io.Reader
}

func (c *fuzzConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *fuzzConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }
func (c *fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }

// FuzzHostRecv feeds arbitrary controller-to-host bytes to a queue with a read (slot 0,
// CID 1000h, 4 KiB), an R2T write (slot 1, CID 1001h, 8 KiB) and a command without
// data (slot 2, CID 1002h) in flight. flags: bit 0 header digest, bit 1 data digest,
// bit 2 SQ flow control off. Whatever arrives, the host must not panic, must never
// write outside a command's buffer, and must end with an error once the stream ends.
func FuzzHostRecv(f *testing.F) {
	f.Fuzz(func(t *testing.T, flags byte, stream []byte) {
		hd, dd := flags&1 != 0, flags&2 != 0
		c := newPDUConn(&fuzzConn{r: bytes.NewReader(stream)})
		c.recv = nvme.LayoutParams{Receiver: nvme.RoleHost, HDGST: hd, DDGST: dd}
		c.send = nvme.LayoutParams{Receiver: nvme.RoleController, HDGST: hd, DDGST: dd}
		c.maxH2C = nvme.MinMaxH2CData
		q := newQueue(c, 1, 4, 0, flags&4 == 0)
		rd := make([]byte, 4096)
		wr := make([]byte, 8192)
		q.sqe(0).SetOpcode(uint8(nvme.NVMRead))
		q.sqe(1).SetOpcode(uint8(nvme.NVMWrite))
		q.sqe(2).SetOpcode(uint8(nvme.NVMFlush))
		for i, b := range [][]byte{rd, wr, nil} {
			if err := q.submit(i, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.flush(); err != nil {
			t.Fatal(err)
		}
		for range len(stream) + 1 {
			idx, err := q.step()
			if err != nil {
				break
			}
			if idx >= 0 {
				q.release(idx)
			}
		}
		if q.err == nil {
			t.Fatal("stream ended without an error")
		}
		for i := range q.slots[:3] {
			s := &q.slots[i]
			if s.state == slotInflight && s.xfer > uint32(len(s.buf)) {
				t.Fatalf("slot %d moved %d bytes of %d", i, s.xfer, len(s.buf))
			}
		}
		if q.inflight < 0 || q.inflight > 3 {
			t.Fatalf("inflight %d", q.inflight)
		}
	})
}
