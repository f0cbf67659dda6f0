package nvme

// Role names the end of an NVMe/TCP connection that receives a PDU.
type Role uint8

// Roles.
const (
	RoleController Role = iota // the target: receives host-to-controller PDUs
	RoleHost                   // the initiator: receives controller-to-host PDUs
)

// LayoutParams are the connection settings that decide how a PDU is framed.
type LayoutParams struct {
	// Receiver is the end that receives the PDU. [CommonHeader.Layout] rejects PDUs
	// travelling the wrong way; [FrameHeader] ignores it.
	Receiver Role
	// HDGST and DDGST are the digests negotiated in ICReq/ICResp.
	HDGST, DDGST bool
	// PDA is the receiver's data alignment as negotiated, 0's based dwords (0..31):
	// CPDA when the controller receives, HPDA when the host receives. Data must start
	// at a multiple of (PDA+1)*4 bytes from the PDU start.
	PDA uint8
}

// Layout is where each part of a PDU sits, from its common header and the
// connection's settings (TCP §3.6.1): [header HLen][HDGST 4?][PAD][data][DDGST 4?].
type Layout struct {
	Type       PDUType
	HLen       uint32 // CH + PSH
	HDGST      bool   // a 4-byte header digest follows the HLen header bytes
	Pad        uint32 // bytes between the end of the header (and HDGST) and the data
	DataOffset uint32 // offset of the data from the PDU start (PDO; 24 for TermReq)
	DataLen    uint32 // data bytes (in-capsule data, H2C/C2H data, TermReq error data)
	DDGST      bool   // a 4-byte data digest follows the data
	PLen       uint32
}

// HeaderEnd is the offset just after the header and its digest: the number of bytes to
// read before the PSH can be checked and decoded.
func (l Layout) HeaderEnd() uint32 {
	if l.HDGST {
		return l.HLen + DigestLen
	}
	return l.HLen
}

// Preallocated layout errors, one per (FES, FEI, reason), so a malformed PDU on the
// data path costs no allocation. FEIs are byte offsets in the common header: 0 type,
// 1 flags, 2 hlen, 3 pdo, 4 plen.
var (
	errLayoutType      = hdrErr(0, "reserved pdu type")
	errLayoutDirection = hdrErr(0, "pdu type for the other direction")
	errLayoutHDGSTF    = hdrErr(1, "HDGSTF disagrees with negotiated header digest")
	errLayoutDDGSTF    = hdrErr(1, "DDGSTF disagrees with negotiated data digest")
	errLayoutSuccess   = hdrErr(1, "SUCCESS without LAST_PDU")
	errLayoutHLen      = hdrErr(2, "hlen wrong for pdu type")
	errLayoutPDOZero   = hdrErr(3, "pdu has data but pdo is 0")
	errLayoutPDOLow    = hdrErr(3, "pdo inside the header or header digest")
	errLayoutPDOAlign  = hdrErr(3, "pdo not a multiple of the receiver's pda")
	errLayoutPDOHigh   = hdrErr(3, "pdo at or beyond plen leaves no data")
	errLayoutPLenShort = hdrErr(4, "plen shorter than the header")
	errLayoutPLenFixed = hdrErr(4, "plen wrong for a pdu without data")
	errLayoutPLenNoDat = hdrErr(4, "data pdu without data")
	errLayoutPLenDDGST = hdrErr(4, "plen leaves no room for data and its digest")
	errLayoutPLenTerm  = hdrErr(4, "termination request plen above 152")
)

func hdrErr(fei uint32, reason string) *PDUError {
	return newPDUError(FESInvalidHeaderField, fei, reason)
}

// Layout checks a received common header against the PDU type and the connection's
// settings and returns where the parts of the PDU are. It checks the fields in wire
// order (type, flags, hlen, pdo, plen) and reports the first bad one, so the FEI of the
// returned *PDUError is the lowest offending offset (TCP §3.6.2.4):
//
//   - FEI 0: reserved type, or a type that travels the other way.
//   - FEI 1: HDGSTF differs from the negotiated header digest (for types that carry
//     one; it must be clear on others); DDGSTF set without a negotiated data digest or
//     on a type without data digests; DDGSTF clear on a PDU that has data while data
//     digests are on; SUCCESS without LAST_PDU on C2HData. DDGSTF on a PDU without data
//     is tolerated, as nothing follows (Linux hosts clear it then). Other reserved flag
//     bits are ignored.
//   - FEI 2: hlen differs from the fixed length of the type.
//   - FEI 3: data present but pdo is 0, pdo inside the header (+HDGST), pdo not aligned
//     to (PDA+1)*4, or pdo beyond plen.
//   - FEI 4: plen shorter than the header, a data-less type (ICReq, ICResp,
//     CapsuleResp, R2T) whose plen is not exactly its header (+HDGST), H2CData/C2HData
//     without data, no room for the data digest, or a TermReq above 152 bytes.
//
// PDO is ignored (reserved) on types without PDU data. Whether the PDU is allowed in
// the connection's current state (ICReq first, exactly once) is the caller's check
// (FES 02h).
//
// Preconditions: p.PDA <= 31 (ICReq/ICResp Validate enforce it on the wire).
func (ch CommonHeader) Layout(p LayoutParams) (Layout, error) {
	if p.PDA > MaxPDA {
		panic("nvme: Layout with PDA above 31")
	}
	hlen, ok := HeaderLength(ch.Type)
	if !ok {
		return Layout{}, errLayoutType
	}
	if ch.Type.FromHost() != (p.Receiver == RoleController) {
		return Layout{}, errLayoutDirection
	}
	hd := ch.Type.AllowsHDGST() && p.HDGST
	full := uint32(hlen)
	if hd {
		full += DigestLen
	}
	if err := ch.checkFlags(hd, full, p); err != nil {
		return Layout{}, err
	}
	if ch.HLen != hlen {
		return Layout{}, errLayoutHLen
	}
	l := Layout{Type: ch.Type, HLen: uint32(hlen), HDGST: hd, PLen: ch.PLen}
	switch {
	case ch.Type.hasPDO():
		return ch.dataLayout(l, full, p)
	case ch.Type == PDUTypeH2CTermReq || ch.Type == PDUTypeC2HTermReq:
		if ch.PLen < full {
			return Layout{}, errLayoutPLenShort
		}
		if ch.PLen > MaxTermReqPLen {
			return Layout{}, errLayoutPLenTerm
		}
		l.DataOffset = full
		l.DataLen = ch.PLen - full
		return l, nil
	}
	if ch.PLen != full {
		if ch.PLen < full {
			return Layout{}, errLayoutPLenShort
		}
		return Layout{}, errLayoutPLenFixed
	}
	return l, nil
}

// checkFlags checks the digest and SUCCESS flags (CH @1).
//
// As strict as SPDK's target and Linux nvmet, no stricter: a digest flag on a PDU type
// that carries no digest (ICReq, TermReq), or for a digest that was not negotiated, is
// ignored by both and so here; a negotiated digest whose flag is missing is refused, as
// nvmet does, because the receiver could not tell where the header or data ends.
func (ch CommonHeader) checkFlags(hd bool, full uint32, p LayoutParams) error {
	if hd && ch.Flags&CHFlagHDGSTF == 0 {
		return errLayoutHDGSTF
	}
	dd := ch.Type.AllowsDDGST() && p.DDGST
	ddf := ch.Flags&CHFlagDDGSTF != 0
	// A PDU has data when plen runs past the header; a malformed plen is reported
	// at FEI 4 later, in field order.
	if dd && !ddf && ch.PLen > full {
		return errLayoutDDGSTF
	}
	if ch.Type == PDUTypeC2HData && ch.Flags&(CHFlagSuccess|CHFlagLastPDU) == CHFlagSuccess {
		return errLayoutSuccess
	}
	return nil
}

// dataLayout finishes Layout for CapsuleCmd, H2CData and C2HData, which locate their
// data with PDO (TCP §3.6.1: PAD fills from the header digest to PDO).
func (ch CommonHeader) dataLayout(l Layout, full uint32, p LayoutParams) (Layout, error) {
	pdo := uint32(ch.PDO)
	switch {
	case pdo == 0 && ch.PLen > full:
		return Layout{}, errLayoutPDOZero
	case pdo != 0 && pdo < full:
		return Layout{}, errLayoutPDOLow
	case p.PDA != 0 && pdo%((uint32(p.PDA)+1)*4) != 0:
		// Checked only when an alignment was negotiated, as SPDK does.
		return Layout{}, errLayoutPDOAlign
	case ch.PLen >= full && pdo > ch.PLen:
		return Layout{}, errLayoutPDOHigh
	case ch.PLen > full && pdo == ch.PLen:
		// Padding runs to the end of the PDU and no data follows it.
		return Layout{}, errLayoutPDOHigh
	case ch.PLen < full:
		return Layout{}, errLayoutPLenShort
	}
	if ch.PLen == full {
		// No data (pdo is 0 or points at plen): a CapsuleCmd without in-capsule data.
		// H2CData and C2HData must carry data.
		if ch.Type != PDUTypeCapsuleCmd {
			return Layout{}, errLayoutPLenNoDat
		}
		return l, nil
	}
	data := ch.PLen - pdo
	l.DDGST = p.DDGST
	if l.DDGST {
		if data <= DigestLen {
			return Layout{}, errLayoutPLenDDGST
		}
		data -= DigestLen
	}
	l.Pad = pdo - full
	l.DataOffset = pdo
	l.DataLen = data
	return l, nil
}

// FrameHeader builds the common header a sender puts in front of a PDU of type t with
// dataLen bytes of data (in-capsule data, H2C/C2H data, or TermReq error data): hlen
// from the type, HDGSTF/DDGSTF from the negotiated digests (any digest bits in flags are
// replaced), PDO aligned to the receiver's p.PDA, and plen. Other flags (LAST_PDU,
// SUCCESS) pass through.
//
// Preconditions: t is a defined type; p.PDA <= 31; dataLen is 0 for ICReq, ICResp, CapsuleResp and
// R2T, nonzero for H2CData and C2HData, at most 128 for TermReqs, and small enough for
// plen to fit in 32 bits. Violations panic: they are programming errors.
func FrameHeader(t PDUType, flags uint8, dataLen uint32, p LayoutParams) CommonHeader {
	hlen, ok := HeaderLength(t)
	if !ok {
		panic("nvme: FrameHeader with a reserved pdu type")
	}
	if p.PDA > MaxPDA {
		panic("nvme: FrameHeader with PDA above 31")
	}
	ch := CommonHeader{Type: t, Flags: flags &^ (CHFlagHDGSTF | CHFlagDDGSTF), HLen: hlen}
	full := uint32(hlen)
	if t.AllowsHDGST() && p.HDGST {
		ch.Flags |= CHFlagHDGSTF
		full += DigestLen
	}
	switch {
	case t.hasPDO():
		if dataLen == 0 {
			if t != PDUTypeCapsuleCmd {
				panic("nvme: FrameHeader data pdu without data")
			}
			ch.PLen = full
			return ch
		}
		align := (uint32(p.PDA) + 1) * 4
		pdo := (full + align - 1) / align * align
		dd := uint32(0)
		if p.DDGST {
			ch.Flags |= CHFlagDDGSTF
			dd = DigestLen
		}
		if dataLen > ^uint32(0)-pdo-dd {
			panic("nvme: FrameHeader plen overflows")
		}
		ch.PDO = uint8(pdo)
		ch.PLen = pdo + dataLen + dd
	case t == PDUTypeH2CTermReq || t == PDUTypeC2HTermReq:
		if dataLen > MaxTermReqDataLen {
			panic("nvme: FrameHeader termination request data above 128 bytes")
		}
		ch.PLen = full + dataLen
	default:
		if dataLen != 0 {
			panic("nvme: FrameHeader data on a pdu type without data")
		}
		ch.PLen = full
	}
	return ch
}

var errLayoutDATAL = newPDUError(FESInvalidHeaderField, 16, "datal disagrees with plen and pdo")

// CheckDATAL checks the DATAL field of an H2CData or C2HData PSH (@16) against the data
// length the common header implies. A mismatch is FES 01h at FEI 16. Whether DATAO and
// DATAL fall inside the R2T window or the command's buffer is the caller's check
// (FES 04h), as is DATAL above MAXH2CDATA (FES 05h).
func (l Layout) CheckDATAL(datal uint32) error {
	if datal != l.DataLen {
		return errLayoutDATAL
	}
	return nil
}
