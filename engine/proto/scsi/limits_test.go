package scsi

import "testing"

func TestCheckLBARange(t *testing.T) {
	const capacity = 1000
	for _, tc := range []struct {
		lba, n uint64
		ok     bool
	}{
		{0, 0, true},
		{0, capacity, true},
		{capacity - 1, 1, true},
		{capacity, 0, true},      // libiscsi Unmap.ZeroBlocks: LBA capacity, 0 blocks
		{capacity + 1, 0, false}, // libiscsi *.ZeroBlocks
		{capacity - 1, 2, false}, // *.BeyondEol, last loop
		{0x80000000, 1, false},   // *.BeyondEol, LBA 2^31
		{^uint64(0), 1, false},   // LBA -1: must not wrap around
		{1 << 63, 256, false},    // READ16.BeyondEol
		{1, ^uint64(0), false},   // huge count
		{capacity - 256 + 1, 256, false},
	} {
		err := CheckLBARange(tc.lba, tc.n, capacity)
		if (err == nil) != tc.ok || err != nil && err != error(ErrLBAOutOfRange) {
			t.Errorf("lba %d n %d: %v", tc.lba, tc.n, err)
		}
	}
	c := CDB{Opcode: OpRead16, LBA: capacity - 2, TransferLength: 3}
	if c.CheckRange(capacity) != error(ErrLBAOutOfRange) {
		t.Fatal("CheckRange")
	}
}

func TestCheckWriteSame(t *testing.T) {
	const capacity = 10000
	lim := BlockLimits{MaxWriteSameLength: 1024}
	ws := func(lba uint64, n uint32) *CDB {
		return &CDB{Opcode: OpWriteSame16, LBA: lba, TransferLength: n}
	}
	// The libiscsi WriteSame16.ZeroBlocks sequence against MAXIMUM WRITE SAME LENGTH 1024.
	for _, tc := range []struct {
		c     *CDB
		lim   BlockLimits
		want  error
		write uint64
	}{
		{ws(0, 0), lim, InvalidFieldInCDB(10, 7), 0}, // to the end: 10000 > 1024
		{ws(capacity-1025, 0), lim, InvalidFieldInCDB(10, 7), 0},
		{ws(capacity-1024, 0), lim, nil, 1024},
		{ws(capacity-1023, 0), lim, nil, 1023},
		{ws(capacity+1, 0), lim, ErrLBAOutOfRange, 0},
		{ws(1<<63, 0), lim, ErrLBAOutOfRange, 0},
		{ws(capacity, 0), lim, nil, 0},
		{ws(0, 0), BlockLimits{}, nil, capacity},
		{ws(0, 0), BlockLimits{WSNZ: true}, InvalidFieldInCDB(10, 7), 0},
		{ws(capacity-1, 2), lim, ErrLBAOutOfRange, 0},
		{ws(0, 1025), lim, InvalidFieldInCDB(10, 7), 0},
		{&CDB{Opcode: OpWriteSame10, LBA: 5, TransferLength: 256}, lim, nil, 256},
		{&CDB{Opcode: OpWriteSame10}, BlockLimits{WSNZ: true}, InvalidFieldInCDB(7, 7), 0},
	} {
		n, err := tc.lim.CheckWriteSame(tc.c, capacity)
		if err != tc.want || n != tc.write {
			t.Errorf("%+v: %d %v, want %d %v", *tc.c, n, err, tc.write, tc.want)
		}
	}
}

func TestCheckTransferLength(t *testing.T) {
	lim := BlockLimits{MaxTransferLength: 256, MaxPrefetchLength: 16}
	for _, tc := range []struct {
		c    CDB
		want error
	}{
		{CDB{Opcode: OpRead10, TransferLength: 256}, nil},
		{CDB{Opcode: OpRead10, TransferLength: 257}, InvalidFieldInCDB(7, 7)},
		{CDB{Opcode: OpWrite12, TransferLength: 257}, InvalidFieldInCDB(6, 7)},
		{CDB{Opcode: OpVerify16, TransferLength: 257}, InvalidFieldInCDB(10, 7)},
		{CDB{Opcode: OpRead6, TransferLength: 256}, nil},
		{CDB{Opcode: OpPreFetch10, TransferLength: 17}, InvalidFieldInCDB(7, 7)},
		{CDB{Opcode: OpSynchronizeCache10, TransferLength: 9999}, nil},
		{CDB{Opcode: OpWriteSame16, TransferLength: 9999}, nil},
	} {
		if err := lim.CheckTransferLength(&tc.c); err != tc.want {
			t.Errorf("%v %d: %v, want %v", tc.c.Opcode, tc.c.TransferLength, err, tc.want)
		}
	}
	if err := (&BlockLimits{}).CheckTransferLength(&CDB{Opcode: OpRead16,
		TransferLength: 1 << 30}); err != nil {
		t.Fatal("0 means no limit")
	}
}

func TestCheckFieldsAgainstLU(t *testing.T) {
	lim := BlockLimits{MaxCompareAndWriteLength: 1}
	if lim.CheckCompareAndWrite(&CDB{TransferLength: 1}) != nil ||
		lim.CheckCompareAndWrite(&CDB{}) != nil ||
		lim.CheckCompareAndWrite(&CDB{TransferLength: 2}) != error(InvalidFieldInCDB(13, 7)) {
		t.Fatal("CheckCompareAndWrite")
	}
	rd := CDB{Opcode: OpRead10, Protect: 1}
	if rd.CheckProtect(false) != error(InvalidFieldInCDB(1, 7)) || rd.CheckProtect(true) != nil {
		t.Fatal("CheckProtect")
	}
	for _, tc := range []struct {
		c      CDB
		dpofua bool
		want   error
	}{
		{CDB{DPO: true}, false, InvalidFieldInCDB(1, 4)},
		{CDB{FUA: true}, false, InvalidFieldInCDB(1, 3)},
		{CDB{DPO: true, FUA: true}, true, nil},
		{CDB{}, false, nil},
	} {
		if err := tc.c.CheckDPOFUA(tc.dpofua); err != tc.want {
			t.Errorf("%+v: %v", tc.c, err)
		}
	}
	ws := CDB{Opcode: OpWriteSame10, Anchor: true, Unmap: true}
	um := CDB{Opcode: OpUnmap, Anchor: true}
	if ws.CheckAnchor(false) != error(InvalidFieldInCDB(1, 4)) ||
		um.CheckAnchor(false) != error(InvalidFieldInCDB(1, 0)) ||
		ws.CheckAnchor(true) != nil || (&CDB{}).CheckAnchor(false) != nil {
		t.Fatal("CheckAnchor")
	}
}

func TestCheckWriteAtomic(t *testing.T) {
	lim := BlockLimits{MaxTransferLength: 2048, MaxAtomicTransferLength: 256}
	aligned := BlockLimits{MaxAtomicTransferLength: 256, AtomicAlignment: 8,
		AtomicTransferLengthGranularity: 8, MaxAtomicBoundarySize: 16}
	wa := func(lba uint64, n uint32, boundary uint16) *CDB {
		return &CDB{Opcode: OpWriteAtomic16, LBA: lba, TransferLength: n, AtomicBoundary: boundary}
	}
	for _, tc := range []struct {
		c    *CDB
		lim  BlockLimits
		want error
	}{
		{wa(0, 256, 0), lim, nil},
		{wa(3, 1, 0), lim, nil}, // no alignment or granularity required
		{wa(0, 0, 0), lim, nil},
		{wa(0, 257, 0), lim, InvalidFieldInCDB(12, 7)},
		{wa(0, 1, 1), lim, InvalidFieldInCDB(10, 7)}, // no boundary supported
		{wa(8, 16, 0), aligned, nil},
		{wa(1, 8, 0), aligned, InvalidFieldInCDB(2, -1)}, // libiscsi WriteAtomic16.VPD
		{wa(0, 1, 0), aligned, InvalidFieldInCDB(12, -1)},
		{wa(0, 8, 16), aligned, nil},
		{wa(0, 8, 17), aligned, InvalidFieldInCDB(10, 7)},
	} {
		if err := tc.lim.CheckWriteAtomic(tc.c); err != tc.want {
			t.Errorf("%+v: %v, want %v", *tc.c, err, tc.want)
		}
	}
	// MAXIMUM TRANSFER LENGTH binds WRITE ATOMIC too.
	if lim.CheckTransferLength(wa(0, 2049, 0)) != error(InvalidFieldInCDB(12, 7)) {
		t.Fatal("CheckTransferLength")
	}
}
