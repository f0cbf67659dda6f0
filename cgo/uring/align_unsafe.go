package uring

import "unsafe"

// Aligned reports whether b's first byte sits at a multiple of align, a power of two.
// O_DIRECT needs aligned memory; a caller bounces the I/Os whose buffers are not.
func Aligned(b []byte, align int) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))&uintptr(align-1) == 0
}
