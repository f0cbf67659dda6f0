package nvme

import "hash/crc32"

// castagnoli is the CRC32C table. hash/crc32 recognises it and uses the SSE4.2 / ARMv8
// CRC instructions when the CPU has them; building it once at init keeps the digest
// functions allocation-free.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C returns the CRC32C (Castagnoli) of p: the HDGST and DDGST of NVMe/TCP
// (TCP §3.6.2: "CRC32C", the iSCSI polynomial 0x1EDC6F41, reflected, inverted in and
// out, as in RFC 3720 §12.1).
func CRC32C(p []byte) uint32 { return crc32.Update(0, castagnoli, p) }

// CRC32CUpdate continues a CRC32C over the next piece of data. Start with crc 0; the
// value after the last piece is the digest. Use it for data that arrives or is sent in
// several pieces (iovecs, partial reads).
func CRC32CUpdate(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// PutDigest writes a digest in wire order, little-endian: 0x8a9136aa goes out as
// aa 36 91 8a.
//
// Preconditions: len(b) >= 4.
func PutDigest(b []byte, crc uint32) { le.PutUint32(b[:DigestLen], crc) }

// Digest reads a digest in wire order.
//
// Preconditions: len(b) >= 4.
func Digest(b []byte) uint32 { return le.Uint32(b[:DigestLen]) }

// SetHeaderDigest computes the header digest over hdr[:hlen] and writes it at
// hdr[hlen:hlen+4].
//
// Preconditions: len(hdr) >= hlen+4.
func SetHeaderDigest(hdr []byte, hlen int) {
	PutDigest(hdr[hlen:hlen+DigestLen], CRC32C(hdr[:hlen]))
}

var errHeaderDigest = newPDUError(FESHeaderDigestError, 0, "header digest mismatch")

// CheckHeaderDigest verifies the header digest that follows hdr[:hlen]. A mismatch is a
// *PDUError with FES 03h (header digest error), FEI 0.
//
// Preconditions: len(hdr) >= hlen+4.
func CheckHeaderDigest(hdr []byte, hlen int) error {
	if CRC32C(hdr[:hlen]) != Digest(hdr[hlen:hlen+DigestLen]) {
		return errHeaderDigest
	}
	return nil
}
