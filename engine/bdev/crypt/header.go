package crypt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The header record, version 1: 256 bytes, little-endian, at the start of each copy.
//
//	off  len  field
//	  0    8  magic "SLUICECR"
//	  8    2  version (1)
//	 10    2  record length in bytes (256)
//	 12    4  flags (0: none defined)
//	 16    8  generation: bumped by every rekey, so that open prefers the newer copy
//	 24    4  block size: the XTS data unit and the crypt bdev's block size
//	 28    4  copy stride S: copy B's byte offset, max(4096, block size)
//	 32    8  data offset in bytes (2S): where LBA 0 of the crypt bdev lies on the base
//	 40   16  volume UUID: the crypt bdev's identity, carried by replicas of the base
//	 56    1  cipher (1: AES-256-XTS, tweak = LBA as a 128-bit little-endian integer)
//	 57    1  KEK source (1: key file, 2: passphrase through argon2id)
//	 58    1  wrap (1: AES-256-GCM)
//	 59    1  reserved (0)
//	 60    4  argon2id time (passes); 0 for a key file
//	 64    4  argon2id memory in KiB; 0 for a key file
//	 68    1  argon2id threads (lanes); 0 for a key file
//	 69    3  reserved (0)
//	 72   32  argon2id salt; zeros for a key file
//	104   12  GCM nonce
//	116    4  reserved (0)
//	120   64  wrapped data key: Key1 || Key2, AES-256-GCM ciphertext
//	184   16  GCM tag
//	200   52  reserved (0)
//	252    4  CRC-32C of bytes 0-251
//
// GCM's additional data is bytes 0-119: the geometry, identity and KDF parameters are
// authenticated with the key, so that a header edited to another block size or data
// offset fails to open rather than decrypt to garbage. The CRC tells a damaged record
// (try the other copy) from a wrong KEK (authentication fails on an intact record).
// Reserved bytes must be zero, so that a later version can give them a meaning.
const (
	headerMagic   = "SLUICECR"
	headerVersion = 1
	headerLen     = 256

	offVersion    = 8
	offLen        = 10
	offFlags      = 12
	offGeneration = 16
	offBlockSize  = 24
	offStride     = 28
	offDataOffset = 32
	offUUID       = 40
	offCipher     = 56
	offKEK        = 57
	offWrap       = 58
	offRsvd59     = 59
	offKDFTime    = 60
	offKDFMemory  = 64
	offKDFThreads = 68
	offRsvd69     = 69
	offSalt       = 72
	offNonce      = 104
	offRsvd116    = 116
	offWrapped    = 120
	offRsvd200    = 200
	offCRC        = 252

	wrappedKeyLen = dataKeyLen + 16 // GCM appends a 16-byte tag
)

// Compile-time layout checks: each field ends where the next begins.
const (
	_ = uint(offNonce+12-offRsvd116) + uint(offRsvd116-offNonce-12)
	_ = uint(offWrapped+wrappedKeyLen-offRsvd200) + uint(offRsvd200-offWrapped-wrappedKeyLen)
	_ = uint(offCRC+4-headerLen) + uint(headerLen-offCRC-4)
	_ = uint(offSalt+saltLen-offNonce) + uint(offNonce-offSalt-saltLen)
)

// Cipher, KEK-source and wrap codes (bytes 56, 57, 58).
const (
	cipherAES256XTS = 1
	wrapAES256GCM   = 1
)

// KEKSource says how the operator provides the key-encryption key.
type KEKSource uint8

// KEK sources.
const (
	KEKKeyFile    KEKSource = 1 // 32 bytes read from a file
	KEKPassphrase KEKSource = 2 // argon2id of a passphrase, parameters in the header
)

func (k KEKSource) String() string {
	switch k {
	case KEKKeyFile:
		return "key_file"
	case KEKPassphrase:
		return "passphrase"
	}
	return fmt.Sprintf("KEKSource(%d)", uint8(k))
}

// KDFParams are argon2id's parameters (RFC 9106), stored with the wrapped key so that a
// volume opens with the parameters it was wrapped under whatever the defaults became.
type KDFParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// Bounds a header's KDF parameters must respect. They cap what a crafted header (a
// replica from elsewhere, a damaged disk) can make the daemon spend when it opens the
// volume: 1 GiB and a hundred passes.
const (
	maxKDFTime      = 100
	maxKDFMemoryKiB = 1 << 20
	maxKDFThreads   = 64
)

// Bounds on the geometry: a block size any bdev may have, and a copy stride that holds a
// copy in its own block.
const (
	minBlockSize = 512
	maxBlockSize = 65536
	minStride    = 4096
)

// Header is a decoded header record.
type Header struct {
	Generation uint64
	BlockSize  uint32
	Stride     uint32 // copy B's byte offset
	DataOffset uint64
	UUID       [16]byte
	KEK        KEKSource
	KDF        KDFParams // zero for a key file
	Salt       [saltLen]byte
	Nonce      [nonceLen]byte
	WrappedKey [wrappedKeyLen]byte
}

// Decoding errors. ErrNoHeader: the record does not start with the magic (a base never
// formatted, or another format); ErrCorruptHeader: it does, but it is damaged or
// describes something this version cannot serve.
var (
	ErrNoHeader      = errors.New("crypt: no crypt header")
	ErrCorruptHeader = errors.New("crypt: corrupt crypt header")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// strideFor is the copy stride of a volume of block size bs.
func strideFor(bs uint32) uint32 { return max(minStride, bs) }

// encode lays h out as a record, CRC included.
func (h *Header) encode() [headerLen]byte {
	var b [headerLen]byte
	copy(b[:], headerMagic)
	le := binary.LittleEndian
	le.PutUint16(b[offVersion:], headerVersion)
	le.PutUint16(b[offLen:], headerLen)
	le.PutUint64(b[offGeneration:], h.Generation)
	le.PutUint32(b[offBlockSize:], h.BlockSize)
	le.PutUint32(b[offStride:], h.Stride)
	le.PutUint64(b[offDataOffset:], h.DataOffset)
	copy(b[offUUID:], h.UUID[:])
	b[offCipher] = cipherAES256XTS
	b[offKEK] = byte(h.KEK)
	b[offWrap] = wrapAES256GCM
	le.PutUint32(b[offKDFTime:], h.KDF.Time)
	le.PutUint32(b[offKDFMemory:], h.KDF.MemoryKiB)
	b[offKDFThreads] = h.KDF.Threads
	copy(b[offSalt:], h.Salt[:])
	copy(b[offNonce:], h.Nonce[:])
	copy(b[offWrapped:], h.WrappedKey[:])
	le.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], castagnoli))
	return b
}

// aad is the data GCM authenticates beside the wrapped key: the record up to it.
func (h *Header) aad() []byte {
	b := h.encode()
	return b[:offWrapped]
}

// decodeHeader parses the record at the start of b. On error the Header is zero.
func decodeHeader(b []byte) (Header, error) {
	if len(b) < headerLen {
		return Header{}, fmt.Errorf("%d bytes, short of a %d-byte record: %w",
			len(b), headerLen, ErrNoHeader)
	}
	b = b[:headerLen]
	if string(b[:len(headerMagic)]) != headerMagic {
		return Header{}, ErrNoHeader
	}
	le := binary.LittleEndian
	if got, want := le.Uint32(b[offCRC:]), crc32.Checksum(b[:offCRC], castagnoli); got != want {
		return Header{}, fmt.Errorf("checksum %#08x, want %#08x: %w", got, want, ErrCorruptHeader)
	}
	if v := le.Uint16(b[offVersion:]); v != headerVersion {
		return Header{}, fmt.Errorf("version %d, this build reads %d: %w",
			v, headerVersion, ErrCorruptHeader)
	}
	if n := le.Uint16(b[offLen:]); n != headerLen {
		return Header{}, fmt.Errorf("record length %d, want %d: %w", n, headerLen, ErrCorruptHeader)
	}
	if !allZero(b[offFlags:offGeneration]) || b[offRsvd59] != 0 || !allZero(b[offRsvd69:offSalt]) ||
		!allZero(b[offRsvd116:offWrapped]) || !allZero(b[offRsvd200:offCRC]) {
		return Header{}, fmt.Errorf("flags or reserved bytes set: %w", ErrCorruptHeader)
	}
	if b[offCipher] != cipherAES256XTS || b[offWrap] != wrapAES256GCM {
		return Header{}, fmt.Errorf("cipher %d wrap %d, want %d and %d: %w",
			b[offCipher], b[offWrap], cipherAES256XTS, wrapAES256GCM, ErrCorruptHeader)
	}
	h := Header{
		Generation: le.Uint64(b[offGeneration:]),
		BlockSize:  le.Uint32(b[offBlockSize:]),
		Stride:     le.Uint32(b[offStride:]),
		DataOffset: le.Uint64(b[offDataOffset:]),
		KEK:        KEKSource(b[offKEK]),
		KDF: KDFParams{Time: le.Uint32(b[offKDFTime:]), MemoryKiB: le.Uint32(b[offKDFMemory:]),
			Threads: b[offKDFThreads]},
	}
	copy(h.UUID[:], b[offUUID:])
	copy(h.Salt[:], b[offSalt:])
	copy(h.Nonce[:], b[offNonce:])
	copy(h.WrappedKey[:], b[offWrapped:])
	if err := h.check(); err != nil {
		return Header{}, fmt.Errorf("%w: %w", err, ErrCorruptHeader)
	}
	return h, nil
}

// check applies the rules a record must follow beyond its bytes being well formed, so
// that encode never writes and decodeHeader never accepts a header open cannot serve.
func (h *Header) check() error {
	bs := h.BlockSize
	switch {
	case bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0:
		return fmt.Errorf("block size %d is not a power of two in [%d, %d]",
			bs, minBlockSize, maxBlockSize)
	case h.Stride != strideFor(bs):
		return fmt.Errorf("copy stride %d, want %d for %d-byte blocks", h.Stride, strideFor(bs), bs)
	case h.DataOffset != 2*uint64(h.Stride):
		return fmt.Errorf("data offset %d, want %d", h.DataOffset, 2*uint64(h.Stride))
	}
	switch h.KEK {
	case KEKKeyFile:
		if h.KDF != (KDFParams{}) || h.Salt != ([saltLen]byte{}) {
			return errors.New("KDF parameters on a key-file volume")
		}
	case KEKPassphrase:
		return h.KDF.check()
	default:
		return fmt.Errorf("KEK source %d", uint8(h.KEK))
	}
	return nil
}

func (k KDFParams) check() error {
	switch {
	case k.Time < 1 || k.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d not in [1, %d]", k.Time, maxKDFTime)
	case k.Threads < 1 || k.Threads > maxKDFThreads:
		return fmt.Errorf("argon2id threads %d not in [1, %d]", k.Threads, maxKDFThreads)
	case k.MemoryKiB < 8*uint32(k.Threads) || k.MemoryKiB > maxKDFMemoryKiB:
		// RFC 9106 3.1: at least 8 KiB per lane.
		return fmt.Errorf("argon2id memory %d KiB not in [%d, %d]",
			k.MemoryKiB, 8*uint32(k.Threads), maxKDFMemoryKiB)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// hasMagic reports whether b starts like a header record, damaged or not: format
// refuses to overwrite one without force.
func hasMagic(b []byte) bool {
	return len(b) >= len(headerMagic) && string(b[:len(headerMagic)]) == headerMagic
}

// pickHeader finds the copies in region, the first bytes of the base (two copy strides of
// the largest block size, or the whole base when smaller). With copy A valid it returns A,
// or copy B at A's stride when B's generation is higher (a rekey that wrote B and not
// yet A). With A damaged, B's place is unknown: it takes the valid copy at the smallest
// stride, which is the current volume's, since writing a copy A zeroes every smaller
// stride; a larger one can only be a former volume's, left in what is now data (format
// wipes those too).
func pickHeader(region []byte) (Header, error) {
	a, errA := decodeHeader(region)
	if errA == nil {
		if s := uint64(a.Stride); s+headerLen <= uint64(len(region)) {
			if b, err := decodeHeader(region[s:]); err == nil && b.Stride == a.Stride &&
				b.Generation > a.Generation {
				return b, nil
			}
		}
		return a, nil
	}
	for s := uint64(minStride); s <= maxBlockSize && s+headerLen <= uint64(len(region)); s *= 2 {
		if b, err := decodeHeader(region[s:]); err == nil && uint64(b.Stride) == s {
			return b, nil
		}
	}
	if errors.Is(errA, ErrNoHeader) {
		return Header{}, errA
	}
	return Header{}, fmt.Errorf("copy A: %w; no valid copy B", errA)
}
