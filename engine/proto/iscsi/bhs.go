package iscsi

import (
	"encoding/binary"
	"encoding/hex"
)

var be = binary.BigEndian

// BHSLen is the length of the Basic Header Segment every PDU starts with (RFC 7143
// §11.2.1).
const BHSLen = 48

// BHS is the 48-byte Basic Header Segment (RFC 7143 §11.2.1). It is an array so that a
// connection can keep its receive header in place and decode it without allocating;
// the typed views ([SCSICommand], [DataOut], ...) are decoded from and encoded into it.
//
// Generic layout, big-endian throughout:
//
//	@0      .|I| Opcode          (bit 7 reserved, bit 6 immediate, bits 5..0 opcode)
//	@1      F| opcode-specific   (bit 7 is F, T or fixed 1 depending on the opcode)
//	@2..3   opcode-specific
//	@4      TotalAHSLength       (in 4-byte words)
//	@5..7   DataSegmentLength    (24 bits, bytes, without padding)
//	@8..15  LUN or opcode-specific
//	@16..19 Initiator Task Tag
//	@20..47 opcode-specific
type BHS [BHSLen]byte

// BHSOf returns the BHS at the start of p without copying. It fails only when p is
// shorter than 48 bytes.
func BHSOf(p []byte) (*BHS, error) {
	if len(p) < BHSLen {
		return nil, ErrShortBuffer
	}
	return (*BHS)(p[:BHSLen]), nil
}

// Opcode is byte @0 bits 5..0.
func (b *BHS) Opcode() Opcode { return Opcode(b[0] & 0x3f) }

// Immediate is the I bit, byte @0 bit 6: the command is delivered for immediate
// execution and does not advance CmdSN (RFC 7143 §4.2.2.1).
func (b *BHS) Immediate() bool { return b[0]&0x40 != 0 }

// Final is byte @1 bit 7: F on SCSI Command, Data-In/Out and Text, T (transit) on Login,
// always 1 on the other opcodes.
func (b *BHS) Final() bool { return b[1]&0x80 != 0 }

// TotalAHSLength is byte @4, the AHS length in 4-byte words.
func (b *BHS) TotalAHSLength() uint8 { return b[4] }

// AHSLen is the AHS length in bytes (4 × TotalAHSLength, at most 1020).
func (b *BHS) AHSLen() uint32 { return uint32(b[4]) * 4 }

// DataSegmentLength is bytes @5..7: the data segment payload length, without padding
// (RFC 7143 §11.2.1.5).
func (b *BHS) DataSegmentLength() uint32 {
	return uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7])
}

// SetLengths writes TotalAHSLength (@4, in words) and DataSegmentLength (@5..7). The
// typed encoders write DataSegmentLength from their own field; use this for PDUs built
// field by field.
//
// Preconditions: dataLen < 1<<24.
func (b *BHS) SetLengths(ahsWords uint8, dataLen uint32) {
	if dataLen >= 1<<24 {
		panic("iscsi: DataSegmentLength above 24 bits")
	}
	b[4] = ahsWords
	put24(b[5:8], dataLen)
}

// LUN is bytes @8..15 on the opcodes that carry one (SCSI Command, Data-In/Out, R2T,
// NOP, TMF Request, Text, SNACK, Async Message).
func (b *BHS) LUN() LUN { return LUN(b[8:16]) }

// ITT is the Initiator Task Tag, bytes @16..19, on every opcode (0xffffffff on Reject
// and Async Message).
func (b *BHS) ITT() uint32 { return be.Uint32(b[16:20]) }

// TTT is bytes @20..23: the Target Transfer Tag on Data-In/Out, R2T, NOP and Text.
func (b *BHS) TTT() uint32 { return be.Uint32(b[20:24]) }

// CmdSN is bytes @24..27 on the initiator opcodes that carry one (SCSI Command, NOP-Out,
// TMF, Login, Text, Logout); reserved on Data-Out and SNACK.
func (b *BHS) CmdSN() uint32 { return be.Uint32(b[24:28]) }

// ExpStatSN is bytes @28..31 on every initiator opcode.
func (b *BHS) ExpStatSN() uint32 { return be.Uint32(b[28:32]) }

// PutSequence writes StatSN (@24), ExpCmdSN (@28) and MaxCmdSN (@32) into a target PDU
// header: every target opcode carries them at these offsets (R2T, Data-In without the S
// bit and Reject carry StatSN for information only). Connections stamp them just before
// sending, after the typed encoder wrote the rest.
func (b *BHS) PutSequence(statSN, expCmdSN, maxCmdSN uint32) {
	be.PutUint32(b[24:28], statSN)
	be.PutUint32(b[28:32], expCmdSN)
	be.PutUint32(b[32:36], maxCmdSN)
}

// LUN is the 8-byte Logical Unit Number field, opaque here: its SAM addressing methods
// belong to the SCSI layer.
type LUN [8]byte

// ISID is the 6-byte initiator part of the session identifier, Login bytes @8..13
// (RFC 7143 §11.12.5): T (2 bits), A (6 bits), B (16), C (8), D (16).
type ISID [6]byte

// Type is the T field, byte @8 bits 7..6: 0 OUI format, 1 EN (IANA enterprise number),
// 2 random, 3 reserved.
func (i ISID) Type() uint8 { return i[0] >> 6 }

// String formats the ISID as 12 hex digits, as initiators and targets log it.
func (i ISID) String() string { return hex.EncodeToString(i[:]) }

func put24(p []byte, v uint32) {
	p[0] = byte(v >> 16)
	p[1] = byte(v >> 8)
	p[2] = byte(v)
}

// putHeader writes byte @0 (opcode and I bit), byte @1 and the DataSegmentLength of a
// BHS being encoded, after clearing it.
func (b *BHS) putHeader(op Opcode, immediate bool, flags byte, dataLen uint32) {
	if dataLen >= 1<<24 {
		panic("iscsi: DataSegmentLength above 24 bits")
	}
	clear(b[:])
	b[0] = byte(op)
	if immediate {
		b[0] |= 0x40
	}
	b[1] = flags
	put24(b[5:8], dataLen)
}

func bit(v bool, mask byte) byte {
	if v {
		return mask
	}
	return 0
}
