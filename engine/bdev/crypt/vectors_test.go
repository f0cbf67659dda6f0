package crypt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"sluice/engine/bdev"
	"sluice/engine/reactor"
)

// sparseBackend is a test bdev of any size that stores only the blocks written, so that
// a vector's sector 2^40-1 is an LBA a test can reach. It completes inline.
type sparseBackend struct {
	bs     uint64
	mu     sync.Mutex // header I/O runs on the control reactor, data I/O on the test's
	blocks map[uint64][]byte
}

func (be *sparseBackend) NewChannel(*reactor.Reactor) (bdev.BackendChannel, error) {
	return sparseChannel{be}, nil
}
func (be *sparseBackend) Close() error { return nil }

type sparseChannel struct{ be *sparseBackend }

func (c sparseChannel) Submit(io *bdev.IO) {
	be := c.be
	be.mu.Lock()
	for off := uint64(0); off < io.Length; off += be.bs {
		lba := (io.Offset + off) / be.bs
		switch io.Type {
		case bdev.IORead:
			if b, ok := be.blocks[lba]; ok {
				copy(io.Buf[off:off+be.bs], b)
			} else {
				clear(io.Buf[off : off+be.bs])
			}
		case bdev.IOWrite:
			be.blocks[lba] = bytes.Clone(io.Buf[off : off+be.bs])
		case bdev.IOWriteZeroes, bdev.IOUnmap:
			delete(be.blocks, lba)
		}
	}
	be.mu.Unlock()
	io.Complete(bdev.StatusSuccess)
}

func (sparseChannel) Close() {}

type ieeeVector struct {
	n          int
	key        []byte
	sector     uint64
	pt, ct     []byte
	sourceLine int
}

// loadIEEEVectors reads cgo/xts's copy of IEEE 1619-2007 Annex B (its header describes
// the format), keeping the AES-256 vectors with 512-byte data units: those a crypt
// volume of 512-byte blocks can carry, one sector each.
func loadIEEEVectors(t *testing.T) []ieeeVector {
	t.Helper()
	f, err := os.Open("../../../cgo/xts/testdata/ieee1619.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []ieeeVector
	var cur *ieeeVector
	var field *[]byte
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if s[0] == ' ' || s[0] == '\t' {
			*field = append(*field, mustHex(t, strings.TrimSpace(s))...)
			continue
		}
		k, v, _ := strings.Cut(s, " ")
		switch k {
		case "vector":
			n, _ := strconv.Atoi(v)
			out = append(out, ieeeVector{n: n, sourceLine: line})
			cur = &out[len(out)-1]
		case "key":
			cur.key, field = mustHex(t, v), &cur.key
		case "sector":
			if cur.sector, err = strconv.ParseUint(v, 0, 64); err != nil {
				t.Fatal(err)
			}
		case "pt":
			cur.pt, field = mustHex(t, v), &cur.pt
		case "ct":
			cur.ct, field = mustHex(t, v), &cur.ct
		}
	}
	var keep []ieeeVector
	for _, v := range out {
		if len(v.key) == dataKeyLen && len(v.pt) == 512 {
			keep = append(keep, v)
		}
	}
	if len(keep) < 5 {
		t.Fatalf("%d AES-256 512-byte vectors in the testdata, want vectors 10-14", len(keep))
	}
	return keep
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIEEE1619ThroughLayer puts each AES-256 vector's key in a volume's header (wrapped
// as format would), then checks both directions through the layer: the plaintext written
// at LBA = the vector's data unit number lands on the base as the vector's ciphertext,
// and that ciphertext on the base reads back as the plaintext.
func TestIEEE1619ThroughLayer(t *testing.T) {
	for _, v := range loadIEEEVectors(t) {
		t.Run("vector"+strconv.Itoa(v.n), func(t *testing.T) {
			g := newRig(t)
			base, err := g.m.Register(bdev.Config{Name: "s", Module: "sparse", BlockSize: 512, NumBlocks: 1 << 41},
				&sparseBackend{bs: 512, blocks: map[uint64][]byte{}})
			if err != nil {
				t.Fatal(err)
			}
			kf := keyFile(t)
			k, err := keyFromFile(kf)
			if err != nil {
				t.Fatal(err)
			}
			h := Header{Generation: 1, BlockSize: 512, Stride: 4096, DataOffset: 8192}
			if err := wrap(k, &h, v.key); err != nil {
				t.Fatal(err)
			}
			if err := writeHeader(context.Background(), g.control, base, &h); err != nil {
				t.Fatal(err)
			}
			b := g.create(t, CreateParams{Name: "c", BaseBdevName: "s", KeyFile: kf})
			ch, _ := g.open(t, b)
			g.write(t, ch, v.sector*512, bytes.Clone(v.pt))
			if got := g.baseBytes(t, base, h.DataOffset+v.sector*512, 512); !bytes.Equal(got, v.ct) {
				t.Fatalf("testdata line %d: base holds % x..., want the vector's % x...", v.sourceLine, got[:16], v.ct[:16])
			}
			if got := g.read(t, ch, v.sector*512, 512); !bytes.Equal(got, v.pt) {
				t.Fatal("read back through the layer differs from the plaintext")
			}
			bch, bput := g.open(t, base)
			g.write(t, bch, h.DataOffset+(v.sector-1)*512, bytes.Clone(v.ct))
			bput()
			// The vector's ciphertext one sector early decrypts to something else:
			// the tweak is the LBA, not a constant.
			if got := g.read(t, ch, (v.sector-1)*512, 512); bytes.Equal(got, v.pt) {
				t.Fatal("ciphertext moved one sector decrypts to the same plaintext")
			}
		})
	}
}
