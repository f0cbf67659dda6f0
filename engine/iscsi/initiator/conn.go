package initiator

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	proto "sluice/engine/proto/iscsi"
)

// zeroPad pads data segments to a multiple of 4 bytes; writev reads it, nobody writes.
var zeroPad [4]byte

// readHeader reads the next PDU's BHS (and header digest) into s.rhdr and checks its
// framing: a defined target opcode, DataSegmentLength within what this initiator
// declared, no AHS (RFC 7143 defines AHSs for the SCSI Command only), the header
// digest when negotiated.
func (s *Session) readHeader() error {
	if _, err := io.ReadFull(s.br, s.rhdr[:]); err != nil {
		return s.ioErr("read pdu", err)
	}
	lay, err := s.rhdr.Layout(proto.LayoutParams{Receiver: proto.RoleInitiator, HeaderDigest: s.hd,
		DataDigest: s.dd, MaxRecvDataSegmentLength: s.maxRecv})
	if err != nil {
		off := 0
		var pe *proto.PDUError
		if errors.As(err, &pe) {
			off = int(pe.Offset)
		}
		return &ProtocolError{Opcode: s.rhdr.Opcode(), Offset: off, ITT: s.rhdr.ITT(),
			Reason: "malformed PDU header", Err: err}
	}
	if lay.AHSLen != 0 {
		return s.bad(4, "TotalAHSLength set on a target PDU")
	}
	if s.hd {
		if _, err := io.ReadFull(s.br, s.rdg[:]); err != nil {
			return s.ioErr("read header digest", err)
		}
		if proto.HeaderDigest(&s.rhdr, nil) != proto.Digest(s.rdg[:]) {
			return s.bad(proto.BHSLen, "header digest mismatch")
		}
	}
	s.lay = lay
	return nil
}

// readData reads the current PDU's data segment into dst (len(dst) == its
// DataSegmentLength), then its padding and data digest, and checks the digest over the
// data and the padding bytes as received (RFC 7143 §13.1).
func (s *Session) readData(dst []byte) error {
	if len(dst) > 0 {
		if _, err := io.ReadFull(s.br, dst); err != nil {
			return s.ioErr("read pdu data", err)
		}
	}
	pad := s.rpad[:s.lay.PadLen]
	if len(pad) > 0 {
		if _, err := io.ReadFull(s.br, pad); err != nil {
			return s.ioErr("read pdu padding", err)
		}
	}
	if !s.lay.DataDigest {
		return nil
	}
	if _, err := io.ReadFull(s.br, s.rdg[:]); err != nil {
		return s.ioErr("read data digest", err)
	}
	if proto.CRC32CUpdate(proto.CRC32C(dst), pad) != proto.Digest(s.rdg[:]) {
		return s.bad(5, "data digest mismatch")
	}
	return nil
}

// readCtlData reads the current PDU's data segment into the control buffer and returns
// it; it aliases the buffer until the next PDU.
func (s *Session) readCtlData() ([]byte, error) {
	d := s.ctlBuf[:s.lay.DataLen]
	return d, s.readData(d)
}

// buffered reports whether a whole PDU is already in the receive buffer, so that
// handling it will not block.
func (s *Session) buffered() bool {
	n := s.br.Buffered()
	if n < proto.BHSLen {
		return false
	}
	b, err := s.br.Peek(proto.BHSLen)
	if err != nil {
		return false
	}
	dsl := int(b[5])<<16 | int(b[6])<<8 | int(b[7])
	need := proto.BHSLen + int(b[4])*4 + dsl + int(proto.PadLen(uint32(dsl)))
	if s.hd {
		need += proto.DigestLen
	}
	if s.dd && dsl > 0 {
		need += proto.DigestLen
	}
	return need <= n
}

// frame appends one outgoing PDU to iov: its BHS (already in hdr[:48]) with the header
// digest when negotiated, then data, padding and the data digest into dg.
func (s *Session) frame(iov [][]byte, hdr *[hdrMax]byte, data []byte, dg *[proto.DigestLen]byte) [][]byte {
	h := hdr[:proto.BHSLen]
	if s.hd {
		proto.PutDigest(hdr[proto.BHSLen:], proto.HeaderDigest((*proto.BHS)(hdr[:proto.BHSLen]), nil))
		h = hdr[:hdrMax]
	}
	iov = append(iov, h)
	if len(data) == 0 {
		return iov
	}
	iov = append(iov, data)
	if pad := proto.PadLen(uint32(len(data))); pad > 0 {
		iov = append(iov, zeroPad[:pad])
	}
	if s.dd {
		proto.PutDigest(dg[:], proto.DataDigest(data))
		iov = append(iov, dg[:])
	}
	return iov
}

// sendNow frames one PDU from the transmit scratch (header in s.txHdrs[0]) and writes
// it at once.
func (s *Session) sendNow(data []byte) error {
	iov := s.frame(s.txBack[:0], &s.txHdrs[0], data, &s.txDg[0])
	s.wv = iov
	err := s.writev(&s.wv)
	clear(s.txBack[:cap(s.txBack)])
	return err
}

// writev writes the buffers with one writev where the connection supports it.
// net.Buffers.WriteTo consumes the slice header it is given, so callers pass a scratch
// header re-sliced from a fixed backing array.
func (s *Session) writev(b *net.Buffers) error {
	if _, err := b.WriteTo(s.nc); err != nil {
		return s.ioErr("send", err)
	}
	return nil
}

// ioErr maps a transport error: a local close to ErrClosed, a deadline to ErrTimeout,
// the rest to a *ConnError.
func (s *Session) ioErr(op string, err error) error {
	switch {
	case s.closed.Load():
		return ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%s: %w", op, ErrTimeout)
	}
	return &ConnError{Op: op, Err: err}
}

// fail records the first fatal error and closes the connection. It returns the error
// the session now reports.
func (s *Session) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	if s.closed.CompareAndSwap(false, true) {
		s.nc.Close()
	}
	return s.err
}

// bad builds a protocol violation found in the PDU being received.
func (s *Session) bad(off int, reason string) error {
	return &ProtocolError{Opcode: s.rhdr.Opcode(), Offset: off, ITT: s.rhdr.ITT(), Reason: reason}
}
