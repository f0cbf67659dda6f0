package mem

import "strconv"

// Geometry. A page is one 2 MiB hugepage; a slice is an eighth of a page. The slice size
// bounds the objects of a class (the largest class is one object per slice) and sets the
// unit in which memory moves between size classes: a dirty slice can be re-formatted for
// any class, a page goes back to the domain only when all eight slices are idle.
const (
	pageShift  = 21
	sliceShift = 18

	// PageSize is the unit a domain maps and lends to cores: one 2 MiB hugepage.
	PageSize = 1 << pageShift
	// SliceSize is the unit a page is cut into; every slice holds objects of one class.
	SliceSize = 1 << sliceShift

	slicesPerPage = PageSize / SliceSize
	minObject     = 64
	maxObjects    = SliceSize / minObject // objects in a slice of the smallest class
	bitWords      = maxObjects / 64       // words of a slice's free bitmap

	// smallMax is the largest class that is only 64-byte aligned; classes above it are
	// multiples of 4 KiB and so 4 KiB aligned (slices are 256 KiB aligned).
	smallMax = 3072
	// MaxClassSize is the largest size served from a size class; larger allocations are
	// spans of whole slices (up to PageSize) or whole pages.
	MaxClassSize = SliceSize
)

// classSizes lists the object size of each class. Small classes are multiples of 64 (the
// cache line, so request contexts never share a line); large ones are multiples of 4096
// (the O_DIRECT and io_uring alignment). The spacing keeps the waste of rounding a request
// up under about a third, and the slice tail that a class cannot use under 7%.
var classSizes = [numClasses]uint32{
	64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072,
	4 << 10, 8 << 10, 12 << 10, 16 << 10, 24 << 10, 32 << 10, 48 << 10, 64 << 10,
	128 << 10, 256 << 10,
}

const (
	// numClasses is the number of size classes (the length of classSizes; the table
	// test checks that every entry is set).
	numClasses = 21
	// clsSpan marks a Buf or slice that is part of a multi-slice span.
	clsSpan = numClasses
	// clsPages marks a Buf made of whole pages taken from the domain.
	clsPages = numClasses + 1
	// clsNone marks a slice that has never been formatted.
	clsNone = 0xff
	// numRows is the number of per-core accounting rows: the classes plus spans.
	numRows = numClasses + 1
)

// Lookup tables from a rounded size to its class: smallIndex by 64-byte step up to
// smallMax, largeIndex by 4 KiB step up to MaxClassSize. Two tables and one branch keep
// the fast path free of a search.
var (
	smallIndex [smallMax/64 + 1]uint8
	largeIndex [MaxClassSize/4096 + 1]uint8
	// objsPerSlice is SliceSize / classSizes[c], precomputed for format.
	objsPerSlice [numClasses]uint16
)

func init() {
	c := 0
	for i := range smallIndex {
		for int(classSizes[c]) < i*64 {
			c++
		}
		smallIndex[i] = uint8(c)
	}
	for i := range largeIndex {
		for int(classSizes[c]) < i*4096 {
			c++
		}
		largeIndex[i] = uint8(c)
	}
	for c, size := range classSizes {
		objsPerSlice[c] = uint16(SliceSize / size)
	}
}

// classOf returns the class of a request of size bytes.
//
// Preconditions: 0 < size <= MaxClassSize.
func classOf(size int) int {
	if size <= smallMax {
		return int(smallIndex[(size+63)>>6])
	}
	return int(largeIndex[(size+4095)>>12])
}

// ClassSize returns the capacity an allocation of size bytes gets: its class's object
// size, or for sizes above MaxClassSize the whole slices or pages it spans. It returns 0
// for size <= 0.
func ClassSize(size int) int {
	switch {
	case size <= 0:
		return 0
	case size <= MaxClassSize:
		return int(classSizes[classOf(size)])
	case size <= PageSize:
		return (size + SliceSize - 1) &^ (SliceSize - 1)
	default:
		return (size + PageSize - 1) &^ (PageSize - 1)
	}
}

// ClassSizes returns the object sizes of the size classes, ascending. The result is a
// fresh slice the caller may keep.
func ClassSizes() []int {
	out := make([]int, numClasses)
	for i, s := range classSizes {
		out[i] = int(s)
	}
	return out
}

// classAlign returns the alignment that class c promises.
func classAlign(c int) int {
	if classSizes[c] > smallMax {
		return 4096
	}
	return minObject
}

// rowNames name the accounting rows (a class's object size, or "span"), built once so
// that publishing stats allocates nothing.
var rowNames = func() (n [numRows]string) {
	for i := range numClasses {
		n[i] = strconv.Itoa(int(classSizes[i]))
	}
	n[clsSpan] = "span"
	return n
}()

func rowName(r int) string { return rowNames[r] }
