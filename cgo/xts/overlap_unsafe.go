package xts

import "unsafe"

// inexactOverlap reports whether x and y share memory without starting at the same byte.
// An exact overlap is an in-place call, which both backends support; any other overlap
// would feed a later sector bytes that an earlier one already overwrote.
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 {
		return false
	}
	px := uintptr(unsafe.Pointer(unsafe.SliceData(x)))
	py := uintptr(unsafe.Pointer(unsafe.SliceData(y)))
	if px == py {
		return false
	}
	return px < py+uintptr(len(y)) && py < px+uintptr(len(x))
}
