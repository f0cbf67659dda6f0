package mem

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds the only unsafe code of the package: turning mappings into []byte and
// back, and taking their address for mbind. Object memory is reached everywhere else
// through Domain.mem, a []byte over the mapping, with ordinary bounds checks.

// mapHugetlb maps size bytes of anonymous 2 MiB hugepages. The kernel reserves the pages
// at mmap time, so a shortage is ENOMEM here, never SIGBUS on first touch.
func mapHugetlb(size int) ([]byte, error) {
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_HUGETLB|unix.MAP_HUGE_2MB)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), size), nil
}

// mapOrdinary maps size bytes of anonymous ordinary pages aligned to PageSize (so that
// transparent hugepages can back whole pages) and asks for THP with MADV_HUGEPAGE.
func mapOrdinary(size int) ([]byte, error) {
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(size+PageSize), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	head := int((PageSize - uintptr(p)%PageSize) % PageSize)
	if head > 0 {
		if err := unix.MunmapPtr(p, uintptr(head)); err != nil {
			return nil, err
		}
	}
	start := unsafe.Add(p, head)
	if tail := PageSize - head; tail > 0 {
		if err := unix.MunmapPtr(unsafe.Add(start, size), uintptr(tail)); err != nil {
			return nil, err
		}
	}
	b := unsafe.Slice((*byte)(start), size)
	// THP may be disabled ("never"); the mapping still works with 4 KiB pages.
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return b, nil
}

// unmap releases a mapping made by mapHugetlb or mapOrdinary.
func unmap(b []byte) error {
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
}

// addrOf returns the address of b's first byte.
func addrOf(b []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))
}
