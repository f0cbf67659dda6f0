package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/bits"
	"os"
	"sync/atomic"
)

// regions tracks, per region of a replicated volume, what the stream needs to know to
// never lose a write and never ship a stale one. Every field is shared by the reactors
// that write the volume and the stream's goroutines, so each is an atomic; the orders of
// the operations on them (commented where they matter) make the protocol correct.
//
//   - intent: the write-intent bitmap (md's, DRBD's activity log): a region's bit is set,
//     and persisted, before any write to it is submitted, and cleared only when the
//     region is known to be identical on the partner. After a crash of A, the persisted
//     bits are exactly the regions that may differ, so a restart resynchronizes those
//     and never the whole volume.
//   - resync: regions that do differ (a write not shipped: partner away, journal full,
//     write zeroes; a frame that failed), which the resync loop copies.
//   - durable: the intent bits the bitmap file holds (a write may go ahead only once its
//     regions' bits are durable, not merely set).
//   - syncing: regions the resync loop is reading; a write to one is not shipped but
//     marks it resync again, so that the loop revisits it.
//   - local: writes to the region between submission and local completion.
//   - pending: frames for the region between their push and the partner's ack (or
//     their failure).
type regions struct {
	n                                int
	intent, durable, resync, syncing []atomic.Uint64
	local, pending                   []atomic.Int32
}

func newRegions(n int) *regions {
	w := (n + 63) / 64
	return &regions{n: n, intent: make([]atomic.Uint64, w), durable: make([]atomic.Uint64, w),
		resync:  make([]atomic.Uint64, w),
		syncing: make([]atomic.Uint64, w), local: make([]atomic.Int32, n),
		pending: make([]atomic.Int32, n)}
}

func bitTest(set []atomic.Uint64, r int) bool { return set[r>>6].Load()&(1<<(r&63)) != 0 }
func bitSet(set []atomic.Uint64, r int)       { set[r>>6].Or(1 << (r & 63)) }
func bitClear(set []atomic.Uint64, r int)     { set[r>>6].And(^uint64(1 << (r & 63))) }

// bitNext is the first set region at or after r, or -1.
func bitNext(set []atomic.Uint64, r, n int) int {
	for w := r >> 6; w < len(set); w++ {
		x := set[w].Load()
		if w == r>>6 {
			x &= ^uint64(0) << (r & 63)
		}
		if x != 0 {
			if i := w<<6 + bits.TrailingZeros64(x); i < n {
				return i
			}
			return -1
		}
	}
	return -1
}

func bitCount(set []atomic.Uint64) int {
	c := 0
	for i := range set {
		c += bits.OnesCount64(set[i].Load())
	}
	return c
}

func bitAny(set []atomic.Uint64) bool {
	for i := range set {
		if set[i].Load() != 0 {
			return true
		}
	}
	return false
}

// setAll sets regions [0, n) of set.
func setAll(set []atomic.Uint64, n int) {
	for r := 0; r < n; r += 64 {
		m := ^uint64(0)
		if n-r < 64 {
			m = 1<<(n-r) - 1
		}
		set[r>>6].Or(m)
	}
}

// The persisted intent bitmap, little-endian:
//
//	off len
//	  0   8  magic "SLREPBM1"
//	  8   4  region size in bytes
//	 12   4  flags: bit 0 the volume completed a full sync at epoch
//	 16   8  number of regions
//	 24   8  epoch: the lineage of the partner's copy (a new one per full sync)
//	 32  16  the base bdev's UUID: a file of another volume is refused
//	 48   4  CRC-32C of the header bytes 0-47 and the bitmap
//	 52  12  reserved (0)
//	 64   -  the bitmap, 64 regions per little-endian word
const (
	bitmapMagic      = "SLREPBM1"
	bitmapHeaderLen  = 64
	bitmapFlagSynced = 1
)

// bitmapFile is what the persisted bitmap records besides the bits.
type bitmapFile struct {
	regionBytes uint32
	synced      bool
	n           int
	epoch       uint64
	uuid        [16]byte
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodeBitmap lays out the header and a snapshot of the intent bits.
func encodeBitmap(h bitmapFile, intent []uint64) []byte {
	b := make([]byte, bitmapHeaderLen+8*len(intent))
	copy(b, bitmapMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], h.regionBytes)
	if h.synced {
		le.PutUint32(b[12:], bitmapFlagSynced)
	}
	le.PutUint64(b[16:], uint64(h.n))
	le.PutUint64(b[24:], h.epoch)
	copy(b[32:48], h.uuid[:])
	for i := range intent {
		le.PutUint64(b[bitmapHeaderLen+8*i:], intent[i])
	}
	c := crc32.Update(crc32.Checksum(b[:48], crcTable), crcTable, b[bitmapHeaderLen:])
	le.PutUint32(b[48:], c)
	return b
}

// errBitmap marks a bitmap file that cannot be trusted; the volume then needs a full
// sync, which is always safe.
var errBitmap = errors.New("replication: bitmap file unusable")

// decodeBitmap reads a bitmap file written for a volume of n regions of regionBytes.
func decodeBitmap(b []byte, n int, regionBytes uint32) (bitmapFile, []uint64, error) {
	le := binary.LittleEndian
	words := (n + 63) / 64
	if len(b) != bitmapHeaderLen+8*words || string(b[:8]) != bitmapMagic {
		return bitmapFile{}, nil, fmt.Errorf("%d bytes, want %d: %w", len(b), bitmapHeaderLen+8*words, errBitmap)
	}
	c := crc32.Update(crc32.Checksum(b[:48], crcTable), crcTable, b[bitmapHeaderLen:])
	if le.Uint32(b[48:]) != c {
		return bitmapFile{}, nil, fmt.Errorf("checksum: %w", errBitmap)
	}
	h := bitmapFile{regionBytes: le.Uint32(b[8:]), synced: le.Uint32(b[12:])&bitmapFlagSynced != 0,
		n: int(le.Uint64(b[16:])), epoch: le.Uint64(b[24:])}
	copy(h.uuid[:], b[32:48])
	if h.n != n || h.regionBytes != regionBytes {
		return bitmapFile{}, nil, fmt.Errorf("%d regions of %d bytes, want %d of %d: %w",
			h.n, h.regionBytes, n, regionBytes, errBitmap)
	}
	out := make([]uint64, words)
	for i := range out {
		out[i] = le.Uint64(b[bitmapHeaderLen+8*i:])
	}
	return h, out, nil
}

// loadBitmap reads path; a missing file is (zero, nil, nil).
func loadBitmap(path string, n int, regionBytes uint32) (bitmapFile, []uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return bitmapFile{}, nil, nil
	}
	if err != nil {
		return bitmapFile{}, nil, err
	}
	return decodeBitmap(b, n, regionBytes)
}
