package scsi

import (
	"reflect"
	"testing"
)

func unmapDescs(l UnmapList) []UnmapDescriptor {
	var out []UnmapDescriptor
	for i := 0; i < l.Len(); i++ {
		out = append(out, l.At(i))
	}
	return out
}

func TestUnmapList(t *testing.T) {
	descs := []UnmapDescriptor{{LBA: 0, Blocks: 8}, {LBA: 1 << 40, Blocks: 0xFFFFFFFF}}
	b := AppendUnmap(nil, descs)
	// SBC-3 table "UNMAP parameter list": DATA LENGTH = n-2, BLOCK DESCRIPTOR DATA
	// LENGTH = 16 per descriptor, as libiscsi's unmap() writes them.
	checkFields(t, "unmap", b, []field{
		{0, []byte{0, 38, 0, 32, 0, 0, 0, 0}},
		{8, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0}},
		{24, []byte{0, 0, 1, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}},
	})
	l, err := DecodeUnmap(b)
	if err != nil || !reflect.DeepEqual(unmapDescs(l), descs) {
		t.Fatalf("decode %+v %v", unmapDescs(l), err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		n    int
		err  error
	}{
		{"empty parameter list", nil, 0, nil},
		{"header only (libiscsi Unmap.ZeroBlocks, 0 descriptors)", AppendUnmap(nil, nil), 0, nil},
		{"short", []byte{0, 6, 0, 0, 0, 0, 0}, 0, ErrParameterListLength},
		// BLOCK DESCRIPTOR DATA LENGTH beyond the data: use what is there.
		{"overlong bd length", append(AppendUnmap(nil, descs[:1])[:2], 0, 64, 0, 0, 0, 0,
			0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0), 1, nil},
		// An incomplete last descriptor is ignored (SBC-3 §5.28.2).
		{"partial descriptor", append(AppendUnmap(nil, descs), 1, 2, 3)[:8+16+10], 1, nil},
		{"bd length shorter than data", func() []byte {
			x := AppendUnmap(nil, descs)
			x[3] = 16
			return x
		}(), 1, nil},
	} {
		l, err := DecodeUnmap(tc.b)
		if err != tc.err || l.Len() != tc.n {
			t.Errorf("%s: %d descriptors, %v", tc.name, l.Len(), err)
		}
	}
}

func TestUnmapCheck(t *testing.T) {
	const capacity = 1000
	lim := BlockLimits{MaxUnmapLBACount: 100, MaxUnmapDescriptors: 2}
	check := func(d ...UnmapDescriptor) error {
		l, err := DecodeUnmap(AppendUnmap(nil, d))
		if err != nil {
			t.Fatal(err)
		}
		return l.Check(capacity, &lim)
	}
	if err := check(UnmapDescriptor{LBA: capacity}); err != nil {
		t.Fatalf("0 blocks at the end: %v", err)
	}
	if err := check(UnmapDescriptor{LBA: capacity - 1, Blocks: 2}); err != error(ErrLBAOutOfRange) {
		t.Fatalf("past the end: %v", err)
	}
	if err := check(UnmapDescriptor{LBA: ^uint64(0), Blocks: 2}); err != error(ErrLBAOutOfRange) {
		t.Fatalf("wrapping: %v", err)
	}
	err := check(UnmapDescriptor{}, UnmapDescriptor{}, UnmapDescriptor{})
	if !reflect.DeepEqual(err, InvalidFieldInParameterList(2, -1)) {
		t.Fatalf("descriptor count: %v", err)
	}
	err = check(UnmapDescriptor{Blocks: 60}, UnmapDescriptor{LBA: 100, Blocks: 41})
	if !reflect.DeepEqual(err, InvalidFieldInParameterList(8+16+8, -1)) {
		t.Fatalf("LBA count: %v", err)
	}
	lim = BlockLimits{MaxUnmapLBACount: 0xFFFFFFFF}
	if err := check(UnmapDescriptor{Blocks: 1000}, UnmapDescriptor{}, UnmapDescriptor{}); err != nil {
		t.Fatalf("no limits: %v", err)
	}
}
