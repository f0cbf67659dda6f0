//go:build !cgo || !linux

package bdev

import (
	"errors"
	"path/filepath"
	"testing"

	"sluice/cgo/uring"
)

// TestFileNeedsUring: a build without cgo has no io_uring, and says so at create time
// instead of creating a file it can never serve.
func TestFileNeedsUring(t *testing.T) {
	_, err := CreateFile(NewManager(), FileParams{Name: "f", Filename: filepath.Join(t.TempDir(), "vol"), SizeBytes: 4096})
	if !errors.Is(err, uring.ErrNotSupported) {
		t.Fatalf("CreateFile without cgo: %v, want uring.ErrNotSupported", err)
	}
}
