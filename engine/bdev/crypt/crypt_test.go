package crypt

import (
	"bytes"
	"context"
	"crypto/aes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"testing"

	xcrypto "golang.org/x/crypto/xts"

	"sluice/engine/bdev"
)

// TestReadWrite writes and reads back I/Os of one block to 512 KiB at several offsets
// through a crypt bdev over malloc, then checks every range again once all are written.
func TestReadWrite(t *testing.T) {
	for _, bs := range []uint32{512, 4096} {
		t.Run(map[uint32]string{512: "bs=512", 4096: "bs=4096"}[bs], func(t *testing.T) {
			g := newRig(t)
			g.malloc(t, "m", 8<<20/uint64(bs), bs)
			b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: keyFile(t), Format: true})
			if b.BlockSize() != bs || b.NumBlocks() != (8<<20-2*uint64(strideFor(bs)))/uint64(bs) {
				t.Fatalf("geometry %d x %d", b.NumBlocks(), b.BlockSize())
			}
			ch, _ := g.open(t, b)
			type span struct{ off, n uint64 }
			spans := []span{{0, uint64(bs)}, {uint64(bs), 4096}, {64 << 10, 128 << 10}, {1 << 20, 512 << 10},
				{b.SizeBytes() - uint64(bs), uint64(bs)}}
			for i, s := range spans {
				data := pattern(int(s.n), byte(i+1))
				g.write(t, ch, s.off, data)
				if got := g.read(t, ch, s.off, s.n); !bytes.Equal(got, data) {
					t.Fatalf("%d bytes at %d: read back differs", s.n, s.off)
				}
			}
			for i, s := range spans {
				if got := g.read(t, ch, s.off, s.n); !bytes.Equal(got, pattern(int(s.n), byte(i+1))) {
					t.Fatalf("%d bytes at %d: differs after the other writes", s.n, s.off)
				}
			}
			if n := g.inUse(); n != 0 {
				t.Fatalf("%d bytes of ciphertext buffers still in use after every I/O completed", n)
			}
		})
	}
}

// TestMatchesXCrypto checks the on-disk format with an independent implementation: the
// base holds, at the header's data offset plus the block's LBA times the block size,
// golang.org/x/crypto/xts's encryption of the plaintext under the unwrapped data key
// with the LBA as tweak, for random data at random LBAs.
func TestMatchesXCrypto(t *testing.T) {
	g := newRig(t)
	base := g.malloc(t, "m", 4096, 4096)
	kf := keyFile(t)
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true})
	ch, _ := g.open(t, b)
	h, dek := g.dataKey(t, base, kf, "")
	ref, err := xcrypto.NewCipher(aes.NewCipher, dek)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		blocks := 1 + rng.Uint64N(16)
		lba := rng.Uint64N(b.NumBlocks() - blocks)
		pt := make([]byte, blocks*4096)
		for i := range pt {
			pt[i] = byte(rng.Uint32())
		}
		g.write(t, ch, lba*4096, pt)
		got := g.baseBytes(t, base, h.DataOffset+lba*4096, uint64(len(pt)))
		want := make([]byte, len(pt))
		for i := uint64(0); i < blocks; i++ {
			ref.Encrypt(want[i*4096:(i+1)*4096], pt[i*4096:(i+1)*4096], lba+i)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("LBA %d+%d: base bytes differ from x/crypto/xts with tweak = LBA", lba, blocks)
		}
	}
}

// TestWrongKEKRefused: a volume opened with another key file or passphrase is refused
// with ErrWrongKey (EACCES to an RPC client), and nothing is left behind: no bdev, the
// base unclaimed.
func TestWrongKEKRefused(t *testing.T) {
	g := newRig(t)
	g.malloc(t, "m", 256, 4096)
	kf := keyFile(t)
	g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true})
	g.delete(t, "c")
	_, err := Create(context.Background(), g.m, g.env, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: keyFile(t)})
	if !errors.Is(err, ErrWrongKey) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("open with another key file: %v, want ErrWrongKey", err)
	}
	if _, err := g.m.Get("c"); !errors.Is(err, bdev.ErrNotFound) {
		t.Fatalf("a refused open left a bdev: %v", err)
	}
	base, _ := g.m.Get("m")
	if by := base.ClaimedBy(); by != "" {
		t.Fatalf("a refused open left the base claimed by %q", by)
	}
	if _, err := Create(context.Background(), g.m, g.env, CreateParams{Name: "c", BaseBdevName: "m",
		Passphrase: "not the key"}); err == nil {
		t.Fatal("a key-file volume opened with a passphrase")
	}
	g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf})
}

// TestPassphrase formats with a passphrase, reopens with it, and refuses a wrong one.
func TestPassphrase(t *testing.T) {
	g := newRig(t)
	g.malloc(t, "m", 256, 4096)
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", Passphrase: "correct horse battery staple", Format: true})
	ch, put := g.open(t, b)
	data := pattern(8192, 9)
	g.write(t, ch, 4096, data)
	put()
	g.delete(t, "c")
	if _, err := Create(context.Background(), g.m, g.env, CreateParams{Name: "c", BaseBdevName: "m",
		Passphrase: "correct horse battery stapler"}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	// The header keeps the parameters the key was wrapped with: new defaults do not
	// lock the volume out.
	saved := DefaultKDF
	DefaultKDF = KDFParams{Time: 2, MemoryKiB: 128, Threads: 2}
	defer func() { DefaultKDF = saved }()
	b = g.create(t, CreateParams{Name: "c", BaseBdevName: "m", Passphrase: "correct horse battery staple"})
	ch, _ = g.open(t, b)
	if got := g.read(t, ch, 4096, 8192); !bytes.Equal(got, data) {
		t.Fatal("data differs after reopening with the passphrase")
	}
	info, err := GetKeyInfo(g.m, "c")
	if err != nil {
		t.Fatal(err)
	}
	if info.KEKSource != "passphrase" || info.KDF == nil || *info.KDF != saved {
		t.Fatalf("key info %+v: want passphrase with the KDF parameters of the format (%+v)", info, saved)
	}
}

// TestPassphraseShippedKDF formats and opens with the shipped argon2id parameters once,
// so that they are known to work (and what they cost shows in -v output).
func TestPassphraseShippedKDF(t *testing.T) {
	if testing.Short() {
		t.Skip("argon2id with 64 MiB: skipped in -short")
	}
	saved := DefaultKDF
	DefaultKDF = productionKDF
	defer func() { DefaultKDF = saved }()
	g := newRig(t)
	g.malloc(t, "m", 64, 4096)
	g.create(t, CreateParams{Name: "c", BaseBdevName: "m", Passphrase: "pass", Format: true})
	g.delete(t, "c")
	g.create(t, CreateParams{Name: "c", BaseBdevName: "m", Passphrase: "pass"})
	if info, _ := GetKeyInfo(g.m, "c"); *info.KDF != productionKDF {
		t.Fatalf("KDF %+v, want %+v", *info.KDF, productionKDF)
	}
}

// TestFormatRefusesExistingHeader: format refuses a base that holds a header, even a
// damaged one; force overwrites it, after which the old volume's data is gone (new key).
func TestFormatRefusesExistingHeader(t *testing.T) {
	g := newRig(t)
	g.malloc(t, "m", 256, 4096)
	kf := keyFile(t)
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true})
	ch, put := g.open(t, b)
	data := pattern(4096, 3)
	g.write(t, ch, 0, data)
	put()
	g.delete(t, "c")
	_, err := Create(context.Background(), g.m, g.env, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true})
	if !errors.Is(err, bdev.ErrExists) {
		t.Fatalf("format over a header: %v, want exists", err)
	}
	b = g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true, Force: true})
	ch, _ = g.open(t, b)
	if got := g.read(t, ch, 0, 4096); bytes.Equal(got, data) {
		t.Fatal("data of the old volume readable after a forced format")
	}
}

// TestOpenWithoutHeader: opening a base never formatted says so.
func TestOpenWithoutHeader(t *testing.T) {
	g := newRig(t)
	g.malloc(t, "m", 64, 4096)
	_, err := Create(context.Background(), g.m, g.env, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: keyFile(t)})
	if !errors.Is(err, bdev.ErrInvalid) {
		t.Fatalf("open of a blank base: %v", err)
	}
}

// TestHeaderCopyB: with copy A destroyed the volume opens from copy B; with both
// destroyed it is refused as corrupt.
func TestHeaderCopyB(t *testing.T) {
	g := newRig(t)
	base := g.malloc(t, "m", 256, 4096)
	kf := keyFile(t)
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true})
	ch, put := g.open(t, b)
	data := pattern(4096, 5)
	g.write(t, ch, 8192, data)
	put()
	g.delete(t, "c")
	bch, bput := g.open(t, base)
	junk := pattern(4096, 0x77)
	copy(junk, headerMagic) // damaged, not absent
	g.write(t, bch, 0, junk)
	bput()
	b = g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf})
	ch, put = g.open(t, b)
	if got := g.read(t, ch, 8192, 4096); !bytes.Equal(got, data) {
		t.Fatal("data differs when opened from copy B")
	}
	put()
	g.delete(t, "c")
	bch, bput = g.open(t, base)
	g.write(t, bch, 4096, junk)
	bput()
	_, err := Create(context.Background(), g.m, g.env, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf})
	if !errors.Is(err, ErrCorruptHeader) {
		t.Fatalf("open with both copies damaged: %v", err)
	}
}

// TestWriteZeroes: Write Zeroes reads back as zeros, over an inline base (malloc) and an
// asynchronous one (delay), across several chunks, while the base holds ciphertext.
func TestWriteZeroes(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(map[bool]string{false: "malloc", true: "delay"}[async], func(t *testing.T) {
			g := newRig(t)
			base := g.malloc(t, "m", 2048, 4096)
			under := "m"
			if async {
				if _, err := bdev.CreateDelay(g.m, bdev.DelayParams{Name: "d", BaseBdevName: "m", DelayPolls: 2,
					Reorder: true}); err != nil {
					t.Fatal(err)
				}
				under = "d"
			}
			b := g.create(t, CreateParams{Name: "c", BaseBdevName: under, KeyFile: keyFile(t), Format: true})
			if !b.Caps().WriteZeroes {
				t.Fatal("crypt bdev does not report write zeroes")
			}
			ch, _ := g.open(t, b)
			const off, n = 4096, 3*zeroChunkBytes + 8192
			g.write(t, ch, 0, pattern(off+n+4096, 1))
			g.mustDo(t, ch, bdev.IO{Type: bdev.IOWriteZeroes, FUA: true, Offset: off, Length: n})
			got := g.read(t, ch, 0, off+n+4096)
			if !bytes.Equal(got[off:off+n], make([]byte, n)) {
				t.Fatal("zeroed range does not read back as zeros")
			}
			if want := pattern(off+n+4096, 1); !bytes.Equal(got[:off], want[:off]) || !bytes.Equal(got[off+n:], want[off+n:]) {
				t.Fatal("write zeroes touched blocks outside its range")
			}
			raw := g.baseBytes(t, base, 2*4096+off, n)
			if bytes.Count(raw, make([]byte, 16)) > n/4096 {
				t.Fatal("the base holds runs of zeros where the zeroed range's ciphertext should be")
			}
			if n := g.inUse(); n != 0 {
				t.Fatalf("%d bytes of buffers in use after write zeroes", n)
			}
		})
	}
}

// TestUnmapCapability: unmap is off unless allowed; allowed, it reaches the base past the
// header, and the bdev never claims that unmapped blocks read as zeros (they read as the
// decryption of whatever the base returns).
func TestUnmapCapability(t *testing.T) {
	g := newRig(t)
	base := g.malloc(t, "m", 256, 4096)
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: keyFile(t), Format: true})
	if c := b.Caps(); c.Unmap || c.UnmapReadsZero || !c.WriteZeroes {
		t.Fatalf("default caps %+v: want write zeroes, no unmap, no unmap-reads-zero", c)
	}
	g.delete(t, "c")
	kf := keyFile(t)
	b = g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true, Force: true, AllowUnmap: true})
	if c := b.Caps(); !c.Unmap || c.UnmapReadsZero {
		t.Fatalf("allow_unmap caps %+v: want unmap without unmap-reads-zero", c)
	}
	ch, _ := g.open(t, b)
	g.write(t, ch, 0, pattern(3*4096, 2))
	g.mustDo(t, ch, bdev.IO{Type: bdev.IOUnmap, Offset: 4096, Length: 4096})
	raw := g.baseBytes(t, base, 0, 2*4096+3*4096)
	if !bytes.Equal(raw[3*4096:4*4096], make([]byte, 4096)) || bytes.Equal(raw[2*4096:3*4096], make([]byte, 4096)) {
		t.Fatal("unmap did not deallocate exactly LBA 1 past the header")
	}
	if _, err := pickHeader(raw); err != nil {
		t.Fatalf("unmap damaged the header: %v", err)
	}
	if got := g.read(t, ch, 4096, 4096); bytes.Equal(got, make([]byte, 4096)) {
		t.Fatal("an unmapped block read back as zeros: then the bdev could report UnmapReadsZero")
	}
}

// TestBlockSizeAboveBase: a 4 KiB volume over a 512-byte base (the cheaper XTS data unit,
// exposed as a 4Kn disk).
func TestBlockSizeAboveBase(t *testing.T) {
	g := newRig(t)
	base := g.malloc(t, "m", 4096, 512)
	kf := keyFile(t)
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true, BlockSize: 4096})
	if b.BlockSize() != 4096 || b.NumBlocks() != (2<<20-8192)/4096 {
		t.Fatalf("geometry %d x %d", b.NumBlocks(), b.BlockSize())
	}
	ch, _ := g.open(t, b)
	data := pattern(8192, 4)
	g.write(t, ch, 4096, data)
	h, dek := g.dataKey(t, base, kf, "")
	ref, _ := xcrypto.NewCipher(aes.NewCipher, dek)
	got := g.baseBytes(t, base, h.DataOffset+4096, 4096)
	want := make([]byte, 4096)
	ref.Encrypt(want, data[:4096], 1)
	if !bytes.Equal(got, want) {
		t.Fatal("a 4 KiB-block volume over 512-byte blocks does not use 4 KiB data units with tweak = LBA")
	}
	if _, err := Create(context.Background(), g.m, g.env, CreateParams{Name: "c2", BaseBdevName: "c", KeyFile: keyFile(t),
		Format: true, BlockSize: 1024}); !errors.Is(err, bdev.ErrInvalid) {
		t.Fatalf("block size below the base's: %v", err)
	}
}

// TestRekey rewraps the data key under a new KEK without touching data: the old KEK no
// longer opens the volume, the new one does, and a rekey with a wrong current KEK
// changes nothing.
func TestRekey(t *testing.T) {
	g := newRig(t)
	base := g.malloc(t, "m", 256, 4096)
	kf := keyFile(t)
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true})
	ch, put := g.open(t, b)
	data := pattern(16384, 6)
	g.write(t, ch, 0, data)
	before := g.baseBytes(t, base, 8192, 16384)
	ctx := context.Background()
	if err := Rekey(ctx, g.m, g.env, RekeyParams{Name: "c", KeyFile: keyFile(t), NewPassphrase: "x"}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("rekey with a wrong current KEK: %v", err)
	}
	if info, _ := GetKeyInfo(g.m, "c"); info.HeaderGeneration != 1 {
		t.Fatalf("a refused rekey moved the header to generation %d", info.HeaderGeneration)
	}
	// On a live volume, with its channel open.
	if err := Rekey(ctx, g.m, g.env, RekeyParams{Name: "c", KeyFile: kf, NewPassphrase: "new pass"}); err != nil {
		t.Fatal(err)
	}
	if got := g.read(t, ch, 0, 16384); !bytes.Equal(got, data) {
		t.Fatal("data differs on the live volume after a rekey")
	}
	if after := g.baseBytes(t, base, 8192, 16384); !bytes.Equal(after, before) {
		t.Fatal("rekey rewrote data")
	}
	info, err := GetKeyInfo(g.m, "c")
	if err != nil {
		t.Fatal(err)
	}
	if info.HeaderGeneration != 2 || info.KEKSource != "passphrase" || info.KeyFile != "" {
		t.Fatalf("key info after rekey %+v", info)
	}
	put()
	g.delete(t, "c")
	if _, err := Create(ctx, g.m, g.env, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf}); err == nil {
		t.Fatal("the old key file still opens the volume after a rekey")
	}
	kf2 := keyFile(t)
	b = g.create(t, CreateParams{Name: "c", BaseBdevName: "m", Passphrase: "new pass"})
	if err := Rekey(ctx, g.m, g.env, RekeyParams{Name: "c", Passphrase: "new pass", NewKeyFile: kf2}); err != nil {
		t.Fatal(err)
	}
	ch, put = g.open(t, b)
	if got := g.read(t, ch, 0, 16384); !bytes.Equal(got, data) {
		t.Fatal("data differs after two rekeys")
	}
	put()
	g.delete(t, "c")
	g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf2})
	if info, _ := GetKeyInfo(g.m, "c"); info.HeaderGeneration != 3 || info.KeyFile != kf2 {
		t.Fatalf("key info after reopening %+v", info)
	}
}

// TestFormatWipesStaleCopies: a volume formatted over one of another block size leaves
// no copy of the old header where open could find it: with the new copy A damaged, the
// volume opens from the new copy B, not from the old one (whose generation is higher).
func TestFormatWipesStaleCopies(t *testing.T) {
	g := newRig(t)
	base := g.malloc(t, "m", 256, 4096)
	kf := keyFile(t)
	ctx := context.Background()
	g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true, BlockSize: 65536})
	for range 3 {
		if err := Rekey(ctx, g.m, g.env, RekeyParams{Name: "c", KeyFile: kf, NewKeyFile: kf}); err != nil {
			t.Fatal(err)
		}
	}
	g.delete(t, "c")
	g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf, Format: true, Force: true})
	g.delete(t, "c")
	bch, bput := g.open(t, base)
	g.write(t, bch, 0, pattern(4096, 1))
	bput()
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf})
	if info, _ := GetKeyInfo(g.m, "c"); b.BlockSize() != 4096 || info.HeaderGeneration != 1 {
		t.Fatalf("opened a %d-byte-block volume of generation %d, not the new volume's copy B",
			b.BlockSize(), info.HeaderGeneration)
	}
	g.delete(t, "c")
	// With both copies of the new volume damaged nothing may open: the old volume's
	// copy B (same KEK, a valid record) would decrypt the new data with the old key.
	bch, bput = g.open(t, base)
	g.write(t, bch, 4096, pattern(4096, 1))
	bput()
	if _, err := Create(ctx, g.m, g.env, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: kf}); err == nil {
		t.Fatal("a former volume's header opened after the new volume's two copies were lost")
	}
}
