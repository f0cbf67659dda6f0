package scsi

import "testing"

func TestReadCapacity(t *testing.T) {
	c := Capacity{Blocks: 0x2_0000_0000, BlockSize: 512, LBPPBExponent: 3, LBPME: true,
		LBPRZ: true, LowestAlignedLBA: 0x1234}
	// SBC-3 §5.16.2: the last LBA does not fit in 32 bits, so READ CAPACITY(10) says
	// FFFFFFFFh and the initiator switches to READ CAPACITY(16).
	checkFields(t, "rc10 big", c.Append10(nil), []field{{0, []byte{0xFF, 0xFF, 0xFF, 0xFF,
		0, 0, 2, 0}}})
	b := c.Append16(nil)
	if len(b) != ReadCapacity16Len {
		t.Fatalf("rc16 length %d", len(b))
	}
	checkFields(t, "rc16", b, []field{
		{0, []byte{0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF}}, // RETURNED LBA
		{8, []byte{0, 0, 2, 0}},                         // LOGICAL BLOCK LENGTH
		{12, []byte{0x00, 0x03, 0xD2, 0x34}},            // PROT, LBPPBE, LBPME|LBPRZ|LALBA
		{16, make([]byte, 16)},
	})
	small := Capacity{Blocks: 2048, BlockSize: 4096, ProtEn: true, ProtType: 1, PIExponent: 2}
	checkFields(t, "rc10", small.Append10(nil), []field{{0, []byte{0, 0, 0x07, 0xFF,
		0, 0, 0x10, 0}}})
	checkFields(t, "rc16 prot", small.Append16(nil), []field{{12, []byte{0x03, 0x20, 0, 0}}})
	// 2^32 blocks: the last LBA is FFFFFFFFh exactly, which RC10 reports as is.
	edge := Capacity{Blocks: 1 << 32, BlockSize: 512}
	checkFields(t, "rc10 edge", edge.Append10(nil), []field{{0, []byte{0xFF, 0xFF, 0xFF,
		0xFF}}})
	empty := Capacity{BlockSize: 512}
	checkFields(t, "empty", empty.Append16(nil), []field{{0, make([]byte, 8)}})
}

func TestGetLBAStatus(t *testing.T) {
	b := AppendGetLBAStatus(nil, []LBAStatus{
		{LBA: 8, Blocks: 8, Status: LBADeallocated},
		{LBA: 16, Blocks: 0x10000, Status: LBAMapped},
	})
	// SBC-3 §5.6.2: PARAMETER DATA LENGTH counts the bytes after it.
	if len(b) != 8+32 {
		t.Fatalf("length %d", len(b))
	}
	checkFields(t, "lba status", b, []field{
		{0, []byte{0, 0, 0, 36, 0, 0, 0, 0}},
		{8, []byte{0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 8, 1, 0, 0, 0}},
		{24, []byte{0, 0, 0, 0, 0, 0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 0}},
	})
}
