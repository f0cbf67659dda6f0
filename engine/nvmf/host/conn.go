package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"sluice/engine/proto/nvme"
)

// readBufSize is the receive buffer: large enough for many CapsuleResps per read
// syscall, small enough that large C2H data bypasses it and lands in the caller's
// buffer (bufio reads straight into a destination at least this big when empty).
const readBufSize = 256 << 10

// pduConn is one NVMe/TCP connection, host end: the framing layer under a queue.
//
// Preconditions: reads (readHeader, readData, discard) come from one goroutine at a
// time, and so do writes; the queue above decides which.
type pduConn struct {
	nc     net.Conn
	br     pduReader
	spin   *spinConn         // set once the queue busy-polls: nc and br are this
	recv   nvme.LayoutParams // PDUs the host receives: HPDA 0
	send   nvme.LayoutParams // PDUs the host sends: the controller's CPDA
	maxH2C uint32            // ICResp MAXH2CDATA
	closed atomic.Bool

	hdr [nvme.MaxHLen + nvme.DigestLen]byte // the header being received
	dg  [nvme.DigestLen]byte
}

func newPDUConn(nc net.Conn) *pduConn {
	return &pduConn{nc: nc, br: bufio.NewReaderSize(nc, readBufSize)}
}

// dial opens a connection and runs ICReq/ICResp.
func dial(ctx context.Context, o *Options, addr string) (*pduConn, error) {
	nc, err := o.Dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := newPDUConn(nc)
	if err := c.handshake(ctx, o.HeaderDigest, o.DataDigest, o.Timeout); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// handshake sends ICReq (PFV 0, HPDA 0, MAXR2T 0: one R2T per command, as Linux) and
// checks ICResp the way the Linux host's nvme_tcp_init_connection does (PROTOCOLS.md
// §1.2): type, hlen and plen, PFV 0, the digest bits exactly as asked, CPDA 0, and
// MAXH2CDATA a multiple of 4 of at least 4096.
func (c *pduConn) handshake(ctx context.Context, hdgst, ddgst bool, timeout time.Duration) error {
	var want nvme.DigestFlags
	if hdgst {
		want |= nvme.DigestHeader
	}
	if ddgst {
		want |= nvme.DigestData
	}
	var b [nvme.ICReqLen]byte
	nvme.FrameHeader(nvme.PDUTypeICReq, 0, 0, nvme.LayoutParams{}).Put(b[:])
	req := nvme.ICReq{PFV: 0, HPDA: 0, DGST: want, MAXR2T: 0}
	req.Put(b[:])

	defer bound(ctx, timeout, c.nc.SetDeadline)()

	if _, err := c.nc.Write(b[:]); err != nil {
		return c.ioErr("send ICReq", err)
	}
	c.recv = nvme.LayoutParams{Receiver: nvme.RoleHost}
	l, err := c.readHeader()
	if err != nil {
		if errors.Is(err, ErrTimeout) && ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if l.Type != nvme.PDUTypeICResp {
		return c.violation(protoErr(l.Type, nvme.FESPDUSequenceError, 0, "expected ICResp"))
	}
	resp, _ := nvme.DecodeICResp(c.hdr[:])
	if err := resp.Validate(); err != nil {
		return c.violation(pduErr(nvme.PDUTypeICResp, err))
	}
	if resp.DGST != want {
		// Linux refuses any difference: a controller may neither enable a digest the
		// host did not ask for nor refuse one it did.
		return c.violation(protoErr(nvme.PDUTypeICResp, nvme.FESInvalidHeaderField, 11,
			fmt.Sprintf("ICResp digests %#x, asked for %#x", resp.DGST, want)))
	}
	if resp.CPDA != 0 {
		return c.violation(protoErr(nvme.PDUTypeICResp, nvme.FESInvalidHeaderField, 10,
			fmt.Sprintf("ICResp cpda %d, the Linux host requires 0", resp.CPDA)))
	}
	c.recv = nvme.LayoutParams{Receiver: nvme.RoleHost, HDGST: hdgst, DDGST: ddgst, PDA: 0}
	c.send = nvme.LayoutParams{Receiver: nvme.RoleController, HDGST: hdgst, DDGST: ddgst, PDA: resp.CPDA}
	c.maxH2C = resp.MAXH2CDATA
	return nil
}

// bound makes I/O through set (a connection's SetDeadline or SetReadDeadline) fail
// once timeout (negative: no limit) passes or ctx ends, whichever is first. The
// returned function lifts the bound; it waits for a cancellation already under way,
// so that no stale deadline is left behind for the next command.
func bound(ctx context.Context, timeout time.Duration, set func(time.Time) error) (undo func()) {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	set(deadline)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
		}
		set(time.Time{})
	}
}

// readHeader reads the next PDU's header (and header digest) into c.hdr and checks its
// framing. A C2HTermReq comes back as *TermReqError. Padding before the data, if any,
// is left unread; the queue refuses it (HPDA is 0).
func (c *pduConn) readHeader() (nvme.Layout, error) {
	if _, err := io.ReadFull(c.br, c.hdr[:nvme.CHLen]); err != nil {
		return nvme.Layout{}, c.ioErr("read pdu", err)
	}
	ch, _ := nvme.DecodeCommonHeader(c.hdr[:nvme.CHLen])
	l, err := ch.Layout(c.recv)
	if err != nil {
		return l, c.violation(pduErr(ch.Type, err))
	}
	if _, err := io.ReadFull(c.br, c.hdr[nvme.CHLen:l.HeaderEnd()]); err != nil {
		return l, c.ioErr("read pdu header", err)
	}
	if l.Type == nvme.PDUTypeC2HTermReq {
		return l, c.termReq(l)
	}
	if l.HDGST {
		if err := nvme.CheckHeaderDigest(c.hdr[:], int(l.HLen)); err != nil {
			return l, c.violation(pduErr(l.Type, err))
		}
	}
	return l, nil
}

// termReq reads the error data of a C2HTermReq. The connection is dead afterwards; a
// TermReq is never answered with a TermReq.
func (c *pduConn) termReq(l nvme.Layout) error {
	data := make([]byte, l.DataLen)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return c.ioErr("read C2HTermReq data", err)
	}
	tr := &TermReqError{
		FES:  nvme.FES(uint16(c.hdr[8]) | uint16(c.hdr[9])<<8),
		FEI:  uint32(c.hdr[10]) | uint32(c.hdr[11])<<8 | uint32(c.hdr[12])<<16 | uint32(c.hdr[13])<<24,
		Data: data,
	}
	c.close()
	return tr
}

// readData reads a PDU's data into dst (len(dst) == l.DataLen) and checks the data
// digest, which covers the data only (TCP §3.6.2, not the padding).
func (c *pduConn) readData(dst []byte, l nvme.Layout) error {
	if _, err := io.ReadFull(c.br, dst); err != nil {
		return c.ioErr("read pdu data", err)
	}
	if !l.DDGST {
		return nil
	}
	if _, err := io.ReadFull(c.br, c.dg[:]); err != nil {
		return c.ioErr("read data digest", err)
	}
	if nvme.CRC32C(dst) != nvme.Digest(c.dg[:]) {
		// Not a TermReq case (FES 03h is for header digests only), but the data is
		// corrupt and this host is strict: the connection is torn down.
		return &ProtocolError{PDU: l.Type, Reason: "data digest mismatch"}
	}
	return nil
}

// buffered reports whether a whole PDU is already in the receive buffer, so that
// processing it will not block.
func (c *pduConn) buffered() bool {
	n := c.br.Buffered()
	if n < nvme.CHLen {
		return false
	}
	b, err := c.br.Peek(nvme.CHLen)
	if err != nil {
		return false
	}
	plen := uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24
	return plen <= uint32(n)
}

// violation reports a controller protocol violation: for framing errors (FES set) it
// sends an H2CTermReq carrying the offending header, then closes the connection.
func (c *pduConn) violation(err error) error {
	var pe *ProtocolError
	if errors.As(err, &pe) && pe.FES != 0 && !c.closed.Load() {
		hl := int(c.hdr[2])
		if hl < nvme.CHLen || hl > nvme.MaxTermReqDataLen {
			hl = nvme.CHLen
		}
		tr := nvme.NewTermReq(nvme.PDUTypeH2CTermReq, pe.FES, pe.FEI, c.hdr[:hl])
		var b [nvme.MaxTermReqPLen]byte
		n := tr.Put(b[:])
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		c.nc.Write(b[:n])
	}
	c.close()
	return err
}

// ioErr wraps a transport error, mapping deadlines to ErrTimeout and a local close to
// ErrClosed.
func (c *pduConn) ioErr(op string, err error) error {
	switch {
	case c.closed.Load():
		return ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%s: %w", op, ErrTimeout)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: connection closed mid-pdu: %w", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func (c *pduConn) close() {
	if c.closed.CompareAndSwap(false, true) {
		c.nc.Close()
	}
}

// pduReader is the receive buffer: a *bufio.Reader over the socket, or a spinConn.
type pduReader interface {
	io.Reader
	Buffered() int
	Peek(n int) ([]byte, error)
}

// writev writes the buffers with one writev where the connection supports it.
// net.Buffers.WriteTo consumes the slice header it is given, so callers pass a scratch
// header re-sliced from a fixed backing array each time.
func (c *pduConn) writev(b *net.Buffers) error {
	if c.spin != nil {
		if err := c.spin.writeBuffers(*b); err != nil {
			return c.ioErr("send", err)
		}
		return nil
	}
	if _, err := b.WriteTo(c.nc); err != nil {
		return c.ioErr("send", err)
	}
	return nil
}
