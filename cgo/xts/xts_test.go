package xts

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	xcrypto "golang.org/x/crypto/xts"
	"golang.org/x/sys/unix"
)

type vector struct {
	n       int
	key     []byte
	sector  uint64
	pt, ct  []byte
	fromRow int
}

// loadVectors reads testdata/ieee1619.txt (its header describes the format).
func loadVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open("testdata/ieee1619.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		vs    []vector
		field string
		vals  = map[string]string{}
		row   int
		start int
	)
	flush := func() {
		if len(vals) == 0 {
			return
		}
		n, err1 := strconv.Atoi(vals["vector"])
		sector, err2 := strconv.ParseUint(vals["sector"], 0, 64)
		key, err3 := hex.DecodeString(vals["key"])
		pt, err4 := hex.DecodeString(vals["pt"])
		ct, err5 := hex.DecodeString(vals["ct"])
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil || len(pt) != len(ct) {
			t.Fatalf("ieee1619.txt record at line %d: %v (pt %d bytes, ct %d)", start, err, len(pt), len(ct))
		}
		vs = append(vs, vector{n: n, key: key, sector: sector, pt: pt, ct: ct, fromRow: start})
		vals = map[string]string{}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		row++
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			vals[field] += strings.TrimSpace(line)
		default:
			k, v, _ := strings.Cut(line, " ")
			if k == "vector" {
				flush()
				start = row
			}
			field, vals[k] = k, v
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("ieee1619.txt holds no vectors")
	}
	return vs
}

func vectorByNumber(t *testing.T, vs []vector, n int) vector {
	t.Helper()
	for _, v := range vs {
		if v.n == n {
			return v
		}
	}
	t.Fatalf("vector %d not in testdata", n)
	return vector{}
}

func newCipher(t testing.TB, key []byte) *Cipher {
	t.Helper()
	c, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// refCrypt is the reference: x/crypto/xts applied sector by sector, as dm-crypt applies
// XTS to a bio.
func refCrypt(ref *xcrypto.Cipher, dst, src []byte, firstSector uint64, sectorSize int,
	encrypt bool) {
	for off := 0; off < len(src); off += sectorSize {
		d, s := dst[off:off+sectorSize], src[off:off+sectorSize]
		if encrypt {
			ref.Encrypt(d, s, firstSector)
		} else {
			ref.Decrypt(d, s, firstSector)
		}
		firstSector++
	}
}

func newRef(t testing.TB, key []byte) *xcrypto.Cipher {
	t.Helper()
	ref, err := xcrypto.NewCipher(aes.NewCipher, key)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// testRand returns a generator seeded from SEED, or from the clock; the seed is printed
// when the test fails, so that any failure can be replayed.
func testRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with SEED=%d", seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func fill(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// randomKey returns n bytes with distinct halves.
func randomKey(r *rand.Rand, n int) []byte {
	k := make([]byte, n)
	for {
		fill(r, k)
		if !bytes.Equal(k[:n/2], k[n/2:]) {
			return k
		}
	}
}

// TestIEEE1619Vectors checks both directions against the standard's known answers. Vectors
// 2 and 3 have 32-byte data units, below MinSectorSize, and go through crypt, the path
// under EncryptSectors' checks; every other vector goes through the public API.
func TestIEEE1619Vectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(fmt.Sprintf("vector%d", v.n), func(t *testing.T) {
			// A mistyped vector would fail for reasons of its own: x/crypto, an independent
			// implementation, must agree with the file first.
			want := make([]byte, len(v.pt))
			refCrypt(newRef(t, v.key), want, v.pt, v.sector, len(v.pt), true)
			if !bytes.Equal(want, v.ct) {
				t.Fatalf("testdata line %d: x/crypto/xts disagrees with the vector's ciphertext", v.fromRow)
			}
			c := newCipher(t, v.key)
			run := func(dst, src []byte, encrypt bool) error {
				if len(src) < MinSectorSize {
					return c.crypt(dst, src, v.sector, len(src), encrypt)
				}
				if encrypt {
					return c.EncryptSectors(dst, src, v.sector, len(src))
				}
				return c.DecryptSectors(dst, src, v.sector, len(src))
			}
			got := make([]byte, len(v.pt))
			if err := run(got, v.pt, true); err != nil || !bytes.Equal(got, v.ct) {
				t.Fatalf("encrypt: err %v\n got %x\nwant %x", err, got, v.ct)
			}
			if err := run(got, v.ct, false); err != nil || !bytes.Equal(got, v.pt) {
				t.Fatalf("decrypt: err %v\n got %x\nwant %x", err, got, v.pt)
			}
		})
	}
}

// TestIEEE1619ConsecutiveSectors runs vectors 4-6 (sectors 0, 1, 2) and 7-9 (0xfd, 0xfe,
// 0xff) as one three-sector I/O each: one call must give sector i the tweak first+i.
func TestIEEE1619ConsecutiveSectors(t *testing.T) {
	vs := loadVectors(t)
	for _, first := range []int{4, 7} {
		var pt, ct []byte
		for n := first; n < first+3; n++ {
			v := vectorByNumber(t, vs, n)
			if v.sector != vectorByNumber(t, vs, first).sector+uint64(n-first) || len(v.pt) != 512 {
				t.Fatalf("vector %d is not the next 512-byte sector", n)
			}
			pt, ct = append(pt, v.pt...), append(ct, v.ct...)
		}
		v := vectorByNumber(t, vs, first)
		c := newCipher(t, v.key)
		got := make([]byte, len(pt))
		if err := c.EncryptSectors(got, pt, v.sector, 512); err != nil || !bytes.Equal(got, ct) {
			t.Fatalf("vectors %d-%d encrypted as one I/O: err %v, bytes differ: %t", first, first+2, err,
				!bytes.Equal(got, ct))
		}
		if err := c.DecryptSectors(got, ct, v.sector, 512); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("vectors %d-%d decrypted as one I/O: err %v, bytes differ: %t", first, first+2, err,
				!bytes.Equal(got, pt))
		}
	}
}

// TestEqualKeyHalvesRefused: IEEE vector 1's all-zero key, and any key whose halves are
// equal, is refused at New in every build.
func TestEqualKeyHalvesRefused(t *testing.T) {
	half := randomKey(testRand(t), KeySize256)[:32]
	keys := [][]byte{
		make([]byte, KeySize128), // vector 1's key
		make([]byte, KeySize256),
		append(bytes.Clone(half), half...),
	}
	for _, key := range keys {
		if c, err := New(key); !errors.Is(err, ErrDuplicateKeyHalves) {
			t.Errorf("New(%d-byte key with equal halves) = %v, %v; want ErrDuplicateKeyHalves",
				len(key), c, err)
		}
	}
}

// TestMatchesXCrypto compares both directions with x/crypto/xts on random keys, data,
// sector sizes, I/O lengths and sector numbers, including the 2^32 and 2^64-1 edges.
func TestMatchesXCrypto(t *testing.T) {
	r := testRand(t)
	firsts := func(n uint64) uint64 {
		switch r.IntN(4) {
		case 0:
			return r.Uint64N(1 << 20)
		case 1:
			return 1<<32 - 1 - r.Uint64N(n) // straddles the 32-bit boundary
		case 2:
			return math.MaxUint64 - (n - 1) // ends on the last sector there is
		default:
			return r.Uint64N(math.MaxUint64 - n)
		}
	}
	for i := range 200 {
		keySize := []int{KeySize128, KeySize256}[i%2]
		key := randomKey(r, keySize)
		sectorSize := MinSectorSize << r.IntN(8)
		n := 1 + r.IntN(max(1, (256<<10)/sectorSize))
		first := firsts(uint64(n))
		src := make([]byte, n*sectorSize)
		fill(r, src)

		c, err := New(key)
		if err != nil {
			t.Fatal(err)
		}
		ref := newRef(t, key)
		got, want := make([]byte, len(src)), make([]byte, len(src))
		for _, encrypt := range []bool{true, false} {
			refCrypt(ref, want, src, first, sectorSize, encrypt)
			if encrypt {
				err = c.EncryptSectors(got, src, first, sectorSize)
			} else {
				err = c.DecryptSectors(got, src, first, sectorSize)
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("case %d: %d-byte key, %d x %d-byte sectors from %#x, encrypt %t: err %v, differs %t",
					i, keySize, n, sectorSize, first, encrypt, err, !bytes.Equal(got, want))
			}
		}
		c.Close()
	}
}

// TestInPlace: dst == src gives the bytes an out-of-place call gives, both directions.
func TestInPlace(t *testing.T) {
	r := testRand(t)
	c := newCipher(t, randomKey(r, KeySize256))
	for _, sectorSize := range []int{512, 4096} {
		src := make([]byte, 16*sectorSize)
		fill(r, src)
		out := make([]byte, len(src))
		buf := bytes.Clone(src)
		if err := c.EncryptSectors(out, src, 42, sectorSize); err != nil {
			t.Fatal(err)
		}
		if err := c.EncryptSectors(buf, buf, 42, sectorSize); err != nil || !bytes.Equal(buf, out) {
			t.Fatalf("in-place encrypt of %d-byte sectors: err %v or bytes differ", sectorSize, err)
		}
		if err := c.DecryptSectors(out, buf, 42, sectorSize); err != nil || !bytes.Equal(out, src) {
			t.Fatalf("out-of-place decrypt: err %v or bytes differ", err)
		}
		if err := c.DecryptSectors(buf, buf, 42, sectorSize); err != nil || !bytes.Equal(buf, src) {
			t.Fatalf("in-place decrypt of %d-byte sectors: err %v or bytes differ", sectorSize, err)
		}
	}
}

func TestBadKeys(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 48, 63, 65, 128} {
		if _, err := New(make([]byte, n)); !errors.Is(err, ErrKeySize) {
			t.Errorf("New(%d-byte key): %v, want ErrKeySize", n, err)
		}
	}
	if _, err := New(nil); !errors.Is(err, ErrKeySize) {
		t.Errorf("New(nil): %v, want ErrKeySize", err)
	}
}

func TestBadIO(t *testing.T) {
	r := testRand(t)
	c := newCipher(t, randomKey(r, KeySize256))
	buf := make([]byte, 8192+512)
	a, b := buf[:8192], buf[512:8192+512]
	big := make([]byte, 256<<10)
	cases := []struct {
		name       string
		dst, src   []byte
		first      uint64
		sectorSize int
		want       error
	}{
		{"sector size 0", a[:4096], b[:4096], 0, 0, ErrSectorSize},
		{"sector size 256", a[:4096], a[:4096], 0, 256, ErrSectorSize},
		{"sector size 513", a[:4104], a[:4104], 0, 513, ErrSectorSize},
		{"sector size 3072", a[:6144], a[:6144], 0, 3072, ErrSectorSize},
		{"sector size 128 KiB", big[:128<<10], big[128<<10:], 0, 128 << 10, ErrSectorSize},
		{"negative sector size", a, a, 0, -512, ErrSectorSize},
		{"partial sector", a[:1000], a[:1000], 0, 512, ErrLength},
		{"dst shorter", a[:512], make([]byte, 1024), 0, 512, ErrLength},
		{"dst longer", a[:2048], make([]byte, 1024), 0, 512, ErrLength},
		{"shifted overlap", a, b, 0, 512, ErrOverlap},
		{"adjacent buffers", buf[512:1024], buf[1024:1536], 0, 512, nil}, // adjacent: no overlap
		{"wraps past 2^64-1", a[:1024], a[:1024], math.MaxUint64, 512, ErrSectorRange},
		{"last sector is 2^64-1", a[:1024], a[:1024], math.MaxUint64 - 1, 512, nil},
		{"empty", a[:0], a[:0], math.MaxUint64, 512, nil},
	}
	for _, tc := range cases {
		for _, encrypt := range []bool{true, false} {
			var err error
			if encrypt {
				err = c.EncryptSectors(tc.dst, tc.src, tc.first, tc.sectorSize)
			} else {
				err = c.DecryptSectors(tc.dst, tc.src, tc.first, tc.sectorSize)
			}
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("%s (encrypt %t): %v, want %v", tc.name, encrypt, err, tc.want)
			}
		}
	}
}

// TestClone: a clone gives the same bytes and lives on when the original is closed, as a
// reactor's copy must when another reactor drops the volume.
func TestClone(t *testing.T) {
	r := testRand(t)
	orig, err := New(randomKey(r, KeySize256))
	if err != nil {
		t.Fatal(err)
	}
	clone, err := orig.Clone()
	if err != nil {
		t.Fatal(err)
	}
	defer clone.Close()
	src := make([]byte, 8192)
	fill(r, src)
	want, got := make([]byte, len(src)), make([]byte, len(src))
	if err := orig.EncryptSectors(want, src, 9, 4096); err != nil {
		t.Fatal(err)
	}
	if err := orig.Close(); err != nil {
		t.Fatal(err)
	}
	if err := clone.EncryptSectors(got, src, 9, 4096); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("clone after the original closed: err %v, or bytes differ", err)
	}
	if _, err := orig.Clone(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Clone of a closed Cipher: %v, want ErrClosed", err)
	}
}

func TestClosed(t *testing.T) {
	r := testRand(t)
	c, err := New(randomKey(r, KeySize128))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	buf := make([]byte, 512)
	if err := c.EncryptSectors(buf, buf, 0, 512); !errors.Is(err, ErrClosed) {
		t.Fatalf("EncryptSectors after Close: %v, want ErrClosed", err)
	}
	if err := c.DecryptSectors(buf, buf, 0, 512); !errors.Is(err, ErrClosed) {
		t.Fatalf("DecryptSectors after Close: %v, want ErrClosed", err)
	}
}

// TestAllocatesNothing: the data path allocates nothing per I/O, in place or not, for
// a 4 KiB and a 128 KiB I/O of 512-byte and 4 KiB sectors, and on its error path.
func TestAllocatesNothing(t *testing.T) {
	r := testRand(t)
	c := newCipher(t, randomKey(r, KeySize256))
	for _, size := range []int{4 << 10, 128 << 10} {
		src, dst := make([]byte, size), make([]byte, size)
		fill(r, src)
		for _, sectorSize := range []int{512, 4096} {
			ops := map[string]func() error{
				"encrypt":          func() error { return c.EncryptSectors(dst, src, 1000, sectorSize) },
				"decrypt":          func() error { return c.DecryptSectors(dst, src, 1000, sectorSize) },
				"encrypt in place": func() error { return c.EncryptSectors(dst, dst, 1000, sectorSize) },
				"decrypt in place": func() error { return c.DecryptSectors(dst, dst, 1000, sectorSize) },
			}
			for name, op := range ops {
				allocs := testing.AllocsPerRun(50, func() {
					if err := op(); err != nil {
						panic(err)
					}
				})
				if allocs != 0 {
					t.Errorf("%s of %d bytes in %d-byte sectors: %v allocations per call",
						name, size, sectorSize, allocs)
				}
			}
		}
		bad := testing.AllocsPerRun(50, func() {
			if c.EncryptSectors(dst[:size-1], src[:size-1], 0, 512) == nil {
				panic("partial sector accepted")
			}
		})
		if bad != 0 {
			t.Errorf("refusing a bad I/O: %v allocations per call", bad)
		}
	}
}

// TestOffHeapBuffers uses memory outside the Go heap, as production buffers are.
func TestOffHeapBuffers(t *testing.T) {
	r := testRand(t)
	key := randomKey(r, KeySize256)
	c := newCipher(t, key)
	m, err := unix.Mmap(-1, 0, 3*65536, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	pt, ct, back := m[:65536], m[65536:131072], m[131072:]
	fill(r, pt)
	if err := c.EncryptSectors(ct, pt, 1<<40, 4096); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, len(pt))
	refCrypt(newRef(t, key), want, pt, 1<<40, 4096, true)
	if !bytes.Equal(ct, want) {
		t.Fatal("off-heap encrypt differs from x/crypto/xts")
	}
	if err := c.DecryptSectors(back, ct, 1<<40, 4096); err != nil || !bytes.Equal(back, pt) {
		t.Fatalf("off-heap decrypt: err %v, or bytes differ", err)
	}
}
