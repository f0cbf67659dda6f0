//go:build invariants

package mem

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic; want one mentioning %q", want)
		}
		if msg, _ := r.(string); !strings.Contains(msg, want) {
			t.Fatalf("panic %v; want one mentioning %q", r, want)
		}
	}()
	f()
}

func TestInvariantsDoubleFree(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 4 << 20})
	c, other := newTestCore(t, d, 0), newTestCore(t, d, 1)
	keep := mustAlloc(t, c, 64)
	defer c.Free(keep)
	b := mustAlloc(t, c, 64)
	c.Free(b)
	mustPanic(t, "double free", func() { c.Free(b) })
	// Across cores it is caught at the second Free, not later at the owner's Reclaim.
	b2 := mustAlloc(t, c, 300)
	other.Free(b2)
	mustPanic(t, "double free", func() { other.Free(b2) })
	c.Reclaim()
	span := mustAlloc(t, c, 1<<20)
	c.Free(span)
	mustPanic(t, "double free", func() { c.Free(span) })
}

func TestInvariantsUseAfterFree(t *testing.T) {
	// Not newTestDomain: the panicking Alloc leaves its object allocated, a leak Close
	// reports and this test expects.
	d, err := NewDomain(DomainConfig{SizeBytes: 4 << 20, Hugepages: HugepagesNever,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		var leak *LeakError
		if err := d.Close(); !errors.As(err, &leak) || leak.Objects != 1 {
			t.Errorf("Close after the panicking Alloc: %v, want one leaked object", err)
		}
	}()
	c := newTestCore(t, d, 0)
	keep := mustAlloc(t, c, 4096)
	defer c.Free(keep)
	b := mustAlloc(t, c, 4096)
	p := b.Bytes()
	c.Free(b)
	mustPanic(t, "use after free", func() { b.Bytes() })
	p[100] = 1 // a write through a slice kept past Free
	mustPanic(t, "use after free", func() {
		// The lowest free object is the same one: its poison no longer checks out.
		x, _ := c.Alloc(4096)
		c.Free(x)
	})
}

func TestInvariantsPoison(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 4 << 20})
	c := newTestCore(t, d, 0)
	b := mustAlloc(t, c, 200)
	defer c.Free(b)
	for i, x := range b.Bytes()[:cap(b.Bytes())] {
		if x != poisonByte {
			t.Fatalf("fresh object byte %d is %#x, want poison %#x", i, x, poisonByte)
		}
	}
}

func TestInvariantsLeakReport(t *testing.T) {
	d, err := NewDomain(DomainConfig{SizeBytes: 4 << 20, Hugepages: HugepagesNever,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := d.NewCore(7)
	mustAlloc(t, c, 64)
	mustAlloc(t, c, 8192)
	freed := mustAlloc(t, c, 8192)
	c.Free(freed)
	err = d.Close()
	var leak *LeakError
	if !errors.As(err, &leak) {
		t.Fatalf("Close with live objects: %v, want a *LeakError", err)
	}
	if leak.Objects != 2 || len(leak.Detail) != 2 || !strings.Contains(err.Error(), "core 7") {
		t.Fatalf("leak report: %v", err)
	}
}
