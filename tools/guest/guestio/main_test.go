package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPattern pins the pattern's properties that verification relies on.
func TestPattern(t *testing.T) {
	a := make([]byte, 4096)
	b := make([]byte, 4096)
	fill(a, 0, 1)
	fill(b, 4096, 1)
	if bytes.Equal(a, b) {
		t.Fatal("two offsets share a pattern: a misdirected block would pass")
	}
	fill(b, 0, 2)
	if bytes.Equal(a, b) {
		t.Fatal("two seeds share a pattern: stale data would pass")
	}
	// Any sub-range is the same bytes as in the whole.
	whole := make([]byte, 8192)
	fill(whole, 0, 9)
	part := make([]byte, 512)
	fill(part, 4608, 9)
	if !bytes.Equal(part, whole[4608:5120]) {
		t.Fatal("a sub-range differs from the same bytes in a larger fill")
	}
	if firstDiff(a, a) != -1 {
		t.Fatal("firstDiff of equal slices")
	}
}

// TestRoundTrip runs the commands against a file with O_DIRECT, as the guest
// runs them against /dev/nvme0n1.
func TestRoundTrip(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(dev, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := os.OpenFile(dev, os.O_RDONLY|syscall.O_DIRECT, 0); errors.Is(err, syscall.EINVAL) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the temporary directory's file system has no O_DIRECT: %v", err)
		}
		t.Skipf("skipping: the temporary directory's file system has no O_DIRECT: %v", err)
	} else if err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}

	guestio := func(args ...string) (string, int) {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		return out.String() + errOut.String(), code
	}
	out, code := guestio("write", "-dev", dev, "-bs", "131072", "-count", "4", "-offset", "1048576", "-seed", "5")
	if code != exitOK || !strings.HasPrefix(out, "guestio: ok write ") {
		t.Fatalf("write: %d %q", code, out)
	}
	if out, code := guestio("verify", "-dev", dev, "-bs", "4096", "-count", "128", "-offset", "1048576", "-seed", "5"); code != exitOK {
		t.Fatalf("verify: %d %q", code, out)
	}
	if out, code := guestio("zero-check", "-dev", dev, "-offset", "0", "-len", "1048576"); code != exitOK {
		t.Fatalf("zero-check: %d %q", code, out)
	}
	if out, code := guestio("zero-check", "-dev", dev, "-offset", "1048064", "-len", "1024"); code != exitMismatch || !strings.Contains(out, "first bad offset=1048576 ") {
		t.Fatalf("zero-check over data: %d %q", code, out)
	}

	// Corrupt one byte behind guestio's back: verify names exactly that offset.
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var c [1]byte
	if _, err := f.ReadAt(c[:], 1200000); err != nil {
		t.Fatal(err)
	}
	c[0] ^= 0xff
	if _, err := f.WriteAt(c[:], 1200000); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, code := guestio("verify", "-dev", dev, "-bs", "131072", "-count", "4", "-offset", "1048576", "-seed", "5"); code != exitMismatch || !strings.Contains(out, "first bad offset=1200000 ") {
		t.Fatalf("verify after corruption: %d %q", code, out)
	}

	for _, bad := range [][]string{
		{},
		{"frobnicate", "-dev", dev},
		{"write", "-dev", dev, "-bs", "1000"},
		{"verify", "-dev", dev, "-offset", "7"},
		{"zero-check", "-dev", dev},
		{"write"},
	} {
		if out, code := guestio(bad...); code != exitError {
			t.Errorf("%q: exit %d, want %d (%q)", bad, code, exitError, out)
		}
	}
}
