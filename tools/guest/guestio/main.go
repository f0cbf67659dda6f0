package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Exit codes, so that a test can tell "the target returned wrong data" from
// "the command could not run".
const (
	exitOK       = 0
	exitMismatch = 1
	exitError    = 2
)

// sectorSize is the alignment O_DIRECT needs for offsets and lengths on the
// devices we test (512-byte or 4 KiB logical blocks: 4 KiB is checked by the
// kernel when it matters, 512 here catches obvious mistakes early).
const sectorSize = 512

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, "usage: guestio write|verify|zero-check -dev DEV [flags]")
		return exitError
	}
	mode := args[0]
	fs := flag.NewFlagSet("guestio "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dev := fs.String("dev", "", "block device (or file) to use")
	bs := fs.Int("bs", 4096, "I/O size in bytes, a multiple of 512")
	count := fs.Int64("count", 1, "number of I/Os (write, verify)")
	offset := fs.Int64("offset", 0, "device byte offset of the first I/O, a multiple of 512")
	seed := fs.Uint64("seed", 1, "pattern seed (write, verify)")
	length := fs.Int64("len", 0, "bytes to check (zero-check), a multiple of 512")
	if err := fs.Parse(args[1:]); err != nil {
		return exitError
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "guestio: unexpected arguments %q\n", fs.Args())
		return exitError
	}
	if *dev == "" || *bs <= 0 || *bs%sectorSize != 0 || *offset < 0 || *offset%sectorSize != 0 {
		fmt.Fprintln(stderr, "guestio: need -dev, -bs a positive multiple of 512 and -offset a non-negative multiple of 512")
		return exitError
	}

	var (
		res string
		err error
	)
	switch mode {
	case "write":
		res, err = write(*dev, *bs, *count, *offset, *seed)
	case "verify":
		res, err = verify(*dev, *bs, *count, *offset, *seed)
	case "zero-check":
		if *length <= 0 || *length%sectorSize != 0 {
			fmt.Fprintln(stderr, "guestio: zero-check needs -len, a positive multiple of 512")
			return exitError
		}
		res, err = zeroCheck(*dev, *bs, *offset, *length)
	default:
		fmt.Fprintf(stderr, "guestio: unknown mode %q (want write, verify or zero-check)\n", mode)
		return exitError
	}
	var mm *mismatchError
	switch {
	case errors.As(err, &mm):
		fmt.Fprintf(stdout, "guestio: MISMATCH %s %s\n", mode, mm)
		return exitMismatch
	case err != nil:
		fmt.Fprintf(stdout, "guestio: ERROR %s dev=%s: %v\n", mode, *dev, err)
		return exitError
	}
	fmt.Fprintf(stdout, "guestio: ok %s dev=%s %s\n", mode, *dev, res)
	return exitOK
}

// mismatchError names the first byte whose content differs from the expected one.
type mismatchError struct {
	Offset    int64 // device byte offset
	Got, Want byte
}

func (e *mismatchError) Error() string {
	return fmt.Sprintf("first bad offset=%d got=0x%02x want=0x%02x", e.Offset, e.Got, e.Want)
}

// alignedBuffer returns a page-aligned buffer from an anonymous mapping: O_DIRECT
// needs aligned memory, and mmap gives it without unsafe pointer arithmetic.
func alignedBuffer(n int) ([]byte, error) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", n, err)
	}
	return b, nil
}

// fill writes the pattern for device bytes [off, off+len(b)). Every 8-byte word
// depends on the seed and its absolute device offset, so a block written to or
// read from the wrong LBA, a stale block and a torn block all fail verification,
// and any sub-range can be verified on its own.
func fill(b []byte, off int64, seed uint64) {
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], word(seed, uint64(off)+uint64(i)))
	}
}

// word is splitmix64 of (seed, offset): cheap, well mixed, never constant.
func word(seed, off uint64) uint64 {
	z := seed*0x9e3779b97f4a7c15 + off + 0x632be59bd9b4e019
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func openDirect(dev string, flags int) (*os.File, error) {
	f, err := os.OpenFile(dev, flags|syscall.O_DIRECT, 0)
	if err != nil {
		return nil, fmt.Errorf("open with O_DIRECT: %w", err)
	}
	return f, nil
}

func write(dev string, bs int, count, offset int64, seed uint64) (string, error) {
	f, err := openDirect(dev, os.O_WRONLY)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf, err := alignedBuffer(bs)
	if err != nil {
		return "", err
	}
	defer syscall.Munmap(buf)
	for i := int64(0); i < count; i++ {
		off := offset + i*int64(bs)
		fill(buf, off, seed)
		if _, err := f.WriteAt(buf, off); err != nil {
			return "", fmt.Errorf("write at offset %d: %w", off, err)
		}
	}
	// Flush the volatile write cache (an NVMe Flush), so that "write ok" means
	// the target acknowledged durability, not only the transfers.
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("fsync: %w", err)
	}
	return summary(bs, count, offset, seed), nil
}

func verify(dev string, bs int, count, offset int64, seed uint64) (string, error) {
	f, err := openDirect(dev, os.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf, err := alignedBuffer(bs)
	if err != nil {
		return "", err
	}
	defer syscall.Munmap(buf)
	want := make([]byte, bs)
	for i := int64(0); i < count; i++ {
		off := offset + i*int64(bs)
		if _, err := f.ReadAt(buf, off); err != nil {
			return "", fmt.Errorf("read at offset %d: %w", off, err)
		}
		fill(want, off, seed)
		if j := firstDiff(buf, want); j >= 0 {
			return "", &mismatchError{Offset: off + int64(j), Got: buf[j], Want: want[j]}
		}
	}
	return summary(bs, count, offset, seed), nil
}

func zeroCheck(dev string, bs int, offset, length int64) (string, error) {
	f, err := openDirect(dev, os.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf, err := alignedBuffer(bs)
	if err != nil {
		return "", err
	}
	defer syscall.Munmap(buf)
	for done := int64(0); done < length; {
		n := int64(bs)
		if length-done < n {
			n = length - done
		}
		off := offset + done
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return "", fmt.Errorf("read at offset %d: %w", off, err)
		}
		for j, c := range buf[:n] {
			if c != 0 {
				return "", &mismatchError{Offset: off + int64(j), Got: c, Want: 0}
			}
		}
		done += n
	}
	return fmt.Sprintf("offset=%d len=%d", offset, length), nil
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func summary(bs int, count, offset int64, seed uint64) string {
	return fmt.Sprintf("bs=%d count=%d offset=%d bytes=%d seed=%d", bs, count, offset, int64(bs)*count, seed)
}
