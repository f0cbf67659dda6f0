package iscsi

import (
	"encoding/binary"
	"hash/crc32"
)

// DigestLen is the length of HeaderDigest and DataDigest (CRC32C, RFC 7143 §13.1).
const DigestLen = 4

// castagnoli is the CRC32C table. hash/crc32 recognises it and uses the SSE4.2 / ARMv8
// CRC instructions when the CPU has them; building it once at init keeps the digest
// functions allocation-free.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C returns the CRC32C of p: the polynomial 0x1EDC6F41 (0x11edc6f41 with the x**32
// term, RFC 7143 §13.1), reflected, inverted in and out.
func CRC32C(p []byte) uint32 { return crc32.Update(0, castagnoli, p) }

// CRC32CUpdate continues a CRC32C over the next piece of data: start with crc 0; the
// value after the last piece is the digest. It serves data that arrives or leaves in
// several pieces (partial reads, iovecs); it allocates nothing.
func CRC32CUpdate(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// PutDigest writes a digest in wire order. iSCSI sends the CRC least significant byte
// first: the CRC of 32 zero bytes, 0x8a9136aa, goes out as aa 36 91 8a (RFC 3720 B.4,
// kept by RFC 7143; libiscsi, open-iscsi and SPDK agree).
//
// Preconditions: len(b) >= 4.
func PutDigest(b []byte, crc uint32) { binary.LittleEndian.PutUint32(b[:DigestLen], crc) }

// Digest reads a digest in wire order.
//
// Preconditions: len(b) >= 4.
func Digest(b []byte) uint32 { return binary.LittleEndian.Uint32(b[:DigestLen]) }

// HeaderDigest computes the header digest, which covers the BHS and the AHS that
// precede it (RFC 7143 §11.2.3, §13.1).
func HeaderDigest(b *BHS, ahs []byte) uint32 {
	return CRC32CUpdate(CRC32C(b[:]), ahs)
}

// PadLen is the number of padding bytes that follow a segment of n bytes: data segments
// and AHSs are padded to a multiple of 4 (RFC 7143 §11.2.3).
func PadLen(n uint32) uint32 { return -n & 3 }

var zeroPad [3]byte

// DataDigest computes the data digest of a whole data segment sent with zero padding:
// the digest covers the data and its padding (RFC 7143 §13.1: "Padding bytes, when
// present in a segment covered by a CRC, SHOULD be set to 0 and are included in the
// CRC").
func DataDigest(data []byte) uint32 {
	return CRC32CUpdate(CRC32C(data), zeroPad[:PadLen(uint32(len(data)))])
}

// DataDigestPad finishes a data digest computed piece by piece with [CRC32CUpdate] over
// dataLen bytes of data, adding zero padding. A receiver must instead run the CRC over
// the padding bytes it actually received, since a sender SHOULD but need not zero them.
func DataDigestPad(crc, dataLen uint32) uint32 {
	return CRC32CUpdate(crc, zeroPad[:PadLen(dataLen)])
}

// Preallocated digest errors. A header digest error leaves no trustworthy length to
// find the next PDU, so the connection must go (RFC 7143 §7.8: discard or close;
// without markers only closing works). A data digest error is answered with a Reject
// with reason 0x02 and the PDU is discarded (§7.8, §11.17.1).
var (
	errHeaderDigest = newPDUError(0, BHSLen, "header digest mismatch")
	errDataDigest   = newPDUError(RejectDataDigest, 5, "data digest mismatch")
)

// CheckHeaderDigest compares the received header digest with the one computed over the
// BHS and AHS. A mismatch is a fatal *PDUError (drop the connection).
func CheckHeaderDigest(b *BHS, ahs []byte, got uint32) error {
	if HeaderDigest(b, ahs) != got {
		return errHeaderDigest
	}
	return nil
}

// CheckDataDigest compares a received data digest with the computed one (over data and
// the received padding). A mismatch is a *PDUError with reason data digest error.
func CheckDataDigest(computed, got uint32) error {
	if computed != got {
		return errDataDigest
	}
	return nil
}
