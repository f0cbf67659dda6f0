package scsi

// The checks in this file turn a decoded CDB and the logical unit's limits into the
// sense SBC-3 asks for. They run per I/O: each returns nil or a preallocated error.

// CheckLBARange returns LOGICAL BLOCK ADDRESS OUT OF RANGE unless blocks logical blocks
// from lba fit in capacity blocks (SBC-3 §4.5). A zero-length access at lba == capacity
// fits; one past it does not (libiscsi *.ZeroBlocks send LBA capacity+1 with 0 blocks
// and expect the error). The sum cannot overflow: libiscsi probes LBAs near 2^64.
func CheckLBARange(lba, blocks, capacity uint64) error {
	if lba > capacity || blocks > capacity-lba {
		return ErrLBAOutOfRange
	}
	return nil
}

// CheckRange checks the LBA and TransferLength of a block command against capacity.
// COMPARE AND WRITE counts its NUMBER OF LOGICAL BLOCKS once (the data-out buffer holds
// it twice). WRITE SAME with 0 blocks means "to the end": use [BlockLimits.CheckWriteSame].
func (c *CDB) CheckRange(capacity uint64) error {
	return CheckLBARange(c.LBA, uint64(c.TransferLength), capacity)
}

// CheckProtect refuses a non-zero RDPROTECT/WRPROTECT/VRPROTECT/ORPROTECT on a logical
// unit without protection information: INVALID FIELD IN CDB @1 bit 7 (SBC-3 §5.16
// table footnote; libiscsi *.ReadProtect/*.WriteProtect/*.VerifyProtect).
func (c *CDB) CheckProtect(protection bool) error {
	if c.Protect != 0 && !protection {
		return InvalidFieldInCDB(1, 7)
	}
	return nil
}

// CheckDPOFUA refuses DPO or FUA when the LU reports DPOFUA=0 in MODE SENSE: INVALID
// FIELD IN CDB @1 (SBC-3 §6.4.1; libiscsi *.DpoFua check both ways).
func (c *CDB) CheckDPOFUA(dpofua bool) error {
	switch {
	case dpofua:
		return nil
	case c.DPO:
		return InvalidFieldInCDB(1, 4)
	case c.FUA:
		return InvalidFieldInCDB(1, 3)
	}
	return nil
}

// CheckAnchor refuses ANCHOR=1 (WRITE SAME @1 bit 4, UNMAP @1 bit 0) when the Logical
// Block Provisioning page reports ANC_SUP=0: INVALID FIELD IN CDB (SBC-3 §5.28, §5.41).
func (c *CDB) CheckAnchor(ancSup bool) error {
	if !c.Anchor || ancSup {
		return nil
	}
	if c.Opcode == OpUnmap {
		return InvalidFieldInCDB(1, 0)
	}
	return InvalidFieldInCDB(1, 4)
}

// transferLengthField returns the byte offset of the TransferLength field, for field
// pointers.
func (c *CDB) transferLengthField() int {
	return int(blockLayouts[c.Opcode].tlOff)
}

// CheckTransferLength refuses a TRANSFER LENGTH above MAXIMUM TRANSFER LENGTH (READ,
// WRITE, VERIFY, WRITE AND VERIFY, ORWRITE, WRITE ATOMIC) or a PREFETCH LENGTH above MAXIMUM PREFETCH
// LENGTH: INVALID FIELD IN CDB at the length (SBC-3 §6.5.3). Zero limits mean none.
func (l *BlockLimits) CheckTransferLength(c *CDB) error {
	limit := l.MaxTransferLength
	switch c.Opcode {
	case OpPreFetch10, OpPreFetch16:
		limit = l.MaxPrefetchLength
	case OpRead6, OpRead10, OpRead12, OpRead16, OpWrite6, OpWrite10, OpWrite12, OpWrite16,
		OpVerify10, OpVerify12, OpVerify16, OpWriteAndVerify10, OpWriteAndVerify12,
		OpWriteAndVerify16, OpOrWrite16, OpWriteAtomic16:
	default:
		return nil
	}
	if limit != 0 && c.TransferLength > limit {
		return InvalidFieldInCDB(c.transferLengthField(), 7)
	}
	return nil
}

// CheckWriteSame checks WRITE SAME (10)/(16) against capacity and the limits, and
// returns how many blocks to write. NUMBER OF LOGICAL BLOCKS 0 writes to the end of the
// LU unless WSNZ (SBC-3 §5.41); either way the count may not exceed MAXIMUM WRITE SAME
// LENGTH. The order follows libiscsi WriteSame*.ZeroBlocks: an LBA past the end is LBA
// OUT OF RANGE before any length is judged.
func (l *BlockLimits) CheckWriteSame(c *CDB, capacity uint64) (uint64, error) {
	if c.LBA > capacity {
		return 0, ErrLBAOutOfRange
	}
	n := uint64(c.TransferLength)
	if n == 0 {
		if l.WSNZ {
			return 0, InvalidFieldInCDB(c.transferLengthField(), 7)
		}
		n = capacity - c.LBA
	} else if err := CheckLBARange(c.LBA, n, capacity); err != nil {
		return 0, err
	}
	if l.MaxWriteSameLength != 0 && n > l.MaxWriteSameLength {
		return 0, InvalidFieldInCDB(c.transferLengthField(), 7)
	}
	return n, nil
}

// CheckCompareAndWrite refuses a NUMBER OF LOGICAL BLOCKS above MAXIMUM COMPARE AND
// WRITE LENGTH: INVALID FIELD IN CDB @13 (SBC-3 §5.2; libiscsi CompareAndWrite.Simple).
// 0 blocks is not an error and transfers nothing.
func (l *BlockLimits) CheckCompareAndWrite(c *CDB) error {
	if c.TransferLength > uint32(l.MaxCompareAndWriteLength) {
		return InvalidFieldInCDB(13, 7)
	}
	return nil
}

// CheckWriteAtomic checks WRITE ATOMIC (16) against the atomic fields of the Block Limits
// page (SBC-4 §4.29, §5.48), after CheckTransferLength and CheckRange: an ATOMIC
// BOUNDARY when no boundary is supported (MAXIMUM ATOMIC BOUNDARY SIZE 0), a TRANSFER
// LENGTH above MAXIMUM ATOMIC TRANSFER LENGTH or not a multiple of ATOMIC TRANSFER
// LENGTH GRANULARITY, and an LBA not a multiple of ATOMIC ALIGNMENT are INVALID FIELD IN
// CDB at the field (libiscsi WriteAtomic16.VPD). Zero alignment or granularity means
// none is required.
func (l *BlockLimits) CheckWriteAtomic(c *CDB) error {
	switch {
	case c.AtomicBoundary != 0 && (l.MaxAtomicBoundarySize == 0 ||
		uint32(c.AtomicBoundary) > l.MaxAtomicBoundarySize):
		return InvalidFieldInCDB(10, 7)
	case c.TransferLength > l.MaxAtomicTransferLength:
		return InvalidFieldInCDB(12, 7)
	case l.AtomicTransferLengthGranularity > 1 && c.TransferLength%l.AtomicTransferLengthGranularity != 0:
		return InvalidFieldInCDB(12, -1)
	case l.AtomicAlignment > 1 && c.LBA%uint64(l.AtomicAlignment) != 0:
		return InvalidFieldInCDB(2, -1)
	}
	return nil
}
