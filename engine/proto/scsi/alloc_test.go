package scsi

import "testing"

// Every READ and WRITE goes through DecodeCDB, the range and limit checks and, on
// failure, a sense encoder: none may allocate (DESIGN.md "Zero garbage on the hot path").

func assertNoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(100, f); n != 0 {
		t.Errorf("%s: %v allocs per run, want 0", name, n)
	}
}

func TestAllocsHotPath(t *testing.T) {
	read := bhs(0x28, 0x08, 0, 0, 0x10, 0, 0, 0, 8, 0)
	bad := bhs(0x28, 0x08, 0, 0, 0x10, 0, 0, 0, 8, 0x04)
	unknown := bhs(0xC1)
	lim := BlockLimits{MaxTransferLength: 256, MaxWriteSameLength: 1024}
	sense := make([]byte, SenseMaxLen)
	var sink error
	var n uint64
	assertNoAllocs(t, "decode+check", func() {
		c, err := DecodeCDB(read)
		if err != nil {
			t.Fatal(err)
		}
		sink = c.CheckRange(1 << 20)
		sink = lim.CheckTransferLength(&c)
		sink = c.CheckProtect(false)
		sink = c.CheckDPOFUA(true)
		_, n = c.DataLength(4096)
	})
	assertNoAllocs(t, "decode errors", func() {
		_, sink = DecodeCDB(bad)
		_, sink = DecodeCDB(unknown)
		_, sink = DecodeCDB(nil)
	})
	assertNoAllocs(t, "check errors", func() {
		c := CDB{Opcode: OpWriteSame16, LBA: 10, TransferLength: 2000}
		n, sink = lim.CheckWriteSame(&c, 1<<20)
		sink = CheckLBARange(^uint64(0), 1, 100)
		c.Opcode, c.TransferLength = OpRead16, 300
		sink = lim.CheckTransferLength(&c)
		c.Opcode = OpWriteAtomic16
		sink = lim.CheckWriteAtomic(&c)
	})
	assertNoAllocs(t, "sense", func() {
		s := InvalidFieldInCDB(9, 2).Sense
		s.Put(sense, false)
		s.Put(sense, true)
		m := Sense{Key: SenseKeyMiscompare, Code: ASCMiscompareDuringVerify, InfoValid: true,
			Info: 27}
		m.PutFixed(sense)
	})
	list := AppendUnmap(nil, []UnmapDescriptor{{LBA: 1, Blocks: 8}, {LBA: 100, Blocks: 8}})
	assertNoAllocs(t, "unmap", func() {
		l, err := DecodeUnmap(list)
		if err != nil {
			t.Fatal(err)
		}
		sink = l.Check(1<<20, &BlockLimits{})
		for i := 0; i < l.Len(); i++ {
			n += uint64(l.At(i).Blocks)
		}
	})
	assertNoAllocs(t, "lun", func() {
		l, err := DecodeLUN(EncodeLUN(300))
		sink, n = err, uint64(l)
	})
	_, _ = sink, n
}

func BenchmarkDecodeCDB(b *testing.B) {
	read := bhs(0x88, 0x08, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 8, 0, 0)
	lim := BlockLimits{MaxTransferLength: 256}
	b.ReportAllocs()
	for b.Loop() {
		c, err := DecodeCDB(read)
		if err != nil || c.CheckRange(1<<30) != nil || lim.CheckTransferLength(&c) != nil {
			b.Fatal(err)
		}
	}
}
