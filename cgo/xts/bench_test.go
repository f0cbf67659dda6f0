package xts

import (
	"fmt"
	"testing"
)

// The XTS benchmarks compare this package (OpenSSL through one cgo call per I/O) with
// golang.org/x/crypto/xts applied sector by sector, on the same I/O sizes and sector sizes:
// the reason the package exists is the ratio between the two, so both print GB/s side by
// side. Run: go test -run '^$' -bench XTS ./cgo/xts/

// benchKey is an AES-256-XTS key with distinct halves; its value does not matter.
var benchKey = func() []byte {
	k := make([]byte, KeySize256)
	for i := range k {
		k[i] = byte(i*7 + 1)
	}
	return k
}()

var benchSectorSizes = []int{512, 4096}

func BenchmarkXTSOpenSSLEncrypt4K(b *testing.B)   { benchOpenSSL(b, 4<<10, true) }
func BenchmarkXTSOpenSSLDecrypt4K(b *testing.B)   { benchOpenSSL(b, 4<<10, false) }
func BenchmarkXTSOpenSSLEncrypt128K(b *testing.B) { benchOpenSSL(b, 128<<10, true) }
func BenchmarkXTSOpenSSLDecrypt128K(b *testing.B) { benchOpenSSL(b, 128<<10, false) }
func BenchmarkXTSGoEncrypt4K(b *testing.B)        { benchGo(b, 4<<10, true) }
func BenchmarkXTSGoDecrypt4K(b *testing.B)        { benchGo(b, 4<<10, false) }
func BenchmarkXTSGoEncrypt128K(b *testing.B)      { benchGo(b, 128<<10, true) }
func BenchmarkXTSGoDecrypt128K(b *testing.B)      { benchGo(b, 128<<10, false) }

func benchOpenSSL(b *testing.B, size int, encrypt bool) {
	if Backend != "openssl" {
		b.Skipf("this build's Cipher is %q, not OpenSSL (CGO_ENABLED=0?)", Backend)
	}
	for _, sectorSize := range benchSectorSizes {
		b.Run(fmt.Sprintf("sector=%d", sectorSize), func(b *testing.B) {
			c := newCipher(b, benchKey)
			src, dst := make([]byte, size), make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var sector uint64
			for b.Loop() {
				var err error
				if encrypt {
					err = c.EncryptSectors(dst, src, sector, sectorSize)
				} else {
					err = c.DecryptSectors(dst, src, sector, sectorSize)
				}
				if err != nil {
					b.Fatal(err)
				}
				sector += uint64(size / sectorSize)
			}
		})
	}
}

func benchGo(b *testing.B, size int, encrypt bool) {
	for _, sectorSize := range benchSectorSizes {
		b.Run(fmt.Sprintf("sector=%d", sectorSize), func(b *testing.B) {
			ref := newRef(b, benchKey)
			src, dst := make([]byte, size), make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var sector uint64
			for b.Loop() {
				refCrypt(ref, dst, src, sector, sectorSize, encrypt)
				sector += uint64(size / sectorSize)
			}
		})
	}
}
