package bdev

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"sluice/engine/reactor"
)

func testReactor(t *testing.T) *reactor.Reactor {
	t.Helper()
	r, err := reactor.New(reactor.Config{Core: -1, Mode: reactor.ModeBusy})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// submitWait submits io and steps the reactor until it completes.
func submitWait(t *testing.T, r *reactor.Reactor, ch *Channel, io *IO) Status {
	t.Helper()
	done := false
	io.Done = func(*IO) { done = true }
	ch.Submit(io)
	for i := 0; !done; i++ {
		if i > 1e6 {
			t.Fatal("I/O never completed")
		}
		r.PollOnce()
	}
	return io.Status
}

func TestMallocReadWriteZeroes(t *testing.T) {
	m := NewManager()
	b, err := CreateMalloc(m, MallocParams{Name: "m0", NumBlocks: 64, BlockSize: 512}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := testReactor(t)
	ch, err := b.GetChannel(r)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Put()
	pattern := bytes.Repeat([]byte{0xA5}, 1024)
	if s := submitWait(t, r, ch, &IO{Type: IOWrite, Offset: 512, Length: 1024, Buf: pattern}); s != StatusSuccess {
		t.Fatalf("write: %v", s)
	}
	got := make([]byte, 1024)
	if s := submitWait(t, r, ch, &IO{Type: IORead, Offset: 512, Length: 1024, Buf: got}); s != StatusSuccess || !bytes.Equal(got, pattern) {
		t.Fatalf("read back: %v %x", s, got[:8])
	}
	if s := submitWait(t, r, ch, &IO{Type: IOUnmap, Offset: 1024, Length: 512}); s != StatusSuccess {
		t.Fatalf("unmap: %v", s)
	}
	if s := submitWait(t, r, ch, &IO{Type: IORead, Offset: 512, Length: 1024, Buf: got}); s != StatusSuccess ||
		!bytes.Equal(got[:512], pattern[:512]) || !bytes.Equal(got[512:], make([]byte, 512)) {
		t.Fatalf("read after unmap: %v", s)
	}
	st := b.IOStat()
	if st.NumWriteOps != 1 || st.NumReadOps != 2 || st.BytesRead != 2048 || st.NumUnmapOps != 1 {
		t.Fatalf("iostat %+v", st)
	}
}

func TestSubmitValidation(t *testing.T) {
	m := NewManager()
	b, err := CreateNull(m, NullParams{Name: "n0", NumBlocks: 8, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	r := testReactor(t)
	ch, _ := b.GetChannel(r)
	defer ch.Put()
	buf := make([]byte, 4096)
	for _, tc := range []struct {
		name string
		io   IO
		want Status
	}{
		{"ok", IO{Type: IORead, Offset: 7 * 4096, Length: 4096, Buf: buf}, StatusSuccess},
		{"past end", IO{Type: IORead, Offset: 8 * 4096, Length: 4096, Buf: buf}, StatusOutOfRange},
		{"straddles end", IO{Type: IOWrite, Offset: 7 * 4096, Length: 8192, Buf: make([]byte, 8192)}, StatusOutOfRange},
		{"misaligned", IO{Type: IORead, Offset: 512, Length: 4096, Buf: buf}, StatusOutOfRange},
		{"buf length", IO{Type: IORead, Offset: 0, Length: 4096, Buf: buf[:512]}, StatusOutOfRange},
		{"overflow", IO{Type: IOUnmap, Offset: 4096, Length: ^uint64(0) - 4095}, StatusOutOfRange},
		{"flush", IO{Type: IOFlush}, StatusSuccess},
		{"bad type", IO{Type: numIOTypes}, StatusUnsupported},
	} {
		io := tc.io
		if got := submitWait(t, r, ch, &io); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if ch.Inflight() != 0 {
		t.Fatalf("inflight %d after all completions", ch.Inflight())
	}
}

func TestManagerRules(t *testing.T) {
	m := NewManager()
	if _, err := CreateNull(m, NullParams{Name: "a", NumBlocks: 1, BlockSize: 512}); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateNull(m, NullParams{Name: "a", NumBlocks: 1, BlockSize: 512}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := CreateNull(m, NullParams{Name: "b", NumBlocks: 1, BlockSize: 1000}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("block size 1000: %v", err)
	}
	if _, err := CreateMalloc(m, MallocParams{Name: "c", NumBlocks: 1 << 62, BlockSize: 4096}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("huge malloc: %v", err)
	}
	b, _ := m.Get("a")
	if err := b.Claim(ClaimNVMeExport, "nqn.x ns 1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(context.Background(), "a", ""); !errors.Is(err, ErrClaimed) {
		t.Fatalf("delete claimed: %v", err)
	}
	b.Release("nqn.x ns 1")
	if err := m.Delete(context.Background(), "a", "malloc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete with wrong module: %v", err)
	}
	if err := m.Delete(context.Background(), "a", "null"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}

func TestDerivedUUIDStable(t *testing.T) {
	a, b := DeriveUUID("file", "vol0"), DeriveUUID("file", "vol0")
	if a != b || a == DeriveUUID("file", "vol1") {
		t.Fatal("derived uuid not stable or not distinct")
	}
	s := FormatUUID(a)
	u, err := ParseUUID(s)
	if err != nil || u != a || s[14] != '5' {
		t.Fatalf("uuid %s round trip: %v", s, err)
	}
}

func TestSubmitAllocatesNothing(t *testing.T) {
	m := NewManager()
	r := testReactor(t)
	for _, mk := range []func() (*Bdev, error){
		func() (*Bdev, error) { return CreateNull(m, NullParams{Name: "null", NumBlocks: 16, BlockSize: 4096}) },
		func() (*Bdev, error) {
			return CreateMalloc(m, MallocParams{Name: "malloc", NumBlocks: 16, BlockSize: 4096}, nil)
		},
	} {
		b, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		ch, _ := b.GetChannel(r)
		buf := make([]byte, 4096)
		n := 0
		io := &IO{Length: 4096, Buf: buf, Done: func(*IO) { n++ }}
		allocs := testing.AllocsPerRun(1000, func() {
			io.Type, io.Offset = IOWrite, 4096
			ch.Submit(io)
			io.Type = IORead
			ch.Submit(io)
		})
		if allocs != 0 {
			t.Fatalf("%s: submit allocates %v per read+write", b.Name(), allocs)
		}
		ch.Put()
	}
}
