package crypt

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"sluice/engine/bdev"
	"sluice/engine/mem"
)

// TestPlaintextNeverOnBase writes a recognisable plaintext over most of a file-backed
// volume (writes, FUA writes, write zeroes, a flush), closes everything, and scans the
// file: no 16-byte piece of the plaintext, of the data key or of the KEK is there, and
// the data reads back after reopening.
func TestPlaintextNeverOnBase(t *testing.T) {
	g := newRig(t)
	path := filepath.Join(diskTempDir(t), "vol")
	const size = 8 << 20
	if _, err := bdev.CreateFile(g.m, bdev.FileParams{Name: "f", Filename: path, SizeBytes: size}); err != nil {
		t.Fatal(err)
	}
	kf := keyFile(t)
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "f", KeyFile: kf, Format: true})
	_, dek := g.dataKey(t, b.Base(), kf, "")
	ch, put := g.open(t, b)
	marker := []byte("SLUICE-PLAINTEXT") // one AES block: ECB-like leaks would show it
	chunk := bytes.Repeat(marker, 128<<10/len(marker))
	written := b.SizeBytes() / uint64(len(chunk)) * uint64(len(chunk))
	for off := uint64(0); off < written; off += uint64(len(chunk)) {
		g.mustDo(t, ch, bdev.IO{Type: bdev.IOWrite, FUA: off%(1<<20) == 0, Offset: off, Length: uint64(len(chunk)),
			Buf: bytes.Clone(chunk)})
	}
	g.mustDo(t, ch, bdev.IO{Type: bdev.IOWriteZeroes, Offset: 1 << 20, Length: 256 << 10})
	g.mustDo(t, ch, bdev.IO{Type: bdev.IOFlush})
	put()
	g.delete(t, "c")
	g.delete(t, "f")

	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := os.ReadFile(kf)
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string][]byte{"plaintext": marker, "data key 1": dek[:16], "data key 2": dek[32:48],
		"kek": kek[:16]} {
		if i := bytes.Index(disk, secret); i >= 0 {
			t.Fatalf("the base file holds the %s in clear at byte %d", name, i)
		}
	}
	if zeros := bytes.Count(disk[2*4096:2*4096+written], make([]byte, 16)); zeros > len(disk)/4096 {
		t.Fatalf("%d 16-byte runs of zeros in the data area: zeroed blocks left plain zeros on the base", zeros)
	}

	if _, err := bdev.CreateFile(g.m, bdev.FileParams{Name: "f", Filename: path}); err != nil {
		t.Fatal(err)
	}
	b = g.create(t, CreateParams{Name: "c", BaseBdevName: "f", KeyFile: kf})
	ch, _ = g.open(t, b)
	if got := g.read(t, ch, 0, uint64(len(chunk))); !bytes.Equal(got, chunk) {
		t.Fatal("plaintext differs after reopening the file")
	}
	if got := g.read(t, ch, 1<<20, 256<<10); !bytes.Equal(got, make([]byte, 256<<10)) {
		t.Fatal("zeroed range differs after reopening the file")
	}
}

// TestZeroAllocs: a 4 KiB write and read through a crypt bdev allocate nothing on the Go
// heap once warm, over malloc and over a file bdev whose ring has the memory domain
// registered as fixed buffers.
func TestZeroAllocs(t *testing.T) {
	t.Run("malloc", func(t *testing.T) {
		g := newRig(t)
		g.malloc(t, "m", 1024, 4096)
		b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: keyFile(t), Format: true})
		ch, _ := g.open(t, b)
		if n := allocsPerWriteRead(g, ch, allocOn(t, g.cores[0], 4096)); n != 0 {
			t.Fatalf("crypt over malloc allocates %v per 4 KiB write+read", n)
		}
	})
	t.Run("file", func(t *testing.T) {
		g := newRig(t)
		if _, err := bdev.CreateFile(g.m, bdev.FileParams{Name: "f", Filename: filepath.Join(diskTempDir(t), "vol"),
			SizeBytes: 4 << 20}); err != nil {
			t.Fatal(err)
		}
		b := g.create(t, CreateParams{Name: "c", BaseBdevName: "f", KeyFile: keyFile(t), Format: true})
		ch, _ := g.open(t, b)
		if n := allocsPerWriteRead(g, ch, allocOn(t, g.cores[0], 4096)); n != 0 {
			t.Fatalf("crypt over file allocates %v per 4 KiB write+read", n)
		}
		st := b.Base().IOStat()
		if st.NumFixedBufferOps < 1000 || st.NumFixedBufferFaults != 0 {
			t.Fatalf("file under crypt: %d fixed-buffer ops, %d faults; want every write and read fixed, no fault",
				st.NumFixedBufferOps, st.NumFixedBufferFaults)
		}
	})
}

// TestCiphertextCarriesItsOwnFixedBuffer: a write whose plaintext names a fixed buffer
// the file's ring does not have (memory of another domain, or an index past the
// registration) reaches the file with the ciphertext buffer's index, so the kernel never
// refuses it; the plaintext's index is not passed through.
func TestCiphertextCarriesItsOwnFixedBuffer(t *testing.T) {
	g := newRig(t)
	if _, err := bdev.CreateFile(g.m, bdev.FileParams{Name: "f", Filename: filepath.Join(diskTempDir(t), "vol"),
		SizeBytes: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "f", KeyFile: keyFile(t), Format: true})
	ch, _ := g.open(t, b)
	data := pattern(8192, 3)
	before := b.Base().IOStat()
	g.mustDo(t, ch, bdev.IO{Type: bdev.IOWrite, Offset: 0, Length: 8192, Buf: data, FixedBuf: 1000})
	st := b.Base().IOStat()
	if st.NumFixedBufferFaults != before.NumFixedBufferFaults || st.NumFixedBufferOps != before.NumFixedBufferOps+1 {
		t.Fatalf("write under crypt: fixed ops %d→%d, faults %d→%d; want one fixed op (the ciphertext's), no fault",
			before.NumFixedBufferOps, st.NumFixedBufferOps, before.NumFixedBufferFaults, st.NumFixedBufferFaults)
	}
	if got := g.read(t, ch, 0, 8192); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
}

func allocOn(t testing.TB, core *mem.Core, n int) mem.Buf {
	t.Helper()
	b, err := core.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { core.Free(b) })
	return b
}

// allocsPerWriteRead measures the heap allocations of a 4 KiB write then read of m, named
// as a protocol target names its buffers (SetBuf).
func allocsPerWriteRead(g *rig, ch *bdev.Channel, m mem.Buf) float64 {
	done := false
	buf := m.Bytes()
	io := &bdev.IO{Length: uint64(len(buf)), Done: func(*bdev.IO) { done = true }}
	io.SetBuf(buf, m)
	run := func(typ bdev.IOType) {
		io.Type, io.Offset, done = typ, 8192, false
		ch.Submit(io)
		for !done {
			g.r.PollOnce()
		}
		if io.Status != bdev.StatusSuccess {
			panic(io.Status.String())
		}
	}
	fill(buf, 1)
	run(bdev.IOWrite) // warm: the pool, the allocator's slice, the ring
	run(bdev.IORead)
	return testing.AllocsPerRun(500, func() {
		run(bdev.IOWrite)
		run(bdev.IORead)
	})
}
