package iscsi

// Role names the end of an iSCSI connection that receives a PDU.
type Role uint8

// Roles.
const (
	RoleTarget    Role = iota // receives initiator opcodes (0x00-0x1f)
	RoleInitiator             // receives target opcodes (0x20-0x3f)
)

// DefaultMaxRecvDataSegmentLength is the MaxRecvDataSegmentLength that holds until a
// declaration takes effect, and throughout login (RFC 7143 §13.12: default 8192).
const DefaultMaxRecvDataSegmentLength = 8192

// MaxDataSegmentLength is the largest DataSegmentLength the 24-bit field holds, and the
// top of the MaxRecvDataSegmentLength range (2**24 - 1).
const MaxDataSegmentLength = 1<<24 - 1

// LayoutParams are the connection settings that decide how a PDU is framed.
type LayoutParams struct {
	// Receiver is the end receiving the PDU; [BHS.Layout] rejects opcodes travelling
	// the other way.
	Receiver Role
	// HeaderDigest and DataDigest are the negotiated digests. They take effect only in
	// full feature phase: login PDUs never carry digests (RFC 7143 §13.1).
	HeaderDigest, DataDigest bool
	// MaxRecvDataSegmentLength is the largest data segment the receiver accepts: its
	// own declared value in full feature phase, 8192 during login. 0 means 8192.
	MaxRecvDataSegmentLength uint32
}

// Layout is where each part of a PDU lies (RFC 7143 §11.2):
//
//	[BHS 48][AHS AHSLen][HeaderDigest 4?][data DataLen][pad PadLen][DataDigest 4?]
//
// The header digest covers BHS and AHS; the data digest covers data and padding and is
// present only when there is data.
type Layout struct {
	AHSLen       uint32 // 4 × TotalAHSLength
	HeaderDigest bool
	DataLen      uint32 // DataSegmentLength
	PadLen       uint32 // 0-3 bytes padding the data to a multiple of 4
	DataDigest   bool
}

// NewLayout lays out a PDU a sender frames with ahsLen bytes of AHS (a multiple of 4)
// and dataLen bytes of data.
//
// Preconditions: ahsLen%4 == 0, ahsLen <= 1020, dataLen < 1<<24.
func NewLayout(ahsLen, dataLen uint32, headerDigest, dataDigest bool) Layout {
	if ahsLen%4 != 0 || ahsLen > 255*4 || dataLen > MaxDataSegmentLength {
		panic("iscsi: NewLayout lengths out of range")
	}
	return Layout{
		AHSLen:       ahsLen,
		HeaderDigest: headerDigest,
		DataLen:      dataLen,
		PadLen:       PadLen(dataLen),
		DataDigest:   dataDigest && dataLen > 0,
	}
}

// HeaderLen is the length of BHS and AHS: the bytes the header digest covers.
func (l Layout) HeaderLen() uint32 { return BHSLen + l.AHSLen }

// HeaderEnd is the offset just past the header and its digest, where the data starts.
func (l Layout) HeaderEnd() uint32 {
	if l.HeaderDigest {
		return l.HeaderLen() + DigestLen
	}
	return l.HeaderLen()
}

// DataOffset is the offset of the data segment from the start of the PDU.
func (l Layout) DataOffset() uint32 { return l.HeaderEnd() }

// DataEnd is the offset just past the data and its padding, where the data digest (if
// any) starts.
func (l Layout) DataEnd() uint32 { return l.HeaderEnd() + l.DataLen + l.PadLen }

// Len is the whole PDU length on the wire.
func (l Layout) Len() uint32 {
	if l.DataDigest {
		return l.DataEnd() + DigestLen
	}
	return l.DataEnd()
}

// Preallocated layout errors, so that a malformed PDU on the data path costs no
// allocation. Offsets are BHS byte offsets: 0 opcode, 5 DataSegmentLength.
var (
	errLayoutOpcode = newPDUError(RejectCommandNotSupported, 0,
		"reserved or vendor-specific opcode")
	errLayoutDirection = newPDUError(RejectProtocolError, 0,
		"opcode travels the other way")
	errLayoutDataLen = newPDUError(RejectProtocolError, 5,
		"DataSegmentLength above MaxRecvDataSegmentLength")
)

// Layout checks a received BHS against the connection's settings and returns where the
// parts of the PDU lie. The checks, in field order:
//
//   - @0: a reserved or vendor-specific opcode is a *PDUError with reason command not
//     supported (0x05, RFC 7143 §11.17.1); an opcode for the other direction is a
//     protocol error (0x04).
//   - @5: DataSegmentLength above the receiver's MaxRecvDataSegmentLength is a protocol
//     error (0x04): the peer broke the declaration it got (§13.12), as SPDK and LIO
//     treat it.
//
// TotalAHSLength is taken as is: only the SCSI Command defines AHSs and other opcodes'
// AHSs are skipped, as SPDK does. Whether the PDU is allowed in the connection's state,
// and its field checks against tasks and sequence numbers, are the caller's. It does
// not allocate.
func (b *BHS) Layout(p LayoutParams) (Layout, error) {
	op := b.Opcode()
	if !op.Defined() {
		return Layout{}, errLayoutOpcode
	}
	if op.FromInitiator() != (p.Receiver == RoleTarget) {
		return Layout{}, errLayoutDirection
	}
	maxData := p.MaxRecvDataSegmentLength
	if maxData == 0 {
		maxData = DefaultMaxRecvDataSegmentLength
	}
	n := b.DataSegmentLength()
	if n > maxData {
		return Layout{}, errLayoutDataLen
	}
	return Layout{
		AHSLen:       b.AHSLen(),
		HeaderDigest: p.HeaderDigest,
		DataLen:      n,
		PadLen:       PadLen(n),
		DataDigest:   p.DataDigest && n > 0,
	}, nil
}
