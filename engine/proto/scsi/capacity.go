package scsi

// Lengths of READ CAPACITY parameter data (SBC-3 §5.16.2, §5.17.2).
const (
	ReadCapacity10Len = 8
	ReadCapacity16Len = 32
)

// Capacity describes a logical unit's size and layout for READ CAPACITY (10)/(16) and
// the MODE SENSE block descriptor.
type Capacity struct {
	// Blocks is the number of logical blocks; RETURNED LOGICAL BLOCK ADDRESS is Blocks-1.
	Blocks    uint64
	BlockSize uint32 // LOGICAL BLOCK LENGTH IN BYTES
	// ProtEn, ProtType (P_TYPE) and PIExponent describe protection information; a
	// target without it leaves them zero (libiscsi ReadCapacity16.PI checks this
	// against PROTECT in standard INQUIRY).
	ProtEn     bool
	ProtType   uint8
	PIExponent uint8
	// LBPPBExponent is log2(logical blocks per physical block): 3 for 512-byte logical
	// blocks on 4 KiB media (512e). libiscsi reads it as lbppb.
	LBPPBExponent uint8
	// LBPME: the LU is thin provisioned (UNMAP / WRITE SAME UNMAP work); keep it
	// consistent with the Logical Block Provisioning VPD page.
	LBPME bool
	// LBPRZ: unmapped blocks read back as zeros.
	LBPRZ bool
	// LowestAlignedLBA is the first LBA aligned to a physical block (14 bits).
	LowestAlignedLBA uint16
}

// lastLBA is RETURNED LOGICAL BLOCK ADDRESS: the last LBA, 0 for an empty LU.
func (c *Capacity) lastLBA() uint64 {
	if c.Blocks == 0 {
		return 0
	}
	return c.Blocks - 1
}

// Append10 appends READ CAPACITY (10) parameter data (SBC-3 §5.16.2): RETURNED LOGICAL
// BLOCK ADDRESS @0, FFFFFFFFh when the last LBA does not fit in 32 bits (which tells the
// initiator to use READ CAPACITY (16)), and LOGICAL BLOCK LENGTH @4.
func (c *Capacity) Append10(b []byte) []byte {
	b = be.AppendUint32(b, uint32(min(c.lastLBA(), 0xFFFFFFFF)))
	return be.AppendUint32(b, c.BlockSize)
}

// Append16 appends READ CAPACITY (16) parameter data (SBC-3 §5.17.2): RETURNED LOGICAL
// BLOCK ADDRESS @0, LOGICAL BLOCK LENGTH @8, P_TYPE/PROT_EN @12, P_I_EXPONENT/LBPPBE @13,
// LBPME (@14 bit 7), LBPRZ (@14 bit 6) and LOWEST ALIGNED LOGICAL BLOCK ADDRESS @14-15.
func (c *Capacity) Append16(b []byte) []byte {
	b = be.AppendUint64(b, c.lastLBA())
	b = be.AppendUint32(b, c.BlockSize)
	b = append(b, (c.ProtType&7)<<1|bit(c.ProtEn, 0), c.PIExponent<<4|c.LBPPBExponent&0x0F)
	b = be.AppendUint16(b, uint16(bit(c.LBPME, 7)|bit(c.LBPRZ, 6))<<8|c.LowestAlignedLBA&0x3FFF)
	return append(b, make([]byte, ReadCapacity16Len-16)...)
}

// Provisioning status of an LBA status descriptor (SBC-3 table "PROVISIONING STATUS
// field").
const (
	LBAMapped      = 0x0
	LBADeallocated = 0x1
	LBAAnchored    = 0x2
)

// LBAStatus is one LBA status descriptor of GET LBA STATUS data (SBC-3 §5.6.2): a run of
// Blocks logical blocks from LBA that share one provisioning status.
type LBAStatus struct {
	LBA    uint64 // @0
	Blocks uint32 // @8
	Status uint8  // @12 bits 3:0
}

// AppendGetLBAStatus appends GET LBA STATUS parameter data: PARAMETER DATA LENGTH @0
// (the bytes after it) and the descriptors from @8. The first descriptor must start at
// the requested LBA (libiscsi GetLBAStatus.UnmapSingle checks it).
func AppendGetLBAStatus(b []byte, descs []LBAStatus) []byte {
	b = be.AppendUint32(b, uint32(4+16*len(descs)))
	b = append(b, 0, 0, 0, 0)
	for _, d := range descs {
		b = be.AppendUint64(b, d.LBA)
		b = be.AppendUint32(b, d.Blocks)
		b = append(b, d.Status&0x0F, 0, 0, 0)
	}
	return b
}
