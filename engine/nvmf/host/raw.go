package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"sluice/engine/proto/nvme"
)

// MaxRawPDU bounds the PLEN RawConn.ReadPDU accepts, so a corrupt length cannot make
// it allocate gigabytes.
const MaxRawPDU = 16 << 20

// RawConn is a bare NVMe/TCP connection for robustness tests: it sends whatever bytes
// it is given and reads PDUs without judging them, so a test can send a malformed PDU
// and check the C2HTermReq (FES, FEI) that comes back, or that the target closes.
//
// HDGST and DDGST describe the digests in force, for framing helpers and ReadPDU's
// layout; Handshake sets them from the ICResp.
type RawConn struct {
	nc           net.Conn
	br           *bufio.Reader
	HDGST, DDGST bool
}

// DialRaw opens a TCP connection to addr and sends nothing.
func DialRaw(ctx context.Context, addr string) (*RawConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return NewRawConn(nc), nil
}

// NewRawConn wraps an open connection.
func NewRawConn(nc net.Conn) *RawConn {
	return &RawConn{nc: nc, br: bufio.NewReaderSize(nc, readBufSize)}
}

// Conn returns the underlying connection.
func (r *RawConn) Conn() net.Conn { return r.nc }

// Close closes the connection.
func (r *RawConn) Close() error { return r.nc.Close() }

// Send writes b as is.
func (r *RawConn) Send(b []byte) error {
	_, err := r.nc.Write(b)
	return err
}

// ICReqPDU returns a 128-byte ICReq PDU carrying req.
func ICReqPDU(req nvme.ICReq) []byte {
	b := make([]byte, nvme.ICReqLen)
	nvme.FrameHeader(nvme.PDUTypeICReq, 0, 0, nvme.LayoutParams{}).Put(b)
	req.Put(b)
	return b
}

// SendICReq sends an ICReq with req's fields.
func (r *RawConn) SendICReq(req nvme.ICReq) error { return r.Send(ICReqPDU(req)) }

// Handshake sends a well-formed ICReq asking for the given digests, reads the ICResp,
// and sets HDGST/DDGST from what the controller granted.
func (r *RawConn) Handshake(hdgst, ddgst bool, timeout time.Duration) (nvme.ICResp, error) {
	var dg nvme.DigestFlags
	if hdgst {
		dg |= nvme.DigestHeader
	}
	if ddgst {
		dg |= nvme.DigestData
	}
	if err := r.SendICReq(nvme.ICReq{DGST: dg}); err != nil {
		return nvme.ICResp{}, err
	}
	ch, hdr, _, err := r.ReadPDU(timeout)
	if err != nil {
		return nvme.ICResp{}, err
	}
	if ch.Type != nvme.PDUTypeICResp {
		return nvme.ICResp{}, fmt.Errorf("got %v instead of ICResp: %w", ch.Type, ErrProtocol)
	}
	resp, err := nvme.DecodeICResp(hdr)
	if err != nil {
		return resp, err
	}
	r.HDGST, r.DDGST = resp.DGST.HDGST(), resp.DGST.DDGST()
	return resp, nil
}

func (r *RawConn) sendParams() nvme.LayoutParams {
	return nvme.LayoutParams{Receiver: nvme.RoleController, HDGST: r.HDGST, DDGST: r.DDGST}
}

// CapsulePDU frames a CapsuleCmd for sqe with in-capsule data icd, with the digests in
// force (CPDA 0). The SQE is copied as is: set CID, PSDT and SGL1 yourself.
func (r *RawConn) CapsulePDU(sqe *nvme.SQE, icd []byte) []byte {
	return framePDU(nvme.PDUTypeCapsuleCmd, 0, r.sendParams(), func(h []byte) {
		copy(h[nvme.CHLen:nvme.CapsuleCmdHLen], sqe[:])
	}, icd)
}

// H2CDataPDU frames an H2CData PDU with the digests in force.
func (r *RawConn) H2CDataPDU(cccid, ttag uint16, datao uint32, data []byte, last bool) []byte {
	var flags uint8
	if last {
		flags = nvme.CHFlagLastPDU
	}
	return framePDU(nvme.PDUTypeH2CData, flags, r.sendParams(), func(h []byte) {
		d := nvme.H2CData{CCCID: cccid, TTAG: ttag, DATAO: datao, DATAL: uint32(len(data))}
		d.Put(h)
	}, data)
}

// framePDU builds header, HDGST, data and DDGST; psh fills the PSH.
func framePDU(t nvme.PDUType, flags uint8, p nvme.LayoutParams, psh func([]byte), data []byte) []byte {
	ch := nvme.FrameHeader(t, flags, uint32(len(data)), p)
	b := make([]byte, ch.PLen)
	ch.Put(b)
	psh(b)
	if ch.Flags&nvme.CHFlagHDGSTF != 0 {
		nvme.SetHeaderDigest(b, int(ch.HLen))
	}
	if len(data) > 0 {
		copy(b[ch.PDO:], data)
		if ch.Flags&nvme.CHFlagDDGSTF != 0 {
			nvme.PutDigest(b[int(ch.PDO)+len(data):], nvme.CRC32C(data))
		}
	}
	return b
}

// ReadPDU reads one whole PDU within timeout (0: no limit). hdr is the header (CH and
// PSH, hlen bytes) and data the PDU data (for a TermReq, the error data). If the PDU
// does not frame as a controller-to-host PDU with the digests in force, or a digest
// does not match, err says so and hdr holds the first min(hlen, plen) bytes and data
// the rest, unsplit.
func (r *RawConn) ReadPDU(timeout time.Duration) (ch nvme.CommonHeader, hdr, data []byte, err error) {
	if timeout > 0 {
		r.nc.SetReadDeadline(time.Now().Add(timeout))
		defer r.nc.SetReadDeadline(time.Time{})
	}
	var b8 [nvme.CHLen]byte
	if _, err := io.ReadFull(r.br, b8[:]); err != nil {
		return ch, nil, nil, rawErr(err)
	}
	ch, _ = nvme.DecodeCommonHeader(b8[:])
	if ch.PLen < nvme.CHLen || ch.PLen > MaxRawPDU {
		return ch, b8[:], nil, fmt.Errorf("plen %d: %w", ch.PLen, ErrProtocol)
	}
	b := make([]byte, ch.PLen)
	copy(b, b8[:])
	if _, err := io.ReadFull(r.br, b[nvme.CHLen:]); err != nil {
		return ch, b[:nvme.CHLen], nil, rawErr(err)
	}
	l, lerr := ch.Layout(nvme.LayoutParams{Receiver: nvme.RoleHost, HDGST: r.HDGST, DDGST: r.DDGST})
	if lerr != nil {
		hl := min(uint32(ch.HLen), ch.PLen)
		return ch, b[:hl], b[hl:], lerr
	}
	hdr = b[:l.HLen]
	data = b[l.DataOffset : l.DataOffset+l.DataLen]
	if l.HDGST {
		if err := nvme.CheckHeaderDigest(b, int(l.HLen)); err != nil {
			return ch, hdr, data, err
		}
	}
	if l.DDGST && l.DataLen > 0 {
		end := l.DataOffset + l.DataLen
		if nvme.CRC32C(data) != nvme.Digest(b[end:]) {
			return ch, hdr, data, errors.New("nvme/tcp raw: data digest mismatch")
		}
	}
	return ch, hdr, data, nil
}

// ReadTermReq reads the next PDU and decodes it as a C2HTermReq.
func (r *RawConn) ReadTermReq(timeout time.Duration) (nvme.TermReq, error) {
	ch, hdr, data, err := r.ReadPDU(timeout)
	if err != nil {
		return nvme.TermReq{}, err
	}
	if ch.Type != nvme.PDUTypeC2HTermReq {
		return nvme.TermReq{}, fmt.Errorf("got %v instead of C2HTermReq: %w", ch.Type, ErrProtocol)
	}
	whole := append(append([]byte{}, hdr...), data...)
	return nvme.DecodeTermReq(whole)
}

// WaitClosed reads until the peer closes the connection and reports an error if data
// arrives first or timeout passes. Use it after a TermReq to check the target closes.
func (r *RawConn) WaitClosed(timeout time.Duration) error {
	r.nc.SetReadDeadline(time.Now().Add(timeout))
	defer r.nc.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := r.br.Read(b[:])
	switch {
	case n > 0:
		return fmt.Errorf("nvme/tcp raw: data (%#x) after the connection should have closed: %w", b[0], ErrProtocol)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return nil
	case err != nil && isReset(err):
		return nil
	}
	return rawErr(err)
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

func rawErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("nvme/tcp raw: %w", ErrTimeout)
	}
	return err
}
