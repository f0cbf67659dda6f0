package nvme

import (
	"encoding/binary"
	"strconv"
)

var le = binary.LittleEndian

// PDUType is the NVMe/TCP PDU type, common header byte @0 (TCP §3.6.1, Figure
// "PDU Type"). Bit 0 is the direction: even types flow host to controller, odd types
// controller to host.
type PDUType uint8

// NVMe/TCP PDU types (TCP Figure "PDU Type"; 08h is reserved).
const (
	PDUTypeICReq       PDUType = 0x00
	PDUTypeICResp      PDUType = 0x01
	PDUTypeH2CTermReq  PDUType = 0x02
	PDUTypeC2HTermReq  PDUType = 0x03
	PDUTypeCapsuleCmd  PDUType = 0x04
	PDUTypeCapsuleResp PDUType = 0x05
	PDUTypeH2CData     PDUType = 0x06
	PDUTypeC2HData     PDUType = 0x07
	PDUTypeR2T         PDUType = 0x09
)

// String returns the spec name of the PDU type.
func (t PDUType) String() string {
	switch t {
	case PDUTypeICReq:
		return "ICReq"
	case PDUTypeICResp:
		return "ICResp"
	case PDUTypeH2CTermReq:
		return "H2CTermReq"
	case PDUTypeC2HTermReq:
		return "C2HTermReq"
	case PDUTypeCapsuleCmd:
		return "CapsuleCmd"
	case PDUTypeCapsuleResp:
		return "CapsuleResp"
	case PDUTypeH2CData:
		return "H2CData"
	case PDUTypeC2HData:
		return "C2HData"
	case PDUTypeR2T:
		return "R2T"
	}
	return "PDUType(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// FromHost reports whether PDUs of this type travel host to controller (bit 0 clear).
func (t PDUType) FromHost() bool { return t&1 == 0 }

// Common header flags, CH byte @1 (TCP §3.6.1, Figure "PDU Header Flags").
const (
	// CHFlagHDGSTF: a header digest follows the PDU header.
	CHFlagHDGSTF uint8 = 1 << 0
	// CHFlagDDGSTF: a data digest follows the PDU data.
	CHFlagDDGSTF uint8 = 1 << 1
	// CHFlagLastPDU: last H2CData/C2HData PDU of the transfer (bit 2).
	CHFlagLastPDU uint8 = 1 << 2
	// CHFlagSuccess: C2HData only, the command completed successfully and no
	// CapsuleResp follows; valid only together with CHFlagLastPDU (bit 3).
	CHFlagSuccess uint8 = 1 << 3
)

// Fixed sizes (TCP §3.6).
const (
	// CHLen is the length of the common header.
	CHLen = 8
	// DigestLen is the length of HDGST and DDGST (CRC32C).
	DigestLen = 4
	// ICReqLen is hlen and plen of ICReq and ICResp.
	ICReqLen = 128
	// TermReqHLen is hlen of H2CTermReq and C2HTermReq.
	TermReqHLen = 24
	// MaxTermReqDataLen bounds the error data (a copy of the offending header).
	MaxTermReqDataLen = 128
	// MaxTermReqPLen is the largest plen of a TermReq PDU: 24 + 128.
	MaxTermReqPLen = TermReqHLen + MaxTermReqDataLen
	// CapsuleCmdHLen is hlen of CapsuleCmd: CH + 64-byte SQE.
	CapsuleCmdHLen = 72
	// CapsuleRespHLen is hlen of CapsuleResp: CH + 16-byte CQE.
	CapsuleRespHLen = 24
	// DataHLen is hlen of H2CData, C2HData and R2T.
	DataHLen = 24
	// MaxHLen is the largest PDU header (ICReq/ICResp).
	MaxHLen = ICReqLen
	// MaxPDA is the largest HPDA/CPDA (0's based dwords; 31 means 128-byte alignment).
	MaxPDA = 31
)

// HeaderLength returns hlen (CH + PSH, without HDGST) for a PDU type. ok is false for
// reserved types.
func HeaderLength(t PDUType) (hlen uint8, ok bool) {
	switch t {
	case PDUTypeICReq, PDUTypeICResp:
		return ICReqLen, true
	case PDUTypeH2CTermReq, PDUTypeC2HTermReq:
		return TermReqHLen, true
	case PDUTypeCapsuleCmd:
		return CapsuleCmdHLen, true
	case PDUTypeCapsuleResp:
		return CapsuleRespHLen, true
	case PDUTypeH2CData, PDUTypeC2HData, PDUTypeR2T:
		return DataHLen, true
	}
	return 0, false
}

// AllowsHDGST reports whether the type carries a header digest when HDGST is enabled:
// CapsuleCmd, CapsuleResp, H2CData, C2HData and R2T. ICReq, ICResp and the TermReqs
// never do (TCP §3.6.2).
func (t PDUType) AllowsHDGST() bool {
	switch t {
	case PDUTypeCapsuleCmd, PDUTypeCapsuleResp, PDUTypeH2CData, PDUTypeC2HData, PDUTypeR2T:
		return true
	}
	return false
}

// AllowsDDGST reports whether the type carries a data digest when DDGST is enabled and
// the PDU has data: CapsuleCmd (in-capsule data), H2CData and C2HData.
func (t PDUType) AllowsDDGST() bool {
	switch t {
	case PDUTypeCapsuleCmd, PDUTypeH2CData, PDUTypeC2HData:
		return true
	}
	return false
}

// hasPDO reports whether the type locates its data with PDO (the TermReqs carry error
// data directly after the header instead).
func (t PDUType) hasPDO() bool { return t.AllowsDDGST() }

// CommonHeader is the 8-byte NVMe/TCP common header (TCP §3.6.1, Figure "Common
// Header"): pdu-type @0, flags @1, hlen @2, pdo @3, plen u32 @4.
type CommonHeader struct {
	Type  PDUType // @0
	Flags uint8   // @1: CHFlag*
	HLen  uint8   // @2: CH + PSH length, excluding HDGST
	PDO   uint8   // @3: data offset from the PDU start; 0 when there is no data
	PLen  uint32  // @4: whole PDU: header, HDGST, pad, data, DDGST
}

// DecodeCommonHeader reads the common header from b[0:8]. It checks only the length;
// [CommonHeader.Layout] checks the fields.
func DecodeCommonHeader(b []byte) (CommonHeader, error) {
	if len(b) < CHLen {
		return CommonHeader{}, ErrShortBuffer
	}
	return CommonHeader{
		Type:  PDUType(b[0]),
		Flags: b[1],
		HLen:  b[2],
		PDO:   b[3],
		PLen:  le.Uint32(b[4:8]),
	}, nil
}

// Put writes the common header to b[0:8].
//
// Preconditions: len(b) >= 8.
func (ch CommonHeader) Put(b []byte) {
	_ = b[7]
	b[0] = byte(ch.Type)
	b[1] = ch.Flags
	b[2] = ch.HLen
	b[3] = ch.PDO
	le.PutUint32(b[4:8], ch.PLen)
}

// DigestFlags is the DGST byte of ICReq/ICResp @11 (TCP §3.6.2.2, §3.6.2.3).
type DigestFlags uint8

// DGST bits.
const (
	DigestHeader DigestFlags = 1 << 0 // HDGST_ENABLE
	DigestData   DigestFlags = 1 << 1 // DDGST_ENABLE
)

// HDGST reports HDGST_ENABLE.
func (d DigestFlags) HDGST() bool { return d&DigestHeader != 0 }

// DDGST reports DDGST_ENABLE.
func (d DigestFlags) DDGST() bool { return d&DigestData != 0 }

// ICReq is the PSH of the Initialize Connection Request (TCP §3.6.2.2): PFV u16 @8,
// HPDA u8 @10, DGST u8 @11, MAXR2T u32 @12; bytes 16..127 reserved.
type ICReq struct {
	PFV    uint16      // @8: PDU format version, 0
	HPDA   uint8       // @10: host PDU data alignment, 0's based dwords, <= 31
	DGST   DigestFlags // @11: digests the host asks for
	MAXR2T uint32      // @12: outstanding R2Ts per command, 0's based
}

// DecodeICReq reads the ICReq PSH from a 128-byte PDU header (b starts at the CH).
func DecodeICReq(b []byte) (ICReq, error) {
	if len(b) < ICReqLen {
		return ICReq{}, ErrShortBuffer
	}
	return ICReq{
		PFV:    le.Uint16(b[8:10]),
		HPDA:   b[10],
		DGST:   DigestFlags(b[11]),
		MAXR2T: le.Uint32(b[12:16]),
	}, nil
}

// Put writes the PSH to b[8:128] (reserved bytes zeroed); write the CH with
// [FrameHeader] and [CommonHeader.Put].
//
// Preconditions: len(b) >= 128.
func (r *ICReq) Put(b []byte) {
	_ = b[ICReqLen-1]
	le.PutUint16(b[8:10], r.PFV)
	b[10] = r.HPDA
	b[11] = byte(r.DGST)
	le.PutUint32(b[12:16], r.MAXR2T)
	clear(b[16:ICReqLen])
}

var (
	errICPFV  = newPDUError(FESInvalidHeaderField, 8, "unsupported pdu format version")
	errICHPDA = newPDUError(FESInvalidHeaderField, 10, "hpda above 31")
	errICCPDA = newPDUError(FESInvalidHeaderField, 10, "cpda above 31")
	errICMax  = newPDUError(FESInvalidHeaderField, 12,
		"maxh2cdata not a multiple of 4 or below 4096")
)

// Validate applies the controller's ICReq checks (TCP §3.6.2.2): PFV must be 0 (FEI 8)
// and HPDA at most 31 (FEI 10). The errors are *PDUError with FES 01h.
func (r ICReq) Validate() error {
	if r.PFV != 0 {
		return errICPFV
	}
	if r.HPDA > MaxPDA {
		return errICHPDA
	}
	return nil
}

// ICResp is the PSH of the Initialize Connection Response (TCP §3.6.2.3): PFV u16 @8,
// CPDA u8 @10, DGST u8 @11, MAXH2CDATA u32 @12; bytes 16..127 reserved.
type ICResp struct {
	PFV        uint16      // @8
	CPDA       uint8       // @10: controller PDU data alignment, 0's based dwords
	DGST       DigestFlags // @11: digests enabled for the connection
	MAXH2CDATA uint32      // @12: largest H2CData data length, bytes, multiple of 4
}

// MinMaxH2CData is the smallest MAXH2CDATA a controller may advertise (TCP §3.6.2.3).
const MinMaxH2CData = 4096

// DecodeICResp reads the ICResp PSH from a 128-byte PDU header.
func DecodeICResp(b []byte) (ICResp, error) {
	if len(b) < ICReqLen {
		return ICResp{}, ErrShortBuffer
	}
	return ICResp{
		PFV:        le.Uint16(b[8:10]),
		CPDA:       b[10],
		DGST:       DigestFlags(b[11]),
		MAXH2CDATA: le.Uint32(b[12:16]),
	}, nil
}

// Put writes the PSH to b[8:128] (reserved bytes zeroed).
//
// Preconditions: len(b) >= 128.
func (r *ICResp) Put(b []byte) {
	_ = b[ICReqLen-1]
	le.PutUint16(b[8:10], r.PFV)
	b[10] = r.CPDA
	b[11] = byte(r.DGST)
	le.PutUint32(b[12:16], r.MAXH2CDATA)
	clear(b[16:ICReqLen])
}

// Validate applies the host's ICResp checks (TCP §3.6.2.3): PFV 0 (FEI 8), CPDA <= 31
// (FEI 10), MAXH2CDATA a multiple of 4 and at least 4096 (FEI 12). Whether the digests
// equal what the host asked for is the caller's check (Linux refuses any difference).
func (r ICResp) Validate() error {
	if r.PFV != 0 {
		return errICPFV
	}
	if r.CPDA > MaxPDA {
		return errICCPDA
	}
	if r.MAXH2CDATA%4 != 0 || r.MAXH2CDATA < MinMaxH2CData {
		return errICMax
	}
	return nil
}

// H2CData is the PSH of a Host to Controller Data PDU (TCP §3.6.2.8): CCCID u16 @8,
// TTAG u16 @10, DATAO u32 @12, DATAL u32 @16; bytes 20..23 reserved.
type H2CData struct {
	CCCID uint16 // @8: command capsule CID
	TTAG  uint16 // @10: transfer tag from the R2T
	DATAO uint32 // @12: offset of this data in the command's buffer
	DATAL uint32 // @16: data bytes in this PDU
}

// DecodeH2CData reads the PSH from a 24-byte header (b starts at the CH).
func DecodeH2CData(b []byte) (H2CData, error) {
	if len(b) < DataHLen {
		return H2CData{}, ErrShortBuffer
	}
	return H2CData{
		CCCID: le.Uint16(b[8:10]),
		TTAG:  le.Uint16(b[10:12]),
		DATAO: le.Uint32(b[12:16]),
		DATAL: le.Uint32(b[16:20]),
	}, nil
}

// Put writes the PSH to b[8:24].
//
// Preconditions: len(b) >= 24.
func (d *H2CData) Put(b []byte) {
	_ = b[DataHLen-1]
	le.PutUint16(b[8:10], d.CCCID)
	le.PutUint16(b[10:12], d.TTAG)
	le.PutUint32(b[12:16], d.DATAO)
	le.PutUint32(b[16:20], d.DATAL)
	clear(b[20:24])
}

// C2HData is the PSH of a Controller to Host Data PDU (TCP §3.6.2.9): CCCID u16 @8,
// DATAO u32 @12, DATAL u32 @16; bytes 10..11 and 20..23 reserved.
type C2HData struct {
	CCCID uint16 // @8
	DATAO uint32 // @12
	DATAL uint32 // @16
}

// DecodeC2HData reads the PSH from a 24-byte header.
func DecodeC2HData(b []byte) (C2HData, error) {
	if len(b) < DataHLen {
		return C2HData{}, ErrShortBuffer
	}
	return C2HData{
		CCCID: le.Uint16(b[8:10]),
		DATAO: le.Uint32(b[12:16]),
		DATAL: le.Uint32(b[16:20]),
	}, nil
}

// Put writes the PSH to b[8:24].
//
// Preconditions: len(b) >= 24.
func (d *C2HData) Put(b []byte) {
	_ = b[DataHLen-1]
	le.PutUint16(b[8:10], d.CCCID)
	clear(b[10:12])
	le.PutUint32(b[12:16], d.DATAO)
	le.PutUint32(b[16:20], d.DATAL)
	clear(b[20:24])
}

// R2T is the PSH of a Ready to Transfer PDU (TCP §3.6.2.10): CCCID u16 @8, TTAG u16 @10,
// R2TO u32 @12, R2TL u32 @16; bytes 20..23 reserved.
type R2T struct {
	CCCID uint16 // @8
	TTAG  uint16 // @10: chosen by the controller, echoed in H2CData
	R2TO  uint32 // @12: offset of the requested data
	R2TL  uint32 // @16: length of the requested data
}

// DecodeR2T reads the PSH from a 24-byte header.
func DecodeR2T(b []byte) (R2T, error) {
	if len(b) < DataHLen {
		return R2T{}, ErrShortBuffer
	}
	return R2T{
		CCCID: le.Uint16(b[8:10]),
		TTAG:  le.Uint16(b[10:12]),
		R2TO:  le.Uint32(b[12:16]),
		R2TL:  le.Uint32(b[16:20]),
	}, nil
}

// Put writes the PSH to b[8:24].
//
// Preconditions: len(b) >= 24.
func (r *R2T) Put(b []byte) {
	_ = b[DataHLen-1]
	le.PutUint16(b[8:10], r.CCCID)
	le.PutUint16(b[10:12], r.TTAG)
	le.PutUint32(b[12:16], r.R2TO)
	le.PutUint32(b[16:20], r.R2TL)
	clear(b[20:24])
}

// CapsuleSQE returns the SQE inside a CapsuleCmd header (PSH @8..71) without copying.
//
// Preconditions: len(hdr) >= 72.
func CapsuleSQE(hdr []byte) *SQE { return (*SQE)(hdr[CHLen:CapsuleCmdHLen]) }

// CapsuleCQE returns the CQE inside a CapsuleResp header (PSH @8..23) without copying.
//
// Preconditions: len(hdr) >= 24.
func CapsuleCQE(hdr []byte) *CQE { return (*CQE)(hdr[CHLen:CapsuleRespHLen]) }

// TermReq is a whole H2CTermReq or C2HTermReq PDU (TCP §3.6.2.4, §3.6.2.5): FES u16 @8,
// FEI u32 @10, bytes 14..23 reserved, then up to 128 bytes of error data, a copy of the
// header of the PDU in error. TermReqs never carry digests or a PDO.
type TermReq struct {
	Type    PDUType                 // PDUTypeH2CTermReq or PDUTypeC2HTermReq
	FES     FES                     // @8
	FEI     uint32                  // @10: field offset for FES 01h/06h, else 0
	Data    [MaxTermReqDataLen]byte // @24: error data
	DataLen uint8                   // bytes of Data in use, <= 128
}

// NewTermReq builds a TermReq whose error data is the first (up to 128) bytes of hdr,
// the header of the PDU in error.
func NewTermReq(t PDUType, fes FES, fei uint32, hdr []byte) TermReq {
	if t != PDUTypeH2CTermReq && t != PDUTypeC2HTermReq {
		panic("nvme: NewTermReq with a non-TermReq type")
	}
	tr := TermReq{Type: t, FES: fes, FEI: fei}
	tr.DataLen = uint8(copy(tr.Data[:], hdr))
	return tr
}

// ErrorData returns the error data in use.
func (t *TermReq) ErrorData() []byte { return t.Data[:t.DataLen] }

// PLen returns the PDU length: 24 + error data.
func (t *TermReq) PLen() int { return TermReqHLen + int(t.DataLen) }

var (
	errTermType = newPDUError(FESInvalidHeaderField, 0, "not a termination request")
	errTermHLen = newPDUError(FESInvalidHeaderField, 2, "termination request hlen not 24")
	errTermPLen = newPDUError(FESInvalidHeaderField, 4,
		"termination request plen outside 24..152")
)

// DecodeTermReq decodes a whole TermReq PDU, CH included. b must hold plen bytes.
// Length errors are *PDUError values; they mean "close the connection", never "reply".
func DecodeTermReq(b []byte) (TermReq, error) {
	ch, err := DecodeCommonHeader(b)
	if err != nil {
		return TermReq{}, err
	}
	switch {
	case ch.Type != PDUTypeH2CTermReq && ch.Type != PDUTypeC2HTermReq:
		return TermReq{}, errTermType
	case ch.HLen != TermReqHLen:
		return TermReq{}, errTermHLen
	case ch.PLen < TermReqHLen || ch.PLen > MaxTermReqPLen:
		return TermReq{}, errTermPLen
	case uint32(len(b)) < ch.PLen:
		return TermReq{}, ErrShortBuffer
	}
	tr := TermReq{Type: ch.Type, FES: FES(le.Uint16(b[8:10])), FEI: le.Uint32(b[10:14])}
	tr.DataLen = uint8(copy(tr.Data[:], b[TermReqHLen:ch.PLen]))
	return tr, nil
}

// Put writes the whole PDU, CH included, to b and returns plen.
//
// Preconditions: len(b) >= t.PLen(); t.Type is a TermReq type.
func (t *TermReq) Put(b []byte) int {
	if t.DataLen > MaxTermReqDataLen {
		panic("nvme: TermReq error data above 128 bytes")
	}
	n := t.PLen()
	_ = b[n-1]
	CommonHeader{Type: t.Type, HLen: TermReqHLen, PLen: uint32(n)}.Put(b)
	le.PutUint16(b[8:10], uint16(t.FES))
	le.PutUint32(b[10:14], t.FEI)
	clear(b[14:TermReqHLen])
	copy(b[TermReqHLen:n], t.Data[:t.DataLen])
	return n
}
