//go:build !cgo || !linux

package xts

import (
	"crypto/aes"
	"fmt"

	xcrypto "golang.org/x/crypto/xts"
)

// Backend names the implementation this build links, so that the crypt layer can report
// a volume that runs on this slow path.
const Backend = "go"

// Cipher is one volume's XTS key. This build (CGO_ENABLED=0) has no libcrypto and uses
// golang.org/x/crypto/xts: the same bytes as the OpenSSL build, ten to twenty times slower
// (about 0.3 GB/s a core against 4-5 GB/s on the project's machines), so it exists to let sluice
// build and test without cgo, not to serve encrypted volumes in production. Its expanded
// key lives in Go memory, which the garbage collector frees but never wipes.
//
// A Cipher is not safe for concurrent use: each reactor uses its own (Clone).
//
// Postconditions of New and Clone: the caller owes Close, as with the OpenSSL build.
type Cipher struct {
	c *xcrypto.Cipher // nil once closed
}

// New makes a Cipher for key: Key1 followed by Key2, KeySize256 bytes for AES-256-XTS or
// KeySize128 for AES-128-XTS. It refuses equal halves (ErrDuplicateKeyHalves).
func New(key []byte) (*Cipher, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	c, err := xcrypto.NewCipher(aes.NewCipher, key)
	if err != nil {
		return nil, fmt.Errorf("xts: new aes-%d-xts cipher: %w", len(key)*4, err)
	}
	return &Cipher{c: c}, nil
}

// Clone returns a Cipher with the same key for another reactor. x/crypto's Cipher is
// immutable once made, so the clone shares it.
//
// Preconditions: runs on the goroutine that owns c.
func (c *Cipher) Clone() (*Cipher, error) {
	if c.c == nil {
		return nil, ErrClosed
	}
	return &Cipher{c: c.c}, nil
}

// Close drops the key. A closed Cipher refuses every call with ErrClosed; closing it again
// does nothing.
//
// Preconditions: runs on the goroutine that owns c.
func (c *Cipher) Close() error {
	c.c = nil
	return nil
}

func (c *Cipher) crypt(dst, src []byte, firstSector uint64, sectorSize int, encrypt bool) error {
	if c.c == nil {
		return ErrClosed
	}
	sector := firstSector
	for off := 0; off < len(src); off += sectorSize {
		d, s := dst[off:off+sectorSize], src[off:off+sectorSize]
		if encrypt {
			c.c.Encrypt(d, s, sector)
		} else {
			c.c.Decrypt(d, s, sector)
		}
		sector++
	}
	return nil
}
