package crypt

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"sluice/engine/bdev"
)

// TestDeleteWithWritesInFlight: the crypt bdev is deleted while its writes are held by a
// delay bdev under it (completions reordered): the delete waits for them, every write
// completes, every ciphertext buffer returns to the allocator, and the layers below are
// free to go.
func TestDeleteWithWritesInFlight(t *testing.T) {
	g := newRig(t)
	g.malloc(t, "m", 1024, 4096)
	if _, err := bdev.CreateDelay(g.m, bdev.DelayParams{Name: "d", BaseBdevName: "m", DelayPolls: 50, Reorder: true}); err != nil {
		t.Fatal(err)
	}
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "d", KeyFile: keyFile(t), Format: true})
	ch, err := b.GetChannel(g.r)
	if err != nil {
		t.Fatal(err)
	}
	const n = 48
	ios := make([]bdev.IO, n)
	done := 0
	for i := range ios {
		typ := bdev.IOWrite
		if i%8 == 7 {
			typ = bdev.IOWriteZeroes
		}
		ios[i] = bdev.IO{Type: typ, FUA: i%3 == 0, Offset: uint64(i) * 16384, Length: 16384, Done: func(*bdev.IO) { done++ }}
		if typ == bdev.IOWrite {
			ios[i].Buf = pattern(16384, byte(i))
		}
		ch.Submit(&ios[i])
	}
	if g.inUse() == 0 {
		t.Fatal("no ciphertext buffer held while writes are in flight: the test proves nothing")
	}
	ch.Put() // the last user leaves with every write in flight
	errc := make(chan error, 1)
	go func() { errc <- g.m.Delete(context.Background(), "c", Module) }()
	for waiting := true; waiting; {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			waiting = false
		default:
			g.r.PollOnce()
		}
	}
	if done != n {
		t.Fatalf("%d of %d writes completed before the delete returned", done, n)
	}
	for i := range ios {
		if ios[i].Status != bdev.StatusSuccess {
			t.Fatalf("write %d: %v", i, ios[i].Status)
		}
	}
	if n := g.inUse(); n != 0 {
		t.Fatalf("%d bytes of buffers leaked by the teardown", n)
	}
	if _, err := g.m.Get("c"); !errors.Is(err, bdev.ErrNotFound) {
		t.Fatalf("deleted crypt bdev still listed: %v", err)
	}
	g.delete(t, "d")
	g.delete(t, "m")
}

// TestErrorsUnderCrypt: faults injected by an error bdev under the crypt bdev reach its
// users with their status and errno, and no failed I/O keeps a buffer.
func TestErrorsUnderCrypt(t *testing.T) {
	g := newRig(t)
	g.malloc(t, "m", 256, 4096)
	if _, err := bdev.CreateError(g.m, bdev.ErrorParams{BaseName: "m"}); err != nil {
		t.Fatal(err)
	}
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "EE_m", KeyFile: keyFile(t), Format: true})
	ch, _ := g.open(t, b)
	data := pattern(8192, 7)
	g.write(t, ch, 0, data)
	inject := func(ioType, errType string, num uint32, off uint64) {
		t.Helper()
		if err := bdev.InjectError(g.m, bdev.InjectParams{Name: "EE_m", IOType: ioType, ErrorType: errType, Num: num,
			CorruptOffset: off, CorruptValue: 0x5A}); err != nil {
			t.Fatal(err)
		}
	}
	inject("write", "failure", 2, 0)
	for i := range 3 {
		io := &bdev.IO{Type: bdev.IOWrite, Offset: 0, Length: 8192, Buf: pattern(8192, 8)}
		s := g.do(t, ch, io)
		if want := map[bool]bdev.Status{true: bdev.StatusIOError, false: bdev.StatusSuccess}[i < 2]; s != want {
			t.Fatalf("write %d: %v, want %v", i, s, want)
		}
		if i < 2 && io.Errno != 5 {
			t.Fatalf("write %d: errno %d, want EIO from the error bdev", i, io.Errno)
		}
	}
	data = pattern(8192, 8)
	// Write Zeroes reaches the base as writes of encrypted zeros.
	inject("write", "nomem", 1, 0)
	if s := g.do(t, ch, &bdev.IO{Type: bdev.IOWriteZeroes, Offset: 0, Length: 4096}); s != bdev.StatusNoMemory {
		t.Fatalf("write zeroes with nomem injected under it: %v", s)
	}
	inject("read", "failure", 1, 0)
	if s := g.do(t, ch, &bdev.IO{Type: bdev.IORead, Offset: 0, Length: 8192, Buf: make([]byte, 8192)}); s != bdev.StatusIOError {
		t.Fatalf("read with a failure injected: %v", s)
	}
	// One flipped ciphertext byte spoils exactly its 16-byte AES block of the sector
	// (XTS has no diffusion across blocks, and no integrity: that is the format's
	// documented limit), and nothing else.
	inject("read", "corrupt_data", 1, 4096+100)
	got := g.read(t, ch, 0, 8192)
	if bytes.Equal(got[4096+96:4096+112], data[4096+96:4096+112]) ||
		!bytes.Equal(got[:4096+96], data[:4096+96]) || !bytes.Equal(got[4096+112:], data[4096+112:]) {
		t.Fatal("a corrupted ciphertext byte did not spoil exactly its AES block")
	}
	if got := g.read(t, ch, 0, 8192); !bytes.Equal(got, data) {
		t.Fatal("data differs once the injections are spent")
	}
	if n := g.inUse(); n != 0 {
		t.Fatalf("%d bytes of buffers held after failed I/Os", n)
	}
	if st := b.IOStat(); st.NumErrors != 4 {
		t.Fatalf("crypt bdev counted %d errors, want 4", st.NumErrors)
	}
}

// TestNoMemory: a write whose ciphertext buffer the allocator cannot give fails with
// StatusNoMemory (the host retries), and the volume serves the next I/O.
func TestNoMemory(t *testing.T) {
	g := newRigSized(t, 4<<20) // two 2 MiB pages
	g.malloc(t, "m", 4096, 4096)
	b := g.create(t, CreateParams{Name: "c", BaseBdevName: "m", KeyFile: keyFile(t), Format: true})
	ch, _ := g.open(t, b)
	big := pattern(6<<20, 1)
	if s := g.do(t, ch, &bdev.IO{Type: bdev.IOWrite, Offset: 0, Length: uint64(len(big)), Buf: big}); s != bdev.StatusNoMemory {
		t.Fatalf("write larger than the memory domain: %v, want no_memory", s)
	}
	data := pattern(65536, 2)
	g.write(t, ch, 0, data)
	if got := g.read(t, ch, 0, 65536); !bytes.Equal(got, data) {
		t.Fatal("read back differs after a refused write")
	}
}
