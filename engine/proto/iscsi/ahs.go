package iscsi

// AHSType is the AHSType field of an Additional Header Segment, byte @2 bits 5..0 (RFC
// 7143 §11.2.2.1). Bits 7..6 are reserved; 3-59 are reserved, 60-63 are for non-iSCSI
// extensions.
type AHSType uint8

// AHS types (RFC 7143 §11.2.2.1).
const (
	AHSExtendedCDB    AHSType = 1 // §11.2.2.3: CDB bytes past the 16 in the BHS
	AHSBidiReadLength AHSType = 2 // §11.2.2.4: bidirectional expected read length
)

// ahsHeaderLen is AHSLength (2 bytes), AHSType and the AHS-specific byte.
const ahsHeaderLen = 4

// MaxCDBLen bounds the CDBs this package assembles: 16 bytes in the BHS plus an
// Extended CDB AHS. SPC allows variable-length CDBs up to 260 bytes.
const MaxCDBLen = 260

// AHS is one Additional Header Segment (RFC 7143 §11.2.2):
//
//	@0..1 AHSLength: bytes from @3 to the end, without padding
//	@2    AHSType
//	@3    AHS-specific
//	@4..  data, then padding to a multiple of 4 bytes
type AHS struct {
	Type     AHSType
	Specific uint8
	Data     []byte // AHSLength-1 bytes at @4, aliasing the parsed buffer
}

var (
	errAHSShort  = newPDUError(RejectInvalidPDUField, 4, "AHS runs past TotalAHSLength")
	errAHSLength = newPDUError(RejectInvalidPDUField, 4, "AHSLength is 0")
	errAHSDup    = newPDUError(RejectInvalidPDUField, 4, "AHS type repeated")
	errAHSBidi   = newPDUError(RejectInvalidPDUField, 4,
		"bidirectional read length AHS with AHSLength other than 5")
	errAHSCDB = newPDUError(RejectInvalidPDUField, 4, "extended CDB above 260 bytes")
)

// NextAHS parses the AHS at the start of p (the AHS area of a PDU, 4×TotalAHSLength
// bytes) and returns it with the bytes after its padding. Errors are *PDUError with
// reason invalid PDU field. It does not allocate.
func NextAHS(p []byte) (a AHS, rest []byte, err error) {
	if len(p) < ahsHeaderLen {
		return AHS{}, nil, errAHSShort
	}
	n := int(be.Uint16(p[0:2]))
	if n == 0 {
		return AHS{}, nil, errAHSLength
	}
	end := 3 + n
	padded := (end + 3) &^ 3
	if padded > len(p) {
		return AHS{}, nil, errAHSShort
	}
	return AHS{Type: AHSType(p[2] & 0x3f), Specific: p[3], Data: p[4:end]}, p[padded:], nil
}

// CommandAHS holds the AHSs a SCSI Command may carry (RFC 7143 §11.3.5).
type CommandAHS struct {
	// ExtendedCDB is the CDB past its first 16 bytes (which sit in the BHS), aliasing
	// the parsed buffer; nil when the CDB fits in the BHS.
	ExtendedCDB []byte
	// BidiReadLength is the expected read length of a bidirectional command, valid when
	// HasBidiReadLength; ExpectedDataTransferLength then holds the write length.
	BidiReadLength    uint32
	HasBidiReadLength bool
}

// ParseCommandAHS parses the AHS area of a SCSI Command. An AHS type seen twice, a
// malformed length or a CDB above 260 bytes is a *PDUError with reason invalid PDU
// field; AHS types this package does not know are skipped. It does not allocate.
func ParseCommandAHS(p []byte) (CommandAHS, error) {
	var c CommandAHS
	seenCDB := false
	for len(p) > 0 {
		a, rest, err := NextAHS(p)
		if err != nil {
			return CommandAHS{}, err
		}
		p = rest
		switch a.Type {
		case AHSExtendedCDB:
			if seenCDB {
				return CommandAHS{}, errAHSDup
			}
			if CDBLen+len(a.Data) > MaxCDBLen {
				return CommandAHS{}, errAHSCDB
			}
			seenCDB = true
			c.ExtendedCDB = a.Data
		case AHSBidiReadLength:
			if c.HasBidiReadLength {
				return CommandAHS{}, errAHSDup
			}
			if len(a.Data) != 4 {
				return CommandAHS{}, errAHSBidi
			}
			c.BidiReadLength = be.Uint32(a.Data)
			c.HasBidiReadLength = true
		}
	}
	return c, nil
}

// AppendExtendedCDBAHS appends an Extended CDB AHS carrying tail, the CDB bytes past the
// first 16 (RFC 7143 §11.2.2.3: AHSLength is CDB length - 15, counting the reserved
// AHS-specific byte), padded to 4 bytes.
//
// Preconditions: 0 < len(tail) <= 244.
func AppendExtendedCDBAHS(dst, tail []byte) []byte {
	if len(tail) == 0 || CDBLen+len(tail) > MaxCDBLen {
		panic("iscsi: extended CDB tail length out of range")
	}
	n := 1 + len(tail)
	dst = append(dst, byte(n>>8), byte(n), byte(AHSExtendedCDB), 0)
	dst = append(dst, tail...)
	return appendPad(dst, 3+n)
}

// AppendBidiReadAHS appends a Bidirectional Read Expected Data Transfer Length AHS
// (RFC 7143 §11.2.2.4: AHSLength 5, 8 bytes in all).
func AppendBidiReadAHS(dst []byte, readLen uint32) []byte {
	return append(dst, 0, 5, byte(AHSBidiReadLength), 0,
		byte(readLen>>24), byte(readLen>>16), byte(readLen>>8), byte(readLen))
}

// appendPad appends the zero bytes that pad a segment of n bytes to a multiple of 4.
func appendPad(dst []byte, n int) []byte {
	var zero [3]byte
	return append(dst, zero[:PadLen(uint32(n))]...)
}
