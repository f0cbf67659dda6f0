package iscsi

import "testing"

func BenchmarkDataOutHeader(b *testing.B) {
	var h BHS
	(&DataOut{Final: true, DataSegmentLength: 4096, ITT: 1, TTT: 2}).Put(&h)
	p := LayoutParams{HeaderDigest: true, DataDigest: true, MaxRecvDataSegmentLength: 65536}
	b.ReportAllocs()
	for b.Loop() {
		l, err := h.Layout(p)
		d, _ := DecodeDataOut(&h)
		if err != nil || l.DataLen != d.DataSegmentLength {
			b.Fatal(err)
		}
	}
}

func BenchmarkDataInEncode(b *testing.B) {
	var h BHS
	b.ReportAllocs()
	for b.Loop() {
		(&DataIn{Final: true, HasStatus: true, DataSegmentLength: 4096, ITT: 1}).Put(&h)
		h.PutSequence(1, 2, 3)
	}
}

func BenchmarkCRC32C4K(b *testing.B) {
	data := make([]byte, 4096)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		_ = DataDigest(data)
	}
}
