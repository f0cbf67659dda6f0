package xts

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
)

// Key sizes New accepts: Key1 (the data key) followed by Key2 (the tweak key), each one AES
// key, as IEEE 1619 and dm-crypt's "aes-xts-plain64" lay them out.
const (
	// KeySize128 selects AES-128-XTS (two 128-bit halves). It exists for the IEEE 1619
	// vectors and for volumes made elsewhere; new volumes use KeySize256.
	KeySize128 = 32
	// KeySize256 selects AES-256-XTS (two 256-bit halves), the crypt layer's default.
	KeySize256 = 64
)

// Sector sizes EncryptSectors and DecryptSectors accept: powers of two in this range.
// 512 is the smallest logical block any protocol exports; 64 KiB bounds the work one tweak
// covers far below XTS's limit of 2^20 AES blocks per data unit (IEEE 1619-2018, 5.1).
const (
	MinSectorSize = 512
	MaxSectorSize = 65536
)

// Errors the per-I/O calls return. They are preallocated so that a failed call, like a
// successful one, allocates nothing; each says which rule the call broke.
var (
	// ErrSectorSize: the sector size is not a power of two in [MinSectorSize, MaxSectorSize].
	ErrSectorSize = errors.New("xts: sector size must be a power of two from 512 to 65536")
	// ErrLength: dst and src differ in length, or are not a whole number of sectors.
	ErrLength = errors.New("xts: dst and src must be the same whole number of sectors")
	// ErrOverlap: dst and src share memory without being the same buffer. In-place
	// (identical) is fine; a shifted overlap would read bytes the call already wrote.
	ErrOverlap = errors.New("xts: dst and src overlap without being the same buffer")
	// ErrSectorRange: the last sector number of the I/O does not fit in 64 bits. Tweaks are
	// plain64 (dm-crypt's name): no volume has 2^64 sectors, so a wrap is a caller's bug.
	ErrSectorRange = errors.New("xts: sector number past 2^64-1")
	// ErrClosed: the Cipher was closed.
	ErrClosed = errors.New("xts: cipher closed")
	// ErrOpenSSL: libcrypto refused an operation. From New and Clone it arrives wrapped in an
	// *OpenSSLError with libcrypto's reason; from the per-I/O calls it arrives bare (no
	// allocation there), and the bytes of dst are then unspecified.
	ErrOpenSSL = errors.New("xts: openssl failed")
)

// Errors New returns.
var (
	// ErrKeySize: the key is neither KeySize128 nor KeySize256 bytes.
	ErrKeySize = errors.New("xts: key must be 32 or 64 bytes")
	// ErrDuplicateKeyHalves: Key1 equals Key2. XTS's security argument needs independent
	// halves (Rogaway's XEX analysis), IEEE 1619-2018 and NIST SP 800-38E forbid equal ones,
	// and OpenSSL refuses them (PROV_R_XTS_DUPLICATED_KEYS); refusing here gives the cgo and
	// the pure-Go builds the same answer.
	ErrDuplicateKeyHalves = errors.New("xts: key halves are equal")
)

// OpenSSLError is libcrypto's account of a failed setup call (New, Clone): which call
// failed and the first error on the thread's OpenSSL error queue. It matches ErrOpenSSL.
type OpenSSLError struct {
	Op     string // the libcrypto call that failed
	Code   uint64 // ERR_get_error's packed code; 0 when libcrypto queued none
	Reason string // ERR_error_string_n's text
}

func (e *OpenSSLError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("openssl %s failed", e.Op)
	}
	return fmt.Sprintf("openssl %s: %s", e.Op, e.Reason)
}

// Is makes errors.Is(err, ErrOpenSSL) hold for every *OpenSSLError.
func (e *OpenSSLError) Is(target error) bool { return target == ErrOpenSSL }

// EncryptSectors encrypts src into dst, sector by sector: sector i of the buffer (counting
// from 0) is enciphered under the tweak firstSector+i, a 128-bit little-endian integer (IEEE
// 1619's data unit sequence number; dm-crypt's plain64). dst and src are either the same
// buffer (in place) or disjoint, and the same whole number of sectors long; an empty buffer
// is a no-op. Neither is retained: the caller may reuse both once the call returns. It
// allocates nothing, and in the OpenSSL build the whole I/O costs one cgo call.
//
// Preconditions: runs on the goroutine that owns c (a Cipher is not safe for concurrent
// use).
func (c *Cipher) EncryptSectors(dst, src []byte, firstSector uint64, sectorSize int) error {
	if err := checkIO(dst, src, firstSector, sectorSize); err != nil {
		return err
	}
	return c.crypt(dst, src, firstSector, sectorSize, true)
}

// DecryptSectors is EncryptSectors' inverse, under the same rules: DecryptSectors(p, c, s,
// n) undoes EncryptSectors(c, p, s, n).
//
// Preconditions: runs on the goroutine that owns c.
func (c *Cipher) DecryptSectors(dst, src []byte, firstSector uint64, sectorSize int) error {
	if err := checkIO(dst, src, firstSector, sectorSize); err != nil {
		return err
	}
	return c.crypt(dst, src, firstSector, sectorSize, false)
}

// checkKey applies New's rules before any backend sees the key. The halves are compared in
// constant time: the comparison must not leak where two secret halves first differ.
func checkKey(key []byte) error {
	if len(key) != KeySize128 && len(key) != KeySize256 {
		return fmt.Errorf("xts: new cipher from a %d-byte key: %w", len(key), ErrKeySize)
	}
	half := len(key) / 2
	if subtle.ConstantTimeCompare(key[:half], key[half:]) == 1 {
		return fmt.Errorf("xts: new cipher: %w", ErrDuplicateKeyHalves)
	}
	return nil
}

// checkIO applies the per-I/O rules that both backends share, so that they fail alike and
// the C side never sees a length, a size or an overlap it would have to judge.
func checkIO(dst, src []byte, firstSector uint64, sectorSize int) error {
	if sectorSize < MinSectorSize || sectorSize > MaxSectorSize || sectorSize&(sectorSize-1) != 0 {
		return ErrSectorSize
	}
	if len(dst) != len(src) || len(src)%sectorSize != 0 {
		return ErrLength
	}
	if n := uint64(len(src) / sectorSize); n > 0 && n-1 > math.MaxUint64-firstSector {
		return ErrSectorRange
	}
	if inexactOverlap(dst, src) {
		return ErrOverlap
	}
	return nil
}
